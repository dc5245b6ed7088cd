"""`hux health` on the alert inbox and on who is paged: the inbox ready, its last heartbeat, and a warning with
the fix when no receiver reaches a person."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hux.monitoring.inbox.payload import parse
from hux.monitoring.inbox.store import InboxStore
from hux.monitoring.settings import load_settings
from hux.stack.health import CheckResult, run_health
from hux.stack.health.inbox_checks import check_inbox
from hux.stack.plan import StackPaths
from tests.conftest import free_port
from tests.stack.conftest import stack_env

NOBODY = ("No one is paged: alerts go only to the local inbox (hux alerts)",
          "To page a person, enable receivers.email or receivers.slack in hux.toml (README: Configuration)")


def settings_for(home: Path, toml: str = ""):
    ports = "".join(f"{n} = {free_port()}\n" for n in ("prometheus", "alertmanager", "node_exporter", "inbox"))
    (home / "hux.toml").write_text(f"[stack.ports]\n{ports}\n{toml}")
    return load_settings(home / "hux.toml", environ=stack_env(home))


def checks(settings, home: Path) -> dict[str, CheckResult]:
    report = asyncio.run(run_health(settings, StackPaths(home), checks=[("inbox", check_inbox)]))
    return {c.name: c for c in report.checks}


def heartbeat(home: Path, at: float) -> None:
    body = json.dumps({"version": "4", "status": "firing", "receiver": "inbox", "alerts": [
        {"status": "firing", "labels": {"alertname": "Watchdog", "severity": "none"}}]}).encode()
    store = InboxStore.for_layout(StackPaths(home))
    store.record(parse(body, 1 << 20), received_at=at)
    store.close()


def test_nobody_paged_is_a_warning_with_the_fix_and_a_stopped_inbox_fails(tmp_path: Path) -> None:
    found = checks(settings_for(tmp_path), tmp_path)
    paging = found["paging"]
    assert paging.status == "warn"
    assert paging.reason.startswith(NOBODY[0]) and paging.fix == NOBODY[1]
    assert found["inbox ready"].status == "fail" and "hux up" in found["inbox ready"].fix
    assert found["alert heartbeat"].status == "warn" and "no Watchdog heartbeat" in found["alert heartbeat"].reason


def test_an_enabled_receiver_is_named(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, '[receivers.email]\nenabled = true\nsmtp_smarthost = "127.0.0.1:2525"\n'
                                      '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n')
    paging = checks(settings, tmp_path)["paging"]
    assert paging.status == "pass"
    assert paging.reason == "Critical alerts page email; warnings go to email (and to the local inbox: hux alerts)."


def test_the_heartbeat_age_is_judged_against_the_heartbeat_interval(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)   # heartbeat_interval 1m: overdue after 2 intervals + 60 s
    heartbeat(tmp_path, time.time() - 30)
    assert checks(settings, tmp_path)["alert heartbeat"].status == "pass"
    heartbeat(tmp_path, time.time() - 600)   # an older one does not hide the newer
    assert checks(settings, tmp_path)["alert heartbeat"].status == "pass"


def test_an_overdue_heartbeat_warns(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    heartbeat(tmp_path, time.time() - 600)
    late = checks(settings, tmp_path)["alert heartbeat"]
    assert late.status == "warn" and "10 min ago" in late.reason and "hux alerts" in late.fix


def test_without_the_inbox_only_who_is_paged_is_checked(tmp_path: Path) -> None:
    found = checks(settings_for(tmp_path, "[inbox]\nenabled = false\n"), tmp_path)
    assert set(found) == {"paging"}
    assert found["paging"].reason.startswith("No one is paged: alerts reach no receiver")
