"""Alert and recording rules under promtool: checks, unit tests, and that the tests cover every alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hux.config import load_raw
from hux.monitoring.checks import RULE_TESTS_DIR, prepare_rule_tests, rule_test_settings
from hux.monitoring.rules import ALERTS, recording_rules, rule_files
from hux.monitoring.settings import settings_from_raw
from tests.conftest import require_binary


@pytest.fixture(autouse=True)
def _promtool():
    require_binary("promtool")


def _cases() -> list[dict]:
    cases = []
    for path in sorted(RULE_TESTS_DIR.glob("*.test.yml")):
        cases += yaml.safe_load(path.read_text())["tests"]
    return cases


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    fires: dict[str, list[str]] = {name: [] for name in ALERTS}
    quiet: dict[str, list[str]] = {name: [] for name in ALERTS}
    for case in _cases():
        for check in case.get("alert_rule_test", []):
            target = fires if check.get("exp_alerts") else quiet
            target[check["alertname"]].append(case["name"])
    assert [name for name, names in fires.items() if not names] == []
    # the Watchdog has no threshold to stay under
    assert [name for name, names in quiet.items() if not names and name != "Watchdog"] == []
    for name in ALERTS:
        for case in fires[name]:
            assert name in case, f"case {case!r} should name the alert it shows firing"


def test_every_alert_reads_ratios_recorded_earlier_in_its_own_group():
    """Same group, earlier position: the alert sees this evaluation's ratio, not the previous one's."""
    recorded = {rule["record"] for rule in recording_rules(rule_test_settings())}
    for doc in rule_files(rule_test_settings()).values():
        for group in doc["groups"]:
            before: set[str] = set()
            for rule in group["rules"]:
                if "record" in rule:
                    before.add(rule["record"])
                    continue
                used = {name for name in recorded if name in rule["expr"]}
                assert used <= before, f"{rule['alert']} in {group['name']} reads {sorted(used - before)} " \
                                       "recorded elsewhere or later"


def test_every_recording_rule_is_checked_by_a_promql_test():
    recorded = {rule["record"] for rule in recording_rules(rule_test_settings())}
    tested = {expr["expr"] for case in _cases() for expr in case.get("promql_expr_test", [])}
    assert recorded - tested == set()


def test_the_unit_tests_notice_a_changed_threshold(tmp_path: Path):
    """Render the rules with a critical error ratio of 13 %: the "fires at 12 %" case must fail."""
    raw = load_raw(RULE_TESTS_DIR / "settings.toml", environ={})
    raw["alerts"]["error_rate_critical"] = 0.13
    settings = settings_from_raw(raw, environ={})
    prepare_rule_tests(tmp_path, settings)
    # only the file holding the case, as below
    proc = subprocess.run(["promtool", "test", "rules", "bot.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "BotHighErrorRate fires when 12 % of a pipeline stage's executions fail" in proc.stdout + proc.stderr


def test_promtool_check_rules_on_the_default_rules(make_settings, tmp_path: Path):
    settings = make_settings()
    paths = []
    for name, document in rule_files(settings).items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        paths.append(str(path))
    proc = subprocess.run(["promtool", "check", "rules", *paths], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(paths)


@pytest.mark.parametrize(("key", "value", "file", "case"), [
    ("inodes_free_ratio", 0.035, "host_parity", "HostInodesLow fires at 4 % free inodes"),
    ("filefd_warning_ratio", 0.8, "host_parity", "FileDescriptorsNearLimit fires for the host at 75 %"),
    ("clock_offset_seconds", 0.07, "host_parity", "HostClockSkew fires at a steady 60 ms offset"),
    ("cpu_used_ratio", 0.96, "host_parity", "HostCpuSaturated fires at 95 % CPU busy"),
    ("restarts_max", 10, "host_parity", "ServiceCrashlooping fires when the bot restarts every minute"),
    ("alertmanager_send_error_ratio", 0.2, "self_monitoring", "PrometheusErrorSendingAlerts fires when 10 % of sends"),
    ("slo_decision_success", 0.99, "slo", "BotErrorBudgetBurning fires when 2 % of token decisions fail"),
    ("slo_page_slow_burn_rate", 8.0, "slo", "BotErrorBudgetBurning fires on a slow burn of 0.7 %"),
], ids=lambda v: str(v)[:24])
def test_the_unit_tests_notice_a_changed_threshold_of_the_parity_and_slo_alerts(tmp_path: Path, key, value, file,
                                                                               case):
    raw = load_raw(RULE_TESTS_DIR / "settings.toml", environ={})
    raw["alerts"][key] = value
    settings = settings_from_raw(raw, environ={})
    prepare_rule_tests(tmp_path, settings)
    # only the file holding the case: every file under promtool for each threshold costs minutes of CPU
    proc = subprocess.run(["promtool", "test", "rules", f"{file}.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert case in proc.stdout + proc.stderr


def test_the_mixin_coverage_table_has_no_unexplained_gap():
    from hux.monitoring.alertdocs import COVERAGE

    seen = set()
    for mixin, theirs, ours, note in COVERAGE:
        assert mixin in ("node", "prometheus", "alertmanager")
        assert theirs not in seen, f"{theirs} is listed twice"
        seen.add(theirs)
        assert set(ours) <= set(ALERTS), f"{theirs}: {set(ours) - set(ALERTS)} is not an alert of ours"
        if not ours:
            assert note.startswith(("not covered: ", "not applicable: ")), f"{theirs} has no alert and no reason"
    covered = {name for _, _, ours, _ in COVERAGE for name in ours}
    parity = {name for name in ALERTS if name.startswith(("Host", "Prometheus", "Alertmanager", "FileDescriptors"))}
    assert parity <= covered | {"HostInodesExhausted", "PrometheusRuleGroupSlow", "PrometheusTsdbWalCorrupted"}


def test_slo_settings_refuse_an_alert_that_could_never_fire():
    from hux.config import ConfigError

    raw = load_raw(RULE_TESTS_DIR / "settings.toml", environ={})
    raw["alerts"]["slo_decision_latency"] = 0.9   # a 10 % budget: 14.4x of it is more than every message
    with pytest.raises(ConfigError, match="slo_page_burn_rate"):
        settings_from_raw(raw, environ={})
    raw["alerts"]["slo_decision_latency"] = 0.99
    raw["alerts"]["slo_latency_seconds"] = 7.0
    with pytest.raises(ConfigError, match="bucket edge"):
        settings_from_raw(raw, environ={})


def test_slo_alerts_can_be_switched_off():
    raw = load_raw(RULE_TESTS_DIR / "settings.toml", environ={})
    raw["alerts"]["slo_alerts"] = False
    names = {r.get("alert") or r.get("record") for doc in rule_files(settings_from_raw(raw, environ={})).values()
             for group in doc["groups"] for r in group["rules"]}
    assert not any("ErrorBudget" in n or "hux_sli_error" in n for n in names)
