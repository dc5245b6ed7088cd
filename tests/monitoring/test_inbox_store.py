"""The alert inbox's store and payload parser: rotation, an index that survives a restart, bounds, hostile bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring.inbox.payload import MAX_ALERTS, Rejected, parse
from hux.monitoring.inbox.store import WATCHDOG, InboxStore, Limits

MAX = 1 << 20


def alert(name: str, status: str = "firing", *, severity: str = "critical", fingerprint: str = "",
          summary: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "labels": {"alertname": name, "severity": severity, "job": "bot"},
                            "annotations": {"summary": summary or f"{name} summary"},
                            "startsAt": "2026-12-02T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://127.0.0.1:9090/graph"}
    if fingerprint:
        body["fingerprint"] = fingerprint
    return body


def payload(*alerts: dict[str, Any], receiver: str = "inbox") -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status,
                       "receiver": receiver, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts)}).encode()


def store_at(tmp_path: Path, **limits: Any) -> InboxStore:
    return InboxStore(tmp_path / "logs" / "alerts.log", tmp_path / "data" / "inbox" / "index.sqlite3",
                      Limits(**limits))


def test_a_notification_is_logged_as_json_lines_and_indexed(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.record(parse(payload(alert("ServiceDown", fingerprint="aa"), alert("BotAbsent", fingerprint="bb")), MAX),
                 received_at=1000.0)
    lines = [json.loads(line) for line in (tmp_path / "logs" / "alerts.log").read_text().splitlines()]
    assert [(e["alertname"], e["status"], e["receiver"]) for e in lines] == [
        ("ServiceDown", "firing", "inbox"), ("BotAbsent", "firing", "inbox")]
    assert lines[0]["received_at_iso"] == "1970-01-01T00:16:40Z"
    assert (tmp_path / "logs" / "alerts.log").stat().st_mode & 0o777 == 0o600
    assert [e.alertname for e in store.firing()] == ["ServiceDown", "BotAbsent"]


def test_the_index_survives_a_restart_and_knows_what_fires_now(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.record(parse(payload(alert(WATCHDOG, severity="none", fingerprint="ff")), MAX), received_at=1000.0)
    store.record(parse(payload(alert("ServiceDown", fingerprint="aa"), alert("HostDiskSpaceLow", fingerprint="bb",
                                                                                severity="warning")), MAX),
                 received_at=1010.0)
    store.record(parse(payload(alert("ServiceDown", "resolved", fingerprint="aa")), MAX), received_at=1020.0)
    store.record(parse(payload(alert(WATCHDOG, severity="none", fingerprint="ff")), MAX), received_at=1060.0)
    store.close()

    reopened = InboxStore(tmp_path / "logs" / "alerts.log", tmp_path / "data" / "inbox" / "index.sqlite3",
                          readonly=True)
    assert reopened.last_heartbeat() == 1060.0
    assert [e.alertname for e in reopened.firing()] == ["HostDiskSpaceLow"]
    assert [(e.alertname, e.status) for e in reopened.history(0)] == [
        ("ServiceDown", "firing"), ("HostDiskSpaceLow", "firing"), ("ServiceDown", "resolved")]
    assert [e.received_at for e in reopened.history(1015)] == [1020.0]
    assert len(reopened.history(0, include_watchdog=True)) == 5


def test_the_log_rotates_by_size_and_keeps_log_keep_files(tmp_path: Path) -> None:
    store = store_at(tmp_path, log_max_bytes=4096, log_keep=2)
    for i in range(60):
        store.record(parse(payload(alert(f"Alert{i}", summary="x" * 200)), MAX), received_at=1000.0 + i)
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["alerts.log", "alerts.log.1", "alerts.log.2"]
    for path in logs.iterdir():
        assert path.stat().st_size <= 4096
        assert all(json.loads(line)["alertname"].startswith("Alert") for line in path.read_text().splitlines())
    newest = [json.loads(line)["alertname"] for line in (logs / "alerts.log").read_text().splitlines()]
    assert newest[-1] == "Alert59"
    assert store.count() == 60    # the index is bounded on its own terms


def test_the_index_is_bounded_by_count_and_age(tmp_path: Path) -> None:
    store = store_at(tmp_path, index_max_entries=100, index_retention_seconds=3600.0)
    for i in range(150):
        store.record(parse(payload(alert(f"A{i}")), MAX), received_at=10_000.0 + i)
    assert store.count() == 100
    assert store.history(0)[0].alertname == "A50"
    store.record(parse(payload(alert("Late")), MAX), received_at=10_000.0 + 149 + 3600 - 10)
    assert [e.alertname for e in store.history(0)][:1] == ["A139"]   # received 3600 s before the last one


def test_a_write_failure_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("not a directory")
    store = store_at(tmp_path)
    with pytest.raises(Exception) as raised:
        store.record(parse(payload(alert("ServiceDown")), MAX))
    assert "alerts.log" in str(raised.value) and getattr(raised.value, "target", "") == "log"


@pytest.mark.parametrize(("body", "reason", "words"), [
    (b"x" * 2000, "too_large", "larger than 1024 bytes"),
    (b"\xff\xfe", "not_json", "not JSON"),
    (b"[1, 2]", "bad_schema", "JSON object"),
    (json.dumps({"version": "3", "alerts": []}).encode(), "bad_schema", "version"),
    (payload(alert("X", "pending")), "bad_schema", "alerts[0].status"),
    (json.dumps({"version": "4", "status": "firing", "receiver": "inbox",
                 "alerts": [{"status": "firing", "labels": {"severity": "critical"}}]}).encode(), "bad_schema",
     "no alertname"),
    (json.dumps({"version": "4", "status": "firing", "receiver": "inbox",
                 "alerts": [{"status": "firing", "labels": {"alertname": "X", "bad-name": "y"}}]}).encode(),
     "bad_schema", "label name"),
    (json.dumps({"version": "4", "status": "firing", "receiver": "inbox",
                 "alerts": [alert("X")] * (MAX_ALERTS + 1)}).encode(), "bad_schema", "more than"),
    (b"[" * 100_000, "not_json", "not JSON"),
])
def test_hostile_bodies_are_refused_with_a_reason(body: bytes, reason: str, words: str) -> None:
    limit = 1024 if reason == "too_large" else 10 * MAX
    with pytest.raises(Rejected) as raised:
        parse(body, limit)
    assert raised.value.reason == reason and words in str(raised.value)


@given(st.binary(max_size=2048))
@example(b'{"version": "4", "alerts": [{"labels": {"alertname": 1}}]}')
@example(b'{"version": "4", "status": "firing", "receiver": "x", "truncatedAlerts": true, "alerts": [{}]}')
def test_any_bytes_parse_or_are_refused(body: bytes) -> None:
    try:
        notification = parse(body, 4096)
    except Rejected as exc:
        assert exc.reason in ("too_large", "not_json", "bad_schema")
    else:
        assert notification.alerts and all(a.alertname for a in notification.alerts)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                   max_size=4), max_leaves=20)


@given(st.fixed_dictionaries({"version": st.just("4"), "status": st.sampled_from(["firing", "resolved", "x"]),
                              "receiver": st.text(max_size=200) | _json,
                              "alerts": st.lists(st.dictionaries(st.sampled_from(
                                  ["status", "labels", "annotations", "startsAt", "fingerprint"]), _json), max_size=3)
                              | _json}))
def test_any_json_shaped_like_a_payload_parses_or_is_refused(document: dict[str, Any]) -> None:
    try:
        notification = parse(json.dumps(document).encode(), MAX)
    except Rejected as exc:
        assert exc.reason == "bad_schema"
    else:
        assert all(isinstance(v, str) for a in notification.alerts for v in a.labels.values())


@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.sampled_from(["firing", "resolved"]),
                          st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
                                          st.text(max_size=50), max_size=5)), min_size=1, max_size=5))
def test_valid_payloads_round_trip_through_the_store(tmp_path_factory: pytest.TempPathFactory,
                                                     alerts: list[tuple[str, str, dict[str, str]]]) -> None:
    tmp = tmp_path_factory.mktemp("inbox")
    body = payload(*({"status": status, "labels": {**labels, "alertname": name}, "annotations": labels}
                     for name, status, labels in alerts))
    store = store_at(tmp)
    entries = store.record(parse(body, MAX), received_at=5.0)
    assert [(e.alertname, e.status) for e in store.history(0, include_watchdog=True)] == \
        [(e.alertname, e.status) for e in entries] == [(n, s) for n, s, _ in alerts]
    store.close()
