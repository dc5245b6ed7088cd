"""Every dashboard panel's every query returns data from a real Prometheus scraping a running stack.

Real processes on ephemeral loopback ports: Prometheus (the rendered config and
rules, 1 s scrape and evaluation), Alertmanager, node_exporter with a backup
textfile, and the demo bot (`hux bot run`, sample feed and local doubles).
Nothing here needs Grafana: the queries go to Prometheus' HTTP API the way
Grafana would send them, with template variables set to "All".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hux.monitoring import auth
from hux.monitoring.dashboards import build_dashboards, dashboard_queries
from hux.monitoring.render import render_native
from tests.conftest import free_port, require_binary

pytestmark = pytest.mark.integration

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
"""
# What Grafana would substitute with a 1 s scrape interval and a short time range.
RATE_INTERVAL, INTERVAL, RANGE = "10s", "2s", "1m"
STARTUP_TIMEOUT = 40
DATA_TIMEOUT = 60


class Child:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return f"--- {self.name} log ---\n" + text[-3000:]


def _wait(predicate, timeout: float, what: str, children: list[Child]):
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


def _backup_textfile(directory: Path) -> None:
    now = time.time()
    lines = []
    for metric, kind_value in (("hux_backup_last_success_timestamp_seconds", now - 3600),
                               ("hux_backup_last_attempt_timestamp_seconds", now - 3600),
                               ("hux_backup_last_success", 1), ("hux_backup_last_duration_seconds", 4.2),
                               ("hux_backup_last_size_bytes", 1048576)):
        lines.append(f"# TYPE {metric} gauge")
        lines += [f'{metric}{{kind="{kind}"}} {kind_value}' for kind in ("prometheus", "grafana")]
    (directory / "hux_backup.prom").write_text("\n".join(lines) + "\n")


@pytest.fixture
def live_stack(make_settings, tmp_path, hux_home):
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    node_exporter = require_binary("prometheus-node-exporter")
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node_exporter", "bot", "doubles")}
    settings = make_settings(SETTINGS.format(**ports))
    data = tmp_path / "data"
    rendered = render_native(settings, data / "run", data_dir=data, grafana_enabled=False, environ={})
    textfile = data / "node_exporter" / "textfile"
    textfile.mkdir(parents=True)
    _backup_textfile(textfile)
    logs = tmp_path / "logs"
    logs.mkdir()
    bot_env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    bot_env.update({"HUX_HOME": str(hux_home), "HUX_ENV_FILE": str(tmp_path / "no.env"),
                    "HUX_CONFIG": str(tmp_path / "bot.toml"),
                    "HUX__BOT__PORT": str(ports["bot"]), "HUX__BOT__DEMO__DOUBLES_PORT": str(ports["doubles"])})
    (tmp_path / "bot.toml").write_text("")
    children: list[Child] = []
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
        yield settings, f"http://127.0.0.1:{ports['prometheus']}", children, auth.client_auth(data)
    finally:
        for child in reversed(children):
            child.stop()


def _query(client: httpx.Client, expr: str) -> tuple[str | None, list]:
    reply = client.get("/api/v1/query", params={"query": expr})
    body = reply.json()
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return None, body["data"]["result"]


def test_every_dashboard_panel_has_data(live_stack):
    settings, base, children, credentials = live_stack
    with httpx.Client(base_url=base, timeout=5, auth=credentials) as client:
        def targets_up():
            active = client.get("/api/v1/targets").json()["data"]["activeTargets"]
            jobs = {t["labels"]["job"]: t["health"] for t in active}
            return jobs if set(jobs) == {"prometheus", "alertmanager", "node", "bot"} and all(
                h == "up" for h in jobs.values()) else None

        _wait(targets_up, STARTUP_TIMEOUT, "every scrape target to be up", children)
        names = [r["name"] for r in client.get("/api/v1/rules").json()["data"]["groups"]]
        assert sorted(names) == ["hux-bot", "hux-host", "hux-stack"]

        # The same extraction `hux health` runs (hux.monitoring.dashboards.queries).
        queries = [(q.board, q.panel, q.expr) for q in dashboard_queries(
            build_dashboards(settings).values(), rate_interval=RATE_INTERVAL, interval=INTERVAL, range_=RANGE)]
        assert len(queries) >= 60
        pending = list(queries)
        problems: dict[tuple, str] = {}
        deadline = time.monotonic() + DATA_TIMEOUT
        while pending and time.monotonic() < deadline:
            still = []
            for item in pending:
                error, result = _query(client, item[2])
                if error:
                    problems[item] = error  # a query error will not heal by waiting
                elif not result:
                    still.append(item)
                    problems[item] = "no data"
                else:
                    problems.pop(item, None)
            pending = [item for item in still if problems.get(item) == "no data"]
            if pending:
                time.sleep(1)
    report = "\n".join(f"  {board} / {panel}: {why}\n    {expr}" for (board, panel, expr), why in problems.items())
    assert not problems, f"{len(problems)} of {len(queries)} panel queries failed:\n{report}"
