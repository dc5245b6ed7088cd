"""One duration parser: strict for the settings, with a fallback for what the components report."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring.alertmanager import route_receivers
from hux.monitoring.durations import duration_or, duration_seconds

UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=len(UNITS), max_size=len(UNITS)),
       st.lists(st.booleans(), min_size=len(UNITS), max_size=len(UNITS)))
def test_a_duration_reads_as_its_seconds(amounts: list[int], present: list[bool]) -> None:
    parts = [(a, unit) for a, (unit, _), keep in zip(amounts, UNITS, present, strict=True) if keep]
    if not parts:
        return
    text = "".join(f"{a}{unit}" for a, unit in parts)
    expected = sum(a * dict(UNITS)[unit] for a, unit in parts)
    assert duration_seconds(text) == pytest.approx(expected)
    assert duration_or(text, -1.0) == pytest.approx(expected)


@given(st.text(max_size=12))
@example("1h30x")
@example("30s\n")
@example("5m1h")
@example("")
def test_anything_else_is_refused_or_falls_back(text: str) -> None:
    try:
        seconds = duration_seconds(text)
    except ValueError as exc:
        assert "use a Prometheus duration" in str(exc)
        assert duration_or(text, "fallback") == "fallback"
    else:
        assert duration_or(text, "fallback") == seconds


@pytest.mark.parametrize("value", [None, 30, 1.5, ["30s"], {"s": 1}])
def test_not_a_string_falls_back(value: object) -> None:
    assert duration_or(value, 7.0) == 7.0


def test_a_route_wait_it_cannot_read_is_the_inherited_one_not_half_of_it() -> None:
    route = {"receiver": "a", "group_wait": "1m", "routes": [
        {"receiver": "b", "matchers": ['severity="critical"'], "group_wait": "10s5x"},   # not a duration
        {"receiver": "c", "matchers": ['severity="warning"'], "group_wait": "0s"},      # sends at once
    ]}
    assert route_receivers(route, {"severity": "critical"}) == [("b", 60.0)]
    assert route_receivers(route, {"severity": "warning"}) == [("c", 0.0)]
