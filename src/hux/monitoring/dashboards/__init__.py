"""The three Grafana dashboards, built with grafana-foundation-sdk (pinned ==0.0.21).

``build_dashboards(settings)`` returns ``{uid: dashboard JSON}``; the renderer
writes each to ``<uid>.json`` for Grafana's file provisioning. Thresholds and
recording-rule names come from the same settings as the alert rules.
"""

from __future__ import annotations

from typing import Any

from hux.monitoring.dashboards import risk_monitoring, system_overview, token_monitoring
from hux.monitoring.dashboards.common import Context, panel_queries
from hux.monitoring.settings import Settings

BUILDERS = (system_overview, token_monitoring, risk_monitoring)


def build_dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    return {module.UID: module.build(Context(settings)) for module in BUILDERS}


__all__ = ["BUILDERS", "build_dashboards", "panel_queries"]
