"""Notifications an operator can act on from a phone: first steps from the runbook, live values, links.

The first steps have one text, the runbook section (``src/hux/monitoring/runbooks.md``); the rules carry
it as the ``first_steps`` annotation, and the real Alertmanager renders it into Slack and e-mail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hux.monitoring import runbooks
from hux.monitoring.rules import ALERTS

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
