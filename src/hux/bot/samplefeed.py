"""A deterministic generator of realistic group chatter with token mentions.

``python -m hux.bot.samplefeed > src/hux/bot/data/sample_feed.jsonl`` rebuilds
the shipped sample feed (same seed, same file). Benchmarks use
``generate_messages`` for larger corpora.

The mix: about a third of messages carry a token (Solana mints, pump.fun and
DexScreener links, EVM addresses in checksum and lower case), the rest is
chatter; a slice are look-alikes that must *not* be extracted (base58 with
``0/O/I/l``, wrong lengths, broken EIP-55 checksums, transaction hashes).
Hot tokens are mentioned in several groups, so mention velocity varies.

A few chatter lines are replaced by dexscreener links that name a *pair*
(pool) rather than a token, as real links usually do: pair addresses the
DexScreener double lists (``hux.doubles.dexscreener.pair_address``), on Solana
and Base, so the demo resolves pairs to tokens. They come from a second random
stream, so every other line stays what it was.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from hux.bot.extract import is_solana_address, to_checksum_address
from hux.doubles.dexscreener import Market, b58encode, pair_address, pair_base_token

GROUPS = (
    "Solana Alpha Calls", "Degen Trenches", "Pump.fun Snipers", "Base Gems", "ETH Whales Chat",
    "BSC Moonshots", "Memecoin Lounge", "Arbitrum Insiders", "Crypto Night Owls", "Early Birds Research",
)
SYMBOLS = ("HUX", "MOON", "PEPE2", "WIFI", "BONKER", "CATGPT", "FROG", "ZOOM", "GIGA", "DOGEN", "SNEK", "BASED",
           "TURBO", "MOG2", "KEKW", "PONKE2", "GME2", "NUB", "SHARK", "RUNE2")
# A few well-known public mints, for realism.
KNOWN_MINTS = (
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",   # USDC
    "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263",   # BONK
    "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm",   # WIF
)
CHATTER = (
    "gm", "gm frens", "anyone watching SOL today?", "rugged again lol", "who's still holding?", "chart looks cooked",
    "fees on eth are insane rn", "this market is wild", "dev sold?", "wen moon", "LP locked or not?",
    "I'm out, too risky for me", "volume picking up on the majors", "ser this is a casino", "ngmi",
    "just bridged to base", "anyone got a good RPC?", "be careful, lots of honeypots today", "sent you a DM",
    "what's the play tonight?", "don't chase green candles", "bought the dip, dipped more", "nfa dyor",
    "mods please ban the scam bots", "another 10x from yesterday's call 🔥", "market's bleeding", "gn",
)
CALLS_SOL = (
    "🚀 new call: {a} LP burned, dev doxxed", "CA: {a}", "{a}", "aping this one {a}", "${s} {a} looks clean on rugcheck",
    "early on {a}, mc still tiny", "ca {a} 👀", "who's in {a}?",
)
CALLS_PUMP = (
    "fresh on pump.fun https://pump.fun/coin/{a}", "${s} bonding curve almost done https://pump.fun/{a}",
    "https://pump.fun/coin/{a} 🔥🔥", "sniped {a} at launch, pump.fun/coin/{a}",
)
CALLS_DEX = (
    "chart: https://dexscreener.com/solana/{a}", "https://dexscreener.com/{c}/{e}", "${s} on {c} https://dexscreener.com/{c}/{e}",
)
CALLS_PAIR = (
    "chart: https://dexscreener.com/{c}/{p}", "${s} pool https://dexscreener.com/{c}/{p} 📈", "https://dexscreener.com/{c}/{p}",
)
#: Share of chatter lines replaced by a pair link, and how many pairs the feed names.
PAIR_LINK_SHARE = 0.05
PAIR_COUNT = 4
CALLS_EVM = (
    "new {c} launch {e}", "contract {e} renounced", "${s} ca {e}", "{e} liquidity added on {c}", "0x ca: {e}",
)
LOOKALIKES = (
    "CA: {bad_b58}", "maybe {short}?", "tx {txhash}", "wrong ca posted earlier: {bad_evm}", "{bad_evm} is the real one",
    "not financial advice: 0x1234abcd", "ca {long_b58}",
)


def solana_mint(rng: random.Random, *, pump: bool = False) -> str:
    while True:
        mint = b58encode(rng.randbytes(32))
        if pump:
            mint = mint[:-4] + "pump"  # pump.fun vanity suffix
        if is_solana_address(mint):
            return mint


def evm_address(rng: random.Random) -> str:
    return to_checksum_address("0x" + rng.randbytes(20).hex())


def broken_checksum(address: str, rng: random.Random) -> str:
    letters = [i for i in range(2, 42) if address[i].isalpha()]
    i = rng.choice(letters)
    return address[:i] + address[i].swapcase() + address[i + 1:]


def _lookalike_b58(rng: random.Random) -> str:
    mint = solana_mint(rng)
    i = rng.randrange(len(mint))
    return mint[:i] + rng.choice("0OIl") + mint[i + 1:]


class TokenPool:
    def __init__(self, rng: random.Random, size: int = 60) -> None:
        self.rng = rng
        self.tokens: list[dict[str, str]] = []
        for i in range(size):
            kind = rng.choices(("sol", "pump", "evm"), weights=(4, 3, 3))[0]
            chain = "solana" if kind != "evm" else rng.choice(("ethereum", "base", "bsc", "arbitrum"))
            if kind == "sol" and i < len(KNOWN_MINTS):
                address = KNOWN_MINTS[i]
            elif kind == "evm":
                address = evm_address(rng)
            else:
                address = solana_mint(rng, pump=kind == "pump")
            self.tokens.append({"kind": kind, "chain": chain, "address": address, "symbol": rng.choice(SYMBOLS)})
        # Zipf-like popularity: a few hot tokens get mentioned in many groups.
        self.weights = [1.0 / (rank + 1) ** 0.9 for rank in range(size)]

    def pick(self) -> dict[str, str]:
        return self.rng.choices(self.tokens, weights=self.weights)[0]


def _mention(rng: random.Random, token: dict[str, str]) -> str:
    a, s, c = token["address"], token["symbol"], token["chain"]
    if token["kind"] == "evm":
        e = a if rng.random() < 0.7 else a.lower()
        template = rng.choice(CALLS_EVM + CALLS_DEX[1:])
        return template.format(e=e, s=s, c=c)
    if token["kind"] == "pump" and rng.random() < 0.7:
        return rng.choice(CALLS_PUMP).format(a=a, s=s)
    if rng.random() < 0.25:
        return CALLS_DEX[0].format(a=a)
    return rng.choice(CALLS_SOL).format(a=a, s=s)


def listed_pairs(rng: random.Random, count: int = PAIR_COUNT) -> list[dict[str, str]]:
    """Pairs the DexScreener double lists whose base token has a market, alternately on Solana and Base."""
    market = Market()
    pairs: list[dict[str, str]] = []
    while len(pairs) < count:
        chain = ("solana", "base")[len(pairs) % 2]
        pair = pair_address(rng.randbytes, chain)
        if market.token(pair_base_token(chain, pair)).known:
            pairs.append({"chain": chain, "pair": pair, "symbol": rng.choice(SYMBOLS)})
    return pairs


def _lookalike(rng: random.Random) -> str:
    return rng.choice(LOOKALIKES).format(
        bad_b58=_lookalike_b58(rng),
        short=solana_mint(rng)[:31],
        long_b58=b58encode(rng.randbytes(36)),
        txhash="0x" + rng.randbytes(32).hex(),
        bad_evm=broken_checksum(evm_address(rng), rng),
    )


def generate_messages(count: int, *, seed: int = 7, groups: tuple[str, ...] = GROUPS, tokens: int = 60,
                      start: datetime | None = None, mean_gap_seconds: float = 10.0) -> Iterator[dict[str, Any]]:
    """``count`` feed records: ``{"ts", "group", "message_id", "text"}``."""
    rng = random.Random(seed)
    pool = TokenPool(rng, tokens)
    pair_rng = random.Random(f"{seed}-pairs")  # its own stream: the other lines do not move
    pairs = listed_pairs(pair_rng)
    when = start or datetime(2025, 1, 10, 14, 0, 0, tzinfo=timezone.utc)
    next_id = {g: rng.randrange(1000, 90000) for g in groups}
    for _ in range(count):
        when += timedelta(seconds=rng.expovariate(1.0 / mean_gap_seconds))
        group = rng.choice(groups)
        next_id[group] += rng.randrange(1, 4)
        roll = rng.random()
        if roll < 0.36:
            text = _mention(rng, pool.pick())
        elif roll < 0.44:
            text = _lookalike(rng)
        elif roll < 0.445:
            text = ""  # a sticker or photo exported without a caption
        else:
            text = rng.choice(CHATTER)
            if pair_rng.random() < PAIR_LINK_SHARE:
                pair = pair_rng.choice(pairs)
                text = pair_rng.choice(CALLS_PAIR).format(c=pair["chain"], p=pair["pair"], s=pair["symbol"])
        yield {"ts": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"), "group": group, "message_id": next_id[group], "text": text}


def main() -> None:
    for record in generate_messages(360):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
