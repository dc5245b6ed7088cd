"""The workers: queue -> extract -> dedupe/cooldown -> enrich -> score -> persist -> notify.

Each worker takes one accepted message at a time (the queue serves chats in
turn, see ``intake``) and decides every token in it: at most
``max_addresses_per_message`` of them (the rest are counted in
``hux_token_candidates_skipped_total{reason="over_message_cap"}``), looked up
at most ``lookups_per_message`` at a time, each carrying its chat
(``RequestContext``) to the API clients, whose rate limiters serve chats in
turn: one chat's lookups never queue ahead of every other chat's. Every stage counts success/failure in ``hux_pipeline_stage_total``; every
token ends in exactly one ``hux_tokens_processed_total`` outcome; each message
with tokens observes its accept-to-decision latency once. Results go to the
writer (``Persistence.submit``), which holds them while the database is away.
A failure in one message never stops a worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from hux.bot.admin import Mutes
from hux.bot.clients.goplus import TokenSecurity
from hux.bot.clients.http import RequestContext
from hux.bot.dedupe import Gate, MentionTracker
from hux.bot.enrich import Enricher, MarketView
from hux.bot.extract import Candidate, extract_capped
from hux.bot.intake import IntakeQueue
from hux.bot.messages import ChatMessage, chat_of
from hux.bot.metrics import CANDIDATE_KINDS, SKIP_REASONS, STAGE_OUTCOMES, STAGES, TOKEN_OUTCOMES, BotMetrics
from hux.bot.outputs import OutputChannel, TokenAlert, channel_label, deliver
from hux.bot.persistence import Persistence
from hux.bot.scoring import ScoreInput, score
from hux.bot.store import MessageResult, TokenResult

log = logging.getLogger("hux.bot.pipeline")

#: Shortest interval between two "addresses over the cap" log lines.
OVER_CAP_LOG_SECONDS = 10.0


@dataclass(frozen=True)
class GroupRoute:
    """One source group's policy (``[[bot.groups]]``): its threshold, a mute, the outputs its alerts go to."""

    alert_threshold: float | None = None   # None: the bot's threshold
    muted: bool = False
    channels: tuple[OutputChannel, ...] = ()  # empty: the default outputs


@dataclass(frozen=True)
class PipelineSettings:
    workers: int = 4
    alert_threshold: float = 70.0
    max_addresses_per_message: int = 20  # candidates taken from one message; the rest are counted, not looked up
    lookups_per_message: int = 2         # concurrent lookups for one message's candidates


