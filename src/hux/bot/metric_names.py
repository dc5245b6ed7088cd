"""The metric catalogue's plain data: the prefix, the label vocabularies, the bucket edges and the
families a healthy bot exports.

``hux.bot.metrics`` builds the series from these (and re-exports them); they live
apart so that readers of the catalogue that never export a series (the stack's
rules and settings, ``hux health``) do not import prometheus_client, a fifth of
the health command's start-up (docs/benchmarks.md, "hux health").
"""

from __future__ import annotations

PREFIX = "hux"

# Bucket edges. Each latency set includes 10 s, the spec's "High latency" line.
DECISION_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
API_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCORE_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
# Price now / price at the alert. 2.0 is the "hit" line of the call hit rate; 0.2 is what is left after a rug.
CALL_MULTIPLE_BUCKETS = (0.1, 0.2, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 50.0)

# Closed vocabularies for labels. Code that records a value outside these sets
# is a bug; ``BotMetrics`` maps unknown values to "other" rather than letting a
# label grow without bound.
STAGES = ("intake", "extract", "dedupe", "enrich", "score", "persist", "notify")
STAGE_OUTCOMES = ("success", "failure")
API_OUTCOMES = (
    "success",          # 2xx with a usable body
    "client_error",     # 4xx other than 429
    "rate_limited",     # 429
    "server_error",     # 5xx
    "timeout",          # connect/read timeout
    "connection_error", # refused, reset, DNS
    "invalid_response", # not JSON, missing fields, wrong types
    "circuit_open",     # not sent: breaker open
)
API_ERROR_OUTCOMES = ("client_error", "server_error", "timeout", "connection_error", "invalid_response")
TOKEN_OUTCOMES = (
    "alerted",           # score cleared the threshold and an alert was sent
    "below_threshold",   # scored, no alert
    "no_market_data",    # the market APIs know no pair for it
    "cooldown",          # seen recently, skipped
    "failed",            # enrichment/persist failed after retries (kept for retry)
    "muted",             # scored at or above the threshold, not alerted: an admin muted it (/mute)
)
CANDIDATE_KINDS = ("solana", "evm", "pumpfun_link", "dexscreener_link")
REJECT_REASONS = (
    "empty",             # no text
    "too_large",         # over max_message_bytes
    "decode_error",      # not UTF-8 / not storable unicode
    "malformed",         # not the documented shape (wrong type, missing field)
    "out_of_range",      # a number outside what the field can hold (date, ids)
    "private_chat",      # a private chat not listed in bot.telegram.allowed_chats
    "chat_not_allowed",  # a chat not listed in a non-empty bot.telegram.allowed_chats
    "unstorable",        # the database refused the row, or a value no column can hold
    "chat_backlog",      # the chat already had bot.fairness.chat_queue_capacity messages waiting
)
# Address-shaped strings in a message beyond bot.max_addresses_per_message: not examined, not looked up.
SKIP_REASONS = ("over_message_cap",)
# A message from a chat sending faster than bot.fairness.chat_rate_per_minute: served after the others.
THROTTLE_REASONS = (
    "over_rate",         # a message over bot.fairness.chat_rate_per_minute: served after the other chats
)
ALERT_OUTCOMES = ("success", "failure")
# Admin commands from Telegram (``hux.bot.admin``): the command (others: "other") and what became of it.
ADMIN_COMMANDS = ("status", "top", "why", "mute", "threshold", "sources")
ADMIN_OUTCOMES = (
    "done",              # obeyed and answered
    "invalid",           # an admin's command the bot could not read: answered with the usage
    "refused",           # not from an admin (or not in the alert chat): ignored, no reply
    "rate_limited",      # over bot.telegram.admin_commands_per_minute for that admin: ignored
)
# Re-checks of an alerted token (``hux.bot.calls``): the horizons are fixed names, shortened in demo mode.
CALL_HORIZON_LABELS = ("1h", "6h", "24h")
CALL_CHECK_OUTCOMES = (
    "checked",           # price and liquidity read and recorded
    "no_market",         # DexScreener knows no pair any more: recorded as liquidity gone
    "failed",            # the lookup failed; the check stays due and is retried
)
# A call is resolved at its last horizon: a hit when it reached CALL_HIT_MULTIPLE at any check.
CALL_RESULTS = ("hit", "miss")
CALL_HIT_MULTIPLE = 2.0
# Tables retention prunes by age (bot.retention_days), plus the processed inbox rows.
PRUNED_TABLES = ("inbox", "mentions", "decisions", "alerts", "call_checks", "tokens")
OTHER = "other"


#: Families a healthy demo bot must export with non-zero samples. The stack's
#: health check ("an expected metric family missing") and the tests use this.
EXPECTED_FAMILIES = (
    "hux_build_info",
    "hux_messages_received_total",
    "hux_queue_length",
    "hux_queue_capacity",
    "hux_pipeline_stage_total",
    "hux_token_candidates_total",
    "hux_tokens_processed_total",
    "hux_token_processing_seconds",
    "hux_message_decision_latency_seconds",
    "hux_token_score",
    "hux_api_requests_total",
    "hux_api_request_duration_seconds",
    "hux_api_rate_limit_requests_per_second",
    "hux_alerts_sent_total",
    "hux_database_up",
    "hux_database_errors_total",
    "process_resident_memory_bytes",
)


#: Why the alert inbox refused a webhook body: ``hux_inbox_payloads_rejected_total{reason}``.
INBOX_REJECT_REASONS = ("too_large", "not_json", "bad_schema")
#: Where the alert inbox failed to keep a notification: ``hux_inbox_write_errors_total{target}``.
INBOX_WRITE_TARGETS = ("log", "index")


class CountedError(Exception):
    """A refusal or failure a metric counts: ``reason`` is the bounded label value it is counted under (one of
    the vocabularies above: a chat message's or a webhook body's reject reason, an inbox write target), the
    message says what happened and what to do. The bot's and the alert inbox's refusals derive from it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
