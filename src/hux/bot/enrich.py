"""Market data for one token: DexScreener pairs (batched) and a RugCheck summary.

DexScreener answers up to 30 addresses per request and allows 300 requests a
minute, so lookups from all workers are gathered for ``batch_wait_seconds``
(or until ``batch_size`` addresses wait) and sent as one request. RugCheck has
no batch endpoint and only knows Solana mints; its report is optional: when
it fails, the token is scored with "no risk report".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

from hux.bot.clients.dexscreener import PairInfo
from hux.bot.clients.http import RequestContext
from hux.bot.clients.rugcheck import RiskReport
from hux.bot.extract import Candidate

log = logging.getLogger("hux.bot.enrich")


class PairSource(Protocol):
    async def token_pairs(self, addresses: Sequence[str]) -> dict[str, list[PairInfo]]: ...


class RiskSource(Protocol):
    async def report_summary(self, mint: str, *, context: RequestContext | None = None) -> RiskReport | None: ...


@dataclass(frozen=True, slots=True)
class MarketView:
    pair: PairInfo | None          # the most liquid pair with this token as base
    risk: RiskReport | None
    risk_failed: bool = False      # RugCheck was asked and failed (not: does not know it)


class PairBatcher:
    """Coalesces concurrent ``pairs(address)`` calls into batched ``token_pairs`` requests."""

    def __init__(self, source: PairSource, *, batch_size: int = 30, wait_seconds: float = 0.05) -> None:
        self.source = source
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self._waiting: dict[str, list[asyncio.Future[list[PairInfo]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def pairs(self, address: str) -> list[PairInfo]:
        future: asyncio.Future[list[PairInfo]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(address, []).append(future)
        if len(self._waiting) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait_seconds, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, {}
        task = asyncio.create_task(self._lookup(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _lookup(self, batch: dict[str, list[asyncio.Future[list[PairInfo]]]]) -> None:
        try:
            found = await self.source.token_pairs(list(batch))
        except BaseException as exc:  # every waiter gets the failure
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for address, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(address, []))


def best_pair(pairs: Sequence[PairInfo], address: str) -> PairInfo | None:
    """The most liquid pair whose base token is ``address`` (any pair if none is)."""
    key = address.lower() if address.startswith("0x") else address
    own = [p for p in pairs if (p.base_address.lower() if p.base_address.startswith("0x") else p.base_address) == key]
    pool = own or list(pairs)
    return max(pool, key=lambda p: p.liquidity_usd, default=None)


class Enricher:
    def __init__(self, pairs: PairBatcher, risk: RiskSource | None) -> None:
        self.batcher = pairs
        self.risk = risk

    async def lookup(self, candidate: Candidate, *, context: RequestContext | None = None) -> MarketView:
        """Pairs, then (Solana tokens with a market only) the risk report. DexScreener errors raise.

        ``context`` names the chat asking: RugCheck's limiter serves chats in turn. DexScreener
        requests are batches of several chats' addresses, made for no chat in particular.
        """
        pair = best_pair(await self.batcher.pairs(candidate.address), candidate.address)
        if pair is None or self.risk is None or not (candidate.is_solana or pair.chain_id == "solana"):
            return MarketView(pair, None)
        try:
            return MarketView(pair, await self.risk.report_summary(candidate.address, context=context))
        except Exception as exc:  # noqa: BLE001 - the score goes on without a risk report
            log.warning("RugCheck unavailable, scoring without a risk report: %s", exc)
            return MarketView(pair, None, risk_failed=True)
