"""DexScreener market data: the trading pairs of up to 30 tokens, or up to 30 pairs of one chain, per request.

Documented endpoints (https://docs.dexscreener.com/api/reference), both
limited to 300 requests per minute and both answering
``{"schemaVersion": "1.0.0", "pairs": [pair, ...] | null}``:

* ``GET /latest/dex/tokens/{tokenAddresses}``: one or more comma-separated
  token addresses (at most 30), the pairs each one trades in;
* ``GET /latest/dex/pairs/{chainId}/{pairIds}``: one or more comma-separated
  pair (pool) addresses of one chain (at most 30). A dexscreener.com link
  usually names a pair, not a token: this is how the bot finds the token
  behind it (``pairs``). An id DexScreener does not know is simply absent
  from the answer (``pairs: null`` when it knows none).

Pair objects are read leniently: numbers may come as numbers or numeric
strings (``priceUsd`` is a string), and a missing or malformed optional field
falls back to a neutral value (no liquidity, no volume, unknown age). A pair
without its identity (chain, pair address, base token address) is skipped.
A body that is not that shape at all is an ``invalid_response``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hux.bot.clients.http import ProviderClient, RequestContext

API = "dexscreener"
DEFAULT_BASE_URL = "https://api.dexscreener.com"
#: Documented limit on the token and pair endpoints.
RATE_LIMIT_PER_MINUTE = 300
#: Documented maximum of comma-separated addresses per request, token and pair endpoints alike.
MAX_ADDRESSES_PER_REQUEST = 30
#: Market data moves; a short cache only absorbs bursts of mentions of the same token.
DEFAULT_CACHE_TTL = 15.0

# Base58 (Solana) or hex (EVM) characters only: an address becomes part of the URL path.
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44}")
# DexScreener chain ids are short lower-case slugs ("solana", "base", "bsc"); also part of the path.
_CHAIN_RE = re.compile(r"[a-z0-9]{2,20}")


@dataclass(frozen=True)
class PairInfo:
    chain_id: str
    dex_id: str
    pair_address: str
    base_address: str
    base_symbol: str
    price_usd: float | None
    liquidity_usd: float
    volume_h24: float
    volume_h1: float
    price_change_h1: float
    price_change_h24: float
    pair_created_at: datetime | None
    url: str


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string; ``None`` otherwise (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an int beyond any float (JSON allows 4,300 digits)
            return None
    elif isinstance(value, str):
        try:
            result = float(value.strip()[:64])
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _field(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text(value: Any, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _created_at(value: Any) -> datetime | None:
    millis = _number(value)
    if millis is None or millis <= 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def parse_pair(raw: Any) -> PairInfo | None:
    """One DexScreener pair object, or ``None`` when it lacks its identity fields."""
    if not isinstance(raw, dict):
        return None
    chain_id = raw.get("chainId")
    pair_address = raw.get("pairAddress")
    base_address = _field(raw, "baseToken", "address")
    if not (isinstance(chain_id, str) and chain_id and isinstance(pair_address, str) and pair_address
            and isinstance(base_address, str) and base_address):
        return None
    price = _number(raw.get("priceUsd"))
    return PairInfo(
        chain_id=chain_id[:32],
        dex_id=_text(raw.get("dexId"), 64),
        pair_address=pair_address[:128],
        base_address=base_address[:128],
        base_symbol=_text(_field(raw, "baseToken", "symbol"), 32),
        price_usd=price if price is None or price >= 0 else None,
        liquidity_usd=max(0.0, _number(_field(raw, "liquidity", "usd")) or 0.0),
        volume_h24=max(0.0, _number(_field(raw, "volume", "h24")) or 0.0),
        volume_h1=max(0.0, _number(_field(raw, "volume", "h1")) or 0.0),
        price_change_h1=_number(_field(raw, "priceChange", "h1")) or 0.0,
        price_change_h24=_number(_field(raw, "priceChange", "h24")) or 0.0,
        pair_created_at=_created_at(raw.get("pairCreatedAt")),
        url=_text(raw.get("url"), 300),
    )


def parse_token_pairs(body: Any) -> list[PairInfo]:
    """The ``/latest/dex/tokens`` body → parsed pairs. Raises ValueError when the body is not that shape."""
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    if "pairs" not in body:
        raise ValueError("the 'pairs' field is missing")
    raw_pairs = body["pairs"]
    if raw_pairs is None:  # the documented answer for tokens DexScreener does not know
        return []
    if not isinstance(raw_pairs, list):
        raise ValueError(f"'pairs' should be a list or null, got {type(raw_pairs).__name__}")
    pairs = [pair for pair in map(parse_pair, raw_pairs) if pair is not None]
    if raw_pairs and not pairs:
        raise ValueError(f"none of the {len(raw_pairs)} pair objects has chainId, pairAddress and baseToken.address")
    return pairs


def _key(address: str) -> str:
    """EVM addresses compare case-insensitively (DexScreener answers in checksum case); base58 exactly."""
    return address.lower() if address.startswith("0x") else address


def validate_address(address: str) -> str:
    if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
        shown = repr(address)[:60]
        raise ValueError(f"{shown} is not a Solana (base58) or EVM (0x + 40 hex) address: pass extracted addresses only")
    return address


def validate_chain(chain: str) -> str:
    if not isinstance(chain, str) or not _CHAIN_RE.fullmatch(chain):
        raise ValueError(f"{repr(chain)[:40]} is not a DexScreener chain id (lower-case letters and digits)")
    return chain


def _batches(addresses: Sequence[str]) -> tuple[dict[str, str], list[list[str]]]:
    """Validated ``addresses`` once each (by ``_key``: key -> first spelling) and in requests of at most 30."""
    wanted: dict[str, str] = {}
    for address in addresses:
        wanted.setdefault(_key(validate_address(address)), address)
    spelled = list(wanted.values())
    return wanted, [spelled[i : i + MAX_ADDRESSES_PER_REQUEST] for i in range(0, len(spelled), MAX_ADDRESSES_PER_REQUEST)]


class DexScreenerClient(ProviderClient):
    """Looks up token pairs and pairs in batches of up to 30 addresses per request."""

    API = API
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    RATE_LIMIT_PER_MINUTE = RATE_LIMIT_PER_MINUTE
    CACHE_TTL = DEFAULT_CACHE_TTL
    ENDPOINTS = ("tokens", "pairs")

    async def token_pairs(
        self, addresses: Sequence[str], *, context: RequestContext | None = None
    ) -> dict[str, list[PairInfo]]:
        """Pairs where each address is the base token, keyed by each address as given.

        Every requested address is a key (an empty list: DexScreener knows no
        pair for it). Duplicates (an EVM address in two cases too) are looked
        up once. Raises ``ValueError`` for a string that is not an address and
        ``ApiError`` when a batch fails. ``context``: the chat asking, when one
        chat asks for all of them (a batch of several chats' addresses is made
        for none in particular).
        """
        wanted, batches = _batches(addresses)
        found: dict[str, list[PairInfo]] = {key: [] for key in wanted}
        for batch in batches:
            pairs = await self.http.get_json(
                "tokens", f"/latest/dex/tokens/{','.join(batch)}", parse=parse_token_pairs, context=context
            )
            for pair in pairs:
                own = found.get(_key(pair.base_address))
                if own is not None:
                    own.append(pair)
        return {address: found[_key(address)] for address in addresses}

    async def pairs(
        self, chain: str, pair_addresses: Sequence[str], *, context: RequestContext | None = None
    ) -> dict[str, PairInfo | None]:
        """The pairs ``pair_addresses`` on ``chain``, keyed by each address as given; ``None`` for an unknown one.

        An address that is a token rather than a pair is absent from the answer
        (so: ``None``). Only a pair object naming this very pair on this chain
        counts: another pair in the answer is not taken for it. Duplicates are
        asked once. Raises ``ValueError`` for a chain or address that is not
        one, ``ApiError`` when a request fails.
        """
        validate_chain(chain)
        wanted, batches = _batches(pair_addresses)
        found: dict[str, PairInfo] = {}
        for batch in batches:
            answer: list[PairInfo] = await self.http.get_json(
                "pairs", f"/latest/dex/pairs/{chain}/{','.join(batch)}", parse=parse_token_pairs, context=context
            )
            for pair in answer:
                if pair.chain_id == chain and _key(pair.pair_address) in wanted:
                    found.setdefault(_key(pair.pair_address), pair)
        return {address: found.get(_key(address)) for address in pair_addresses}

    async def pair(self, chain: str, pair_address: str, *, context: RequestContext | None = None) -> PairInfo | None:
        """The pair ``pair_address`` on ``chain`` alone (one request), or ``None`` when DexScreener knows no such pair."""
        return (await self.pairs(chain, [pair_address], context=context))[pair_address]
