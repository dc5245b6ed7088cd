"""The bot's metric catalogue: every series the bot exports, in one place.

This module is the contract between the bot and the monitoring stack. Alert
rules, recording rules and dashboards (``hux.monitoring``) refer to these names;
change a name here and the render tests tell you what else must follow.

Rules for this file:

* one prefix (``hux_``), base units (seconds, bytes), counters end in ``_total``;
* every label is bounded: API name, endpoint, stage, outcome, channel, source,
  reason, kind, operation and ``group`` (capped at ``group_label_limit``
  distinct values, the rest reported as ``other``). Never a token address, a
  message id or a user id;
* latency histograms carry a bucket edge at 10 s (the "High latency" alert);
* token scores are a histogram over 0..100, not a gauge per token.

There is no module-level registry: a process (or a test, or a benchmark) makes
its own ``BotMetrics`` with its own ``CollectorRegistry``.
"""

from __future__ import annotations

import platform
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from hux import __version__
from hux.bot.metric_names import (
    ADMIN_COMMANDS,
    ADMIN_OUTCOMES,
    ALERT_OUTCOMES,
    API_ERROR_OUTCOMES,
    API_LATENCY_BUCKETS,
    API_OUTCOMES,
    CALL_CHECK_OUTCOMES,
    CALL_HIT_MULTIPLE,
    CALL_HORIZON_LABELS,
    CALL_MULTIPLE_BUCKETS,
    CALL_RESULTS,
    CANDIDATE_KINDS,
    DECISION_LATENCY_BUCKETS,
    EXPECTED_FAMILIES,
    INBOX_REJECT_REASONS,
    INBOX_WRITE_TARGETS,
    OTHER,
    PREFIX,
    PROCESSING_BUCKETS,
    PRUNED_TABLES,
    REJECT_REASONS,
    SCORE_BUCKETS,
    SKIP_REASONS,
    STAGE_OUTCOMES,
    STAGES,
    THROTTLE_REASONS,
    TOKEN_OUTCOMES,
)

#: the series' classes, and the plain data they are built from (hux.bot.metric_names), read from here by the bot
__all__ = ["ADMIN_COMMANDS", "ADMIN_OUTCOMES", "ALERT_OUTCOMES", "API_ERROR_OUTCOMES", "API_LATENCY_BUCKETS", "API_OUTCOMES", "CALL_CHECK_OUTCOMES",
           "CALL_HIT_MULTIPLE", "CALL_HORIZON_LABELS", "CALL_MULTIPLE_BUCKETS", "CALL_RESULTS", "PRUNED_TABLES", "CANDIDATE_KINDS",
           "DECISION_LATENCY_BUCKETS", "EXPECTED_FAMILIES", "INBOX_REJECT_REASONS", "INBOX_WRITE_TARGETS", "OTHER",
           "PREFIX", "PROCESSING_BUCKETS", "REJECT_REASONS", "SCORE_BUCKETS", "SKIP_REASONS", "STAGE_OUTCOMES", "STAGES",
           "THROTTLE_REASONS", "TOKEN_OUTCOMES", "BotMetrics", "GroupLabeler", "InboxMetrics"]


@dataclass
class GroupLabeler:
    """Maps chat group names to a bounded label set.

    The first ``limit`` distinct groups keep their own name; any later group is
    reported as ``other``. Bounded memory, stable labels for the busy groups.
    """

    limit: int = 50
    _known: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, group: str) -> str:
        group = (group or "unknown")[:64]
        if group in self._known:
            return group
        with self._lock:
            if group in self._known:
                return group
            if len(self._known) < self.limit:
                self._known.add(group)
                return group
        return OTHER


