"""Market data for one token: DexScreener pairs (batched) and a risk report.

DexScreener answers up to 30 addresses per request and allows 300 requests a
minute, so lookups from all workers are gathered for ``batch_wait_seconds``
(or until ``batch_size`` addresses wait) and sent as one request. The risk
report comes from RugCheck for Solana mints and from GoPlus Security for
tokens on the EVM chains it covers (the pair's chain decides); neither has a
batch endpoint. The report is optional: when its provider fails, the token is
scored with "no risk report".

A dexscreener.com link usually names a pair (a pool), not a token: before a
link's address is gated and looked up, ``Enricher.resolve`` asks DexScreener's
pairs endpoint whether it is a pair and, when it is, puts the pair's base token
in its place, so the token behind a link is deduplicated, cooled down, counted
and scored like any other mention of it. What a link resolves to never changes,
so the answers are kept (bounded) and each link address is asked about once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Coroutine, Protocol, Sequence

from hux.bot.clients.dexscreener import PairInfo
from hux.bot.clients.goplus import TokenSecurity
from hux.bot.clients.http import RequestContext
from hux.bot.clients.rugcheck import RiskReport
from hux.bot.extract import SOLANA_CHAINS, Candidate, is_evm_address, is_solana_address

log = logging.getLogger("hux.bot.enrich")


class PairSource(Protocol):
    async def token_pairs(self, addresses: Sequence[str]) -> dict[str, list[PairInfo]]: ...


class PairLookup(Protocol):
    async def pair(self, chain: str, pair_address: str, *, context: RequestContext | None = None) -> PairInfo | None: ...


#: Link addresses whose resolution is remembered (a pair's base token never changes).
RESOLVED_LINKS_KEPT = 4096


class RiskSource(Protocol):
    async def report_summary(self, mint: str, *, context: RequestContext | None = None) -> RiskReport | None: ...


class EvmRiskSource(Protocol):
    def covers(self, chain: str) -> bool: ...

    async def token_security(self, chain: str, address: str, *,
                             context: RequestContext | None = None) -> TokenSecurity | None: ...


@dataclass(frozen=True, slots=True)
class MarketView:
    pair: PairInfo | None          # the most liquid pair with this token as base
    risk: RiskReport | TokenSecurity | None  # RugCheck's (Solana) or GoPlus's (EVM)
    risk_failed: bool = False      # the provider was asked and failed (not: does not know it)

    @property
    def honeypot(self) -> bool:
        return isinstance(self.risk, TokenSecurity) and self.risk.honeypot is True


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
    def __init__(self, pairs: PairBatcher, risk: RiskSource | None, *, pair_lookup: PairLookup | None = None,
                 evm_risk: EvmRiskSource | None = None) -> None:
        self.batcher = pairs
        self.risk = risk
        self.pair_lookup = pair_lookup
        self.evm_risk = evm_risk
        self._resolved: OrderedDict[tuple[str, str], Candidate] = OrderedDict()

    async def resolve(self, candidate: Candidate, *, context: RequestContext | None = None) -> Candidate:
        """The token a dexscreener link names: the pair's base token when the address is a pair, else the link itself.

        Other kinds of candidate come back unchanged. An answer whose base token
        is not a valid address for the link's chain is not trusted (the link is
        kept as it is). Raises what the pairs lookup raises (``ApiError``).
        """
        if candidate.kind != "dexscreener_link" or self.pair_lookup is None:
            return candidate
        cache_key = (candidate.chain, candidate.key)
        known = self._resolved.get(cache_key)
        if known is not None:
            self._resolved.move_to_end(cache_key)
            return known
        pair = await self.pair_lookup.pair(candidate.chain, candidate.address, context=context)
        resolved = candidate
        if pair is not None:
            base = pair.base_address
            valid = is_solana_address(base) if candidate.chain in SOLANA_CHAINS else is_evm_address(base)
            if valid:
                resolved = Candidate(base, candidate.chain, candidate.kind)
            else:
                log.warning("DexScreener names %r as the base token of a %s pair: not a valid address, the link is "
                            "looked up as a token", base[:60], candidate.chain)
        self._resolved[cache_key] = resolved
        if len(self._resolved) > RESOLVED_LINKS_KEPT:
            self._resolved.popitem(last=False)
        return resolved

    async def lookup(self, candidate: Candidate, *, context: RequestContext | None = None) -> MarketView:
        """Pairs, then (tokens with a market only) the risk report of the pair's chain. DexScreener errors raise.

        ``context`` names the chat asking: the risk providers' limiters serve chats in turn.
        DexScreener requests are batches of several chats' addresses, made for no chat in particular.
        """
        pair = best_pair(await self.batcher.pairs(candidate.address), candidate.address)
        if pair is None:
            return MarketView(None, None)
        ask: Coroutine[Any, Any, RiskReport | TokenSecurity | None]
        if self.risk is not None and (candidate.is_solana or pair.chain_id == "solana"):
            provider = "RugCheck"
            ask = self.risk.report_summary(candidate.address, context=context)
        elif self.evm_risk is not None and candidate.address.startswith("0x") and self.evm_risk.covers(pair.chain_id):
            provider = "GoPlus"
            ask = self.evm_risk.token_security(pair.chain_id, candidate.address, context=context)
        else:
            return MarketView(pair, None)
        try:
            return MarketView(pair, await ask)
        except Exception as exc:  # noqa: BLE001 - the score goes on without a risk report
            log.warning("%s unavailable, scoring without a risk report: %s", provider, exc)
            return MarketView(pair, None, risk_failed=True)
