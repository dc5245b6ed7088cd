"""The whole native stack for one test module: rendered from settings, run as real processes.

``E2EStack`` writes a settings file into a private HUX_HOME (ephemeral ports,
second-long intervals, the three test receivers), renders the native run
directory with ``hux.monitoring.render.render_native`` (the same code
``hux up`` uses), and starts node_exporter, Alertmanager, the demo bot and
Prometheus with the command lines the renderer hands back. Only the listen
addresses are test-specific.

Test-only sources:

* node_exporter runs with its textfile collector only; the harness writes
  ``node_memory_*``, ``node_filesystem_*`` and ``node_vmstat_oom_kill`` series
  into its textfile directory, so memory, disk, inode and OOM-kill alerts are
  driven by files, not by exhausting the machine, and the machine's real
  state (CPU load, clock, network) never fires a host alert in a scenario;
* the market APIs are the bot's in-process doubles, driven through
  ``PUT /_double/faults`` on the bot's doubles port.

Prometheus, Alertmanager and node_exporter run behind the rendered web config
(basic auth, as ``hux up`` runs them); the harness's own clients send the
generated credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from hux.config import deep_merge
from tests.conftest import free_port
from tests.e2e.procs import AlertmanagerApi, Child, PrometheusApi, StackError, get_ok, http, start_child, wait_until
from tests.e2e.receivers import Receivers

REPO = Path(__file__).resolve().parents[2]
HUX = Path(sys.executable).with_name("hux")

#: Second-long intervals; every rule ``for`` short. Thresholds stay the production ones unless a
#: scenario module overrides them (through settings only: the rule text is never edited).
PROMETHEUS = {"scrape_interval": "1s", "evaluation_interval": "1s",
              # the paging fast path at the same pace (production: bot scraped every 5s, timeout 3s, group every 2s)
              "bot_scrape_interval": "1s", "bot_scrape_timeout": "900ms", "fast_evaluation_interval": "1s"}
#: One second for both group waits (production: critical_group_wait 10s, group_wait 30s). A 2s group_wait
#: equal to group_interval let a scenario's first message come a few ms before its floor.
ALERTMANAGER = {"group_wait": "1s", "critical_group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
                "resolve_timeout": "5m"}
ALERTS = {
    "rate_window": "20s",
    "short_window": "5s",
    "error_rate_critical_for": "2s",
    "error_rate_warning_for": "20s",  # >= rate_window, as in production (10m >= 5m)
    "latency_for": "2s",
    "api_usage_for": "2s",
    "service_down_for": "2s",
    "bot_down_for": "2s",
    "memory_for": "2s",
    "disk_for": "2s",
    "disk_predict_window": "20s",
    "database_down_for": "2s",
    # Long enough that the hung market call (12 s) in the latency scenario is not a stall.
    "pipeline_stall_after": "20s",
    "pipeline_stall_for": "2s",
    "queue_backlog_for": "2s",
    "alert_delivery_for": "2s",
    "notifications_failing_for": "2s",
    "backup_too_old_for": "2s",
    # Start-up noise (Prometheus discovering Alertmanager, first reloads) must not page in tests.
    "alertmanager_unreachable_for": "30s",
    "config_reload_for": "30s",
    "rule_failures_for": "30s",
    # The spec's threshold alerts are proven without the SLO burn-rate pages muting them;
    # tests/e2e/test_slo_burn_rates.py turns the pages on with windows of its own.
    "slo_alerts": False,
    # The demo resolves a call every few seconds and its market is random: the call hit rate is not under test
    # here (tests/monitoring promtool cases prove CallHitRateLow), and its 7-day window would outlive every fault.
    "call_hit_rate_min_calls": 1_000_000,
}
#: The demo bot: quick database probe, a small queue so a stalled pipeline shows as backlog fast,
#: API timeouts above the slowest injected latency (a slow API must look slow, not like a timeout).
BOT = {
    "log_level": "INFO",
    "db_probe_interval_seconds": 1.0,
    "queue_capacity": 20,
    "shutdown_grace_seconds": 2.0,
    "dexscreener": {"timeout_seconds": 60.0},
    "rugcheck": {"timeout_seconds": 60.0},
    "goplus": {"timeout_seconds": 60.0},
}

GIB = 1024 ** 3


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Nested dicts of scalars/lists as TOML tables (enough for a settings file)."""
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = []
    if prefix and scalars:
        out.append(f"[{prefix}]")
    out += scalars
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.append(to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(part for part in out if part) + "\n"


@dataclass
class Filesystem:
    """One filesystem as node_exporter's filesystem collector would report it."""

    mountpoint: str
    size_bytes: float = 100 * GIB
    avail_bytes: float = 60 * GIB
    device: str = "/dev/hux-test"
    fstype: str = "ext4"
    readonly: int = 0

    def lines(self) -> list[str]:
        labels = f'device="{self.device}",fstype="{self.fstype}",mountpoint="{self.mountpoint}"'
        return [
            f"node_filesystem_size_bytes{{{labels}}} {self.size_bytes:.0f}",
            f"node_filesystem_avail_bytes{{{labels}}} {self.avail_bytes:.0f}",
            f"node_filesystem_free_bytes{{{labels}}} {self.avail_bytes:.0f}",
            f"node_filesystem_readonly{{{labels}}} {self.readonly}",
            f"node_filesystem_files{{{labels}}} 1000000",
            f"node_filesystem_files_free{{{labels}}} 900000",
            f"node_filesystem_device_error{{{labels}}} 0",
        ]


class HostSource:
    """The test-only memory and filesystem source: *.prom files in node_exporter's textfile directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, lines: Iterable[str]) -> None:
        # Atomic: node_exporter must never read half a file.
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, self.directory / name)

    def memory(self, used_ratio: float, total_bytes: float = 16 * GIB) -> None:
        available = total_bytes * (1.0 - used_ratio)
        self._write("memory.prom", [
            "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.",
            "# TYPE node_memory_MemTotal_bytes gauge",
            f"node_memory_MemTotal_bytes {total_bytes:.0f}",
            "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
            "# TYPE node_memory_MemAvailable_bytes gauge",
            f"node_memory_MemAvailable_bytes {available:.0f}",
        ])

    def filesystems(self, filesystems: Iterable[Filesystem]) -> None:
        lines: list[str] = []
        for fs in filesystems:
            lines += fs.lines()
        self._write("filesystem.prom", lines)

    def oom_kills(self, count: int) -> None:
        """``node_vmstat_oom_kill``: OOM kills since boot (a counter; only ever raise it within a stack)."""
        self._write("vmstat.prom", [
            "# HELP node_vmstat_oom_kill /proc/vmstat information field oom_kill.",
            "# TYPE node_vmstat_oom_kill untyped",
            f"node_vmstat_oom_kill {count}",
        ])

    def healthy(self) -> None:
        self.memory(0.40)
        self.filesystems([Filesystem("/"), Filesystem("/var/lib/hux")])


@dataclass
class Timing:
    """An alert's detection-latency envelope under the running settings (all seconds)."""

    alertname: str
    for_s: float
    group_wait_s: float
    scrape_s: float
    eval_s: float
    window_s: float = 0.0          # what the expression needs to see the fault (rate window, probe period...)
    window_note: str = ""

    @property
    def floor(self) -> float:
        return self.for_s + self.group_wait_s

    @property
    def bound(self) -> float:
        return self.floor + self.scrape_s + self.eval_s + self.window_s


def env_overrides(section: Mapping[str, Any], prefix: str = "HUX__BOT") -> dict[str, str]:
    """``{"dexscreener": {"timeout_seconds": 30}}`` -> ``{"HUX__BOT__DEXSCREENER__TIMEOUT_SECONDS": "30"}``."""
    out: dict[str, str] = {}
    for key, value in section.items():
        name = f"{prefix}__{key.upper()}"
        if isinstance(value, Mapping):
            out.update(env_overrides(value, name))
        else:
            out[name] = _toml_value(value)
    return out


@dataclass
class Bot:
    """One demo bot the stack scrapes: its own HUX_HOME, ports and settings on top of ``BOT``."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    doubles_port: int = field(default_factory=free_port)
    child: Child | None = None

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def demo(self) -> bool:
        """Demo bots run their doubles in-process and replay the sample feed; live ones use the stack's doubles."""
        return self.settings.get("demo", {}).get("enabled", True) is not False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def doubles_url(self) -> str:
        return f"http://127.0.0.1:{self.doubles_port}"

    def faults(self, api: str, **settings: Any) -> float:
        """Replace one market API's fault settings; returns the monotonic time they took effect."""
        status, body = http("PUT", f"{self.doubles_url}/_double/faults", {api: settings})
        if status != 200:
            raise StackError(f"PUT /_double/faults {api}={settings} answered {status}: {body}")
        return time.monotonic()

    def clear_faults(self) -> float:
        status, body = http("DELETE", f"{self.doubles_url}/_double/faults")
        if status != 200:
            raise StackError(f"DELETE /_double/faults answered {status}: {body}")
        return time.monotonic()

    def double_stats(self) -> dict:
        status, body = http("GET", f"{self.doubles_url}/_double/stats")
        if status != 200:
            raise StackError(f"GET /_double/stats answered {status}: {body}")
        return body

    def metrics_text(self) -> str:
        status, body = http("GET", f"{self.url}/metrics")
        if status != 200:
            raise StackError(f"bot {self.name} /metrics answered {status}")
        return str(body)


@dataclass
class E2EStack:
    home: Path
    receivers: Receivers
    bots: Iterable[Bot] = ()
    alerts: Mapping[str, Any] = field(default_factory=dict)
    alertmanager: Mapping[str, Any] = field(default_factory=dict)
    prometheus: Mapping[str, Any] = field(default_factory=dict)
    #: "test": second-long intervals (PROMETHEUS, ALERTMANAGER, ALERTS, BOT above);
    #: "production": the embedded defaults, untouched (used by bench/e2e_alert_latency.py)
    profile: str = "test"
    #: run `hux doubles serve` on this port, for bots in live mode (a real Telegram source against the doubles)
    doubles_server_port: int | None = None

    def __post_init__(self) -> None:
        if self.profile not in ("test", "production"):
            raise ValueError(f"profile must be 'test' or 'production', not {self.profile!r}")
        self.bots = {bot.name: bot for bot in (self.bots or [Bot("main")])}
        self.ports = {name: free_port() for name in ("prometheus", "alertmanager", "node_exporter", "inbox")}
        self.children: dict[str, Child] = {}
        self.logs = self.home / "logs"
        self.data = self.home / "data"
        self.run_dir = self.data / "run"
        self.config_file = self.home / "hux.toml"
        self.host = HostSource(self.data / "node_exporter" / "textfile")
        self.prom = PrometheusApi(f"http://127.0.0.1:{self.ports['prometheus']}")
        self.am = AlertmanagerApi(f"http://127.0.0.1:{self.ports['alertmanager']}")
        self.settings_doc = self._settings_document()
        self.settings: Any = None
        self.rendered: Any = None

    # ------------------------------------------------------------------ settings and render

    def _settings_document(self) -> dict[str, Any]:
        secrets = self.home / "secrets"
        secrets.mkdir(parents=True, exist_ok=True)
        slack_url_file = secrets / "slack_url"
        slack_url_file.write_text(self.receivers.slack.url + "\n", encoding="utf-8")
        slack_url_file.chmod(0o600)
        first = next(iter(self.bots.values()))
        return {
            "bot": deep_merge(BOT if self.profile == "test" else {}, {"demo": {"enabled": True}}),
            "stack": {
                "bind_address": "127.0.0.1",
                "ports": {**self.ports, "bot": first.port, "doubles": first.doubles_port,
                          "grafana": free_port(), "cadvisor": free_port()},
                "bot_targets": [bot.instance for bot in self.bots.values()],
            },
            "prometheus": deep_merge(PROMETHEUS if self.profile == "test" else {}, self.prometheus),
            "alertmanager": deep_merge(ALERTMANAGER if self.profile == "test" else {}, self.alertmanager),
            # the receivers below are enabled: their runbook links must open from a phone
            "alerts": deep_merge(deep_merge(ALERTS if self.profile == "test" else {},
                                            {"runbook_base_url": "https://runbooks.example.org/runbooks.md"}),
                                 self.alerts),
            "grafana": {"enabled": False},
            "receivers": {
                "email": {"enabled": True, "smtp_smarthost": self.receivers.email.smarthost,
                          "from": "hux-alerts@example.org", "to": "oncall@example.org", "require_tls": False},
                # An unused variable name: the URL comes from the file, never from the caller's environment.
                "slack": {"enabled": True, "api_url_env": "HUX_E2E_UNSET_SLACK_URL",
                          "api_url_file": str(slack_url_file), "channel": "#hux-e2e"},
                "webhook": {"enabled": True, "url_env": "HUX_E2E_UNSET_WEBHOOK_URL", "url": self.receivers.webhook.url},
            },
        }

    def child_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
        env.update({
            "HUX_HOME": str(self.home),
            "HUX_CONFIG": str(self.config_file),
            "HUX_ENV_FILE": str(self.home / "no.env"),  # never pick up an operator's .env
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra or {})
        return env

    def render(self) -> None:
        from hux.monitoring.render import render_native
        from hux.monitoring.settings import load_settings

        self.config_file.write_text(to_toml(self.settings_doc), encoding="utf-8")
        environ = {"HUX_HOME": str(self.home)}
        self.settings = load_settings(self.config_file, environ=environ)
        self.rendered = render_native(self.settings, self.run_dir, data_dir=self.data, grafana_enabled=False,
                                      environ=environ)
        self.prom.auth = self.am.auth = self.credentials

    @property
    def credentials(self) -> tuple[str, str]:
        """(user, password) of the stack's basic auth, generated by the render."""
        from hux.monitoring import auth

        return auth.USER, auth.auth_files(self.data).password_file.read_text(encoding="utf-8").strip()

    # ------------------------------------------------------------------ processes

    def start(self) -> "E2EStack":
        self.render()
        self.host.healthy()
        node = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        if node is None:
            raise StackError("node_exporter is not installed: run `python3 scripts/run_tests.py`")
        self.children["node_exporter"] = start_child("node_exporter", [
            node, f"--web.listen-address=127.0.0.1:{self.ports['node_exporter']}",
            f"--collector.textfile.directory={self.host.directory}",
            # Only the textfile collector: the machine's own state (a loaded CI box, a container's
            # unsynchronised clock) must not fire or hold pending the host alerts of a scenario.
            "--collector.disable-defaults", "--collector.textfile", *self.rendered.web_args,
        ], self.logs)
        self.children["alertmanager"] = start_child(
            "alertmanager", [_binary("prometheus-alertmanager", "alertmanager"), *self.rendered.alertmanager_args,
                             *self.rendered.web_args],
            self.logs, cwd=self.run_dir)
        # The local alert inbox, with the command line the supervisor's plan gives it (every route sends to it).
        from hux.paths import Layout
        from hux.stack.components import inbox_spec

        self.children["inbox"] = start_child("inbox", list(inbox_spec(self.settings, Layout(self.home)).argv),
                                             self.logs, env=self.child_env(), cwd=self.home)
        if self.doubles_server_port:
            self.children["doubles"] = start_child("doubles", [
                str(HUX), "doubles", "serve", "--host", "127.0.0.1", "--port", str(self.doubles_server_port),
            ], self.logs, env=self.child_env(), cwd=self.home)
            self._wait_http("doubles", f"http://127.0.0.1:{self.doubles_server_port}/_double/health")
        for bot in self.bots.values():
            self.start_bot(bot)
        self.children["prometheus"] = start_child(
            "prometheus", [_binary("prometheus"), *self.rendered.prometheus_args, *self.rendered.web_args], self.logs,
            cwd=self.run_dir)
        self._wait_http("node_exporter", f"http://127.0.0.1:{self.ports['node_exporter']}/metrics", auth=True)
        self._wait_http("alertmanager", f"{self.am.base_url}/-/ready", auth=True)
        self._wait_http("inbox", f"http://127.0.0.1:{self.ports['inbox']}/ready")
        self._wait_http("prometheus", f"{self.prom.base_url}/-/ready", auth=True)
        self.wait_targets_up(timeout=60)
        if self.profile == "test":
            self.wait_warm()
        return self

    def wait_warm(self, timeout: float = 60.0) -> None:
        """Until Prometheus holds a full rate window of every bot, with market API traffic in it.

        Ratios and quantiles over a half-empty window move faster than they would in production,
        which would make the latency measurements look better than they are. (A live bot only calls the
        APIs when a chat message comes in, so only its scrapes are waited for.)
        """
        from hux.monitoring.settings import duration_seconds

        window = self.seconds("rate_window")
        samples = window / duration_seconds(self.settings.prometheus.bot_scrape_interval) - 2

        def warm() -> bool:
            for bot in self.bots.values():
                seen = self.prom.value(f'count_over_time(up{{instance="{bot.instance}"}}[{window:.0f}s])')
                calls = self.prom.value(
                    f'sum(rate(hux_api_requests_total{{instance="{bot.instance}",api="dexscreener"}}[{window:.0f}s]))')
                if not seen or seen < samples or (bot.demo and not calls):
                    return False
            return True

        wait_until(warm, timeout, f"a full {window:.0f}s window of every bot in Prometheus", interval=0.5)

    def stop(self) -> None:
        prometheus = self.children.pop("prometheus", None)
        if prometheus is not None:
            prometheus.stop()
        for bot in self.bots.values():
            if bot.child is not None:
                bot.child.stop()
        for name in ("doubles", "alertmanager", "inbox", "node_exporter"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop()

    def _wait_http(self, name: str, url: str, timeout: float = 30.0, child: Child | None = None,
                   auth: bool = False) -> None:
        child = child or self.children[name]
        credentials = self.credentials if auth else None

        def ready() -> bool:
            if not child.alive():
                raise StackError(f"{name} exited with {child.popen.returncode}:\n{child.log_tail()}")
            return get_ok(url, auth=credentials)

        try:
            wait_until(ready, timeout, f"{name} at {url}")
        except StackError as exc:
            raise StackError(f"{exc}\n--- {name} log ---\n{child.log_tail()}") from None

    @property
    def bot(self) -> Bot:
        """The stack's first (usually only) bot."""
        return next(iter(self.bots.values()))

    @property
    def node_instance(self) -> str:
        return f"127.0.0.1:{self.ports['node_exporter']}"

    def start_bot(self, bot: Bot | None = None, timeout: float = 40.0) -> Bot:
        bot = bot or self.bot
        if bot.child is not None and bot.child.alive():
            return bot
        home = self.home / "bots" / bot.name
        home.mkdir(parents=True, exist_ok=True)
        settings = deep_merge(bot.settings, {"port": bot.port})
        if bot.demo:
            settings = deep_merge(settings, {"demo": {"doubles_port": bot.doubles_port}})
        env = self.child_env({"HUX_HOME": str(home), **env_overrides(settings), **bot.env})
        argv = [str(HUX), "--config", str(self.config_file), "bot", "run"]
        bot.child = start_child(f"bot-{bot.name}", argv, self.logs, env=env, cwd=home)
        self._wait_http(f"bot {bot.name}", f"{bot.url}/ready", timeout, child=bot.child)
        if bot.demo:
            self._wait_http(f"bot {bot.name}", f"{bot.doubles_url}/_double/health", timeout, child=bot.child)
        return bot

    def kill_bot(self, bot: Bot | None = None) -> float:
        """SIGKILL a bot (a crash); returns the monotonic time of the kill."""
        bot = bot or self.bot
        assert bot.child is not None, f"bot {bot.name} is not running"
        t = time.monotonic()
        bot.child.kill()
        return t

    def wait_targets_up(self, timeout: float = 30.0) -> None:
        def all_up() -> bool:
            targets = self.prom.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        wait_until(all_up, timeout, "every Prometheus target to be up")

    # ------------------------------------------------------------------ alerts

    def active_alerts(self, *, ignore: Iterable[str] = ("Watchdog",)) -> list[dict]:
        skip = set(ignore)
        return [a for a in self.prom.alerts() if a["labels"].get("alertname") not in skip]

    def wait_quiet(self, timeout: float = 90.0, *, ignore: Iterable[str] = ("Watchdog",)) -> None:
        """Until no alert but ``ignore`` is pending or firing in Prometheus."""
        ignore = tuple(ignore)

        def quiet() -> bool:
            return not self.active_alerts(ignore=ignore)

        try:
            wait_until(quiet, timeout, "no pending or firing alerts", interval=0.5)
        except StackError as exc:
            names = sorted({(a["labels"]["alertname"], a["state"]) for a in self.active_alerts(ignore=ignore)})
            raise StackError(f"{exc}; still active: {names}") from None

    def wait_alert_state(self, alertname: str, state: str | tuple[str, ...], timeout: float, **labels: str) -> dict:
        states = (state,) if isinstance(state, str) else state

        def find() -> dict | None:
            for alert in self.prom.alerts():
                if alert["labels"].get("alertname") == alertname and alert["state"] in states and all(
                    alert["labels"].get(k) == v for k, v in labels.items()
                ):
                    return alert
            return None

        return wait_until(find, timeout, f"{alertname}{labels or ''} to be {state} in Prometheus", interval=0.25)

    @property
    def eval_s(self) -> float:
        from hux.monitoring.settings import duration_seconds

        return duration_seconds(self.settings.prometheus.evaluation_interval)

    @property
    def scrape_s(self) -> float:
        from hux.monitoring.settings import duration_seconds

        return duration_seconds(self.settings.prometheus.scrape_interval)

    def timing(self, alertname: str, *, for_key: str, window_s: float = 0.0, window_note: str = "") -> Timing:
        from hux.monitoring.rules import ALERTS as SEVERITIES
        from hux.monitoring.settings import duration_seconds

        a = self.settings.alerts
        am = self.settings.alertmanager
        group_wait = am.critical_group_wait if SEVERITIES[alertname] == "critical" else am.group_wait
        return Timing(
            alertname=alertname,
            for_s=duration_seconds(getattr(a, for_key)),
            group_wait_s=duration_seconds(group_wait),
            scrape_s=duration_seconds(self.settings.prometheus.scrape_interval),
            eval_s=duration_seconds(self.settings.prometheus.evaluation_interval),
            window_s=window_s,
            window_note=window_note,
        )

    @staticmethod
    def seconds_of(duration: str) -> float:
        from hux.monitoring.settings import duration_seconds

        return duration_seconds(duration)

    def seconds(self, key: str) -> float:
        from hux.monitoring.settings import duration_seconds

        return duration_seconds(getattr(self.settings.alerts, key))


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(f"{names[0]} is not installed: run `python3 scripts/run_tests.py`, which installs it")
