"""DexScreener API double: the token endpoints over a deterministic, drifting market.

Routes (documented shapes, https://docs.dexscreener.com/api/reference):

``GET /latest/dex/tokens/{tokenAddresses}``  → ``{"schemaVersion": "1.0.0", "pairs": [...] | null}``
``GET /tokens/v1/{chainId}/{tokenAddresses}`` → ``[pair, ...]``
``GET /latest/dex/pairs/{chainId}/{pairIds}``  → ``{"schemaVersion": "1.0.0", "pairs": [...] | null}``

Up to 30 comma-separated addresses (token or pair ids; more is a 400, as is
none); an id without a pair is simply absent from ``pairs``, which is
``null`` when none has one. Every address gets its own market,
seeded by a hash of the address: about one in ten is unknown (no pairs), the
rest have one or two pairs whose price, liquidity and volume drift over time
(sums of slow sine waves), so repeated lookups see moving values while the
same address always describes the same token.

The pairs endpoint knows two kinds of pair: every pair the double has
described (a token's pairs, remembered as they are served), and any address
``is_pair_address`` marks (about one in 4,096 addresses; feeds make them with
``pair_address``), whose base token is derived from the pair address, so a
pair link posted before its token was ever looked up still resolves. Any other
address is not a pair: ``pairs: null``, as DexScreener answers for a token
address.

Rugs: a ``rug_share`` of the known tokens (0 unless asked; the demo asks) have
their liquidity pulled ``rug_after_seconds`` after their first lookup: 3 % of
it stays and the price falls to a tenth, as after a liquidity pull.
``Market.rug(address)`` pulls one token's liquidity at once.

Pumps: a ``pump_share`` of the known tokens (0 unless asked; the demo asks),
never one that rugs, alternate every ``pump_period_seconds`` from their first
lookup between their price and ``PUMP_MULTIPLE`` times it, so a call made
low and re-checked high is a hit (and one made high a loss).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hux.doubles.faults import FAULTS, FaultInjector, add_control_routes, json_error

MAX_ADDRESSES = 30
#: Addresses whose first lookup time the market keeps (for rugs); later ones never rug. Bounds memory.
MAX_TRACKED = 100_000
RUG_LIQUIDITY_LEFT = 0.03
RUG_PRICE_LEFT = 0.1
#: A pumped token's price against its unpumped one (liquidity follows the price's square root, as in an AMM pool)
PUMP_MULTIPLE = 3.0
SCHEMA_VERSION = "1.0.0"
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44}")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SYLLABLES = ("mo", "on", "ka", "zu", "pe", "do", "ge", "wi", "fi", "bo", "nk", "ra", "tz", "lu", "xi", "hu")

# Quote tokens and a rough USD price for priceNative.
_QUOTES = {
    "solana": ({"address": "So11111111111111111111111111111111111111112", "name": "Wrapped SOL", "symbol": "SOL"}, 150.0),
    "ethereum": ({"address": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "name": "Wrapped Ether", "symbol": "WETH"}, 3000.0),
    "base": ({"address": "0x4200000000000000000000000000000000000006", "name": "Wrapped Ether", "symbol": "WETH"}, 3000.0),
    "bsc": ({"address": "0xbb4CdB9CBd36B01bD1cBaEBF2De08d9173bc095c", "name": "Wrapped BNB", "symbol": "WBNB"}, 600.0),
}
_USDC = {
    "solana": {"address": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "name": "USD Coin", "symbol": "USDC"},
    "ethereum": {"address": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "name": "USD Coin", "symbol": "USDC"},
    "base": {"address": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "name": "USD Coin", "symbol": "USDC"},
    "bsc": {"address": "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d", "name": "USD Coin", "symbol": "USDC"},
}
_DEXES = {
    "solana": ("raydium", "pumpswap", "orca", "meteora"),
    "ethereum": ("uniswap",),
    "base": ("aerodrome", "uniswap"),
    "bsc": ("pancakeswap",),
}


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("|".join(parts).encode()).digest()


def _unit(digest: bytes, index: int) -> float:
    """A float in [0, 1) from two bytes of the digest."""
    return int.from_bytes(digest[index : index + 2], "big") / 65536.0


def _b58(digest: bytes, length: int = 44) -> str:
    number = int.from_bytes(digest, "big")
    chars: list[str] = []
    while len(chars) < length:
        number, rem = divmod(number, 58)
        chars.append(_B58[rem])
        if number == 0:
            number = int.from_bytes(hashlib.sha256(digest + bytes(chars[-1], "ascii")).digest(), "big")
    return "".join(chars)


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet) of ``data``, leading zero bytes as ``1``."""
    value = int.from_bytes(data, "big")
    out = ""
    while value:
        value, rem = divmod(value, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _address_key(address: str) -> str:
    return address.lower() if address.startswith("0x") else address


def is_pair_address(address: str) -> bool:
    """True for the addresses the double treats as pairs it has always listed (1 in 4,096)."""
    digest = hashlib.sha256(b"dexscreener-double-pair|" + _address_key(address).encode()).digest()
    return digest[0] == 0 and digest[1] < 16


def pair_address(randbytes: Callable[[int], bytes], chain: str) -> str:
    """A pair address for ``chain`` that the double's pairs endpoint knows (``random.Random.randbytes``)."""
    while True:
        raw = randbytes(32 if chain == "solana" else 20)
        address = b58encode(raw) if chain == "solana" else "0x" + raw.hex()
        if is_pair_address(address):
            return address


def pair_base_token(chain: str, pair: str) -> str:
    """The base token of a pair ``is_pair_address`` marks: derived from the pair address, in the chain's family."""
    digest = hashlib.sha256(f"dexscreener-double-base|{chain}|{_address_key(pair)}".encode()).digest()
    return b58encode(digest) if chain == "solana" else "0x" + digest[:20].hex()


def decimal_string(value: float) -> str:
    """A price the way DexScreener writes it: a plain decimal string with about 5 significant digits."""
    if value <= 0:
        return "0"
    digits = max(2, 4 - int(math.floor(math.log10(value))))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits > 0 else f"{value:.0f}"


@dataclass(frozen=True)
class _Token:
    address: str
    chain: str
    symbol: str
    name: str
    known: bool
    base_price: float
    base_liquidity: float
    turnover: float  # 24 h volume / liquidity
    age_seconds: float
    phases: tuple[float, float, float]
    periods: tuple[float, float]
    amplitudes: tuple[float, float]
    pair_count: int
    digest: bytes


#: Pairs the double remembers having served (pair address → its token), oldest forgotten first.
PAIRS_KEPT = 50_000


class Market:
    """The double's market: deterministic per address, moving with ``clock()``."""

    def __init__(self, *, seed: str = "hux", clock: Callable[[], float] = time.time, unknown_share: float = 0.1,
                 rug_share: float = 0.0, rug_after_seconds: float = 60.0, pump_share: float = 0.0,
                 pump_period_seconds: float = 60.0) -> None:
        self.seed = seed
        self.clock = clock
        self.started = clock()
        self.unknown_share = unknown_share
        self._pairs: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()  # (chain, pair key) → (token, index)
        self._listed: dict[str, tuple[str, str]] = {}  # token key → (chain, pair address) for marked pairs
        self.rug_share = rug_share
        self.rug_after_seconds = rug_after_seconds
        self.pump_share = pump_share
        self.pump_period_seconds = pump_period_seconds
        self._first_seen: dict[str, float] = {}
        self._rugged_at: dict[str, float] = {}

    def rug(self, address: str) -> None:
        """Pull ``address``'s liquidity now."""
        self._rugged_at[address] = self.clock()

    def _rugged(self, token: _Token, now: float) -> bool:
        if token.address in self._rugged_at:
            return now >= self._rugged_at[token.address]
        if _unit(token.digest, 30) >= self.rug_share:
            return False
        return self._seen_for(token, now) >= self.rug_after_seconds

    def _pumped(self, token: _Token, now: float) -> bool:
        # the next slice of the same draw as rugs: a token never both pumps and rugs
        if not self.rug_share <= _unit(token.digest, 30) < self.rug_share + self.pump_share:
            return False
        return self.pump_period_seconds > 0 and int(self._seen_for(token, now) // self.pump_period_seconds) % 2 == 1

    def _seen_for(self, token: _Token, now: float) -> float:
        """Seconds since ``token``'s first lookup (0 at the first; bounded memory: untracked tokens stay at 0)."""
        first = self._first_seen.get(token.address)
        if first is None:
            if len(self._first_seen) < MAX_TRACKED:
                self._first_seen[token.address] = now
            return 0.0
        return now - first

    def token(self, address: str) -> _Token:
        evm = address.startswith("0x")
        digest = _digest(self.seed, address.lower() if evm else address)
        chain = ("ethereum", "base", "bsc")[digest[1] % 3] if evm else "solana"
        listed = self._listed.get(_address_key(address))
        if listed is not None:
            chain = listed[0]
        length = 3 + digest[2] % 3
        symbol = "".join(_SYLLABLES[b % len(_SYLLABLES)] for b in digest[3 : 3 + length])[: 3 + digest[2] % 5].upper()
        return _Token(
            address=address,
            chain=chain,
            symbol=symbol,
            name=f"{symbol.title()} Coin",
            known=_unit(digest, 4) >= self.unknown_share,
            base_price=10 ** (-8 + 8 * _unit(digest, 6)),
            base_liquidity=10 ** (3 + 3.3 * _unit(digest, 8)),
            turnover=0.2 + 8 * _unit(digest, 10) ** 2,
            age_seconds=60 * 10 ** (0.5 + 4 * _unit(digest, 12)),
            phases=tuple(2 * math.pi * _unit(digest, i) for i in (14, 16, 18)),  # type: ignore[arg-type]
            periods=(300 + 1500 * _unit(digest, 20), 3600 + 20000 * _unit(digest, 22)),
            amplitudes=(0.02 + 0.1 * _unit(digest, 24), 0.1 + 0.6 * _unit(digest, 26)),
            pair_count=1 + digest[28] % 2,
            digest=digest,
        )

    def _price(self, token: _Token, t: float) -> float:
        (p1, p2), (a1, a2) = token.periods, token.amplitudes
        wave = a1 * math.sin(2 * math.pi * t / p1 + token.phases[0]) + a2 * math.sin(2 * math.pi * t / p2 + token.phases[1])
        return token.base_price * math.exp(wave)

    def _activity(self, token: _Token, t: float) -> float:
        """A multiplier around 1 that makes volume breathe over ~10 minutes."""
        return 1.0 + 0.6 * math.sin(2 * math.pi * t / 600.0 + token.phases[2])

    def pairs(self, address: str) -> list[dict[str, Any]]:
        token = self.token(address)
        if not token.known:
            return []
        now = self.clock()
        return [self._pair(token, index, now) for index in range(token.pair_count)]

    def pair_by_address(self, chain: str, address: str) -> dict[str, Any] | None:
        """The pair ``address`` on ``chain``, or ``None`` when it is not a pair the double lists."""
        key = (chain, _address_key(address))
        known = self._pairs.get(key)
        if known is None and chain in _QUOTES and is_pair_address(address) and (chain == "solana") != address.startswith("0x"):
            base = pair_base_token(chain, address)
            self._listed[_address_key(base)] = (chain, address)
            if len(self._listed) > PAIRS_KEPT:
                del self._listed[next(iter(self._listed))]
            known = (base, 0)
        if known is None:
            return None
        token = self.token(known[0])
        if not token.known or token.chain != chain:
            return None
        return self._pair(token, known[1], self.clock())

    def _pair(self, token: _Token, index: int, now: float) -> dict[str, Any]:
        chain = token.chain
        quote, quote_usd = _QUOTES[chain] if index == 0 else (_USDC[chain], 1.0)
        share = 1.0 if index == 0 else 0.15  # the second pair is the small USDC pool
        pair_digest = _digest(token.digest.hex(), str(index))
        pair_address = _b58(pair_digest) if chain == "solana" else "0x" + pair_digest[:20].hex()
        listed = self._listed.get(_address_key(token.address))
        if index == 0 and listed is not None:
            pair_address = listed[1]
        self._pairs[(chain, _address_key(pair_address))] = (token.address, index)
        self._pairs.move_to_end((chain, _address_key(pair_address)))
        if len(self._pairs) > PAIRS_KEPT:
            self._pairs.popitem(last=False)
        dex = _DEXES[chain][pair_digest[0] % len(_DEXES[chain])]

        price = self._price(token, now) * (PUMP_MULTIPLE if self._pumped(token, now) else 1.0)
        liquidity = token.base_liquidity * share * math.sqrt(price / token.base_price)
        if self._rugged(token, now):
            price, liquidity = price * RUG_PRICE_LEFT, liquidity * RUG_LIQUIDITY_LEFT
        activity = self._activity(token, now)
        volume_h24 = liquidity * token.turnover
        volume = {
            "h24": round(volume_h24, 2),
            "h6": round(volume_h24 / 4 * activity, 2),
            "h1": round(volume_h24 / 24 * activity, 2),
            "m5": round(volume_h24 / 288 * activity * activity, 2),
        }
        avg_trade = 40 + 400 * _unit(pair_digest, 2)
        txns = {}
        for window, key in (("m5", "m5"), ("h1", "h1"), ("h6", "h6"), ("h24", "h24")):
            count = int(volume[key] / avg_trade)
            buy_share = 0.5 + 0.15 * math.sin(2 * math.pi * now / 900.0 + token.phases[0])
            txns[window] = {"buys": int(count * buy_share), "sells": count - int(count * buy_share)}
        price_change = {
            window: round((price / self._price(token, now - seconds) - 1) * 100, 2)
            for window, seconds in (("m5", 300), ("h1", 3600), ("h6", 21600), ("h24", 86400))
        }
        supply = 1e9
        created_ms = int((self.started - token.age_seconds) * 1000) + index * 60_000
        return {
            "chainId": chain,
            "dexId": dex,
            "url": f"https://dexscreener.com/{chain}/{_address_key(pair_address)}",  # base58 keeps its case
            "pairAddress": pair_address,
            "baseToken": {"address": token.address, "name": token.name, "symbol": token.symbol},
            "quoteToken": dict(quote),
            "priceNative": decimal_string(price / quote_usd),
            "priceUsd": decimal_string(price),
            "txns": txns,
            "volume": volume,
            "priceChange": price_change,
            "liquidity": {
                "usd": round(liquidity, 2),
                "base": round(liquidity / 2 / price, 2),
                "quote": round(liquidity / 2 / quote_usd, 6),
            },
            "fdv": round(price * supply),
            "marketCap": round(price * supply * 0.92),
            "pairCreatedAt": created_ms,
        }


def _error_response(status: int, retry_after: float | None) -> web.Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    message = "Too Many Requests" if status == 429 else "Service Unavailable" if status == 503 else "Error"
    return web.json_response({"error": message}, status=status, headers=headers)


MALFORMED_BODIES: list[tuple[bytes, str]] = [
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    (b'{"schemaVersion":"1.0.0","pairs":[{"chainId":"solana","pairAddr', "application/json"),
    (b'{"schemaVersion":"1.0.0","pairs":"temporarily unavailable"}', "application/json"),
    (b'{"schemaVersion":"1.0.0","pairs":[{"chainId":7,"baseToken":"x"}]}', "application/json"),
]


def _split_addresses(raw: str, what: str = "token") -> list[str] | web.Response:
    """The comma-separated ids of a path segment; 400 when there are none or more than the documented 30."""
    addresses = [a for a in raw.split(",") if a]
    if not addresses:
        return json_error(400, f"{what}Addresses is empty")
    if len(addresses) > MAX_ADDRESSES:
        return json_error(400, f"at most {MAX_ADDRESSES} {what} addresses per request, got {len(addresses)}")
    return addresses


MARKET: web.AppKey[Market] = web.AppKey("market")


def build_app(*, market: Market | None = None, seed: int | None = None) -> web.Application:
    """The DexScreener double as an aiohttp app (``app[MARKET]``, ``app[FAULTS]``)."""
    market = market or Market()
    faults = FaultInjector("dexscreener", _error_response, MALFORMED_BODIES, seed=seed)
    app = web.Application()
    app[MARKET] = market
    app[FAULTS] = faults

    async def latest_tokens(request: web.Request) -> web.Response:
        addresses = _split_addresses(request.match_info["addresses"])
        if isinstance(addresses, web.Response):
            return addresses
        pairs = [pair for a in addresses if _ADDRESS_RE.fullmatch(a) for pair in market.pairs(a)]
        return web.json_response({"schemaVersion": SCHEMA_VERSION, "pairs": pairs or None})

    async def tokens_v1(request: web.Request) -> web.Response:
        addresses = _split_addresses(request.match_info["addresses"])
        if isinstance(addresses, web.Response):
            return addresses
        chain = request.match_info["chain"]
        pairs = [p for a in addresses if _ADDRESS_RE.fullmatch(a) for p in market.pairs(a) if p["chainId"] == chain]
        return web.json_response(pairs)

    async def latest_pairs(request: web.Request) -> web.Response:
        addresses = _split_addresses(request.match_info["pairs"], "pair")
        if isinstance(addresses, web.Response):
            return addresses
        chain = request.match_info["chain"]
        # each pair once, in the order asked; an id that is no pair is simply absent
        asked: dict[str, str] = {}
        for address in addresses:
            if _ADDRESS_RE.fullmatch(address):
                asked.setdefault(_address_key(address), address)
        found = [market.pair_by_address(chain, a) for a in asked.values()]
        pairs = [pair for pair in found if pair is not None]
        return web.json_response({"schemaVersion": SCHEMA_VERSION, "pairs": pairs or None})

    app.router.add_get("/latest/dex/tokens/{addresses}", faults.wrap("tokens", latest_tokens))
    app.router.add_get("/latest/dex/pairs/{chain}/{pairs}", faults.wrap("pairs", latest_pairs))
    app.router.add_get("/tokens/v1/{chain}/{addresses}", faults.wrap("tokens_v1", tokens_v1))
    add_control_routes(app, faults)
    return app
