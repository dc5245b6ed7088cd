"""``hux dashboards snapshot``: the three dashboards over a time range as one self-contained HTML page.

Works without Grafana (natively it is often not installed) and beside it (a page
to attach to an incident). The queries come from the same dashboard JSON Grafana
is provisioned with (:func:`hux.monitoring.dashboards.snapshot_html.snapshot_queries`);
this module asks them of Prometheus, a few at a time with a timeout each and a
deadline for all, and hands the answers to the renderer. A query that fails is
shown on its panel as "query failed: ..."; the page is still written.

Prometheus's answers are read defensively: any shape that is not a matrix or
vector of numbers becomes an error or a count of unreadable samples on the
panel, and at most :data:`MAX_SERIES_KEPT` series per query are kept.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from hux import paths
from hux.monitoring.dashboards import BUILDERS, load_boards
from hux.monitoring.dashboards.snapshot_html import (
    Key,
    QueryResult,
    Series,
    SnapshotQuery,
    Window,
    board_uid,
    render_snapshot,
    snapshot_queries,
)
from hux.monitoring.durations import duration_seconds
from hux.monitoring.settings import Settings, load_settings
from hux.ops.clients import Prometheus
from hux.ops.errors import ApiError, OpsError

#: series kept per query (the renderer draws fewer and counts the rest)
MAX_SERIES_KEPT = 200
#: queries in flight at once
WORKERS = 4
#: seconds for one query, and for all of them
QUERY_TIMEOUT = 20.0
TOTAL_TIMEOUT = 120.0
#: the longest range a snapshot covers (the step grows with the range, so points stay bounded anyway)
MAX_RANGE = 90 * 86400.0
DEFAULT_SINCE = "3h"


# --- Prometheus's answers -------------------------------------------------------------------------


def _sample(pair: Any) -> tuple[float, float] | None:
    """``[<unix time>, "<value>"]`` as floats; None when it is not that."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return None
    at, value = pair
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        return None
    if not isinstance(value, str):
        return None
    try:
        return float(at), float(value)
    except ValueError:
        return None


def _labels(metric: Any) -> dict[str, str] | None:
    if not isinstance(metric, dict):
        return None
    return {str(k): str(v) for k, v in metric.items() if isinstance(k, str) and isinstance(v, (str, int, float))}


def parse_result(data: Any) -> QueryResult:
    """The ``data`` of a query or query_range answer as series; never raises."""
    if not isinstance(data, dict):
        return QueryResult(error="Prometheus answered without a result")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        sample = _sample(result)
        return QueryResult([Series({}, [sample])]) if sample else QueryResult(unreadable=1)
    if kind not in ("matrix", "vector") or not isinstance(result, list):
        return QueryResult(error=f"Prometheus answered a {str(kind)[:20]!r} result, not a matrix or vector")
    out = QueryResult()
    for item in result:
        labels = _labels(item.get("metric")) if isinstance(item, dict) else None
        if labels is None:
            out.unreadable += 1
            continue
        raw = item.get("values") if kind == "matrix" else [item.get("value")]
        if not isinstance(raw, list):
            out.unreadable += 1
            continue
        if len(out.series) >= MAX_SERIES_KEPT:
            out.dropped_series += 1
            continue
        points = []
        for pair in raw:
            sample = _sample(pair)
            if sample is None:
                out.unreadable += 1
            else:
                points.append(sample)
        points.sort()
        out.series.append(Series(labels, points))
    return out


