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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

ALL_VALUE = ".*"
_BUILTIN = re.compile(r"\$(?:__(rate_interval|interval|range)\b|\{__(rate_interval|interval|range)\})")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}?")


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: str
    expr: str


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
        for panel, expr in panel_queries(board):
            out.append(PanelQuery(title, panel, substitute(expr, rate_interval=rate_interval, interval=interval,
                                                           range_=range_, variables=variables)))
    return out


__all__ = ["PanelQuery", "board_variables", "dashboard_queries", "grafana_intervals", "grafana_vars_to_promql",
           "panel_queries", "panel_targets", "substitute"]
