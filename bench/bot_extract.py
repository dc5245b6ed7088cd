"""Token extraction throughput on one core (target: >= 20,000 messages/s).

    .venv/bin/python bench/bot_extract.py [--messages 100000]

Messages come from the sample-feed generator (a third carry tokens, some are
look-alikes, the rest chatter). Two runs: the realistic mix, where popular
tokens repeat (validation results are cached), and a cold run where every
address is new (each base58 decode / EIP-55 keccak is computed).
"""

from __future__ import annotations

import argparse
import os
import time

from hux.bot import extract as ex
from hux.bot.samplefeed import generate_messages


def run(texts: list[str]) -> tuple[float, int]:
    ex.is_solana_address.cache_clear()
    ex.is_evm_address.cache_clear()
    started = time.perf_counter()
    found = 0
    for text in texts:
        found += len(ex.extract(text))
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    mixes = {
        "realistic mix (60 hot tokens)": [m["text"] for m in generate_messages(args.messages, seed=1, tokens=60)],
        "cold (every address new)": [m["text"] for m in generate_messages(args.messages, seed=2, tokens=args.messages)],
    }
    print(f"token extraction, {args.messages} messages, one core")
    for name, texts in mixes.items():
        best = min(run(texts)[0] for _ in range(3))
        _, found = run(texts)
        print(f"  {name:32s} {args.messages / best:>10,.0f} messages/s   ({found} candidates, {best * 1e6 / args.messages:.1f} µs/message)")


if __name__ == "__main__":
    main()
