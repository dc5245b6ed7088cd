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


def test_a_report_grades_in_the_shared_words_and_still_says_ok() -> None:
    """The maintenance report's "nothing to act on" is the shared ``pass`` (one ``worst``, one exit-code map);
    only its display word stays "OK", as operators and their scripts have read it."""
    done = report.Report("Daily", sections=[report.Section("alerts"), report.Section("logs")])
    done.sections[1].note("a remark")
    assert report.OK == PASS and done.status == PASS and report.worst is worst
    text = report.render_text(done, width=80)
    assert "overall: OK" in text and "== alerts [OK]" in text
    assert '<span class="badge ok">OK</span>' in report.render_html(done)
    done.sections[0].note("two alerts firing", WARN)
    assert done.status == WARN and "overall: WARN" in report.render_text(done, width=80)
