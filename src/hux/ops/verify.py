"""Verification queries: what a restored Prometheus must answer exactly as the original did.

At backup time, right after the snapshot, a small fixed set of PromQL queries
runs over the time range the snapshot covers and the answers go into the
manifest. After a restore the same queries run against the restored server;
every answer must match exactly (values are compared as the strings
Prometheus prints, so a changed sample shows).

The queries are chosen to be cheap and order-independent:

* ``count({__name__=~".+"})`` and ``count by (__name__) (...)`` at a few
  instants: how many series of each metric existed;
* for a few well-known metrics (``up`` and friends): how many samples were
  stored in the window before each instant (``sum(count_over_time(...))``,
  integers, exact whatever the summation order), and a raw range query across
  the whole range: the sample values themselves.

Only data older than the snapshot minus a safety margin is queried: any sample
with an earlier timestamp was already in the database when the snapshot was
taken (a scrape appends its samples within its timeout).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hux.ops.clients import Prometheus

INSTANTS = 4
MAX_SERIES_PER_QUERY = 20  # for range answers; instant answers keep up to MAX_INSTANT_ROWS
MAX_INSTANT_ROWS = 5000
RANGE_POINTS = 120
PROBE_METRICS = (
    "up",
    "hux_messages_received_total",
    "hux_tokens_processed_total",
    "prometheus_tsdb_head_series",
    "node_load1",
    "process_resident_memory_bytes",
)
PROBES = 3
INLINE_BYTES = 2048  # answers up to this size are stored verbatim, larger ones as a digest


def normalize(data: dict[str, Any]) -> list[Any]:
    """A query answer as a sorted, JSON-stable list (at most MAX_SERIES_PER_QUERY series)."""
    kind = data.get("resultType")
    result = data.get("result") or []
    if kind == "scalar" or kind == "string":
        return [["", str(result[1])]]
    rows: list[list[Any]] = []
    for item in result:
        labels = json.dumps(item.get("metric", {}), sort_keys=True)
        if kind == "matrix":
            rows.append([labels, [[point[0], str(point[1])] for point in item.get("values", [])]])
        else:
            rows.append([labels, str(item.get("value", [0, ""])[1])])
    rows.sort(key=lambda row: row[0])
    return rows[:MAX_SERIES_PER_QUERY] if kind == "matrix" else rows[:MAX_INSTANT_ROWS]


def plan(prom: Prometheus, start: float, end: float) -> list[dict[str, Any]]:
    """The queries (without answers) for the range [start, end] (seconds)."""
    start, end = round(min(start, end), 3), round(end, 3)
    span = end - start
    instants = sorted({round(start + span * (i + 1) / INSTANTS, 3) for i in range(INSTANTS)}) if span > 0 else [end]
    window = int(min(3600, max(60, span / INSTANTS)))
    queries: list[dict[str, Any]] = []
    for at in instants:
        queries.append({"type": "instant", "expr": 'count({__name__=~".+"})', "time": at})
        queries.append({"type": "instant", "expr": 'count by (__name__) ({__name__=~".+"})', "time": at})
    if span > 0:
        try:
            names = set(prom.label_values("__name__", start=start, end=end))
        except Exception:  # noqa: BLE001 - probes are a bonus; the counts above still verify
            names = set()
        probes = [m for m in PROBE_METRICS if m in names][:PROBES] or sorted(names)[:PROBES]
        step = max(1.0, round(span / RANGE_POINTS, 3))
        for metric in probes:
            selector = f'{{__name__="{metric}"}}'
            for at in instants:
                queries.append({"type": "instant", "expr": f"sum(count_over_time({selector}[{window}s]))", "time": at})
            queries.append({"type": "range", "expr": selector, "start": start, "end": end, "step": step})
    return queries


def run(prom: Prometheus, query: dict[str, Any]) -> list[Any]:
    if query["type"] == "range":
        data = prom.query_range(query["expr"], query["start"], query["end"], query["step"], timeout=300)
    else:
        data = prom.query(query["expr"], query["time"], timeout=300)
    return normalize(data)


def summarize(rows: list[Any]) -> Any:
    """Small answers are kept as they are; large ones as a SHA-256 with their size and first rows."""
    text = json.dumps(rows, separators=(",", ":"))
    if len(text) <= INLINE_BYTES:
        return rows
    head = [[rows[0][0], rows[0][1][:3] if isinstance(rows[0][1], list) else rows[0][1]]] if rows else []
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "rows": len(rows), "head": head}


def record(prom: Prometheus, start: float, end: float) -> dict[str, Any]:
    """Plan and answer the queries: the ``verification`` section of a manifest."""
    queries = plan(prom, start, end)
    for query in queries:
        query["result"] = summarize(run(prom, query))
    return {"start": round(start, 3), "end": round(end, 3), "queries": queries}


def compare(prom: Prometheus, verification: dict[str, Any]) -> list[str]:
    """Mismatches between the recorded answers and what ``prom`` answers now ([] = identical)."""
    problems = []
    for query in verification.get("queries", []):
        try:
            now = run(prom, query)
        except Exception as exc:  # noqa: BLE001 - any failure is a verification failure
            problems.append(f"{query['expr']}: query failed ({exc})")
            continue
        if summarize(now) != query.get("result"):
            where = f"at {query['time']}" if query["type"] == "instant" else f"over {query['start']}..{query['end']}"
            problems.append(f"{query['expr']} {where}: expected {_brief(query.get('result'))}, "
                            f"got {_brief(summarize(now))}")
    return problems


def _brief(rows: Any, limit: int = 160) -> str:
    text = json.dumps(rows)
    return text if len(text) <= limit else text[: limit - 1] + "…"
