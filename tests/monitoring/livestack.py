"""A real monitoring stack on ephemeral loopback ports, for the tests that need one running.

Prometheus (the rendered config and rules, 1 s scrape and evaluation),
Alertmanager, node_exporter with a backup textfile, and the demo bot
(`hux bot run`, sample feed and local doubles), behind basic auth as `hux up`
runs them. The ``live_stack`` fixture (tests/monitoring/conftest.py) starts it;
the live panel test and the dashboard snapshot's browser test use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from hux.monitoring.dashboards import PanelQuery, may_be_empty
from hux.monitoring.render import render_native
from hux.monitoring.settings import Settings
from tests.conftest import free_port, require_binary

SETTINGS = """
[stack]
bot_targets = ["127.0.0.1:{bot}"]
[stack.ports]
prometheus = {prometheus}
alertmanager = {alertmanager}
node_exporter = {node_exporter}
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"
[alerts]
rate_window = "10s"
short_window = "5s"
error_rate_baseline_window = "1m"
disk_predict_window = "1m"
[alertmanager]
group_wait = "1s"
group_interval = "1s"
[inbox]
enabled = false    # no alert inbox here (tests/monitoring/test_inbox_alertmanager.py runs one)
"""
# What Grafana would substitute with a 1 s scrape interval and a short time range.
RATE_INTERVAL, INTERVAL, RANGE = "10s", "2s", "1m"
STARTUP_TIMEOUT = 40
DATA_TIMEOUT = 60
JOBS = {"prometheus", "alertmanager", "node", "bot"}


def stop_process(proc: "subprocess.Popen[bytes]", grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s (a process this test started, by its handle)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Child:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return f"--- {self.name} log ---\n" + text[-3000:]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, children: list[Child]) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for child in children:
            if child.proc.poll() is not None:
                pytest.fail(f"{child.name} exited with {child.proc.returncode} while waiting for {what}\n"
                            + child.tail())
        try:
            last = predicate()
        except (httpx.HTTPError, ValueError) as exc:  # not listening yet, or "not ready" in plain text
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n"
                + "\n".join(c.tail() for c in children))


def backup_textfile(directory: Path) -> None:
    now = time.time()
    lines = []
    for metric, kind_value in (("hux_backup_last_success_timestamp_seconds", now - 3600),
                               ("hux_backup_last_attempt_timestamp_seconds", now - 3600),
                               ("hux_backup_last_success", 1), ("hux_backup_last_duration_seconds", 4.2),
                               ("hux_backup_last_size_bytes", 1048576)):
        lines.append(f"# TYPE {metric} gauge")
        lines += [f'{metric}{{kind="{kind}"}} {kind_value}' for kind in ("prometheus", "grafana")]
    (directory / "hux_backup.prom").write_text("\n".join(lines) + "\n")


@dataclass
class LiveStack:
    settings: Settings
    url: str                 # Prometheus
    children: list[Child]
    auth: httpx.Auth | None  # the rendered credentials
    data: Path               # the stack's data/ (rendered config under run/)
    started: float           # unix time the processes were started

    def targets_up(self, client: httpx.Client) -> dict[str, str] | None:
        """The health of every job, once each job this stack starts (:data:`JOBS`) is up.

        A job the rendered config scrapes but this stack does not start (e.g. the alert inbox)
        is left to its own tests."""
        active = client.get("/api/v1/targets").json()["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t["health"] for t in active}
        return jobs if all(jobs.get(job) == "up" for job in JOBS) else None

    def wait_until_up(self, client: httpx.Client) -> None:
        wait_for(lambda: self.targets_up(client), STARTUP_TIMEOUT, "every scrape target to be up", self.children)


@contextmanager
def live_stack(make_settings: Callable[[str], Settings], tmp_path: Path, hux_home: Path) -> Iterator[LiveStack]:
    from hux.monitoring import auth

    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    node_exporter = require_binary("prometheus-node-exporter")
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node_exporter", "bot", "doubles")}
    settings = make_settings(SETTINGS.format(**ports))
    data = tmp_path / "data"
    rendered = render_native(settings, data / "run", data_dir=data, grafana_enabled=False, environ={})
    textfile = data / "node_exporter" / "textfile"
    textfile.mkdir(parents=True)
    backup_textfile(textfile)
    logs = tmp_path / "logs"
    logs.mkdir()
    bot_env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    bot_env.update({"HUX_HOME": str(hux_home), "HUX_ENV_FILE": str(tmp_path / "no.env"),
                    "HUX_CONFIG": str(tmp_path / "bot.toml"),
                    "HUX__BOT__PORT": str(ports["bot"]), "HUX__BOT__DEMO__DOUBLES_PORT": str(ports["doubles"])})
    (tmp_path / "bot.toml").write_text("")
    children: list[Child] = []
    started = time.time()
    try:
        children.append(Child("node_exporter", [
            node_exporter, f"--web.listen-address=127.0.0.1:{ports['node_exporter']}",
            f"--collector.textfile.directory={textfile}", *rendered.web_args], logs))
        children.append(Child("alertmanager", [alertmanager, *rendered.alertmanager_args, *rendered.web_args], logs,
                              cwd=rendered.run_dir))
        children.append(Child("bot", [sys.executable, "-m", "hux.cli", "bot", "run"], logs, env=bot_env))
        children.append(Child("prometheus", [prometheus, *rendered.prometheus_args, *rendered.web_args], logs,
                              cwd=rendered.run_dir))
        # Behind basic auth as `hux up` runs them: the client carries the rendered credentials.
        yield LiveStack(settings, f"http://127.0.0.1:{ports['prometheus']}", children, auth.client_auth(data), data,
                        started)
    finally:
        for child in reversed(children):
            child.stop()


def _query(client: httpx.Client, expr: str) -> tuple[str | None, list[Any]]:
    reply = client.get("/api/v1/query", params={"query": expr})
    body = reply.json()
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return None, body["data"]["result"]


def _has_value(result: list[Any]) -> bool:
    """Whether an instant result holds a number a panel can draw (NaN, e.g. a ratio of two zeros, is none)."""
    return any(str(value) != "NaN" for series in result
               for _, value in ([series["value"]] if "value" in series else series.get("values", [])))


@dataclass
class PanelData:
    """What :func:`wait_for_panel_data` found: the failing queries (and why), and those legitimately empty."""

    problems: dict[tuple[str, str, str], str]
    not_configured: list[PanelQuery]   # panels of a part of the bot this stack does not run (``may_be_empty``)


def _not_running(client: httpx.Client, query: PanelQuery) -> bool:
    """Whether ``query``'s panel may be empty: its part of the bot runs only when configured, and does not run."""
    if not query.present:
        return False
    error, result = _query(client, query.present)
    return not error and may_be_empty(query, _has_value(result))


def wait_for_panel_data(client: httpx.Client, queries: list[PanelQuery], timeout: float = DATA_TIMEOUT) -> PanelData:
    """Ask every query until each returns data (at most ``timeout`` s); what still fails, and why.

    A panel of a part of the bot that is not configured (its ``present`` query empty) is waited for
    like the others, and set aside as legitimately empty once all else has data (or time is up)."""
    pending = list(queries)
    problems: dict[PanelQuery, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still = []
        for item in pending:
            error, result = _query(client, item.expr)
            if error:
                problems[item] = error  # a query error will not heal by waiting
            elif not _has_value(result):   # nothing, or only NaN (0/0 before the first event): a panel shows "No data"
                still.append(item)
                problems[item] = "no data"
            else:
                problems.pop(item, None)
        pending = [item for item in still if problems.get(item) == "no data"]
        if pending and all(_not_running(client, item) for item in pending):
            break   # only panels of parts that are not running are left (asked again below)
        if pending:
            time.sleep(1)
    not_configured = []
    for item in [q for q, why in problems.items() if why == "no data"]:
        if _not_running(client, item):
            del problems[item]
            not_configured.append(item)
    return PanelData({(q.board, q.panel, q.expr): why for q, why in problems.items()}, not_configured)
