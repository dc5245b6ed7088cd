"""Token Monitoring: processing rate and duration, score distribution, success rates, group activity,
and the Telegram user account's source (chats read, FloodWaits, reconnects; empty unless configured).

Series that only appear once something happens (a rejected message, a cache
hit) are zero-filled with ``or ... * 0``, so "nothing happened" reads as 0
rather than "No data".
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import prometheus as prom_models
from grafana_foundation_sdk.models.dashboard import Panel

from hux.monitoring import grafana
from hux.monitoring.dashboards.common import BLUE, GREEN, RED, YELLOW, Context, Feature, to_json

UID = "hux-token-monitoring"
RATE = "$__rate_interval"
SEL = 'job=~"$job", instance=~"$instance"'
#: the user-account source: its gauge of chats exists exactly while it runs (the leader's)
TELEGRAM_USER = Feature("bot.telegram_user", "hux_telegram_user_chats")


def _quantiles(ctx: Context, metric: str) -> list[prom.Dataquery]:
    return [
        ctx.query(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{SEL}}}[{RATE}])))", f"p{label}",
                  ref=ref)
        for q, label, ref in ((0.5, "50", "A"), (0.95, "95", "B"), (0.99, "99", "C"))
    ]


def build(ctx: Context) -> dict[str, Any]:
    a = ctx.settings.alerts
    n = ctx.names
    q = ctx.query
    panel: Builder[Panel]  # the loops below mix panel kinds
    success_steps = [(0, RED), (1 - a.error_rate_critical, YELLOW), (1 - a.error_rate_warning, GREEN)]

    board = (
        ctx.dashboard(UID, "Token Monitoring",
                      "What the bot does with the tokens it finds: how fast, how they score, how often each step "
                      "succeeds, and which groups they come from.")
        .with_variable(ctx.query_variable("job", "Job", "label_values(hux_build_info, job)"))
        .with_variable(ctx.query_variable("instance", "Instance", 'label_values(hux_build_info{job=~"$job"}, instance)'))
    )

    # --- processing ---------------------------------------------------------------------------
    board = board.with_row(ctx.row("Processing"))
    for panel in (
        ctx.stat("Messages / s", q(f"sum(rate(hux_messages_received_total{{{SEL}}}[{RATE}]))"),
                 unit="suffix: msg/s", width=6),
        ctx.stat("Token decisions / s", q(f"sum(rate(hux_tokens_processed_total{{{SEL}}}[{RATE}]))"),
                 unit="suffix: /s", width=6),
        ctx.stat("Tokens alerted (range)", q(
            f'sum(increase(hux_tokens_processed_total{{{SEL}, outcome="alerted"}}[$__range]))'),
            unit="none", decimals=0, width=6),
        ctx.stat("Queue", q(f"sum(hux_queue_length{{{SEL}}})"), unit="none", width=6,
                 description="Messages waiting for a worker."),
        ctx.timeseries("Token decisions by outcome", [q(
            f"sum by (outcome) (rate(hux_tokens_processed_total{{{SEL}}}[{RATE}]))", "{{outcome}}")],
            unit="ops", stacked=True, minimum=0, width=12),
        ctx.timeseries("Token candidates by kind", [q(
            f"sum by (kind) (rate(hux_token_candidates_total{{{SEL}}}[{RATE}]))", "{{kind}}")],
            unit="ops", stacked=True, minimum=0, width=12),
        ctx.timeseries("Token processing time", _quantiles(ctx, "hux_token_processing_seconds"), unit="s",
                       minimum=0, width=12, description="Enrich, score, persist and notify, per token."),
        ctx.timeseries("Message to decision latency", [
            q(f'{n.decision_latency}{{{SEL}}}', f"{{{{instance}}}} p{a.latency_quantile * 100:g}"),
            q(f"histogram_quantile(0.5, sum by (le) (rate(hux_message_decision_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
              "p50", ref="B"),
        ], unit="s", minimum=0, width=12, thresholds=[(0, GREEN), (a.latency_seconds, RED)],
            description="Dashed: the BotHighLatency line."),
    ):
        board = board.with_panel(panel)

    # --- instances (several bots on one PostgreSQL; one on SQLite) ------------------------------------
    board = board.with_row(ctx.row("Instances"))
    for panel in (
        ctx.timeseries("Token decisions / s by instance", [q(
            f"sum by (instance) (rate(hux_tokens_processed_total{{{SEL}}}[{RATE}]))", "{{instance}}")],
            unit="ops", stacked=True, minimum=0, width=8,
            description="How the instances share the work (claimed from the database inbox)."),
        ctx.timeseries("Leader", [q(f"max by (instance) (hux_bot_leader{{{SEL}}})", "{{instance}}")],
                       unit="none", minimum=0, maximum=1, width=8,
                       description="1: the instance that polls Telegram and replays the feed (the leader lease). "
                                   "Exactly one at a time; BotNoLeader pages when none leads for a minute."),
        ctx.timeseries("Claims held and taken over", [
            q(f"sum by (instance) (hux_bot_claims_held{{{SEL}}})", "{{instance}} held"),
            q(f"sum by (instance) (increase(hux_bot_claims_expired_total{{{SEL}}}[{RATE}]))", "{{instance}} taken over",
              ref="B"),
        ], unit="none", minimum=0, width=8,
            description="Inbox messages each instance has claimed and not finished; taken over: claims of a "
                        "stopped instance that lapsed (BotClaimsExpiring)."),
    ):
        board = board.with_panel(panel)

    # --- scores -----------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Score distribution"))
    score_heatmap = (
        heatmap.Panel().id(ctx.next_id()).title("Token scores over time").datasource(ctx.datasource)
        .span(12).height(9).unit("none")
        .with_target(q(f"sum by (le) (increase(hux_token_score_bucket{{{SEL}}}[{RATE}]))", "{{le}}",
                       fmt=prom_models.PromQueryFormat.HEATMAP))
        .calculate(False)
        .description("Tokens per score bucket (0-100) in each interval.")
    )
    for panel in (
        score_heatmap,
        ctx.bargauge("Score distribution (selected range)", q(
            f"sum by (le) (increase(hux_token_score_bucket{{{SEL}}}[$__range]))", "{{le}}", instant=True,
            fmt=prom_models.PromQueryFormat.HEATMAP), unit="none", width=6, height=9,
            thresholds=[(0, BLUE)], description="Tokens per score bucket; the upper edge of each bucket is shown."),
        ctx.timeseries("Average score and alert threshold", [
            q(f"sum(rate(hux_token_score_sum{{{SEL}}}[{RATE}])) / sum(rate(hux_token_score_count{{{SEL}}}[{RATE}]))",
              "average score"),
            q(f"max(hux_alert_score_threshold{{{SEL}}})", "alert threshold", ref="B"),
        ], unit="none", minimum=0, maximum=100, width=6, height=9),
    ):
        board = board.with_panel(panel)

    # --- success rates ---------------------------------------------------------------------------
    board = board.with_row(ctx.row("Success rates"))
    for panel in (
        ctx.timeseries("Success rate per pipeline stage", [q(
            f"1 - max by (stage) ({n.stage_failure_ratio()}{{{SEL}}})", "{{stage}}")],
            unit="percentunit", minimum=0, maximum=1, width=12, thresholds=success_steps,
            description=f"Over {a.rate_window}; dashed lines: the error-rate warning and critical levels."),
        ctx.timeseries("Success rate per API", [q(
            f"1 - max by (api) ({n.api_error_ratio()}{{{SEL}}})", "{{api}}")],
            unit="percentunit", minimum=0, maximum=1, width=12, thresholds=success_steps),
        ctx.timeseries("Token alerts delivered by channel", [q(
            f"sum by (channel, outcome) (rate(hux_alerts_sent_total{{{SEL}}}[{RATE}]))", "{{channel}} {{outcome}}")],
            unit="ops", minimum=0, width=12),
        ctx.timeseries("API cache hit ratio", [q(
            f'(sum by (api) (rate(hux_api_cache_requests_total{{{SEL}, result="hit"}}[{RATE}])) '
            f"or sum by (api) (rate(hux_api_cache_requests_total{{{SEL}}}[{RATE}])) * 0) "
            f"/ sum by (api) (rate(hux_api_cache_requests_total{{{SEL}}}[{RATE}]))", "{{api}}")],
            unit="percentunit", minimum=0, maximum=1, width=12),
    ):
        board = board.with_panel(panel)

    # --- calls tracked ---------------------------------------------------------------------------
    board = board.with_row(ctx.row("Calls tracked"))
    resolved = f"sum(increase(hux_calls_resolved_total{{{SEL}}}[$__range]))"
    for panel in (
        ctx.stat("Call hit rate (calls resolved in range)", q(
            f'(sum(increase(hux_calls_resolved_total{{{SEL}, result="hit"}}[$__range])) or {resolved} * 0) / {resolved}'),
            unit="percentunit", width=6,
            thresholds=[(0, RED), (a.call_hit_rate_floor, GREEN)],
            description="Share of alerted tokens that reached 2x at any re-check within 24 h of their alert (a call is "
                        f"resolved at its +24 h re-check). CallHitRateLow: under {a.call_hit_rate_floor:.0%} over "
                        f"{a.call_hit_rate_window}."),
        ctx.stat("Rugged calls (range)", q(f"sum(increase(hux_call_rugs_total{{{SEL}}}[$__range]))"),
                 unit="none", decimals=0, width=6,
                 description="Alerted tokens whose liquidity then dropped by 80 % or more; each one got a follow-up."),
        ctx.bargauge("Call multiples at +24 h (selected range)", q(
            f'sum by (le) (increase(hux_call_multiple_bucket{{{SEL}, horizon="24h"}}[$__range]))', "{{le}}",
            instant=True, fmt=prom_models.PromQueryFormat.HEATMAP), unit="none", width=12,
            thresholds=[(0, BLUE)],
            description="Outcome distribution: calls per multiple bucket (price at +24 h / price at the alert); "
                        "the upper edge of each bucket is shown."),
        ctx.timeseries("Median call multiple by horizon", [q(
            f"histogram_quantile(0.5, sum by (horizon, le) (rate(hux_call_multiple_bucket{{{SEL}}}[{RATE}])))",
            "+{{horizon}}")], unit="none", minimum=0, width=12,
            description="1: the price of the alert; 2: the hit line."),
        ctx.timeseries("Call re-checks by horizon and outcome", [q(
            f"sum by (horizon, outcome) (rate(hux_call_checks_total{{{SEL}}}[{RATE}]))", "+{{horizon}} {{outcome}}")],
            unit="ops", minimum=0, width=12,
            description="failed: the lookup failed and the check is retried next round (it spends the shared "
                        "DexScreener budget)."),
    ):
        board = board.with_panel(panel)

    # --- group activity --------------------------------------------------------------------------
    board = board.with_row(ctx.row("Group activity"))
    for panel in (
        ctx.timeseries("Messages by group (top 10)", [q(
            f"topk(10, sum by (group) (rate(hux_messages_received_total{{{SEL}}}[{RATE}])))", "{{group}}")],
            unit="suffix: msg/s", minimum=0, width=12,
            description="Groups beyond the label cap are counted as \"other\"."),
        ctx.bargauge("Messages by group (selected range)", q(
            f"topk(10, sum by (group) (increase(hux_messages_received_total{{{SEL}}}[$__range])))", "{{group}}",
            instant=True), unit="none", width=6, thresholds=[(0, BLUE)]),
        ctx.timeseries("Messages rejected by reason", [q(
            f"sum by (reason) (rate(hux_messages_rejected_total{{{SEL}}}[{RATE}])) "
            f'or label_replace(sum(rate(hux_messages_received_total{{{SEL}}}[{RATE}])) * 0, "reason", "none", "", "")',
            "{{reason}}")], unit="suffix: msg/s", minimum=0, width=6),
    ):
        board = board.with_panel(panel)
    # --- the Telegram user account (bot.telegram_user; not in the demo) ---------------------------------
    board = board.with_row(ctx.row("Telegram user account"))
    user = f'{SEL}, source="telegram_user"'
    for panel in (
        ctx.stat("Chats read", q(f'sum(hux_telegram_user_chats{{{SEL}, state="resolved"}})'), unit="none",
                 decimals=0, height=8, thresholds=[(0, RED), (1, GREEN)],
                 description="Chats of bot.telegram_user.chats the account resolved and reads."),
        ctx.stat("Chats not readable", q(f'sum(hux_telegram_user_chats{{{SEL}, state="unresolved"}})'), unit="none",
                 decimals=0, height=8, thresholds=[(0, GREEN), (1, YELLOW)],
                 description="Listed chats that could not be resolved: the bot's log names each one and what to do."),
        ctx.stat("FloodWaits (range)", q(f"sum(increase(hux_telegram_flood_waits_total{{{user}}}[$__range]))"),
                 unit="none", decimals=0, height=8, thresholds=[(0, GREEN), (1, YELLOW)],
                 description="Times Telegram told the account to wait before its next request."),
        ctx.stat("FloodWait seconds (range)", q(
            f"sum(increase(hux_telegram_flood_wait_seconds_total{{{user}}}[$__range]))"), unit="s", height=8,
            description="Time spent waiting FloodWaits out: the account reads nothing meanwhile."),
        ctx.bargauge("Last message age by chat", q(
            f"time() - max by (group) (hux_telegram_user_last_message_timestamp_seconds{{{SEL}}})", "{{group}}",
            instant=True), unit="s", width=8, thresholds=[(0, BLUE)],
            description="Since each chat's newest message read (its Telegram date): a quiet chat, or a source "
                        "that stopped reading. A chat appears after its first message."),
        ctx.timeseries("Messages by user-account chat", [q(
            f"sum by (group) (rate(hux_messages_received_total{{{user}}}[{RATE}]))", "{{group}}")],
            unit="suffix: msg/s", minimum=0, width=8),
        ctx.timeseries("Share of time in FloodWait", [q(
            f"sum(rate(hux_telegram_flood_wait_seconds_total{{{user}}}[{RATE}]))", "waiting")],
            unit="percentunit", minimum=0, maximum=1, width=8,
            thresholds=[(0, GREEN), (a.telegram_flood_wait_ratio, RED)],
            description="Seconds waited per second: 1 means the account waited all along. Dashed: the "
                        f"TelegramUserFloodWait line (over {a.telegram_flood_wait_window})."),
        ctx.timeseries("Reconnects and catch-up", [
            q(f"sum(increase(hux_source_reconnects_total{{{user}}}[{RATE}]))", "reconnects"),
            q(f"sum by (result) (increase(hux_source_catch_up_messages_total{{{user}}}[{RATE}]))",
              "catch-up {{result}}", ref="B"),
        ], unit="none", minimum=0, width=8,
            description="Connections made again, and the messages read after them (read) or missed beyond "
                        "bot.telegram_user.catch_up_messages (skipped)."),
    ):
        board = board.with_panel(ctx.of_feature(TELEGRAM_USER, panel))
    built = ctx.mark_features(to_json(board))
    if ctx.settings.stack.mode == "docker":
        _insert_before_row(built, "Group activity", _latest_calls(ctx.next_id()))
    return built


#: Token Monitoring's "latest calls" table (docker path: the bot database is PostgreSQL, read as Grafana's
#: read-only role): each alerted token's re-checks, newest call first.
LATEST_CALLS_SQL = (
    "SELECT to_timestamp(alerted_at) AS \"alerted\", symbol, chain, '+' || horizon AS \"re-check\", status, "
    "round(multiple::numeric, 2) AS \"multiple\", "
    "CASE rugged WHEN 1 THEN 'yes' WHEN 0 THEN 'no' END AS \"rugged\", address "
    "FROM call_checks ORDER BY alerted_at DESC, due_at LIMIT 60"
)


def _latest_calls(panel_id: int) -> dict[str, Any]:
    datasource = {"type": grafana.BOT_DB_DATASOURCE_TYPE, "uid": grafana.BOT_DB_DATASOURCE_UID}
    return {
        "id": panel_id, "type": "table", "title": "Latest calls", "datasource": datasource,
        "description": "The newest alerts' re-checks at +1h, +6h and +24h, from the bot database (docker path): "
                       "multiple = price then / price at the alert; rugged = liquidity down 80 % or more.",
        "gridPos": {"h": 9, "w": 24, "x": 0, "y": 0},
        "targets": [{"refId": "A", "datasource": datasource, "format": "table", "rawQuery": True,
                     "editorMode": "code", "rawSql": LATEST_CALLS_SQL}],
    }


def _insert_before_row(board: dict[str, Any], row_title: str, panel: dict[str, Any]) -> None:
    """Put ``panel`` (full width) just above the row titled ``row_title``, moving what follows down."""
    panels = board["panels"]
    at = next(i for i, p in enumerate(panels) if p.get("type") == "row" and p.get("title") == row_title)
    y = panels[at]["gridPos"]["y"]
    for later in panels[at:]:
        later["gridPos"]["y"] += panel["gridPos"]["h"]
    panel["gridPos"]["y"] = y
    panels.insert(at, panel)
