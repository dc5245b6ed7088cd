"""`hux notify-test` against a real Alertmanager with a real SMTP server and a broken webhook."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from hux.ops.clients import Alertmanager
from hux.ops.notify import TEST_ALERTNAME, notify_test, read_counters, route_receivers
from tests.conftest import free_port

pytestmark = pytest.mark.integration


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def test_notify_test_reports_delivery_per_integration(am_factory, smtp) -> None:
    smtp_port, inbox = smtp
    closed_port = free_port()  # nothing listens here: the webhook receiver is broken
    am = am_factory(f"""\
global:
  smtp_smarthost: 127.0.0.1:{smtp_port}
  smtp_from: hux@example.com
  smtp_require_tls: false
route:
  receiver: fallback
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: heartbeat
      matchers: ['alertname="Watchdog"']
    - receiver: oncall-mail
      matchers: ['severity="critical"']
    - receiver: broken-hook
      match_re: {{severity: "warning|info"}}
receivers:
  - name: fallback
  - name: heartbeat
    webhook_configs: [{{url: "http://127.0.0.1:{closed_port}/heartbeat"}}]
  - name: oncall-mail
    email_configs: [{{to: ops@example.com, send_resolved: true}}]
  - name: broken-hook
    webhook_configs: [{{url: "http://127.0.0.1:{closed_port}/hook", send_resolved: false}}]
""")
    result = notify_test(am.url, timeout=30)
    assert result.routes == {f"{TEST_ALERTNAME}Critical": ["oncall-mail"], f"{TEST_ALERTNAME}Warning": ["broken-hook"]}
    by_integration = {i.integration: i for i in result.integrations}
    assert by_integration["email"].status == "delivered" and by_integration["email"].delivered >= 1
    assert by_integration["webhook"].status == "failed" and by_integration["webhook"].failed >= 1
    assert result.unreached == ["heartbeat"]
    assert not result.ok and result.in_alertmanager == 2 and result.resolved
    assert any(result.test_id in message for message in inbox.messages)
    with Alertmanager(am.url) as client:  # resolved: nothing of the test is left firing
        assert client.alerts(filters=[f'hux_test_id="{result.test_id}"']) == []


def test_routing_follows_alertmanager_rules() -> None:
    route = {
        "receiver": "default", "group_wait": "30s",
        "routes": [
            {"receiver": "pager", "matchers": ['severity=~"critical|page"', 'team!="dev"'], "continue": True,
             "group_wait": "10s"},
            {"receiver": "chat", "match": {"severity": "critical"}},
            {"receiver": "nested", "routes": [{"receiver": "deep", "match_re": {"service": "bot.*"}}]},
        ],
    }
    assert route_receivers(route, {"severity": "critical"}) == [("pager", 10.0), ("chat", 30.0)]
    assert route_receivers(route, {"severity": "critical", "team": "dev"}) == [("chat", 30.0)]
    assert route_receivers(route, {"severity": "warning", "service": "bot-api"}) == [("deep", 30.0)]
    assert route_receivers({"receiver": "default", "routes": [{"receiver": "x", "matchers": ["a=b"]}]},
                           {"severity": "warning"}) == [("default", 30.0)]


def test_counters_are_read_per_integration() -> None:
    text = ('alertmanager_notifications_total{integration="email"} 3\n'
            'alertmanager_notifications_total{integration="webhook",receiver_name="a"} 2\n'
            'alertmanager_notifications_total{integration="webhook",receiver_name="b"} 1\n'
            'alertmanager_notifications_failed_total{integration="webhook",reason="other",receiver_name="b"} 1\n')
    counters = read_counters(text)
    assert counters["email"]["notifications"] == 3.0 and counters["email"]["notifications_failed"] == 0.0
    assert counters["webhook"]["notifications"] == 3.0 and counters["webhook"]["notifications_failed"] == 1.0
