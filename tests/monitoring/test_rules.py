"""Alert and recording rules under promtool: checks, unit tests, and that the tests cover every alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hux.monitoring.checks import RULE_TESTS_DIR, prepare_rule_tests, rule_test_settings, run_rule_tests
from hux.monitoring.rules import ALERTS, recording_rules, rule_files
from hux.monitoring.settings import settings_from_raw
from hux.config import load_raw
from tests.conftest import require_binary


@pytest.fixture(autouse=True)
def _promtool():
    require_binary("promtool")


def _cases() -> list[dict]:
    cases = []
    for path in sorted(RULE_TESTS_DIR.glob("*.test.yml")):
        cases += yaml.safe_load(path.read_text())["tests"]
    return cases


def test_promtool_unit_tests_pass():
    result = run_rule_tests()
    assert result.ok, result.detail
    assert result.detail.count("SUCCESS") == len(list(RULE_TESTS_DIR.glob("*.test.yml")))


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
    tests = prepare_rule_tests(tmp_path, settings)
    proc = subprocess.run(["promtool", "test", "rules", *(t.name for t in tests)], cwd=tmp_path,
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
