"""Detection latency: fault injected -> notification arrived, against its floor and bound.

For an alert with ``for: F`` routed through ``group_wait: G``:

* floor = F + G: no implementation can notify sooner (the rule must hold for
  F, Alertmanager waits G to group);
* bound = floor + scrape interval + evaluation interval + W, where W is what
  the expression itself needs to see the fault (the part of a rate window that
  must fill before a ratio crosses its threshold, the bot's own probe period).
  Recording rules open the group of the alerts that read them, so reading a
  ratio costs no extra evaluation.

Every measurement must fall in [floor, bound + 2 s]. The records are written to
``$HUX_E2E_LATENCY_FILE`` (JSON) when set; ``bench/e2e_alert_latency.py`` turns
them into the table in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

SLACK_S = 2.0  # the measurement tolerance the issue allows above the bound


@dataclass(frozen=True)
class LatencyRecord:
    scenario: str
    alertname: str
    severity: str
    receiver: str
    floor_s: float
    bound_s: float
    measured_s: float
    window_s: float
    window_note: str

    @property
    def ratio(self) -> float:
        return self.measured_s / self.floor_s if self.floor_s else float("inf")

    @property
    def within(self) -> bool:
        return self.floor_s <= self.measured_s <= self.bound_s + SLACK_S


class LatencyLog:
    def __init__(self) -> None:
        self.records: list[LatencyRecord] = []
        self._lock = threading.Lock()

    def add(self, record: LatencyRecord) -> None:
        with self._lock:
            self.records.append(record)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        existing: list[dict] = []
        if path.exists():
            try:
                existing = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                existing = []
        data = existing + [asdict(r) for r in self.records]
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def table(self) -> str:
        return render_table([asdict(r) for r in self.records])


def render_table(rows: list[dict]) -> str:
    """Markdown table: one row per scenario and alert (the first receiver that got it)."""
    lines = [
        "| scenario | alert | severity | floor (s) | bound (s) | measured (s) | measured/floor | receivers | window part |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["scenario"], row["alertname"]), []).append(row)
    for (scenario, alertname), group in grouped.items():
        first = min(group, key=lambda r: r["measured_s"])
        receivers = ", ".join(f"{r['receiver']} {r['measured_s']:.1f}" for r in sorted(group, key=lambda r: r["receiver"]))
        ratio = first["measured_s"] / first["floor_s"] if first["floor_s"] else float("inf")
        lines.append(
            f"| {scenario} | {alertname} | {first['severity']} | {first['floor_s']:.1f} | {first['bound_s']:.1f} | "
            f"{first['measured_s']:.1f} | {ratio:.2f} | {receivers} | {first['window_note'] or '-'} |"
        )
    return "\n".join(lines)


def output_path() -> Path | None:
    value = os.environ.get("HUX_E2E_LATENCY_FILE")
    return Path(value) if value else None
