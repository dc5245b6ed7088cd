"""Alertmanager: config checks, routing tree, inhibition and notification templates on a real Alertmanager."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiosmtpd.controller import Controller

from hux.monitoring.checks import amtool_route_test, route_cases
from hux.monitoring.render import render_native
from tests.conftest import free_port, require_binary

ALL_RECEIVERS = """
[receivers.email]
enabled = true
smtp_smarthost = "127.0.0.1:{smtp_port}"
from = "hux-alerts@example.org"
to = "oncall@example.org"
require_tls = false
[receivers.slack]
enabled = true
channel = "#hux-test"
[receivers.webhook]
enabled = true
url = "http://127.0.0.1:{http_port}/webhook"
[receivers.heartbeat]
enabled = true
url = "http://127.0.0.1:{http_port}/heartbeat"
[alertmanager]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
[alerts]
runbook_base_url = "https://runbooks.example.org/runbooks.md"
"""


@pytest.fixture(autouse=True)
def _tools():
    require_binary("amtool")


@pytest.fixture
def all_receivers(make_settings, tmp_path):
    """Settings with email, Slack, webhook and heartbeat enabled, pointing at local capture servers."""
    ports = {"smtp_port": free_port(), "http_port": free_port()}
    env = {"HUX_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{ports['http_port']}/slack"}
    settings = make_settings(ALL_RECEIVERS.format(**ports), environ=env)
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path / "data", grafana_enabled=False,
                             environ=env)
    return settings, rendered, ports


def test_amtool_check_config(all_receivers):
    _, rendered, _ = all_receivers
    proc = subprocess.run(["amtool", "check-config", str(rendered.alertmanager_config)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # receivers: blackhole, heartbeat, inbox, email, slack, webhook
    for found in (" - 6 receivers", " - 4 inhibit rules", " - 1 templates"):
        assert found in proc.stdout


@pytest.mark.parametrize(("labels", "receivers"), [
    # the local inbox first: it gets every alert, beside the receivers
    ({"alertname": "BotHighErrorRate", "severity": "critical"}, "inbox,email,slack,webhook"),
    ({"alertname": "ServiceDown", "severity": "critical", "job": "node"}, "inbox,email,slack,webhook"),
    ({"alertname": "BotHighLatency", "severity": "warning"}, "inbox,slack"),
    ({"alertname": "HostDiskSpaceLow", "severity": "warning"}, "inbox,slack"),
    ({"alertname": "Watchdog", "severity": "none"}, "inbox,heartbeat"),
    ({"alertname": "SomethingElse"}, "inbox,slack"),
], ids=["critical-pages-everywhere", "service-down", "warning-to-slack", "disk-warning-to-slack",
        "watchdog-heartbeat", "no-severity-falls-back"])
def test_routing_tree(all_receivers, labels, receivers):
    _, rendered, _ = all_receivers
    argv = ["amtool", "config", "routes", "test", f"--config.file={rendered.alertmanager_config}",
            f"--verify.receivers={receivers}", *(f"{k}={v}" for k, v in labels.items())]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers


def test_every_alert_routes_where_the_settings_say(all_receivers):
    settings, rendered, _ = all_receivers
    cases = route_cases(settings)
    assert len(cases) >= 20
    failures = [r for r in (amtool_route_test(rendered.alertmanager_config, c) for c in cases) if not r.ok]
    assert failures == []


def test_pages_wait_critical_group_wait_and_warnings_group_wait(make_settings):
    """Pages reach a person sooner (critical_group_wait) while warnings keep batching (group_wait)."""
    from hux.monitoring.alertmanager import ReceiverSecrets, alertmanager_config

    settings = make_settings("")
    config = alertmanager_config(settings, ReceiverSecrets(receivers=("email", "slack", "webhook"),
                                                           slack_api_url_file="/run/secrets/slack",
                                                           webhook_url="http://127.0.0.1:9/hook"))
    assert config["route"]["group_wait"] == "30s"
    waits = {(r["receiver"], r["matchers"][0]): r.get("group_wait") for r in config["route"]["routes"]
             if r["receiver"] != "inbox"}
    assert waits[("slack", 'severity="critical"')] == "3s"  # alertmanager.critical_group_wait: the paging fast path
    assert waits[("webhook", 'severity="critical"')] == "3s"
    assert waits[("slack", 'severity="warning"')] is None  # inherits the root's 30s


def test_warnings_fall_back_to_the_critical_receivers_without_slack(make_settings, tmp_path):
    settings = make_settings('[receivers.email]\nenabled = true\nsmtp_smarthost = "127.0.0.1:2525"\n'
                             '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n')
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    for labels, expected in (("severity=warning", "inbox,email"), ("severity=critical", "inbox,email")):
        proc = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={rendered.alertmanager_config}",
                               f"--verify.receivers={expected}", "alertname=X", labels],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- a real Alertmanager ------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    received: dict[str, list[dict]] = {}

    def do_POST(self):  # http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's naming
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def live_alertmanager(all_receivers, tmp_path):
    binary = require_binary("prometheus-alertmanager")
    settings, rendered, ports = all_receivers
    _Capture.received = {}
    http = ThreadingHTTPServer(("127.0.0.1", ports["http_port"]), _Capture)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    mailbox = _Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=ports["smtp_port"])
    smtp.start()
    am_port = free_port()
    args = [a for a in rendered.alertmanager_args if not a.startswith("--web.listen-address")]
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen([binary, *args, f"--web.listen-address=127.0.0.1:{am_port}"], stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{am_port}"
    try:
        _wait(lambda: _ready(base), 20, "Alertmanager to be ready")
        yield base, mailbox
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        smtp.stop()
        http.shutdown()
        http.server_close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _alert(name: str, severity: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": f"{name} summary", "description": f"{name} description 12%",
                        "runbook_url": f"https://runbooks.example.org/runbooks.md#{name.lower()}"},
        "startsAt": datetime.now(timezone.utc).isoformat(),
    }


def test_critical_inhibits_the_warning_of_its_family_and_instance(live_alertmanager):
    base, _ = live_alertmanager
    same = {"alert_family": "error_rate", "job": "bot", "instance": "bot-1:8000", "component": "pipeline",
            "stage": "enrich"}
    alerts = [
        _alert("BotHighErrorRate", "critical", **same),
        _alert("BotErrorRateIncreased", "warning", **same),
        _alert("BotErrorRateIncreased", "warning", **{**same, "stage": "score"}),
        _alert("BotErrorRateIncreased", "warning", **{**same, "instance": "bot-2:8000"}),
        _alert("BotHighLatency", "warning", alert_family="latency", job="bot", instance="bot-1:8000"),
    ]
    assert httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

    def states():
        got = httpx.get(f"{base}/api/v2/alerts", timeout=5).json()
        if len(got) < len(alerts):
            return None
        return {(a["labels"]["alertname"], a["labels"].get("stage", ""), a["labels"]["instance"]):
                a["status"]["state"] for a in got}

    def settled():
        s = states()
        return s if s and s[("BotErrorRateIncreased", "enrich", "bot-1:8000")] == "suppressed" else None

    result = _wait(settled, 15, "the warning to be inhibited")
    assert result == {
        ("BotHighErrorRate", "enrich", "bot-1:8000"): "active",
        ("BotErrorRateIncreased", "enrich", "bot-1:8000"): "suppressed",   # same family, instance and stage
        ("BotErrorRateIncreased", "score", "bot-1:8000"): "active",        # another stage
        ("BotErrorRateIncreased", "enrich", "bot-2:8000"): "active",       # another instance
        ("BotHighLatency", "", "bot-1:8000"): "active",                    # another family
    }


def test_database_down_mutes_the_persist_error_rate_of_its_bot(live_alertmanager):
    """One fault, one page: a bot whose database is down fails its persist stage as a symptom."""
    base, _ = live_alertmanager
    bot1 = {"job": "bot", "instance": "bot-1:8000"}
    persist = {"alert_family": "error_rate", "component": "pipeline", "stage": "persist"}
    alerts = [
        _alert("BotDatabaseDown", "critical", alert_family="database", **bot1),
        _alert("BotHighErrorRate", "critical", **persist, **bot1),
        _alert("BotHighErrorRate", "critical", **{**persist, "stage": "enrich"}, **bot1),
        _alert("BotHighErrorRate", "critical", **persist, job="bot", instance="bot-2:8000"),
    ]
    assert httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

    def settled():
        got = httpx.get(f"{base}/api/v2/alerts", timeout=5).json()
        if len(got) < len(alerts):
            return None
        s = {(a["labels"]["alertname"], a["labels"].get("stage", ""), a["labels"]["instance"]): a["status"]["state"]
             for a in got}
        return s if s[("BotHighErrorRate", "persist", "bot-1:8000")] == "suppressed" else None

    assert _wait(settled, 15, "the persist error rate to be inhibited") == {
        ("BotDatabaseDown", "", "bot-1:8000"): "active",
        ("BotHighErrorRate", "persist", "bot-1:8000"): "suppressed",   # the symptom of the same bot's outage
        ("BotHighErrorRate", "enrich", "bot-1:8000"): "active",        # another stage pages on its own
        ("BotHighErrorRate", "persist", "bot-2:8000"): "active",       # another bot's database is fine
    }


def test_burn_rate_page_mutes_the_threshold_alerts_of_its_slo_on_its_bot(live_alertmanager):
    """One incident, one page: BotErrorBudgetBurning mutes the spec's threshold alerts measuring the same SLO."""
    base, _ = live_alertmanager
    bot1 = {"job": "bot", "instance": "bot-1:8000"}
    bot2 = {"job": "bot", "instance": "bot-2:8000"}
    api = {"alert_family": "error_rate", "component": "api", "api": "dexscreener"}
    enrich = {"alert_family": "error_rate", "component": "pipeline", "stage": "enrich"}
    alerts = [
        _alert("BotErrorBudgetBurning", "critical", alert_family="slo", slo="decision_success", **bot1),
        _alert("BotErrorBudgetBurningSlowly", "warning", alert_family="slo", slo="decision_success", **bot1),
        _alert("BotErrorBudgetBurningSlowly", "warning", alert_family="slo", slo="decision_latency", **bot1),
        _alert("BotHighErrorRate", "critical", **api, **bot1),
        _alert("BotHighErrorRate", "critical", **enrich, **bot1),
        _alert("BotErrorRateIncreased", "warning", **enrich, **bot1),
        _alert("BotHighLatency", "warning", alert_family="latency", **bot1),
        _alert("BotHighErrorRate", "critical", **api, **bot2),
        _alert("BotErrorBudgetBurning", "critical", alert_family="slo", slo="decision_latency", **bot2),
        _alert("BotHighLatency", "warning", alert_family="latency", **bot2),
        _alert("HostMemoryHigh", "critical", alert_family="memory", job="node", instance="bot-1:8000"),
    ]
    assert httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

    def key(a: dict) -> tuple[str, str, str, str]:
        lab = a["labels"]
        return lab["alertname"], lab.get("slo") or lab.get("api") or lab.get("stage", ""), lab["instance"], lab["job"]

    def settled():
        got = httpx.get(f"{base}/api/v2/alerts", timeout=5).json()
        if len(got) < len(alerts):
            return None
        s = {key(a): a["status"]["state"] for a in got}
        return s if s[("BotHighErrorRate", "dexscreener", "bot-1:8000", "bot")] == "suppressed" else None

    assert _wait(settled, 15, "the threshold alerts of bot-1 to be inhibited") == {
        ("BotErrorBudgetBurning", "decision_success", "bot-1:8000", "bot"): "active",
        # the page of an SLO mutes that SLO's ticket on the same bot, not the other SLO's
        ("BotErrorBudgetBurningSlowly", "decision_success", "bot-1:8000", "bot"): "suppressed",
        ("BotErrorBudgetBurningSlowly", "decision_latency", "bot-1:8000", "bot"): "active",
        # the error-rate alerts (API and pipeline, critical and warning) are its symptoms
        ("BotHighErrorRate", "dexscreener", "bot-1:8000", "bot"): "suppressed",
        ("BotHighErrorRate", "enrich", "bot-1:8000", "bot"): "suppressed",
        ("BotErrorRateIncreased", "enrich", "bot-1:8000", "bot"): "suppressed",
        # latency is another SLO, still burning no budget on bot-1
        ("BotHighLatency", "", "bot-1:8000", "bot"): "active",
        # bot-2 pages for its latency: its BotHighLatency is muted, its error rate is not
        ("BotHighErrorRate", "dexscreener", "bot-2:8000", "bot"): "active",
        ("BotErrorBudgetBurning", "decision_latency", "bot-2:8000", "bot"): "active",
        ("BotHighLatency", "", "bot-2:8000", "bot"): "suppressed",
        ("HostMemoryHigh", "", "bot-1:8000", "node"): "active",
    }


