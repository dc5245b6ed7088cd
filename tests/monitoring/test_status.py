"""One pass/warn/fail vocabulary: health, check-config and the maintenance reports grade alike."""

from __future__ import annotations

from hux.monitoring import checks
from hux.monitoring.status import FAIL, INFO, PASS, WARN, worst
from hux.ops.maintenance import report
from hux.stack import health


def test_worst_is_the_outcome_to_act_on_first() -> None:
    assert worst([]) == PASS
    assert worst([PASS, INFO, WARN, PASS]) == WARN
    assert worst([WARN, FAIL, PASS]) == FAIL
    assert worst(["something else"]) == PASS


def test_every_check_speaks_the_same_words() -> None:
    assert (health.PASS, health.WARN, health.FAIL) == (PASS, WARN, FAIL)
    assert checks.CheckResult("promtool check config", True).status == health.PASS
    assert checks.CheckResult("amtool check-config", False).status == health.FAIL
    assert (report.WARN, report.FAIL, report.INFO) == (WARN, FAIL, INFO)
    assert report.worst([report.OK, WARN]) == WARN and report.worst([report.OK, INFO]) == report.OK
