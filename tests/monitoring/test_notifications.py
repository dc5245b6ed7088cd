"""Notifications an operator can act on from a phone: first steps from the runbook, live values, links.

The first steps have one text, the runbook section (``src/hux/monitoring/runbooks.md``); the rules carry
it as the ``first_steps`` annotation, and the real Alertmanager renders it into Slack and e-mail.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html import escape as html_escape
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hux.config import ConfigError
from hux.monitoring import runbooks
from hux.monitoring.checks import RULE_TESTS_DIR, with_first_steps
from hux.monitoring.render import render_native
from hux.monitoring.rules import ALERTS, rule_files
from hux.monitoring.settings import Settings, settings_from_raw
from tests.e2e.receivers import Notification, Receivers
from tests.monitoring.browser import artifacts_dir
from tests.ops.conftest import AmProcess

REPO = Path(__file__).resolve().parents[2]


def _docs_section(name: str) -> str:
    text = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_has_two_or_three_short_first_steps_in_its_runbook_section(name: str) -> None:
    steps = runbooks.first_steps(name)
    assert 2 <= len(steps) <= 3, f"{name}: {steps}"
    for step in steps:
        assert len(step) <= 120, f"{name}: keep a first step to one phone line: {step!r}"
        assert "](" not in step and "{{" not in step
    # the same words, in order, in the committed docs/runbooks.md section of that alert
    section = _docs_section(name)
    assert runbooks.first_steps_text(name) in section


def test_docs_runbooks_is_the_package_runbook_rendered() -> None:
    assert (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8") == runbooks.docs_markdown()


def test_first_steps_of_an_unknown_alert_are_empty() -> None:
    assert runbooks.first_steps("NotOurs") == ()
    assert runbooks.first_steps_text("NotOurs") == ""


def test_malformed_first_steps_are_refused_with_the_section_named() -> None:
    with pytest.raises(runbooks.RunbookError, match="'X'.*numbered"):
        runbooks._steps("X", [runbooks.FIRST_STEPS_MARKER, "1. ok", "not a step"])
    with pytest.raises(runbooks.RunbookError, match="template braces"):
        runbooks._steps("X", [runbooks.FIRST_STEPS_MARKER, "1. run {{ $value }}"])
    # a wrapped step is one step; links become their text
    assert runbooks._steps("X", [runbooks.FIRST_STEPS_MARKER, "1. see [Y](#y) and", "   more", "2. two", ""]) == (
        "see Y and more", "two")


def _alert_rules(settings: Settings) -> list[dict[str, Any]]:
    return [r for doc in rule_files(settings).values() for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_rule_carries_its_runbook_first_steps_and_its_live_value(make_settings) -> None:
    rules = _alert_rules(make_settings(""))
    for rule in rules:
        # one text: the annotation is the runbook section's first steps, word for word
        assert rule["annotations"]["first_steps"] == runbooks.first_steps_text(rule["alert"])
        assert rule["annotations"]["first_steps"].startswith("1. ")
    # what is wrong, with the live value, in the summary: the first line a phone shows
    without = sorted({(r["alert"], r["labels"].get("reason", "")) for r in rules
                      if "$value" not in r["annotations"]["summary"]})
    assert without == [  # the value of these says nothing (up == 0, a 0/1 flag, a constant)
        ("AlertmanagerConfigReloadFailed", ""), ("BotAbsent", ""), ("BotDatabaseDown", ""),
        ("HostTextfileCollectorError", ""), ("PrometheusAlertmanagerUnreachable", "none_discovered"),
        ("PrometheusConfigReloadFailed", ""), ("PrometheusNotIngestingSamples", ""), ("ServiceDown", ""),
        ("Watchdog", ""),
    ]


# --- alerts.runbook_base_url: a link that opens from a phone, or none ------------------------------------

SLACK_ON = '[receivers.slack]\nenabled = true\napi_url_file = "{secret}"\n'
ABSOLUTE = 'https://git.example.com/hux/blob/main/docs/runbooks.md'


@pytest.mark.parametrize("receiver", [
    '[receivers.email]\nenabled = true\nsmtp_smarthost = "127.0.0.1:2525"\n',
    SLACK_ON,
    '[receivers.webhook]\nenabled = true\nurl = "http://127.0.0.1:9/hook"\n',
], ids=["email", "slack", "webhook"])
def test_a_relative_runbook_base_is_refused_when_an_external_receiver_is_enabled(make_settings, tmp_path,
                                                                                  receiver: str) -> None:
    secret = tmp_path / "slack_url"
    secret.write_text("https://hooks.slack.com/services/T0/B0/x\n")
    with pytest.raises(ConfigError) as refused:
        make_settings(receiver.format(secret=secret))
    message = str(refused.value)
    # says what is wrong and what to set
    assert "alerts.runbook_base_url" in message and "docs/runbooks.md" in message
    assert "https://" in message and "hux.toml" in message
    # an absolute base is accepted, and the rules link to it
    settings = make_settings(receiver.format(secret=secret) + f'[alerts]\nrunbook_base_url = "{ABSOLUTE}"\n')
    assert {r["annotations"]["runbook_url"] for r in _alert_rules(settings)} >= {f"{ABSOLUTE}#servicedown"}


def test_a_relative_runbook_base_is_fine_without_an_external_receiver(make_settings) -> None:
    settings = make_settings("")
    assert settings.alerts.runbook_base_url == "docs/runbooks.md"
    assert settings.enabled_receivers() == []


def test_the_docker_path_refuses_a_relative_runbook_base_too(make_settings) -> None:
    with pytest.raises(ConfigError, match="alerts.runbook_base_url"):
        make_settings('[stack]\nmode = "docker"\n[receivers.email]\nenabled = true\nsmtp_smarthost = "mail:25"\n')


@hypothesis_settings(max_examples=40, deadline=None)
@given(base=st.one_of(
    st.from_regex(r"[a-z][a-z0-9_./-]{0,30}", fullmatch=True),                  # a path
    st.from_regex(r"(ftp|file|mailto|javascript):[a-z0-9/._-]{1,20}", fullmatch=True),  # not a web link
    st.just("http://"), st.just("https:///docs/runbooks.md"),                  # no host
))
@example(base="docs/runbooks.md")
@example(base="/srv/hux/docs/runbooks.md")
def test_only_an_http_or_https_url_with_a_host_is_a_runbook_base_for_receivers(base: str) -> None:
    raw = {"alerts": {"runbook_base_url": base},
           "receivers": {"webhook": {"enabled": True, "url": "http://127.0.0.1:9/hook"}}}
    with pytest.raises(ConfigError, match="alerts.runbook_base_url"):
        settings_from_raw(raw, environ={})


# --- what arrives: the real Alertmanager, the SMTP, Slack and webhook doubles of the e2e suite ----------------

#: the case whose annotations the notifications carry: Prometheus's own expansion of the rule, proven by promtool
#: in ruletests/bot.test.yml (the summary with its live value, the description, the runbook link, the first steps)
CASE = ("bot.test.yml", "BotHighErrorRate fires when 12 % of a pipeline stage's executions fail")


def _promtool_case(file: str, name: str, runbook_base: str) -> dict[str, Any]:
    spec = with_first_steps(yaml.safe_load((RULE_TESTS_DIR / file).read_text(encoding="utf-8")))
    test = next(t for t in spec["tests"] if t["name"] == name)
    expected = next(c for c in test["alert_rule_test"] if c.get("exp_alerts"))["exp_alerts"][0]
    annotations = dict(expected["exp_annotations"])
    # the same rule rendered with this stack's runbook base (the cases use the relative default)
    annotations["runbook_url"] = annotations["runbook_url"].replace("docs/runbooks.md", runbook_base)
    labels = {"alertname": test["alert_rule_test"][0]["alertname"], **expected["exp_labels"]}
    return {"labels": {k: str(v) for k, v in labels.items()}, "annotations": annotations}


@pytest.fixture
def delivering(make_settings, tmp_path: Path) -> Iterator[tuple[AmProcess, Receivers]]:
    """A real Alertmanager rendered from the settings, with email, Slack and the webhook enabled."""
    receivers = Receivers(ALERTS).start()
    slack_url = tmp_path / "slack_url"
    slack_url.write_text(receivers.slack.url + "\n")
    settings = make_settings(f"""
