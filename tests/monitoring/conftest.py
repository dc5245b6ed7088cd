"""Fixtures of the monitoring tests: settings loaded from a private file, never the operator's."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest

from hux.monitoring.settings import Settings, load_settings
from tests.monitoring.livestack import LiveStack
from tests.monitoring.livestack import live_stack as start_live_stack


@pytest.fixture
def make_settings(tmp_path: Path, hux_home: Path) -> Callable[..., Settings]:
    """``make_settings('[alerts]\\nerror_rate_critical = 0.2', environ={...})``: defaults + that TOML only."""
    counter = iter(range(1000))

    def make(toml: str = "", environ: Mapping[str, str] | None = None) -> Settings:
        path = tmp_path / f"settings-{next(counter)}.toml"
        path.write_text(toml, encoding="utf-8")
        return load_settings(path, environ=dict(environ or {}))

    return make


@pytest.fixture
def live_stack(make_settings: Callable[..., Settings], tmp_path: Path, hux_home: Path) -> Iterator[LiveStack]:
    """Prometheus, Alertmanager, node_exporter and the demo bot running (tests/monitoring/livestack.py)."""
    with start_live_stack(make_settings, tmp_path, hux_home) as stack:
        yield stack
