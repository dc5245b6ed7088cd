"""Market data for one token: DexScreener pairs (batched) and a risk report.

DexScreener answers up to 30 addresses per request and allows 300 requests a
minute, so its lookups from all workers go through a ``Batcher``: gathered for
``batch_wait_seconds`` (or until ``batch_size`` addresses of one request wait)
and sent as one request, the answers handed back to each caller. Token lookups
(``PairBatcher``) take any chain in one request; pair lookups
(``PairLinkBatcher``) take one request per chain. The risk report comes from
RugCheck for Solana mints and from GoPlus Security for tokens on the EVM
chains it covers (the pair's chain decides); neither has a batch endpoint.
The report is optional: when its provider fails, the token is scored with "no
risk report".

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
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from hux.bot.clients.dexscreener import PairInfo, validate_address, validate_chain
from hux.bot.clients.goplus import TokenSecurity
from hux.bot.clients.http import RequestContext
from hux.bot.clients.rugcheck import RiskReport
from hux.bot.extract import SOLANA_CHAINS, Candidate, is_evm_address, is_solana_address

log = logging.getLogger("hux.bot.enrich")


class PairSource(Protocol):
    async def token_pairs(self, addresses: Sequence[str]) -> dict[str, list[PairInfo]]: ...


class PairAddressSource(Protocol):
    async def pairs(self, chain: str, pair_addresses: Sequence[str]) -> dict[str, PairInfo | None]: ...


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


V = TypeVar("V")


class Batcher(Generic[V]):
    """Coalesces concurrent single-key lookups into batched requests, one per group (e.g. a chain) per window.

    ``get(key, group)`` waits at most ``wait_seconds`` for other lookups; a
    group's keys go out as one ``fetch(group, keys)`` request when the window
    ends or as soon as ``batch_size`` distinct keys of it wait. Every waiter of
    a key gets the answer's value for it, or ``missing()`` when the answer
    lacks it. A failed request fails the waiters of that request alone, with
    its error (the client has counted and retried it already).
    """

    def __init__(self, fetch: Callable[[str, list[str]], Awaitable[Mapping[str, V]]], missing: Callable[[], V], *,
                 batch_size: int = 30, wait_seconds: float = 0.05) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.fetch = fetch
        self.missing = missing
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self._waiting: dict[str, dict[str, list[asyncio.Future[V]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def get(self, key: str, group: str = "") -> V:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        waiting = self._waiting.setdefault(group, {})
        waiting.setdefault(key, []).append(future)
        if len(waiting) >= self.batch_size:
            self._send(group)
        elif self._timer is None:
            self._timer = loop.call_later(self.wait_seconds, self._flush)
        return await future

    def _flush(self) -> None:
        self._timer = None
        for group in list(self._waiting):
            self._send(group)

    def _send(self, group: str) -> None:
        batch = self._waiting.pop(group, None)
        if not self._waiting and self._timer is not None:  # nothing left for the window to send
            self._timer.cancel()
            self._timer = None
        if not batch:
            return
        task = asyncio.create_task(self._lookup(group, batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _lookup(self, group: str, batch: dict[str, list[asyncio.Future[V]]]) -> None:
        try:
            found = await self.fetch(group, list(batch))
        except BaseException as exc:  # every waiter gets the failure
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for key, futures in batch.items():
            value = found[key] if key in found else self.missing()
            for future in futures:
                if not future.done():
                    future.set_result(value)


class PairBatcher(Batcher[list[PairInfo]]):
    """Token lookups: concurrent ``pairs(address)`` calls as batched ``token_pairs`` requests (any chain in one)."""

    def __init__(self, source: PairSource, *, batch_size: int = 30, wait_seconds: float = 0.05) -> None:
        super().__init__(lambda _all, addresses: source.token_pairs(addresses), list,
                         batch_size=batch_size, wait_seconds=wait_seconds)
        self.source = source

    async def pairs(self, address: str) -> list[PairInfo]:
        # checked here, so a bad address fails its own caller, not everyone's batch
        return await self.get(validate_address(address))


class PairLinkBatcher(Batcher[PairInfo | None]):
    """Pair lookups: concurrent ``pair(chain, address)`` calls as batched ``pairs`` requests, one per chain.

    A ``PairLookup``. ``context`` is not passed on: a batch of several chats'
    links is made for no chat in particular, as token batches are.
    """

    def __init__(self, source: PairAddressSource, *, batch_size: int = 30, wait_seconds: float = 0.05) -> None:
        super().__init__(source.pairs, lambda: None, batch_size=batch_size, wait_seconds=wait_seconds)
        self.source = source

    async def pair(self, chain: str, pair_address: str, *, context: RequestContext | None = None) -> PairInfo | None:
        return await self.get(validate_address(pair_address), validate_chain(chain))


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
