"""The report: one ``CheckResult`` per thing looked at, graded in the shared vocabulary.

``warn`` never changes the exit code; any ``fail`` makes it 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hux.monitoring.status import FAIL, PASS, STATUSES, WARN, worst


@dataclass
class CheckResult:
    name: str
    status: str
    reason: str
    fix: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_seconds"] = round(data.pop("duration"), 4)
        return data


@dataclass
class HealthReport:
    checks: list[CheckResult]
    duration: float
    mode: str = "native"

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 1 if self.status == FAIL else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    def failing(self) -> list[str]:
        return [c.name for c in self.checks if c.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "mode": self.mode,
            "duration_seconds": round(self.duration, 4),
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }


__all__ = ["FAIL", "PASS", "WARN", "CheckResult", "HealthReport"]
