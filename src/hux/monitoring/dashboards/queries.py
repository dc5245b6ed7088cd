"""Every dashboard panel query, made runnable against the Prometheus API: one implementation.

``hux health`` runs these to tell which panels show nothing, and the live panel
test (tests/monitoring/test_panels_live.py) runs the same ones against a real
Prometheus, so what the test proves is what production runs.

* :func:`panel_queries`: (panel title, expr) for every target, rows (at any depth) included
  (:func:`panel_targets`: the panel and target objects themselves);
* :func:`substitute`: a query as Grafana would send it: ``$__rate_interval``,
  ``$__interval`` and ``$__range`` (``$x`` or ``${x}``) become durations, template
  variables (``$job``, ``${instance}``, ``${job:regex}``) their "All" value
  (the board's ``allValue``, else ``.*``: every variable is used with ``=~``);
* :func:`dashboard_queries`: all of it, as (board title, panel title, runnable expr).

A panel of a part of the bot that runs only when configured (the Telegram user
account) carries :data:`EMPTY_UNLESS`: the setting that turns it on and a query
(``present``) that returns data exactly when it runs. Such a panel may show
nothing while ``present`` returns nothing; once it does, the panel must show
data like any other (:func:`may_be_empty`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable, Iterator, Mapping

ALL_VALUE = ".*"
_BUILTIN = re.compile(r"\$(?:__(rate_interval|interval|range)\b|\{__(rate_interval|interval|range)\})")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}?")


#: the panel key naming what a panel needs to show data: {"setting": "bot.…", "present": "<PromQL>"}
EMPTY_UNLESS = "huxEmptyUnless"
_MAX_CONDITION = 500


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: str
    expr: str
    #: the setting without which the panel is empty ("" for a panel that must always show data) ...
    empty_unless: str = ""
    #: ... and the query (runnable) that returns data exactly when that part runs
    present: str = ""


def empty_unless(panel: Mapping[str, Any]) -> tuple[str, str] | None:
    """A panel's (setting, present query) when it may be empty without that setting; None otherwise.

    A malformed marker (a rendered file edited by hand) is ignored: the panel must then show data.
    """
    marker = panel.get(EMPTY_UNLESS)
    if not isinstance(marker, dict):
        return None
    setting, present = marker.get("setting"), marker.get("present")
    if not (isinstance(setting, str) and isinstance(present, str) and 0 < len(setting) <= _MAX_CONDITION
            and 0 < len(present) <= _MAX_CONDITION):
        return None
    return setting, present


def may_be_empty(query: PanelQuery, present_has_data: bool) -> bool:
    """Whether ``query`` returning nothing is expected: its part of the bot is not configured (not running)."""
    return bool(query.empty_unless) and not present_has_data


def _panels(panels: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if isinstance(panel, dict):
            yield panel
            yield from _panels(panel.get("panels") or [])   # rows hold their panels


def panel_targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every target with an ``expr`` of every panel, rows included."""
    for panel in _panels(board.get("panels") or []):
        for target in panel.get("targets") or []:
            if isinstance(target, dict) and target.get("expr"):
                yield panel, target


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, rows included."""
    return [(panel.get("title") or "(untitled)", target["expr"]) for panel, target in panel_targets(board)]


def board_variables(board: dict[str, Any]) -> dict[str, str]:
    """Each template variable's "All" value (``allValue``, else ``.*``)."""
    templating = board.get("templating") or {}
    return {v["name"]: v.get("allValue") or ALL_VALUE
            for v in templating.get("list") or [] if isinstance(v, dict) and v.get("name")}


def substitute(expr: str, *, rate_interval: str, interval: str, range_: str,
               variables: dict[str, str] | None = None) -> str:
    """A panel query as Grafana would send it (see the module docstring)."""
    builtins = {"rate_interval": rate_interval, "interval": interval, "range": range_}
    expr = _BUILTIN.sub(lambda m: builtins[m.group(1) or m.group(2)], expr)
    known = variables or {}
    return _VARIABLE.sub(lambda m: known.get(m.group(1), ALL_VALUE), expr)


def grafana_intervals(scrape_interval: float) -> dict[str, str]:
    """What Grafana substitutes for a Prometheus datasource scraping every ``scrape_interval`` s (1 h range)."""
    return {"rate_interval": f"{int(max(4 * scrape_interval, 60))}s", "interval": f"{int(scrape_interval)}s",
            "range_": "1h"}


def grafana_vars_to_promql(expr: str, scrape_interval: float) -> str:
    """One panel query made runnable with :func:`grafana_intervals`."""
    given = grafana_intervals(scrape_interval)
    return substitute(expr, rate_interval=given["rate_interval"], interval=given["interval"], range_=given["range_"])


def dashboard_queries(boards: Iterable[dict[str, Any]], *, rate_interval: str, interval: str,
                      range_: str) -> list[PanelQuery]:
    """Every panel query of ``boards``, runnable as it stands."""
    out = []
    for board in boards:
        variables = board_variables(board)
        title = board.get("title") or "?"
        runnable = partial(substitute, rate_interval=rate_interval, interval=interval, range_=range_,
                           variables=variables)
        for panel, target in panel_targets(board):
            condition = empty_unless(panel)
            setting, present = (condition[0], runnable(condition[1])) if condition else ("", "")
            out.append(PanelQuery(title, panel.get("title") or "(untitled)", runnable(target["expr"]), setting,
                                  present))
    return out


__all__ = ["EMPTY_UNLESS", "PanelQuery", "board_variables", "dashboard_queries", "empty_unless", "grafana_intervals",
           "grafana_vars_to_promql", "may_be_empty", "panel_queries", "panel_targets", "substitute"]