class Pipeline:
    def __init__(
        self,
        settings: PipelineSettings,
        metrics: BotMetrics,
        queue: IntakeQueue,
        persistence: Persistence,
        enricher: Enricher,
        channels: Sequence[OutputChannel],
        gate: Gate,
        mentions: MentionTracker,
        mutes: Mutes | None = None,
        routes: Mapping[str, GroupRoute] | None = None,
    ) -> None:
        self.settings = settings
        self.mutes = mutes or Mutes()
        self.routes = dict(routes or {})  # source group -> its policy
        self.metrics = metrics
        self.queue = queue
        self.persistence = persistence
        self.enricher = enricher
        self.channels = tuple(channels)
        self.gate = gate
        self.mentions = mentions
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._over_cap_logged = -OVER_CAP_LOG_SECONDS
        self._over_cap_messages = self._over_cap_skipped = 0
        metrics.workers.set(settings.workers)
        metrics.workers_busy.set_function(lambda: self._busy)
        metrics.alert_threshold.set(settings.alert_threshold)
        # Zero every closed-vocabulary series so ratios and rate() exist from the first scrape.
        for stage in STAGES:
            for outcome in STAGE_OUTCOMES:
                metrics.stage_results.labels(stage=stage, outcome=outcome)
        for outcome in TOKEN_OUTCOMES:
            metrics.tokens_processed.labels(outcome=outcome)
        for kind in CANDIDATE_KINDS:
            metrics.token_candidates.labels(kind=kind)
        for reason in SKIP_REASONS:
            metrics.token_candidates_skipped.labels(reason=reason)
        routed = {c.name: c for route in self.routes.values() for c in route.channels}
        for channel in {**routed, **{c.name: c for c in self.channels}}.values():
            for outcome in ("success", "failure"):
                metrics.alerts_sent.labels(channel=channel_label(channel.name), outcome=outcome)

    def set_threshold(self, value: float) -> None:
        """A new alert threshold from now on (``/threshold``); ``hux_alert_score_threshold`` shows it."""
        self.settings = replace(self.settings, alert_threshold=value)
        self.metrics.alert_threshold.set(value)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._workers = [asyncio.create_task(self._worker(i), name=f"hux-worker-{i}") for i in range(self.settings.workers)]

    async def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty and workers idle (or ``timeout``); True if drained."""
        try:
            async with asyncio.timeout(timeout):
                await self.queue.join()
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _worker(self, index: int) -> None:
        while True:
            message = await self.queue.get()
            self._busy += 1
            try:
                await self.process(message)
            except asyncio.CancelledError:
                raise
            except Exception:  # log and keep the worker alive
                log.exception("worker %d: unexpected error on a message; its inbox row stays pending for the next start", index)
            finally:
                self._busy -= 1
                self.queue.task_done(message)

    # -- one message ---------------------------------------------------------------------
    async def process(self, message: ChatMessage) -> MessageResult:
        m = self.metrics
        try:
            candidates, over_cap = extract_capped(message.text, self.settings.max_addresses_per_message)
        except Exception:  # extraction must never kill a worker
            m.stage_results.labels(stage="extract", outcome="failure").inc()
            log.exception("extraction failed on message %s", message.key)
            candidates = []
        else:
            m.stage_results.labels(stage="extract", outcome="success").inc()
            if over_cap:
                m.token_candidates_skipped.labels(reason="over_message_cap").inc(over_cap)
                self._note_over_cap(message, over_cap)
        results: list[TokenResult] = []
        if candidates:
            slots = asyncio.Semaphore(max(1, self.settings.lookups_per_message))

            async def one(candidate: Candidate) -> TokenResult:
                async with slots:
                    return await self._token(message, candidate)

            decided = await asyncio.gather(*(one(c) for c in candidates))
            results.extend(decided)
            m.decision_latency_seconds.observe(time.monotonic() - message.accepted_at)
        result = MessageResult(message, results, time.time())
        await self.persistence.submit(result)
        m.last_processed.set_to_current_time()
        return result

    def _note_over_cap(self, message: ChatMessage, skipped: int) -> None:
        """Log capped messages at most once per ``OVER_CAP_LOG_SECONDS`` (a flood must not flood the log too)."""
        self._over_cap_messages += 1
        self._over_cap_skipped += skipped
        now = time.monotonic()
        if now - self._over_cap_logged < OVER_CAP_LOG_SECONDS:
            return
        log.warning(
            "%d message(s) named more than %d addresses (latest: %s); %d addresses not looked up. "
            "Counted in hux_token_candidates_skipped_total; raise bot.max_addresses_per_message if these are genuine",
            self._over_cap_messages, self.settings.max_addresses_per_message, message.key, self._over_cap_skipped,
            extra={"reason": "over_message_cap", "skipped": self._over_cap_skipped},
        )
        self._over_cap_logged, self._over_cap_messages, self._over_cap_skipped = now, 0, 0

    async def _token(self, message: ChatMessage, candidate: Candidate) -> TokenResult:
        m = self.metrics
        m.token_candidates.labels(kind=candidate.kind).inc()
        context = RequestContext(chat=chat_of(message))
        try:  # a link naming a pair stands for the pair's token from here on
            candidate = await self.enricher.resolve(candidate, context=context)
        except Exception as exc:  # noqa: BLE001 - ApiError and friends: failed, the next mention tries again
            m.stage_results.labels(stage="enrich", outcome="failure").inc()
            log.warning("could not tell which token a dexscreener link names: %s", exc)
            return self._decide(candidate, "failed")
        groups = self.mentions.mention(candidate.key, message.group)
        claimed = await self.gate.begin(candidate.key)
        m.stage_results.labels(stage="dedupe", outcome="success").inc()
        if not claimed:
            return self._decide(candidate, "cooldown")
        started = time.perf_counter()
        try:
            result = await self._evaluate(message, candidate, groups, context=context)
        except BaseException:
            await asyncio.shield(self.gate.end(candidate.key, decided=False))
            raise
        # "failed": no cooldown, the next mention tries again
        await self.gate.end(candidate.key, decided=result.outcome != "failed", record=(message.key, result))
        m.token_processing_seconds.observe(time.perf_counter() - started)
        return result

    def _decide(self, candidate: Candidate, outcome: str, **fields: Any) -> TokenResult:
        self.metrics.tokens_processed.labels(outcome=outcome).inc()
        return TokenResult(candidate.key, candidate.address, fields.pop("chain", candidate.chain), candidate.kind, outcome, time.time(), **fields)

    async def _evaluate(self, message: ChatMessage, candidate: Candidate, groups: int, *,
                        context: RequestContext) -> TokenResult:
        m = self.metrics
        try:
            view: MarketView = await self.enricher.lookup(candidate, context=context)
        except Exception as exc:  # noqa: BLE001 - ApiError and friends: decided as failed, retried on next mention
            m.stage_results.labels(stage="enrich", outcome="failure").inc()
            log.warning("market data unavailable for a %s token: %s", candidate.kind, exc)
            return self._decide(candidate, "failed")
        m.stage_results.labels(stage="enrich", outcome="success" if not view.risk_failed else "failure").inc()
        pair = view.pair
        if pair is None:
            return self._decide(candidate, "no_market_data")

        age = None
        if pair.pair_created_at is not None:
            age = max(0.0, time.time() - pair.pair_created_at.timestamp())
        try:
            result = score(
                ScoreInput(
                    liquidity_usd=pair.liquidity_usd,
                    volume_h24=pair.volume_h24,
                    price_change_h1=pair.price_change_h1,
                    pair_age_seconds=age,
                    risk_level=view.risk.risk_level if view.risk else None,
                    rugged=bool(view.risk and view.risk.rugged),
                    honeypot=view.honeypot,
                    risk_notes=view.risk.risks if isinstance(view.risk, TokenSecurity) else (),
                    groups_mentioning=groups,
                )
            )
        except Exception:
            m.stage_results.labels(stage="score", outcome="failure").inc()
            log.exception("scoring failed")
            return self._decide(candidate, "failed")
        m.stage_results.labels(stage="score", outcome="success").inc()
        m.token_score.observe(result.value)
        fields: dict[str, Any] = dict(
            chain=pair.chain_id or candidate.chain,
            score=result.value,
            symbol=pair.base_symbol or None,
            price_usd=pair.price_usd,
            liquidity_usd=pair.liquidity_usd,
            volume_h24=pair.volume_h24,
            price_change_h1=pair.price_change_h1,
            risk_level=view.risk.risk_level if view.risk else None,
            reasons=result.reasons,
        )
        route = self.routes.get(message.group, GroupRoute())
        threshold = self.settings.alert_threshold if route.alert_threshold is None else route.alert_threshold
        if result.value < threshold:
            return self._decide(candidate, "below_threshold", **fields)
        if route.muted or self.mutes.muted(candidate.key):
            return self._decide(candidate, "muted", **fields)
        channels = route.channels or self.channels

        alert = TokenAlert(
            address=candidate.address,
            chain=fields["chain"],
            symbol=pair.base_symbol or "?",
            score=result.value,
            price_usd=pair.price_usd,
            liquidity_usd=pair.liquidity_usd,
            volume_h24=pair.volume_h24,
            price_change_h1=pair.price_change_h1,
            risk_level=fields["risk_level"],
            groups=self.mentions.groups(candidate.key),
            url=pair.url,
            reasons=result.reasons,
        )
        if channels:
            await self.gate.sending(candidate.key)
        deliveries = await deliver(alert, channels, m, context=context) if channels else {}
        if deliveries and not any(deliveries.values()):
            m.stage_results.labels(stage="notify", outcome="failure").inc()
            log.warning("alert for %s (score %.1f) not delivered on any channel; retried on its next mention", alert.symbol, result.value)
            return self._decide(candidate, "failed", deliveries=deliveries, **fields)
        m.stage_results.labels(stage="notify", outcome="success").inc()
        log.info("alert: %s on %s scored %.1f", alert.symbol, alert.chain, result.value, extra={"channels": deliveries})
        return self._decide(candidate, "alerted", deliveries=deliveries, **fields)
