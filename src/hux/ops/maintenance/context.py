"""What the maintenance tasks need to know: where the components and files are, and the settings."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hux.monitoring.settings import Settings
from hux.monitoring.status import FAIL
from hux.ops.clients import Alertmanager, Prometheus
from hux.ops.errors import OpsError
from hux.ops.maintenance.report import Section


@dataclass
class MaintenanceContext:
    prometheus_url: str
    alertmanager_url: str
    log_dir: Path
    backup_dir: Path
    textfile_dir: Path
    run_dir: Path | None = None
    prometheus_data_dir: Path | None = None
    settings: Settings | None = None
    allow_remote: bool = False
    now: float = field(default_factory=time.time)
    _prom: Prometheus | None = field(default=None, init=False, repr=False)
    _am: Alertmanager | None = field(default=None, init=False, repr=False)

    @property
    def prom(self) -> Prometheus:
        if self._prom is None:
            self._prom = Prometheus(self.prometheus_url, timeout=120)
        return self._prom

    @property
    def am(self) -> Alertmanager:
        if self._am is None:
            self._am = Alertmanager(self.alertmanager_url)
        return self._am

    def close(self) -> None:
        for client in (self._prom, self._am):
            if client is not None:
                client.close()
        self._prom = self._am = None

    def alert_setting(self, name: str, default: float) -> float:
        alerts = getattr(self.settings, "alerts", None)
        value = getattr(alerts, name, None)
        return float(value) if isinstance(value, (int, float)) else default

    # --- query helpers that never raise for "no data" ---------------------------------------
    def value(self, expr: str, at: float | None = None) -> float | None:
        result = self.prom.vector(expr, self.now if at is None else at)
        if not result:
            return None
        value = result[0][1]
        return None if math.isnan(value) else value

    def series(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        return self.prom.vector(expr, self.now if at is None else at)

    def range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = self.prom.query_range(expr, start, end, step, timeout=300)
        return [(item["metric"], [(float(t), float(v)) for t, v in item["values"]]) for item in data.get("result", [])]


@contextmanager
def guarded(section: Section, what: str) -> Iterator[None]:
    """Run one part of a report; a component that is down becomes a failed note, not a crash."""
    try:
        yield
    except OpsError as exc:
        section.note(f"{what}: {exc}", FAIL)
        section.status = FAIL


def label_text(labels: dict[str, str], keys: tuple[str, ...] = ("job", "instance"),
               hide: tuple[str, ...] = ("__name__", "alertname", "severity", "alertstate")) -> str:
    parts = [labels[k] for k in keys if labels.get(k)]
    rest = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in keys and k not in hide]
    return " ".join(parts + rest) or "—"