class BotMetrics:
    """Creates and owns every bot metric on one registry.

    ``BotMetrics(registry)`` registers the catalogue plus the default process,
    platform and GC collectors. ``BotMetrics.noop()`` gives the same attributes
    on a throw-away registry, used by the instrumentation-overhead benchmark's
    baseline.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        group_label_limit: int = 50,
        mode: str = "demo",
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.group_label = GroupLabeler(group_label_limit)
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        # --- identity -----------------------------------------------------
        self.build_info = Info(
            f"{PREFIX}_build", "Bot version, Python version and run mode (demo or live).", registry=r
        )
        self.build_info.info(
            {"version": __version__, "python_version": platform.python_version(), "mode": mode}
        )
        self.demo_mode = Gauge(
            f"{PREFIX}_demo_mode", "1 when the bot runs on the sample feed and local doubles.", registry=r
        )
        self.demo_mode.set(1 if mode == "demo" else 0)
        self.start_time = Gauge(
            f"{PREFIX}_start_time_seconds", "Unix time the bot process started.", registry=r
        )
        self.start_time.set_to_current_time()

        # --- intake / group activity ---------------------------------------
        self.messages_received = Counter(
            f"{PREFIX}_messages_received_total",
            "Chat messages accepted into the intake queue, by source and group (capped).",
            ["source", "group"],
            registry=r,
        )
        self.messages_rejected = Counter(
            f"{PREFIX}_messages_rejected_total",
            "Chat messages refused at intake, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.queue_length = Gauge(
            f"{PREFIX}_queue_length", "Messages waiting in the intake queue.", registry=r
        )
        self.queue_capacity = Gauge(
            f"{PREFIX}_queue_capacity", "Maximum messages the intake queue holds before back-pressure.", registry=r
        )
        self.queue_blocked_seconds = Counter(
            f"{PREFIX}_queue_blocked_seconds_total",
            "Time sources spent waiting because the intake queue (several instances: the shared inbox) was full "
            "(back-pressure).",
            registry=r,
        )
        self.workers_busy = Gauge(
            f"{PREFIX}_workers_busy", "Pipeline workers currently handling a message.", registry=r
        )
        self.workers = Gauge(f"{PREFIX}_workers", "Pipeline workers configured.", registry=r)

        # --- pipeline -------------------------------------------------------
        self.stage_results = Counter(
            f"{PREFIX}_pipeline_stage_total",
            "Pipeline stage executions, by stage and outcome (success or failure).",
            ["stage", "outcome"],
            registry=r,
        )
        self.token_candidates = Counter(
            f"{PREFIX}_token_candidates_total",
            "Token candidates extracted from messages, by kind.",
            ["kind"],
            registry=r,
        )
        self.token_candidates_skipped = Counter(
            f"{PREFIX}_token_candidates_skipped_total",
            "Address-shaped strings in messages that were not looked up, by reason (over_message_cap).",
            ["reason"],
            registry=r,
        )
        self.chat_throttled = Counter(
            f"{PREFIX}_chat_throttled_total",
            "Messages of a chat over its fair share, by reason (over_rate: served after the other chats).",
            ["reason"],
            registry=r,
        )
        self.tokens_processed = Counter(
            f"{PREFIX}_tokens_processed_total",
            "Token decisions, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.token_processing_seconds = Histogram(
            f"{PREFIX}_token_processing_seconds",
            "Time to process one token: enrich, score, persist and notify.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.decision_latency_seconds = Histogram(
            f"{PREFIX}_message_decision_latency_seconds",
            "Time from a message being accepted to the decision on its last token.",
            buckets=DECISION_LATENCY_BUCKETS,
            registry=r,
        )
        self.token_score = Histogram(
            f"{PREFIX}_token_score",
            "Distribution of token scores (0-100).",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.last_processed = Gauge(
            f"{PREFIX}_last_message_processed_timestamp_seconds",
            "Unix time the pipeline last finished a message.",
            registry=r,
        )
        self.alert_threshold = Gauge(
            f"{PREFIX}_alert_score_threshold", "Configured score at or above which a token is alerted.", registry=r
        )

        # --- market-data APIs ------------------------------------------------
        self.api_requests = Counter(
            f"{PREFIX}_api_requests_total",
            "Requests to external APIs, by API, endpoint and outcome.",
            ["api", "endpoint", "outcome"],
            registry=r,
        )
        self.api_request_seconds = Histogram(
            f"{PREFIX}_api_request_duration_seconds",
            "Latency of external API requests (each attempt), by API and endpoint.",
            ["api", "endpoint"],
            buckets=API_LATENCY_BUCKETS,
            registry=r,
        )
        self.api_retries = Counter(
            f"{PREFIX}_api_retries_total",
            "Retried API attempts, by API and the outcome that caused the retry.",
            ["api", "reason"],
            registry=r,
        )
        self.api_rate_limit = Gauge(
            f"{PREFIX}_api_rate_limit_requests_per_second",
            "Configured request-rate limit per API (the provider's documented limit).",
            ["api"],
            registry=r,
        )
        self.api_circuit_state = Gauge(
            f"{PREFIX}_api_circuit_state",
            "Circuit breaker state per API: 0 closed, 1 half-open, 2 open.",
            ["api"],
            registry=r,
        )
        self.api_cache = Counter(
            f"{PREFIX}_api_cache_requests_total",
            "API response-cache lookups, by API and result (hit or miss).",
            ["api", "result"],
            registry=r,
        )
        # Telegram as a user account (hux.bot.sources.telegram_user); source is "telegram_user".
        self.telegram_flood_waits = Counter(
            f"{PREFIX}_telegram_flood_waits_total",
            "FloodWait answers from Telegram (the account must wait before its next request), by source.",
            ["source"],
            registry=r,
        )
        self.telegram_flood_wait_seconds = Counter(
            f"{PREFIX}_telegram_flood_wait_seconds_total",
            "Seconds spent waiting out Telegram FloodWaits, by source.",
            ["source"],
            registry=r,
        )
        self.source_reconnects = Counter(
            f"{PREFIX}_source_reconnects_total",
            "Times a source connected again after its connection was lost or failed, by source.",
            ["source"],
            registry=r,
        )
        self.catch_up_messages = Counter(
            f"{PREFIX}_source_catch_up_messages_total",
            "Messages read after a restart or reconnect (read), and missed ones beyond the catch-up bound (skipped).",
            ["source", "result"],
            registry=r,
        )
        self.telegram_user_chats = Gauge(
            f"{PREFIX}_telegram_user_chats",
            "Configured bot.telegram_user.chats by state: resolved (read) or unresolved (see the log).",
            ["state"],
            registry=r,
        )
        self.telegram_user_last_message = Gauge(
            f"{PREFIX}_telegram_user_last_message_timestamp_seconds",
            "Telegram date (unix time) of the newest message read from each bot.telegram_user chat, by group (capped).",
            ["group"],
            registry=r,
        )

        # --- outputs --------------------------------------------------------
        self.alerts_sent = Counter(
            f"{PREFIX}_alerts_sent_total",
            "Token alerts delivered to output channels, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )

        # --- admin commands (hux.bot.admin) ------------------------------------
        self.admin_commands = Counter(
            f"{PREFIX}_admin_commands_total",
            "Admin commands received in the alert chat, by command and outcome (done, invalid, refused, rate_limited).",
            ["command", "outcome"],
            registry=r,
        )

        # --- calls tracked (hux.bot.calls) -------------------------------------
        self.call_checks = Counter(
            f"{PREFIX}_call_checks_total",
            "Re-checks of alerted tokens, by horizon (1h, 6h, 24h) and outcome (checked, no_market, failed).",
            ["horizon", "outcome"],
            registry=r,
        )
        self.call_multiple = Histogram(
            f"{PREFIX}_call_multiple",
            "Price at a re-check over the price at the alert (an alerted token's multiple), by horizon.",
            ["horizon"],
            buckets=CALL_MULTIPLE_BUCKETS,
            registry=r,
        )
        self.call_rugs = Counter(
            f"{PREFIX}_call_rugs_total",
            "Alerted tokens whose liquidity dropped by 80 % or more after the alert (counted once per call).",
            registry=r,
        )
        self.calls_resolved = Counter(
            f"{PREFIX}_calls_resolved_total",
            "Alerts whose last re-check is done, by result (hit: reached 2x at any re-check; miss).",
            ["result"],
            registry=r,
        )
        self.call_follow_ups = Counter(
            f"{PREFIX}_call_follow_ups_total",
            "Rug follow-up messages posted to an alert's channels, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )

        # --- database ---------------------------------------------------------
        self.database_up = Gauge(
            f"{PREFIX}_database_up", "1 when the last database probe succeeded, else 0.", registry=r
        )
        self.database_errors = Counter(
            f"{PREFIX}_database_errors_total",
            "Database operations that failed, by operation.",
            ["operation"],
            registry=r,
        )
        self.database_probe_seconds = Histogram(
            f"{PREFIX}_database_probe_duration_seconds",
            "Duration of the periodic database probe.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.database_rows_pruned = Counter(
            f"{PREFIX}_database_rows_pruned_total",
            "Rows deleted by retention (bot.retention_days; the inbox by bot.inbox_retention_hours), by table.",
            ["table"],
            registry=r,
        )
        self.database_pending_writes = Gauge(
            f"{PREFIX}_database_pending_writes",
            "Accepted results held in memory while the database is unreachable.",
            registry=r,
        )

        # --- several instances (hux.bot.cluster) -------------------------------
        self.cluster_leader = Gauge(
            f"{PREFIX}_bot_leader", "1 while this instance leads (runs the sources: Telegram polling, replay).", registry=r
        )
        self.cluster_leader_changes = Counter(
            f"{PREFIX}_bot_leader_changes_total", "Times this instance took the leader lease.", registry=r
        )
        self.cluster_claims_held = Gauge(
            f"{PREFIX}_bot_claims_held", "Pending inbox messages this instance has claimed and not finished.", registry=r
        )
        # Registered by hux.bot.cluster only: one instance has no shared inbox (its queue is hux_queue_length).
        self.cluster_inbox_pending = Gauge(
            f"{PREFIX}_bot_inbox_pending",
            "Messages pending in the inbox the instances share (accepted, not decided, claimed or not); bounded by "
            "bot.queue_capacity.",
            registry=None,
        )
        self.claims_expired = Counter(
            f"{PREFIX}_bot_claims_expired_total",
            "Inbox messages this instance took over after another claim on them lapsed (its instance stopped).",
            registry=r,
        )
        self.cluster_instances_live = Gauge(
            f"{PREFIX}_bot_instances_live",
            "Instances on this database whose heartbeat is within the claim time (1 on SQLite).",
            registry=r,
        )
        self.cluster_instances_configured = Gauge(
            f"{PREFIX}_bot_instances_configured", "Instances the operator configured (bot.instances).", registry=r
        )
        self.alerts_unconfirmed = Counter(
            f"{PREFIX}_alerts_unconfirmed_total",
            "Alerts an instance started sending and stopped before recording: possibly sent twice (or not at all).",
            registry=r,
        )
        self.api_budget_wait_seconds = Counter(
            f"{PREFIX}_api_budget_wait_seconds_total",
            "Time API calls waited for the request budget shared by every instance, by API.",
            ["api"],
            registry=r,
        )

    @classmethod
    def noop(cls, **kwargs: Any) -> "BotMetrics":
        """Same attributes, private registry, no process collectors (benchmark baseline)."""
        return cls(CollectorRegistry(), process_metrics=False, **kwargs)


class InboxMetrics:
    """The alert inbox's own series (``hux.monitoring.inbox``), on its own registry.

    ``receiver`` comes from the webhook body: capped like ``group`` (beyond
    ``receiver_label_limit`` names, ``other``).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, receiver_label_limit: int = 10,
                 process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.receiver_label = GroupLabeler(receiver_label_limit)
        if process_metrics:
            ProcessCollector(registry=r)
        self.notifications = Counter(
            f"{PREFIX}_inbox_notifications_total",
            "Webhook notifications the alert inbox received and kept, by status (firing/resolved) and receiver.",
            ["status", "receiver"],
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_inbox_alerts_total",
            "Alerts inside the received notifications, by status (firing/resolved).",
            ["status"],
            registry=r,
        )
        self.rejected = Counter(
            f"{PREFIX}_inbox_payloads_rejected_total",
            "Webhook bodies the alert inbox refused with HTTP 400, by reason.",
            ["reason"],
            registry=r,
        )
        self.write_errors = Counter(
            f"{PREFIX}_inbox_write_errors_total",
            "Notifications the alert inbox could not write, by target (log: logs/alerts.log, index: its SQLite).",
            ["target"],
            registry=r,
        )
        self.last_heartbeat = Gauge(
            f"{PREFIX}_inbox_last_heartbeat_timestamp_seconds",
            "Unix time the last Watchdog heartbeat reached the alert inbox (0: none since it started).",
            registry=r,
        )
        for reason in INBOX_REJECT_REASONS:
            self.rejected.labels(reason)
        for target in INBOX_WRITE_TARGETS:
            self.write_errors.labels(target)
        for status in ("firing", "resolved"):
            self.alerts.labels(status)
