"""The alert inbox as a real process: hostile bodies refused and counted, write failures answered 500,
and a real Alertmanager, with the rendered configuration, delivering firing and resolved alerts to it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from hux.monitoring.inbox.store import InboxStore
from hux.monitoring.render import render_native
from hux.paths import Layout
from tests.conftest import free_port
from tests.ops.conftest import AmProcess
from tests.ops.conftest import _stop as stop_process

pytestmark = pytest.mark.integration


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def inbox_process(home: Path, port: int, *extra: str) -> Iterator[str]:
    layout = Layout(home)
    log = (home / "inbox-process.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "hux.monitoring.inbox", "--port", str(port),
                             "--log-file", str(layout.alerts_log), "--index",
                             str(layout.inbox_dir / "index.sqlite3"), *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _ready(base + "/ready"), 20, "the inbox to be ready")
        assert proc.poll() is None, (home / "inbox-process.log").read_text()
        yield base
    finally:
        stop_process(proc)
        log.close()


def metric(base: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}" if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def test_hostile_bodies_get_400_with_the_reason_and_are_counted(tmp_path: Path) -> None:
    with inbox_process(tmp_path, free_port(), "--max-payload-bytes", "2048") as base:
        too_large = httpx.post(base + "/webhook", content=b"{" + b" " * 5000 + b"}", timeout=5)
        assert too_large.status_code == 400 and too_large.json()["reason"] == "too_large"
        not_json = httpx.post(base + "/webhook", content=b"<html>", timeout=5)
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
        schema = httpx.post(base + "/webhook", json={"version": "4", "status": "firing", "receiver": "x",
                                                     "alerts": [{"status": "firing", "labels": {}}]}, timeout=5)
        assert schema.status_code == 400 and "alertname" in schema.json()["error"]
        assert metric(base, "hux_inbox_payloads_rejected_total", reason="too_large") == 1.0
        assert metric(base, "hux_inbox_payloads_rejected_total", reason="not_json") == 1.0
        assert metric(base, "hux_inbox_payloads_rejected_total", reason="bad_schema") == 1.0
        assert not Layout(tmp_path).alerts_log.exists()


def test_a_notification_it_cannot_write_is_answered_500_and_counted(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the log directory should be")
    body = {"version": "4", "status": "firing", "receiver": "inbox", "groupKey": "{}",
            "alerts": [{"status": "firing", "labels": {"alertname": "ServiceDown", "severity": "critical"}}]}
    with inbox_process(tmp_path, free_port()) as base:
        answer = httpx.post(base + "/webhook", json=body, timeout=5)
        assert answer.status_code == 500 and "could not write" in answer.json()["error"]
        assert metric(base, "hux_inbox_write_errors_total", target="log") == 1.0
        assert metric(base, "hux_inbox_notifications_total", status="firing", receiver="inbox") != 1.0


def _post(am: str, alerts: list[dict[str, Any]]) -> None:
    assert httpx.post(am + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200


def test_a_real_alertmanager_delivers_firing_resolved_and_heartbeat_to_the_inbox(
        make_settings: Callable[..., Any], tmp_path: Path) -> None:
    inbox_port = free_port()
    settings = make_settings(f"""
[stack.ports]
inbox = {inbox_port}
[alertmanager]
group_wait = "1s"
critical_group_wait = "1s"
group_interval = "1s"
heartbeat_interval = "2s"
""")
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path / "data", grafana_enabled=False,
                             environ={})
    config = rendered.alertmanager_config.read_text()
    assert f"http://127.0.0.1:{inbox_port}/webhook" in config and "send_resolved: true" in config
    home = tmp_path / "home"
    home.mkdir()
    am = AmProcess(rendered.alertmanager_config, tmp_path / "am-data", tmp_path / "alertmanager.log")
    am.start()
    base = am.url
    store = InboxStore.for_layout(Layout(home), readonly=True)
    try:
        with inbox_process(home, inbox_port) as inbox:
            started = datetime.now(timezone.utc).isoformat()
            down = {"labels": {"alertname": "ServiceDown", "severity": "critical", "job": "bot",
                               "instance": "127.0.0.1:8000"},
                    "annotations": {"summary": "bot at 127.0.0.1:8000 is down"}, "startsAt": started}
            watchdog = {"labels": {"alertname": "Watchdog", "severity": "none"}, "startsAt": started}
            _post(base, [down, watchdog])
            wait_for(lambda: [e.alertname for e in store.firing()] == ["ServiceDown"], 30, "ServiceDown firing")
            wait_for(lambda: store.last_heartbeat() is not None, 30, "the Watchdog heartbeat")
            _post(base, [dict(down, endsAt=datetime.now(timezone.utc).isoformat())])
            wait_for(lambda: not store.firing(), 30, "ServiceDown resolved")
            history = [(e.alertname, e.status, e.receiver) for e in store.history(0)]
            assert history[0] == ("ServiceDown", "firing", "inbox") and history[-1] == ("ServiceDown", "resolved",
                                                                                          "inbox")
            assert metric(inbox, "hux_inbox_notifications_total", status="resolved", receiver="inbox") >= 1.0
            assert metric(inbox, "hux_inbox_last_heartbeat_timestamp_seconds") == pytest.approx(
                store.last_heartbeat(), abs=0.01)
            # every notification is a JSON line in logs/alerts.log too
            logged = [json.loads(line) for line in Layout(home).alerts_log.read_text().splitlines()]
            assert {("ServiceDown", "firing"), ("ServiceDown", "resolved"), ("Watchdog", "firing")} <= {
                (e["alertname"], e["status"]) for e in logged}
            # the Watchdog is re-sent every heartbeat_interval (2 s here): the heartbeat moves on
            first = store.last_heartbeat()
            wait_for(lambda: (store.last_heartbeat() or 0) > (first or 0), 30, "a second heartbeat")
            # ... every heartbeat_interval, not every other one: with repeat_interval equal to group_interval,
            # Alertmanager skipped each second flush (its last send is logged just after the flush began)
            since = store.last_heartbeat() or 0.0

            def beats() -> list[float]:
                return [e.received_at for e in store.history(since, include_watchdog=True) if e.alertname == "Watchdog"]

            wait_for(lambda: len(beats()) >= 5, 20, "five heartbeats in a row")
            gaps = [b - a for a, b in itertools.pairwise(beats())]
            assert max(gaps) < 3.0, f"heartbeats every 2 s expected, gaps {gaps}"
    finally:
        store.close()
        am.stop()
