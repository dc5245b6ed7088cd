"""The runbooks: one section per alert, and each section's first steps.

The text lives once, in ``runbooks.md`` beside this module (package data, so an
installed ``hux`` has it too). ``hux render`` writes it to ``docs/runbooks.md``
for readers of the repository; the rule builder puts each alert's first steps
in its ``first_steps`` annotation, so Slack, e-mail, the webhook payload and
``hux alerts`` carry the same words as the runbook.

A section is ``## <AlertName>``; its first steps are the numbered list after a
``**First steps:**`` line, one step per item. Markdown links are reduced to their
text (a relative link opens nowhere in a notification).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

SOURCE = "runbooks.md"
DOCS_PATH = "docs/runbooks.md"
FIRST_STEPS_MARKER = "**First steps:**"
RENDERED_NOTE = ("<!-- Rendered by `hux render` from src/hux/monitoring/runbooks.md; edit that file, "
                 "not this one. -->\n")

_ITEM = re.compile(r"^(\d+)\.\s+(.*)$")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


class RunbookError(ValueError):
    """The runbook source is malformed (a programming error caught by the tests and ``hux render``)."""


def source_text() -> str:
    """The runbook as written (``src/hux/monitoring/runbooks.md``)."""
    return resources.files("hux.monitoring").joinpath(SOURCE).read_text(encoding="utf-8")


def docs_markdown() -> str:
    """What ``hux render`` writes to ``docs/runbooks.md``."""
    return RENDERED_NOTE + source_text()


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def _steps(name: str, body: list[str]) -> tuple[str, ...]:
    try:
        start = body.index(FIRST_STEPS_MARKER) + 1
    except ValueError:
        return ()
    steps: list[str] = []
    for line in body[start:]:
        if not line.strip():
            break
        item = _ITEM.match(line)
        if item:
            steps.append(item.group(2).strip())
        elif steps and line.startswith(" "):
            steps[-1] += " " + line.strip()       # a wrapped step
        else:
            raise RunbookError(f"runbook section {name!r}: {line!r} after {FIRST_STEPS_MARKER} is not a numbered "
                               "step; write one '1. …' item per step")
    steps = [_LINK.sub(r"\1", step) for step in steps]
    for step in steps:
        if "{{" in step or "}}" in step:
            # the steps become a Prometheus annotation, which is a Go template
            raise RunbookError(f"runbook section {name!r}: first step {step!r} contains '{{{{' or '}}}}'; "
                               "rephrase it without template braces")
    return tuple(steps)


@lru_cache(maxsize=1)
def _all_first_steps() -> dict[str, tuple[str, ...]]:
    return {name: _steps(name, body) for name, body in _sections(source_text()).items()}


def first_steps(alertname: str) -> tuple[str, ...]:
    """The first steps of an alert's runbook section, in order; ``()`` for an alert without any."""
    return _all_first_steps().get(alertname, ())


def first_steps_text(alertname: str) -> str:
    """The first steps as one numbered block (``1. …`` one per line): the ``first_steps`` annotation."""
    return "\n".join(f"{number}. {step}" for number, step in enumerate(first_steps(alertname), 1))
