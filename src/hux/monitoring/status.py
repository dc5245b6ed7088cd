"""The one pass/warn/fail vocabulary of every check and report.

``hux health`` (its checks), ``hux check-config`` (:mod:`hux.monitoring.checks`)
and the maintenance reports (:mod:`hux.ops.maintenance.report`) all grade what
they find with these words, and order them the same way: ``worst`` of a set of
outcomes is the one an operator must act on first. ``info`` is a remark that
grades nothing (a report's note); it ranks with ``pass``.
"""

from __future__ import annotations

from typing import Iterable

PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"
STATUSES = (PASS, WARN, FAIL)
RANK = {INFO: 0, PASS: 0, WARN: 1, FAIL: 2}


def worst(statuses: Iterable[str]) -> str:
    """The most severe outcome (``pass`` for none); an unknown word ranks as ``pass``."""
    result = PASS
    for status in statuses:
        if RANK.get(status, 0) > RANK[result]:
            result = status
    return result


def from_ok(ok: bool) -> str:
    """A yes/no check (a tool's exit code) in the same words."""
    return PASS if ok else FAIL


__all__ = ["FAIL", "INFO", "PASS", "RANK", "STATUSES", "WARN", "from_ok", "worst"]