def fetch(prometheus: Prometheus, queries: Sequence[SnapshotQuery], window: Window, *, workers: int = WORKERS,
          query_timeout: float = QUERY_TIMEOUT, total_timeout: float = TOTAL_TIMEOUT) -> dict[Key, QueryResult]:
    """Every query's result: range queries over the window, instant ones at its end. Never raises for a query."""

    def ask(query: SnapshotQuery) -> QueryResult:
        try:
            if query.instant:
                data = prometheus.query(query.expr, window.end, timeout=query_timeout)
            else:
                data = prometheus.query_range(query.expr, window.start, window.end, window.step,
                                              timeout=query_timeout)
        except ApiError as exc:
            return QueryResult(error=str(exc))
        return parse_result(data)

    results: dict[Key, QueryResult] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="snapshot")
    try:
        futures: dict[Future[QueryResult], SnapshotQuery] = {pool.submit(ask, q): q for q in queries}
        deadline = time.monotonic() + total_timeout
        pending = set(futures)
        while pending and time.monotonic() < deadline:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future].key] = future.result()
        for future in pending:
            results[futures[future].key] = QueryResult(
                error=f"no answer within {total_timeout:g} s for all queries: Prometheus is slow or overloaded")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


# --- time range and choice of boards ----------------------------------------------------------------


def parse_time(text: str) -> float:
    """A moment: unix seconds, or ISO 8601 (``2026-12-02T05:00:00Z``; without a zone it is UTC)."""
    value = text.strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OpsError(f"{text!r} is not a time: use ISO 8601 such as 2026-12-02T05:00:00Z, or unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def time_range(*, since: str | None, start: str | None, end: str | None, now: float | None = None
               ) -> tuple[float, float]:
    """(start, end) from ``--since`` or ``--from``/``--to`` (``--to`` defaults to now)."""
    now = time.time() if now is None else now
    stop = parse_time(end) if end else now
    if start:
        if since:
            raise OpsError("give either --since or --from, not both")
        begin = parse_time(start)
    else:
        try:
            begin = stop - duration_seconds(since or DEFAULT_SINCE)
        except ValueError as exc:
            raise OpsError(f"--since: {exc}") from None
    if not stop > begin:
        raise OpsError("the time range is empty: --from must come before --to (and --since be longer than 0)")
    if stop - begin > MAX_RANGE:
        raise OpsError(f"the time range is longer than {MAX_RANGE / 86400:g} days: choose a shorter one")
    return begin, stop


