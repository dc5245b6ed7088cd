"""Failure drills of the HA topology: real processes on loopback, driven through `hux up` as an operator would.

Scaled for CI (docs/scaling.md, "HA topology"): 1 s scrape and evaluation intervals, `for` of 2 s, a 1.3 s
group wait, 2.3 s group interval and 0.5 s peer timeout, and VictoriaMetrics stopped for 20 s instead of two
minutes. The group timings are off the evaluation grid on purpose: a flush at the very moment the resolving
evaluation's update arrives lets the members disagree (one sees it resolved, the next one still firing), and
the next one then sends a stale firing notification (Alertmanager's cluster is at-least-once). The fault of
each incident is a real one the stack watches: a backup status in node_exporter's textfile directory that
is two hours old (BackupTooOld, a warning routed to the Slack double and the webhook recorder); each
incident has its own ``kind`` label so the notifications of one drill are counted apart from the others'.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from hux.stack.control import SupervisedComponent
from hux.stack.native import NativeStack
from hux.stack.procs import ProcessIdentity
from tests.conftest import require_binary
from tests.e2e.receivers import SlackDouble, WebhookRecorder
from tests.stack.conftest import PORT_NAMES, StackUnderTest, start_stack, stop_stack, wait_for

HA_PORTS = ("prometheus_b", "alertmanager_b", "alertmanager_c", "alertmanager_cluster", "alertmanager_b_cluster",
            "alertmanager_c_cluster", "victoria_metrics")
MEMBERS = ("alertmanager", "alertmanager_b", "alertmanager_c")
ALERT = "BackupTooOld"
SCRAPE_S = 1.0
#: VictoriaMetrics' outage in the drill (two minutes in the issue, scaled to fit CI)
VM_OUTAGE_S = 20.0


def _config(webhook_url: str, slack_url_file: Path) -> str:
    return f"""
[stack]
topology = "ha"

[alertmanager]
group_wait = "1s300ms"
critical_group_wait = "1s300ms"
group_interval = "2s300ms"
peer_timeout = "500ms"
repeat_interval = "1h"
heartbeat_interval = "1h"
critical_receivers = ["slack", "webhook"]
warning_receivers = ["slack", "webhook"]

[alerts]
runbook_base_url = "https://runbooks.example.org/docs/runbooks.md"
backup_too_old_for = "2s"
short_window = "10s"
remote_write_lag_seconds = 10.0
remote_write_behind_for = "2s"
remote_write_failing_for = "2s"
victoria_metrics_down_for = "2s"

[backup]
max_age = "1h"

[receivers.webhook]
enabled = true
url = "{webhook_url}"

[receivers.slack]
enabled = true
api_url_file = "{slack_url_file}"

