"""The three Grafana dashboards, built with grafana-foundation-sdk (pinned ==0.0.21).

``build_dashboards(settings)`` returns ``{uid: dashboard JSON}``; the renderer
writes each to ``<uid>.json`` for Grafana's file provisioning. Thresholds and
recording-rule names come from the same settings as the alert rules.
``load_boards`` reads the rendered files back (what Grafana shows), and
:mod:`hux.monitoring.dashboards.queries` turns their panels into runnable
PromQL for ``hux health`` and the live panel test alike.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any

from hux.monitoring.dashboards.queries import (
    EMPTY_UNLESS,
    PanelQuery,
    board_variables,
    dashboard_queries,
    empty_unless,
    grafana_intervals,
    grafana_vars_to_promql,
    may_be_empty,
    panel_queries,
    substitute,
)
from hux.monitoring.settings import Settings

BUILDERS = ("system_overview", "token_monitoring", "risk_monitoring")
#: at most this many rendered dashboard files are read back, each at most this large
MAX_BOARDS = 64
MAX_BOARD_BYTES = 4 * 1024 * 1024


def build_dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    # The SDK flags its v1 dashboard model as superseded by v2; Grafana's file
    # provisioning reads v1 JSON, which is what we want here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from hux.monitoring.dashboards.common import Context

        modules = [importlib.import_module(f"hux.monitoring.dashboards.{name}") for name in BUILDERS]
        return {module.UID: module.build(Context(settings)) for module in modules}


def load_boards(settings: Settings, rendered_dir: Path | None = None) -> list[dict[str, Any]]:
    """The rendered boards in ``rendered_dir`` (sorted by file name) when it holds any, else the built ones.

    A file that is too large or not a JSON object raises ValueError naming it and the fix.
    """
    if rendered_dir is not None and rendered_dir.is_dir():
        boards = []
        for path in sorted(rendered_dir.glob("*.json"))[:MAX_BOARDS]:
            if path.stat().st_size > MAX_BOARD_BYTES:
                raise ValueError(f"{path} is larger than {MAX_BOARD_BYTES} bytes: re-render it (`hux render`)")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"{path} is not a dashboard (a JSON object): re-render it (`hux render`)")
            boards.append(data)
        if boards:
            return boards
    return list(build_dashboards(settings).values())


__all__ = ["BUILDERS", "EMPTY_UNLESS", "PanelQuery", "board_variables", "build_dashboards", "dashboard_queries",
           "empty_unless", "grafana_intervals", "grafana_vars_to_promql", "load_boards", "may_be_empty", "panel_queries",
           "substitute"]
