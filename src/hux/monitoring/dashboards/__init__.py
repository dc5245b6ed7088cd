"""The three Grafana dashboards, built with grafana-foundation-sdk."""

from __future__ import annotations

from typing import Any

from hux.monitoring.settings import Settings


def build_dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    return {}