def in_order(boards: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """System Overview, Token Monitoring, Risk Monitoring (the builders' order), then any other board."""
    def rank(board: Mapping[str, Any]) -> int:
        uid = board_uid(board)
        return next((i for i, name in enumerate(BUILDERS) if name.replace("_", "-") in uid), len(BUILDERS))

    return sorted(boards, key=rank)


def select_boards(boards: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Mapping[str, Any]]:
    """The boards named (uid, title, or title words: "risk", "Token Monitoring"); all when none is named."""
    if not names:
        return list(boards)

    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    chosen: list[Mapping[str, Any]] = []
    for name in names:
        wanted = key(name)
        found = [b for b in boards if wanted and (wanted == key(board_uid(b)) or wanted in key(str(b.get("title"))))]
        if not found:
            known = ", ".join(f'"{b.get("title")}"' for b in boards)
            raise OpsError(f"no dashboard called {name!r}: choose one of {known}")
        chosen += [b for b in found if b not in chosen]
    return chosen


def slowest_scrape(settings: Settings) -> float:
    """The longest scrape interval of any job, in seconds: ``$__rate_interval`` is at least four of them, so a
    rate over a job scraped less often than the others (the bot has its own interval) still sees two samples."""
    return max(duration_seconds(settings.prometheus.scrape_interval),
               duration_seconds(settings.prometheus.bot_scrape_interval))


def default_output(layout: paths.Layout, at: float) -> Path:
    stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return layout.snapshots_dir / f"dashboards-{stamp}.html"


# --- the command --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    path: Path
    panels: Counter[str]          # data-state -> count
    queries: int
    failed: list[str]             # "board / panel: error"
    seconds: float


def take_snapshot(settings: Settings, *, start: float, end: float, out: Path | None = None,
                  dashboards: Sequence[str] = (), prometheus_url: str | None = None,
                  layout: paths.Layout | None = None, prometheus: Prometheus | None = None) -> Snapshot:
    """Ask, render and write; the page is written even when queries fail (they show on their panels)."""
    started = time.monotonic()
    layout = layout or paths.Layout.current()
    boards = select_boards(in_order(load_boards(settings, layout.dashboards_dir)), dashboards)
    window = Window.over(start, end, slowest_scrape(settings))
    queries = snapshot_queries(boards, window)
    url = prometheus_url or settings.url("prometheus")
    client = prometheus or Prometheus(url, timeout=QUERY_TIMEOUT)
    try:
        results = fetch(client, queries, window)
    finally:
        if prometheus is None:
            client.close()
    page = render_snapshot(boards, results, window, source=url)
    path = out or default_output(layout, end)
    paths.private_dir(path.parent, tighten=False)
    tmp = path.with_name(path.name + ".tmp")
    # 0600 like the rest of data/: label values carry the names of the chats the bot reads
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(page)
    tmp.replace(path)
    states = Counter(re.findall(r'<section class="panel [^"]*" data-type="[^"]*" data-state="(\w+)"', page))
    titles = {q.key: q for q in queries}
    failed = [f"{q.key[0]} / panel {q.key[1]} ({q.key[2]}): {results[k].error}"
              for k, q in titles.items() if k in results and results[k].error]
    return Snapshot(path, states, len(queries), failed, time.monotonic() - started)


def _snapshot_cmd(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    layout = paths.Layout.current()
    try:
        start, end = time_range(since=args.since, start=args.start, end=args.end)
        out = layout.resolve(args.out) if args.out else None
        result = take_snapshot(settings, start=start, end=end, out=out, dashboards=args.dashboard or (),
                               prometheus_url=args.prometheus_url, layout=layout)
    except (OpsError, ValueError) as exc:
        print(f"hux dashboards snapshot: {exc}", file=sys.stderr)
        return 1
    total = sum(result.panels.values())
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.panels.items()))
    print(f"wrote {result.path}")
    print(f"  {total} panels ({counts}), {result.queries} queries in {result.seconds:.1f} s; "
          "open it in a browser (no network needed)")
    for line in result.failed[:10]:
        print(f"  query failed: {line}", file=sys.stderr)
    if result.failed:
        print(f"  {len(result.failed)} of {result.queries} queries failed: is Prometheus up (`hux status`)?",
              file=sys.stderr)
        return 3 if len(result.failed) < result.queries else 1
    return 0


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    dashboards = subparsers.add_parser("dashboards", help="the dashboards without Grafana: an HTML snapshot")
    sub = dashboards.add_subparsers(dest="dashboards_command", metavar="ACTION", required=True)
    snap = sub.add_parser(
        "snapshot", help="every panel of the dashboards over a time range, as one self-contained HTML file",
        description="Ask Prometheus every panel query of System Overview, Token Monitoring and Risk Monitoring "
                    "over a time range and write one HTML page (inline SVG charts, no scripts, no network) to "
                    "open in any browser or attach to an incident. Prints the file's path.",
    )
    when = snap.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DURATION", help=f"the last DURATION up to --to or now (default {DEFAULT_SINCE})")
    when.add_argument("--from", dest="start", metavar="TIME", help="start: ISO 8601 (UTC unless a zone is given) "
                      "or unix seconds")
    snap.add_argument("--to", dest="end", metavar="TIME", help="end (default: now)")
    snap.add_argument("--out", metavar="FILE", help="where to write (default: data/snapshots/dashboards-<UTC time>.html)")
    snap.add_argument("--dashboard", action="append", metavar="NAME",
                      help="only this dashboard (uid or title, e.g. \"risk\"); repeat for more (default: all three)")
    snap.add_argument("--prometheus-url", metavar="URL", help="default: from the settings (http://127.0.0.1:9090)")
    snap.set_defaults(func=_snapshot_cmd)


__all__ = ["Snapshot", "default_output", "fetch", "parse_result", "parse_time", "register", "select_boards",
           "take_snapshot", "time_range"]