def test_notifications_read_well_in_slack_mail_and_webhook(live_alertmanager):
    base, mailbox = live_alertmanager
    alerts = [_alert("BotDatabaseDown", "critical", alert_family="database", job="bot", instance="bot-1:8000"),
              _alert("Watchdog", "none", alert_family="watchdog")]
    assert httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

    slack = _wait(lambda: _Capture.received.get("/slack"), 20, "the Slack notification")[0]
    attachment = slack["attachments"][0]
    assert slack["channel"] == "#hux-test"
    assert attachment["color"] == "danger"
    assert attachment["title"] == ":rotating_light: [FIRING:1] BotDatabaseDown on bot (bot-1:8000)"
    assert "*CRITICAL* BotDatabaseDown summary" in attachment["text"]
    assert "`bot` at `bot-1:8000`" in attachment["text"]   # the description stays in the mail: Slack is short
    assert "<https://runbooks.example.org/runbooks.md#botdatabasedown|Full runbook>" in attachment["text"]
    assert "<no value>" not in json.dumps(slack)

    mail = _wait(lambda: mailbox.messages, 20, "the e-mail")[0]
    assert mail["Subject"] == "[FIRING:1] BotDatabaseDown on bot (bot-1:8000)"
    assert mail["To"] == "oncall@example.org"
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "BotDatabaseDown description 12%" in html and 'href="https://runbooks.example.org' in html
    assert "CRITICAL: BotDatabaseDown summary" in text and "runbook: https://runbooks.example.org" in text

    hook = _wait(lambda: _Capture.received.get("/webhook"), 20, "the webhook notification")[0]
    assert hook["status"] == "firing" and hook["commonLabels"]["alertname"] == "BotDatabaseDown"
    beat = _wait(lambda: _Capture.received.get("/heartbeat"), 20, "the heartbeat")[0]
    assert beat["commonLabels"]["alertname"] == "Watchdog"
    # the Watchdog goes to the heartbeat only, never to the people
    assert all(b["commonLabels"]["alertname"] != "Watchdog" for b in _Capture.received["/webhook"])
    assert all("Watchdog" not in json.dumps(b) for b in _Capture.received["/slack"])