[victoria_metrics]
latency_offset = "1s"
"""


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[SlackDouble, WebhookRecorder]]:
    slack, webhook = SlackDouble([ALERT]).start(), WebhookRecorder([ALERT]).start()
    yield slack, webhook
    slack.stop()
    webhook.stop()


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory, receivers) -> Iterator[StackUnderTest]:
    require_binary("victoria-metrics")
    slack, webhook = receivers
    home = tmp_path_factory.mktemp("ha")
    slack_file = home / "slack_url"
    slack_file.write_text(slack.url + "\n")
    slack_file.chmod(0o600)
    stack = start_stack(home, config_extra=_config(webhook.url, slack_file),
                        port_names=(*PORT_NAMES, *HA_PORTS),
                        prometheus='bot_scrape_interval = "1s"\nbot_scrape_timeout = "500ms"\n'
                                   'fast_evaluation_interval = "1s"\n')
    yield stack
    stop_stack(stack)


# --- helpers -------------------------------------------------------------------------------------------


def _backup_status(stack: StackUnderTest, kind: str, age_s: float) -> None:
    """The textfile node_exporter serves: the last successful ``kind`` backup ``age_s`` ago."""
    directory = stack.paths.textfile_dir
    tmp = directory / f".drill-{kind}.prom.tmp"
    tmp.write_text(f'hux_backup_last_success_timestamp_seconds{{kind="{kind}"}} {time.time() - age_s:.0f}\n')
    os.replace(tmp, directory / f"drill-{kind}.prom")


def _fault(stack: StackUnderTest, kind: str) -> float:
    _backup_status(stack, kind, 2 * 3600)
    return time.monotonic()


def _clear(stack: StackUnderTest, kind: str) -> float:
    _backup_status(stack, kind, 0)
    return time.monotonic()


def _of(notification: Any, kind: str) -> bool:
    """A notification about this incident (webhook: its alerts' labels; Slack: its text)."""
    if notification.alerts:
        return any(a["labels"].get("alertname") == ALERT and a["labels"].get("kind") == kind
                   for a in notification.alerts)
    return ALERT in notification.text and f"kind=`{kind}`" in notification.text


def _counts(receivers: tuple[SlackDouble, WebhookRecorder], kind: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for recorder in receivers:
        found = [n for n in recorder.delivered() if _of(n, kind)]
        out[recorder.kind] = {status: sum(1 for n in found if n.status == status) for status in ("firing", "resolved")}
    return out


def _describe(receivers, kind: str) -> str:
    return "\n".join(f"{r.kind} {n.status} at {n.received_at:.1f} from {(n.raw or {}).get('externalURL', '?')} "
                     f"alerts {[(a['labels'].get('kind'), a['status'], a.get('startsAt')) for a in n.alerts]}"
                     for r in receivers for n in r.delivered() if _of(n, kind))


def _wait_notified(receivers, kind: str, status: str, timeout: float) -> None:
    for recorder in receivers:
        got = recorder.wait_for(lambda n: _of(n, kind) and n.status == status, timeout)
        assert got is not None, f"{recorder.kind} got no {status} {ALERT} kind={kind} within {timeout:.0f} s: " \
                                f"{_counts(receivers, kind)}"


def _get(stack: StackUnderTest, component: str, path: str, **params: str) -> Any:
    auth = None if component == "victoria_metrics" else stack.credentials
    response = httpx.get(stack.url(component) + path, params=params, auth=auth, timeout=10)
    response.raise_for_status()
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def _kill(stack: StackUnderTest, name: str) -> SupervisedComponent:
    """SIGKILL a component and keep it down (the supervisor is asked to leave it stopped)."""
    control = SupervisedComponent(NativeStack(stack.paths), name, timeout=60)
    victim = ProcessIdentity.from_dict(stack.component(name).get("identity"))
    assert victim is not None and victim.alive(), f"{name} is not running"
    assert victim.signal(signal.SIGKILL)
    control.stop()      # whether the supervisor restarted it meanwhile or not: stopped now
    assert not victim.alive()
    return control


def _bot_samples(stack: StackUnderTest, component: str, start: float, end: float) -> list[float]:
    """Timestamps (s) of ``up{job="bot"}`` samples stored between start and end (wall clock)."""
    if component == "victoria_metrics":
        text = _get(stack, component, "/api/v1/export", **{"match[]": 'up{job="bot"}', "start": f"{start:.3f}",
                                                            "end": f"{end:.3f}"})
        stamps: list[float] = []
        for line in filter(None, text.splitlines() if isinstance(text, str) else [json.dumps(text)]):
            stamps += [t / 1000 for t in json.loads(line)["timestamps"]]
        return sorted(stamps)
    window = max(1, int(end - start))
    body = _get(stack, component, "/api/v1/query", query=f'up{{job="bot"}}[{window}s]', time=f"{end:.3f}")
    return sorted(float(t) for series in body["data"]["result"] for t, _ in series["values"])


def _largest_gap(stamps: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(stamps)), default=float("inf"))


def _alert_firing(stack: StackUnderTest, component: str, alertname: str) -> bool:
    body = _get(stack, component, "/api/v1/alerts")
    return any(a["labels"]["alertname"] == alertname and a["state"] == "firing" for a in body["data"]["alerts"])


# --- the drills ----------------------------------------------------------------------------------------


def test_the_ha_stack_is_healthy(ha: StackUnderTest) -> None:
    deadline, problems = time.monotonic() + 60, ["no run yet"]
    while time.monotonic() < deadline:
        report = ha.health()
        problems = [f"{c.name}: {c.status} {c.reason}" for c in report.checks
                    if c.status == "fail" or (c.name == "alertmanager cluster" and c.status != "pass")]
        if not problems:
            break
        time.sleep(1)
    assert not problems, problems
    names = {c.name: c for c in report.checks}
    assert names["alertmanager cluster"].status == "pass", names["alertmanager cluster"].reason
    assert names["victoria_metrics dedup"].status == "pass"
    assert "remote write prometheus_b" in names


def test_a_killed_prometheus_replica_loses_no_notification_and_no_sample(ha: StackUnderTest, receivers) -> None:
    kind = "replica-drill"
    _fault(ha, kind)
    _wait_notified(receivers, kind, "firing", 30)
    killed_at = time.time()
    control = _kill(ha, "prometheus_b")
    time.sleep(8 * SCRAPE_S)              # the pair alone: alert still firing, samples still written
    control.start()
    restarted_at = time.time()
    wait_for(lambda: _alert_firing(ha, "prometheus_b", ALERT), 30, "the restarted replica to fire the alert too")
    _clear(ha, kind)
    _wait_notified(receivers, kind, "resolved", 30)
    time.sleep(3)                         # a late duplicate would arrive within a group interval
    assert _counts(receivers, kind) == {"slack": {"firing": 1, "resolved": 1},
                                        "webhook": {"firing": 1, "resolved": 1}}, _describe(receivers, kind)
    # VictoriaMetrics: no gap longer than two scrape intervals in the bot's series across the outage
    wait_for(lambda: _bot_samples(ha, "victoria_metrics", killed_at - 5, restarted_at + 5)[-1:] and
             _bot_samples(ha, "victoria_metrics", killed_at - 5, restarted_at + 5)[-1] >= restarted_at + 4, 30,
             "VictoriaMetrics to hold samples past the restart")
    stamps = _bot_samples(ha, "victoria_metrics", killed_at - 5, restarted_at + 5)
    assert _largest_gap(stamps) <= 2 * SCRAPE_S, f"largest gap {_largest_gap(stamps):.2f} s"
    # the replica caught up: it scrapes again and its remote write is current
    assert _bot_samples(ha, "prometheus_b", restarted_at, time.time())

    def lag() -> float | None:
        text = _get(ha, "prometheus_b", "/metrics")
        newest = _metric(text, "prometheus_remote_storage_highest_timestamp_in_seconds")
        sent = _metric(text, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
        return None if newest is None or not sent else newest - sent

    wait_for(lambda: (lag() is not None and lag() <= 10), 30, "replica b's remote write to catch up")


def test_a_killed_alertmanager_notifies_once_and_silences_hold(ha: StackUnderTest, receivers) -> None:
    kind = "member-drill"
    _fault(ha, kind)
    _wait_notified(receivers, kind, "firing", 30)
    # Alertmanager's cluster is at-least-once: a member killed within a gossip round of its send (200 ms) leaves
    # its peers without the record of it, and one of them sends again. The drill kills it mid-incident, after that.
    time.sleep(2)
    # kill the member that sends (position 0 of the cluster)
    positions = {m: _metric(_get(ha, m, "/metrics"), "alertmanager_peer_position") for m in MEMBERS}
    sender = min(positions, key=lambda m: positions[m] if positions[m] is not None else 99)
    control = _kill(ha, sender)
    _clear(ha, kind)
    _wait_notified(receivers, kind, "resolved", 60)   # a survivor sends, after its peer timeout at most
    time.sleep(3)
    assert _counts(receivers, kind) == {"slack": {"firing": 1, "resolved": 1},
                                        "webhook": {"firing": 1, "resolved": 1}}, _describe(receivers, kind)
    control.start()
    alive = [m for m in MEMBERS if m != sender]

    # a silence made on one member holds on every member, also on one restarted since
    silenced = "silence-drill"
    now = time.time()
    silence = {"matchers": [{"name": "alertname", "value": ALERT, "isRegex": False, "isEqual": True},
                            {"name": "kind", "value": silenced, "isRegex": False, "isEqual": True}],
               "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5)),
               "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
               "createdBy": "ha drill", "comment": "silence drill"}
    made = httpx.post(ha.url(alive[0]) + "/api/v2/silences", json=silence, auth=ha.credentials, timeout=10)
    made.raise_for_status()
    silence_id = made.json()["silenceID"]
    _fault(ha, silenced)

    def suppressed(member: str) -> bool:
        try:
            alerts = _get(ha, member, "/api/v2/alerts", filter=f'kind="{silenced}"')
        except httpx.HTTPError:      # the member started again above may still be starting
            return False
        return bool(alerts) and all(silence_id in a["status"]["silencedBy"] for a in alerts)

    for member in MEMBERS:
        wait_for(lambda member=member: suppressed(member), 45, f"{member} to hold the alert silenced")
    restarted = alive[1]
    victim = ProcessIdentity.from_dict(ha.component(restarted).get("identity"))
    assert victim is not None and victim.signal(signal.SIGKILL)
    wait_for(lambda: ha.component(restarted).get("state") == "running"
             and ha.component(restarted).get("pid") != victim.pid, 30, f"{restarted} to be restarted")

    def has_silence() -> bool:
        try:
            return any(s["id"] == silence_id and s["status"]["state"] == "active"
                       for s in _get(ha, restarted, "/api/v2/silences"))
        except httpx.HTTPError:
            return False

    wait_for(has_silence, 30, f"the restarted {restarted} to know the silence")
    assert _counts(receivers, silenced) == {"slack": {"firing": 0, "resolved": 0},
                                            "webhook": {"firing": 0, "resolved": 0}}


def test_victoria_metrics_outage_loses_nothing_and_the_remote_write_alert_fires(ha: StackUnderTest) -> None:
    control = SupervisedComponent(NativeStack(ha.paths), "victoria_metrics", timeout=60)
    start = time.time()
    time.sleep(3)
    control.stop()
    down_at = time.time()
    wait_for(lambda: _alert_firing(ha, "prometheus", "PrometheusRemoteWriteBehind")
             or _alert_firing(ha, "prometheus", "PrometheusRemoteWriteFailing"), VM_OUTAGE_S + 10,
             "a remote-write alert while VictoriaMetrics is down")
    wait_for(lambda: _alert_firing(ha, "prometheus", "VictoriaMetricsDown"), 10, "VictoriaMetricsDown")
    time.sleep(max(0.0, VM_OUTAGE_S - (time.time() - down_at)))
    control.start()
    end = time.time()

    def caught_up() -> bool:
        for replica in ("prometheus", "prometheus_b"):
            text = _get(ha, replica, "/metrics")
            sent = _metric(text, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds") or 0
            if sent < end + 2:
                return False
        return True

    wait_for(caught_up, 60, "both replicas to send what they kept while VictoriaMetrics was down")
    time.sleep(2)   # VictoriaMetrics' latency offset
    stored = _bot_samples(ha, "victoria_metrics", start, end)
    kept = _bot_samples(ha, "prometheus", start, end)
    assert len(kept) >= (end - start) / SCRAPE_S * 0.8
    assert len(stored) >= len(kept) - 2, f"VictoriaMetrics has {len(stored)} samples, replica a {len(kept)}"
    assert _largest_gap(stored) <= 2 * SCRAPE_S, f"largest gap {_largest_gap(stored):.2f} s"
    print(f"VictoriaMetrics down {end - down_at:.0f} s: {len(stored)} samples stored vs {len(kept)} on replica a; "
          f"largest gap {_largest_gap(stored):.2f} s")
