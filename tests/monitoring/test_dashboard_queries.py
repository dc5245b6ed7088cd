"""Panel queries made runnable: the one extraction `hux health` and the live panel test share."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring.dashboards import panel_queries, substitute

INTERVALS = {"rate_interval": "1m", "interval": "15s", "range_": "1h"}


def test_braced_builtins_become_durations_not_match_anything() -> None:
    # Grafana accepts ${__rate_interval} as well as $__rate_interval; both are durations, never ".*".
    expr = "rate(x_total[${__rate_interval}]) / ${__interval} + increase(y[$__range]) + rate(z[$__rate_interval])"
    assert substitute(expr, **INTERVALS) == "rate(x_total[1m]) / 15s + increase(y[1h]) + rate(z[1m])"


def test_formatted_variables_become_their_all_value() -> None:
    expr = 'up{job=~"${job:regex}", instance=~"${instance}", node=~"$node"}'
    assert substitute(expr, **INTERVALS) == 'up{job=~".*", instance=~".*", node=~".*"}'


def test_a_boards_all_value_is_used() -> None:
    assert substitute('up{job=~"$job"}', **INTERVALS, variables={"job": "bot|node"}) == 'up{job=~"bot|node"}'


def test_panels_nested_in_rows_at_any_depth_are_found() -> None:
    board = {"panels": [
        {"title": "row", "type": "row", "panels": [
            {"title": "inner row", "type": "row", "panels": [{"title": "deep", "targets": [{"expr": "up"}]}]},
            {"title": "", "targets": [{"expr": "sum(up)"}, {"refId": "B"}]},
        ]},
        "not a panel",
    ]}
    assert panel_queries(board) == [("deep", "up"), ("(untitled)", "sum(up)")]


@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
       braced=st.booleans(), fmt=st.sampled_from(["", ":regex", ":pipe", ":csv"]))
@example(name="__rate_interval", braced=True, fmt="")
@example(name="job", braced=True, fmt=":regex")
def test_no_template_reference_survives(name: str, braced: bool, fmt: str) -> None:
    """Whatever a variable is called or however it is written, Prometheus never sees a `$`."""
    reference = f"${{{name}{fmt}}}" if braced else f"${name}"
    out = substitute(f'sum(rate(x{{a=~"{reference}"}}[$__rate_interval]))', **INTERVALS)
    assert "$" not in out and "{" + "}" not in out
    assert re.fullmatch(r'sum\(rate\(x\{a=~"(\.\*|1m|15s|1h)"\}\[1m\]\)\)', out), out
