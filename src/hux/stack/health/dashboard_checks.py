"""Every dashboard panel query returns data (the queries Grafana runs, read by hux.monitoring.dashboards).

The queries (80-odd) are asked in a few batched requests rather than one each:
``label_replace(count(q_i), "hux_panel", "i", "", "") or ...`` answers, in one
evaluation, which of them return anything (``count`` of an empty result is
empty). A batch that Prometheus refuses (one query with an error, or one that
yields a scalar) is asked again query by query, so each refusal is reported
against its own panel. Most of the time of a health run was these requests.
"""

from __future__ import annotations

import asyncio
from typing import Union

from hux.monitoring.dashboards import PanelQuery, dashboard_queries, grafana_intervals, load_boards, may_be_empty
from hux.monitoring.durations import duration_seconds
from hux.stack.health.context import HealthContext, NotAnswering
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult

BATCH_SIZE = 25             # queries per batched request
SINGLE_CONCURRENCY = 4      # queries asked one by one at a time (after a refused batch)
PANEL_LABEL = "hux_panel"

Outcome = Union[bool, NotAnswering]   # True: returns data; False: returns nothing


def batch_expr(exprs: list[str]) -> str:
    """One query answering which of ``exprs`` return data: series ``{hux_panel="<index>"}`` for those that do."""
    return " or ".join(f'label_replace(count({expr}), "{PANEL_LABEL}", "{i}", "", "")' for i, expr in enumerate(exprs))


async def query_outcomes(ctx: HealthContext, exprs: list[str]) -> list[Outcome]:
    """For each expression: whether it returns data, or why it could not be run."""
    gate = asyncio.Semaphore(SINGLE_CONCURRENCY)

    async def single(expr: str) -> Outcome:
        async with gate:
            try:
                return bool(await ctx.query(expr))
            except NotAnswering as exc:
                return exc

    async def batch(chunk: list[str]) -> list[Outcome]:
        try:
            series = await ctx.query(batch_expr(chunk))
        except NotAnswering as exc:
            if not exc.answered:
                return [exc] * len(chunk)
            return list(await asyncio.gather(*(single(expr) for expr in chunk)))
        found = {s.get("metric", {}).get(PANEL_LABEL) for s in series if isinstance(s, dict)}
        return [str(i) in found for i in range(len(chunk))]

    chunks = [exprs[i:i + BATCH_SIZE] for i in range(0, len(exprs), BATCH_SIZE)]
    answers = await asyncio.gather(*(batch(chunk) for chunk in chunks))
    return [outcome for answer in answers for outcome in answer]


def health_queries(ctx: HealthContext) -> list[PanelQuery]:
    boards = load_boards(ctx.settings, ctx.runtime.dashboards_dir(ctx.paths))
    interval = duration_seconds(ctx.settings.prometheus.scrape_interval)
    return dashboard_queries(boards, **grafana_intervals(interval))


async def check_dashboards(ctx: HealthContext) -> list[CheckResult]:
    try:
        queries = health_queries(ctx)
    except (OSError, ValueError) as exc:   # an unreadable or malformed rendered dashboard
        return [CheckResult("dashboards", WARN, f"not checked: cannot read the dashboards ({exc})",
                            "run `hux render --check`")]
    if not queries:
        return [CheckResult("dashboards", WARN, "no dashboard panel queries to check",
                            "the dashboards module built no panels: `hux render --check`")]
    # a panel of a part of the bot that runs only when configured is asked whether that part runs, too
    unique = sorted({q.expr for q in queries} | {q.present for q in queries if q.present})
    outcome = dict(zip(unique, await query_outcomes(ctx, unique), strict=True))
    empty: dict[str, list[str]] = {}
    errors: dict[str, list[tuple[str, NotAnswering]]] = {}
    totals: dict[str, int] = {}
    unused: dict[str, list[str]] = {}   # board -> the setting not configured, per query empty because of it
    for query in queries:
        totals[query.board] = totals.get(query.board, 0) + 1
        answer = outcome[query.expr]
        if isinstance(answer, NotAnswering):
            errors.setdefault(query.board, []).append((query.panel, answer))
        elif not answer and may_be_empty(query, outcome.get(query.present) is True):
            unused.setdefault(query.board, []).append(query.empty_unless)
        elif not answer:
            empty.setdefault(query.board, []).append(query.panel)
    results = []
    for board in sorted(totals):
        name = f"dashboard {board}"
        if board in errors:
            failed = errors[board]
            results.append(CheckResult(name, FAIL if any(exc.answered for _, exc in failed) else WARN,
                                       "queries failed: " + "; ".join(f"{panel}: {exc}" for panel, exc in failed[:2]),
                                       "fix the prometheus checks first; a refused query is a dashboard bug"))
        elif board in empty:
            panels = sorted(set(empty[board]))
            results.append(CheckResult(name, WARN, f"{len(empty[board])} of {totals[board]} queries return nothing: "
                                       + ", ".join(panels[:4]) + ("…" if len(panels) > 4 else ""),
                                       "right after a start, rates need two scrapes in their window: check again "
                                       "in a minute; otherwise the series do not exist yet (e.g. no errors so far) "
                                       "or a target is down: see the target and metric family checks"))
        elif board in unused:
            skipped = unused[board]
            results.append(CheckResult(name, PASS, f"{totals[board] - len(skipped)} of {totals[board]} queries return "
                                       f"data; {len(skipped)} are empty as they should be: "
                                       f"{', '.join(sorted(set(skipped)))} not configured"))
        else:
            results.append(CheckResult(name, PASS, f"all {totals[board]} queries return data"))
    return results
