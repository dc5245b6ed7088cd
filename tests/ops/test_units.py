"""Sizes and ages read the same in health, backup output, progress and the maintenance reports."""

from __future__ import annotations

from hux.ops import progress
from hux.ops.maintenance import report
from hux.units import ago, human_bytes


def test_human_bytes() -> None:
    assert [human_bytes(v) for v in (0, 1023, 1536, 5 * 2**20, 3 * 2**40, 5000 * 2**40)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 TiB", "5000.0 TiB"]


def test_ago() -> None:
    ages = (None, -3, 45, 3600, 5 * 3600, 3 * 86400, 100 * 365 * 86400)
    assert [ago(v) for v in ages] == ["—", "0 s", "45 s", "60 min", "5.0 h", "3.0 d", "36500.0 d"]
    assert [ago(v, compact=True) for v in ages] == ["—", "0s", "45s", "60m", "5.0h", "3.0d", "36500.0d"]


def test_one_formatter_each_everywhere() -> None:
    assert progress.human_bytes is human_bytes
    assert report.fmt_value(1536.0, "bytes") == human_bytes(1536.0)
    assert report.ago(3600) == ago(3600, compact=True) == "60m"
