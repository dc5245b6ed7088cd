"""`hux alerts`: what fires now with the runbook's first steps, the history (--since), the last heartbeat, --json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hux.monitoring.inbox.payload import parse
from hux.monitoring.inbox.store import InboxStore
from hux.monitoring.runbooks import first_steps
from hux.paths import Layout
from tests.stack.conftest import stack_env


def record(home: Path, at: float, *alerts: tuple[str, str, dict[str, str]]) -> None:
    body = {"version": "4", "status": "firing", "receiver": "inbox", "alerts": [
        {"status": status, "labels": {"alertname": name, "severity": "critical", "job": "bot"},
         "annotations": annotations, "startsAt": "2026-12-02T05:00:00Z", "fingerprint": f"f{name}"}
        for name, status, annotations in alerts]}
    store = InboxStore.for_layout(Layout(home))
    store.record(parse(json.dumps(body).encode(), 1 << 20), received_at=at)
    store.close()


def hux_alerts(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hux.cli", "alerts", *args], env=stack_env(home), cwd=home,
                          capture_output=True, text=True, timeout=60)


def test_firing_history_and_heartbeat(tmp_path: Path) -> None:
    now = time.time()
    record(tmp_path, now - 3 * 3600, ("BotHighLatency", "firing", {"summary": "slow"}))      # outside --since 2h
    record(tmp_path, now - 600, ("ServiceDown", "firing", {"summary": "bot at x is down"}))
    record(tmp_path, now - 300, ("BotDatabaseDown", "firing", {"summary": "db down", "first_steps": "1. Look.\n2. Fix."}))
    record(tmp_path, now - 120, ("ServiceDown", "resolved", {"summary": "bot at x is down"}))
    record(tmp_path, now - 20, ("Watchdog", "firing", {}))

    text = hux_alerts(tmp_path, "--since", "2h")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    heartbeat = re.search(r"Last Watchdog heartbeat: \S+Z \((\d+) s ago\)", out)
    assert heartbeat and 20 <= int(heartbeat.group(1)) < 120, out     # the command's own start-up on a busy box
    firing = out.split("Firing now (")[1].split("History")[0]
    assert "BotHighLatency [critical]: slow" in firing and "BotDatabaseDown [critical]: db down" in firing
    assert "ServiceDown" not in firing                                # resolved
    assert "1. Look." in firing and "2. Fix." in firing               # the notification's own first steps
    assert f"1. {first_steps('BotHighLatency')[0]}" in firing         # else the runbook's
    history = out.split("History since")[1]
    assert "(3 notification(s) besides the Watchdog)" in history      # BotHighLatency is older than 2h
    assert history.index("FIRING    ServiceDown") < history.index("RESOLVED  ServiceDown")
    assert "No one is paged" in out

    data: dict[str, Any] = json.loads(hux_alerts(tmp_path, "--json", "--since", "4h").stdout)
    assert 20 <= data["last_heartbeat"]["age_seconds"] < 120
    assert [e["alertname"] for e in data["firing"]] == ["BotHighLatency", "BotDatabaseDown"]
    assert data["firing"][1]["first_steps"] == ["Look.", "Fix."]
    assert [(e["alertname"], e["status"]) for e in data["history"]] == [
        ("BotHighLatency", "firing"), ("ServiceDown", "firing"), ("BotDatabaseDown", "firing"),
        ("ServiceDown", "resolved")]
    assert data["paging"]["nobody_paged"] is True


def test_an_empty_inbox_says_how_to_start_it_and_a_bad_since_is_refused(tmp_path: Path) -> None:
    empty = hux_alerts(tmp_path)
    assert empty.returncode == 0 and "has received nothing yet" in empty.stdout and "hux up" in empty.stdout
    bad = hux_alerts(tmp_path, "--since", "yesterday")
    assert bad.returncode == 1 and "--since" in bad.stderr and "e.g." not in bad.stdout
