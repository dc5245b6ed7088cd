"""Calls tracked: every alerted token re-checked at +1 h, +6 h and +24 h.

When an alert reaches a channel the store schedules one ``call_checks`` row
per horizon (``Store.call_horizons``; shortened in demo mode) in the same
transaction as the alert, so the schedule lives in the database and survives
restarts: a bot that was down re-checks what fell due meanwhile at its next
round. Each round takes the due checks (oldest first, at most
``checks_per_round``) and reads their pairs through the pipeline's
``PairBatcher``, i.e. the same DexScreener client, rate limiter and cache as
the lookups of new tokens: re-checks spend the shared budget, never more.

A check records the price multiple (price now / price at the alert) and
whether the liquidity was pulled (``store.RUG_LIQUIDITY_SHARE``: 80 % or more
gone, or no pair left). The first check of a call to find it rugged posts a
follow-up to the channels the alert reached. The last horizon resolves the
call: a hit when any of its checks reached ``CALL_HIT_MULTIPLE``. A failed
lookup leaves the check due; it is tried again next round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from hux.bot.clients.dexscreener import PairInfo
from hux.bot.enrich import PairBatcher, best_pair
from hux.bot.metrics import CALL_CHECK_OUTCOMES, CALL_HIT_MULTIPLE, CALL_HORIZON_LABELS, CALL_RESULTS, BotMetrics
from hux.bot.outputs import CallFollowUp, OutputChannel, channel_label
from hux.bot.persistence import Persistence
from hux.bot.store import CallCheck, CheckOutcome

log = logging.getLogger("hux.bot.calls")

#: The shortest poll for due re-checks when it is derived from the horizons. Demo mode's shortened
#: horizons (+0.7 s) would otherwise ask the database four times a second, mostly to find nothing due;
#: a re-check a second late changes no multiple, so a call still resolves on time.
MIN_POLL_SECONDS = 1.0


def call_horizons(scale: float = 1.0) -> tuple[tuple[str, float], ...]:
    """The horizons' labels and delays in seconds, ``scale``d (demo mode: well under one)."""
    return tuple((label, hours * 3600.0 * scale) for label, hours in zip(CALL_HORIZON_LABELS, (1, 6, 24), strict=True))


def poll_interval(check_interval_seconds: float, horizons: Sequence[tuple[str, float]]) -> float:
    """How often due re-checks are looked for: three rounds per shortest horizon (not under
    :data:`MIN_POLL_SECONDS`), and never less often than ``bot.calls.check_interval_seconds``."""
    return min(check_interval_seconds, max(MIN_POLL_SECONDS, min(delay for _, delay in horizons) / 3))


class CallTracker:
    def __init__(self, persistence: Persistence, pairs: PairBatcher, channels: Sequence[OutputChannel], metrics: BotMetrics,
                 *, interval: float, checks_per_round: int) -> None:
        self.persistence = persistence
        self.pairs = pairs
        self.channels = tuple(channels)
        self.metrics = metrics
        self.interval = interval
        self.checks_per_round = checks_per_round
        self.last_horizon = CALL_HORIZON_LABELS[-1]
        for label in CALL_HORIZON_LABELS:
            metrics.call_multiple.labels(horizon=label)
            for outcome in CALL_CHECK_OUTCOMES:
                metrics.call_checks.labels(horizon=label, outcome=outcome)
        for result in CALL_RESULTS:
            metrics.calls_resolved.labels(result=result)
        for channel in self.channels:
            for outcome in ("success", "failure"):
                metrics.call_follow_ups.labels(channel=channel.name, outcome=outcome)

    async def run(self, stop: asyncio.Event) -> None:
        """Check what is due every ``interval`` seconds until ``stop``."""
        while not stop.is_set():
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one round must not end the tracking
                log.exception("call tracking round failed; retrying next round")
            try:
                async with asyncio.timeout(self.interval):
                    await stop.wait()
            except TimeoutError:
                pass

    async def round(self, now: float | None = None) -> int:
        """One round: the due checks looked up and recorded. Returns the checks recorded."""
        store = self.persistence.store
        due = await self.persistence.store_call("calls", store.due_checks, now or time.time(), self.checks_per_round)
        if not due:
            return 0
        looked_up = await asyncio.gather(*(self.pairs.pairs(c.address) for c in {c.address: c for c in due}.values()),
                                         return_exceptions=True)
        found: dict[str, list[PairInfo] | BaseException] = dict(zip({c.address: c for c in due}, looked_up, strict=True))
        recorded = 0
        for check in due:
            pairs = found[check.address]
            if isinstance(pairs, BaseException):
                self.metrics.call_checks.labels(horizon=self._label(check), outcome="failed").inc()
                log.warning("call re-check of %s at +%s failed: %s; retried next round", check.symbol or "?", check.horizon, pairs)
                continue
            pair = best_pair(pairs, check.address)
            outcome = await self.persistence.store_call(
                "calls", lambda c=check, p=pair: store.record_check(
                    c.id, at=time.time(), price_usd=p.price_usd if p else None, liquidity_usd=p.liquidity_usd if p else None))
            if outcome is None:
                continue
            recorded += 1
            await self._recorded(check, outcome, pair)
        return recorded

    def _label(self, check: CallCheck) -> str:
        return check.horizon if check.horizon in CALL_HORIZON_LABELS else CALL_HORIZON_LABELS[-1]

    async def _recorded(self, check: CallCheck, outcome: CheckOutcome, pair: PairInfo | None) -> None:
        m, label = self.metrics, self._label(check)
        m.call_checks.labels(horizon=label, outcome="checked" if pair is not None else "no_market").inc()
        if outcome.multiple is not None:
            m.call_multiple.labels(horizon=label).observe(outcome.multiple)
        if check.horizon == self.last_horizon:
            best = outcome.best_multiple
            m.calls_resolved.labels(result="hit" if best is not None and best >= CALL_HIT_MULTIPLE else "miss").inc()
        if outcome.first_rug:
            m.call_rugs.inc()
            await self._follow_up(check, outcome, pair)

    async def _follow_up(self, check: CallCheck, outcome: CheckOutcome, pair: PairInfo | None) -> None:
        follow_up = CallFollowUp(
            address=check.address, chain=check.chain, symbol=check.symbol or "?", horizon=check.horizon,
            alerted_at=check.alerted_at, price_multiple=outcome.multiple,
            liquidity_at_alert_usd=check.base_liquidity_usd, liquidity_now_usd=pair.liquidity_usd if pair else 0.0)
        log.warning("alerted token %s rugged (liquidity %.0f -> %.0f USD at +%s); following up on %s",
                    follow_up.symbol, follow_up.liquidity_at_alert_usd, follow_up.liquidity_now_usd, check.horizon,
                    ", ".join(check.channels) or "no channel")
        for channel in self.channels:
            if channel.name not in check.channels:
                continue
            try:
                await channel.send_follow_up(follow_up)
                ok = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one channel failing must not stop the others
                log.warning("rug follow-up not delivered to %s: %s", channel.name, exc)
                ok = False
            self.metrics.call_follow_ups.labels(channel=channel_label(channel.name), outcome="success" if ok else "failure").inc()