[receivers.email]
enabled = true
smtp_smarthost = "{receivers.email.smarthost}"
from = "hux-alerts@example.org"
to = "oncall@example.org"
require_tls = false
[receivers.slack]
enabled = true
api_url_file = "{slack_url}"
channel = "#hux-oncall"
[receivers.webhook]
enabled = true
url = "{receivers.webhook.url}"
[alertmanager]
group_wait = "1s"
critical_group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
[alerts]
runbook_base_url = "{ABSOLUTE}"
""")
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path / "data", grafana_enabled=False,
                             environ={})
    am = AmProcess(rendered.alertmanager_config, tmp_path / "am-data", tmp_path / "alertmanager.log")
    am.start()
    try:
        yield am, receivers
    finally:
        am.stop()
        receivers.stop()


def _post(am: AmProcess, alerts: list[dict[str, Any]]) -> None:
    assert httpx.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200


def _one(recorder: Any, what: str, predicate: Any) -> Notification:
    found = recorder.wait_for(predicate, 30)
    assert found is not None, f"no {what} arrived in 30 s: {recorder.notifications}"
    return found


def test_slack_email_and_webhook_carry_value_place_time_first_steps_and_link(delivering) -> None:
    am, receivers = delivering
    started = datetime(2026, 12, 2, 5, 12, 3, tzinfo=timezone.utc)
    alert = _promtool_case(*CASE, runbook_base=ABSOLUTE)
    steps = runbooks.first_steps_text("BotHighErrorRate")
    _post(am, [{**alert, "startsAt": started.isoformat()}])

    firing = lambda n: n.status == "firing" and n.mentions("BotHighErrorRate")  # noqa: E731
    slack = _one(receivers.slack, "Slack message", firing).raw["attachments"][0]
    mail = _one(receivers.email, "e-mail", firing).raw
    hook = _one(receivers.webhook, "webhook call", firing).raw

    # Slack: one short block: what (with the live value), where and since when, the first steps, the link
    assert slack["title"] == ":rotating_light: [FIRING:1] BotHighErrorRate on bot (bot-1:8000)"
    assert slack["text"].splitlines() == [
        "*CRITICAL* High error rate on stage enrich of bot bot-1:8000: 12%",
        "`bot` at `bot-1:8000` component=`pipeline` stage=`enrich` · since 2026-12-02 05:12 UTC",
        *steps.splitlines(),
        f"<{ABSOLUTE}#bothigherrorrate|Full runbook>",
    ]
    assert len(slack["text"].splitlines()) <= 6

    # e-mail: the same facts, the description too; plain text and HTML
    assert mail["subject"] == "[FIRING:1] BotHighErrorRate on bot (bot-1:8000)"
    plain, html = (mail["parts"][kind].replace("\r\n", "\n") for kind in ("plain", "html"))
    assert "CRITICAL: High error rate on stage enrich of bot bot-1:8000: 12%\n" in plain
    assert f"  {alert['annotations']['description']}\n" in plain
    assert "  where:  bot at bot-1:8000 component=pipeline stage=enrich\n" in plain
    assert "  since 2026-12-02 05:12 UTC\n" in plain
    assert "  first steps:\n" + "\n".join("    " + line for line in steps.splitlines()) + "\n" in plain
    assert f"  runbook: {ABSOLUTE}#bothigherrorrate\n" in plain
    assert f'<a href="{ABSOLUTE}#bothigherrorrate">Full runbook</a>' in html
    assert "white-space: pre-line;\">" + html_escape(steps, quote=True).replace("&#x27;", "&#39;") in html
    assert "<no value>" not in plain + html + json.dumps(slack)

    # webhook: the raw payload carries the first steps and the absolute link as annotations
    payload_alert = hook["alerts"][0]
    assert payload_alert["annotations"]["first_steps"] == steps
    assert payload_alert["annotations"]["runbook_url"] == f"{ABSOLUTE}#bothigherrorrate"
    assert payload_alert["annotations"]["summary"].endswith(": 12%")

    _keep_example("slack", slack["title"] + "\n" + slack["text"])
    _keep_example("email", f"Subject: {mail['subject']}\n\n{plain}")

    # resolved: when it ended and how long it lasted; no first steps (nothing to do)
    _post(am, [{**alert, "startsAt": started.isoformat(),
                "endsAt": (started + timedelta(minutes=8, seconds=30)).isoformat()}])
    resolved = lambda n: n.status == "resolved" and n.mentions("BotHighErrorRate")  # noqa: E731
    text = _one(receivers.slack, "resolved Slack message", resolved).raw["attachments"][0]["text"]
    assert text.splitlines()[:2] == [
        "*RESOLVED* High error rate on stage enrich of bot bot-1:8000: 12%",
        "`bot` at `bot-1:8000` component=`pipeline` stage=`enrich` · since 2026-12-02 05:12 UTC, "
        "resolved 05:20 UTC after 8m30s",
    ]
    assert steps.splitlines()[0] not in text
    plain = _one(receivers.email, "resolved e-mail", resolved).raw["parts"]["plain"].replace("\r\n", "\n")
    assert "RESOLVED: High error rate" in plain and "first steps" not in plain


def test_slack_text_escapes_what_slack_would_act_on(delivering) -> None:
    """A label or value "<!channel>" would notify the whole channel, "<http://x|y>" hide a link: they are text."""
    am, receivers = delivering
    alert = _promtool_case(*CASE, runbook_base=ABSOLUTE)
    alert["labels"]["stage"] = "<!channel> & <http://evil.example|docs>"
    alert["annotations"]["summary"] = "High error rate on stage <!here> of bot bot-1:8000: 12%"
    _post(am, [{**alert, "startsAt": datetime.now(timezone.utc).isoformat()}])
    text = _one(receivers.slack, "Slack message", lambda n: n.status == "firing").raw["attachments"][0]["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<http://evil" not in text
    assert "stage=`&lt;!channel&gt; &amp; &lt;http://evil.example|docs&gt;`" in text
    assert "stage &lt;!here&gt; of bot" in text
    # the one link in the text is ours
    assert re.findall(r"<(https?://[^|>]+)\|", text) == [f"{ABSOLUTE}#bothigherrorrate"]


def _keep_example(kind: str, text: str) -> None:
    """The rendered message, kept as a test artifact (docs/operations.md quotes it)."""
    (artifacts_dir() / f"notification-{kind}.txt").write_text(text, encoding="utf-8")
