"""``hux alerts``: what the local alert inbox received — what fires now, the history, the last heartbeat.

It reads the inbox's index (``data/inbox/index.sqlite3``, read-only) and never
talks to a running process, so it answers while Alertmanager is down too.
Each firing alert comes with its runbook's first steps: the ``first_steps``
annotation the notification carried, else the runbook section itself
(``hux.monitoring.runbooks.first_steps``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hux.monitoring.alertmanager import Paging
from hux.monitoring.inbox.store import Entry, InboxStore, iso
from hux.monitoring.runbooks import first_steps
from hux.paths import Layout
from hux.units import ago

MAX_HISTORY = 2000


@dataclass
class AlertsView:
    now: float
    since: float
    last_heartbeat: float | None
    firing: list[Entry]
    history: list[Entry]
    paging: Paging
    index_exists: bool


def steps_of(entry: Entry) -> list[str]:
    """The first steps for an entry: its annotation's numbered lines, else the runbook's."""
    text = entry.annotations.get("first_steps", "").strip()
    if text:
        return [line.split(". ", 1)[-1].strip() for line in text.splitlines() if line.strip()]
    return list(first_steps(entry.alertname))


def load_view(layout: Layout, since_seconds: float, paging: Paging, *, now: float | None = None) -> AlertsView:
    now = time.time() if now is None else now
    store = InboxStore.for_layout(layout, readonly=True)
    try:
        return AlertsView(now, now - since_seconds, store.last_heartbeat(), store.firing(),
                          store.history(now - since_seconds, limit=MAX_HISTORY), paging, store.index.exists())
    finally:
        store.close()


def _entry_dict(entry: Entry, now: float) -> dict[str, Any]:
    data = entry.to_dict()
    data["age_seconds"] = round(now - entry.received_at, 1)
    data["first_steps"] = steps_of(entry)
    return data


def to_json(view: AlertsView) -> str:
    heartbeat = None
    if view.last_heartbeat is not None:
        heartbeat = {"received_at": view.last_heartbeat, "received_at_iso": iso(view.last_heartbeat),
                     "age_seconds": round(view.now - view.last_heartbeat, 1)}
    return json.dumps({
        "now": iso(view.now),
        "since": iso(view.since),
        "last_heartbeat": heartbeat,
        "firing": [_entry_dict(e, view.now) for e in view.firing],
        "history": [_entry_dict(e, view.now) for e in view.history],
        "paging": view.paging.to_dict(),
    }, indent=2)


def _headline(entry: Entry) -> str:
    summary = entry.annotations.get("summary", "")
    severity = f" [{entry.severity}]" if entry.severity else ""
    return f"{entry.alertname}{severity}" + (f": {summary}" if summary else "")


def to_text(view: AlertsView, layout: Layout) -> str:
    lines: list[str] = []
    if not view.index_exists:
        lines.append(f"The alert inbox has received nothing yet ({layout.inbox_dir}/ is empty). It runs with the "
                     "native stack: start it with `hux up`; `hux status` shows the inbox.")
    elif view.last_heartbeat is None:
        lines.append("Last Watchdog heartbeat: none received yet (it arrives within about a minute of start; "
                     "if not, `hux health`)")
    else:
        lines.append(f"Last Watchdog heartbeat: {iso(view.last_heartbeat)} ({ago(view.now - view.last_heartbeat)} ago)")
    lines.append("")
    if view.firing:
        lines.append(f"Firing now ({len(view.firing)}):")
        for entry in view.firing:
            started = entry.starts_at[:19].replace("T", " ") if entry.starts_at else iso(entry.received_at)
            lines.append(f"  {_headline(entry)}")
            lines.append(f"    since {started} UTC, last notified {ago(view.now - entry.received_at)} ago")
            steps = steps_of(entry)
            if steps:
                lines.append("    first steps:")
                lines += [f"      {number}. {step}" for number, step in enumerate(steps, 1)]
    else:
        lines.append("Firing now: nothing.")
    lines.append("")
    lines.append(f"History since {iso(view.since)} ({len(view.history)} notification(s) besides the Watchdog):")
    for entry in view.history:
        lines.append(f"  {iso(entry.received_at)}  {entry.status.upper():8s}  {_headline(entry)}")
    if len(view.history) >= MAX_HISTORY:
        lines.append(f"  (the latest {MAX_HISTORY}; --since narrows it, --json gives them all the same way)")
    lines.append("")
    lines.append(f"Alerts: {view.paging.sentence()}")
    lines.append(f"Every notification is also in {layout.alerts_log} (JSON lines).")
    return "\n".join(lines) + "\n"
