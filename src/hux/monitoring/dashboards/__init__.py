"""The three Grafana dashboards, built with grafana-foundation-sdk (pinned ==0.0.21).

``build_dashboards(settings)`` returns ``{uid: dashboard JSON}``; the renderer
writes each to ``<uid>.json`` for Grafana's file provisioning. Thresholds and
recording-rule names come from the same settings as the alert rules.
"""

from __future__ import annotations

import importlib
import re
import warnings
from typing import Any

from hux.monitoring.settings import Settings

BUILDERS = ("system_overview", "token_monitoring", "risk_monitoring")


def build_dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    # The SDK flags its v1 dashboard model as superseded by v2; Grafana's file
    # provisioning reads v1 JSON, which is what we want here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from hux.monitoring.dashboards.common import Context

        modules = [importlib.import_module(f"hux.monitoring.dashboards.{name}") for name in BUILDERS]
        return {module.UID: module.build(Context(settings)) for module in modules}


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, rows included."""
    out = []
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []) or []:
                if target.get("expr"):
                    out.append((inner.get("title", ""), target["expr"]))
    return out


def substitute(expr: str, *, rate_interval: str, interval: str, range_: str,
               variables: dict[str, str] | None = None) -> str:
    """A panel query as Grafana would send it, for running it against the Prometheus API.

    Template variables become their value (default: the "All" value ``.*``; every
    variable is used with ``=~``); ``$__rate_interval``, ``$__interval`` and
    ``$__range`` become the given durations.
    """
    variables = variables or {}
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", interval)
    expr = expr.replace("$__range", range_)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), ".*"), expr)


__all__ = ["BUILDERS", "build_dashboards", "panel_queries", "substitute"]
