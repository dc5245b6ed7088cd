"""``hux tokens``: the bot's latest decisions, and one token's breakdown and call outcomes, at a terminal.

Reads the bot's database (``bot.database_url``, SQLite by default) and never
writes it: a database the bot has not created or migrated yet is reported
with what to do, not created here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from hux.bot.config import load_bot_config, redact_url
from hux.bot.store import LATEST_VERSION, Store
from hux.stack.output import table

#: Longest address accepted on the command line (EVM: 42, Solana: 44; room for what people paste).
MAX_ADDRESS = 100


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tokens", help="the bot's latest token decisions (score and reason); `show ADDRESS` for one token",
                                   description="Latest token decisions from the bot's database, newest first. "
                                   "`hux tokens show ADDRESS`: one token's score breakdown and call outcomes.")
    parser.add_argument("--limit", type=int, default=20, help="decisions to list (1-1000, default 20)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="tokens_command", metavar="ACTION")
    show = sub.add_parser("show", help="one token: its decisions with their reasons, and its call re-checks")
    show.add_argument("address", help="the token's address (Solana mint or 0x... EVM address)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)
    parser.set_defaults(func=_latest)


def _open(args: argparse.Namespace) -> Store | None:
    url = load_bot_config(getattr(args, "config", None)).resolved_database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        print(f"hux tokens: no bot database at {parsed.database}: start the bot once (`hux bot run` or `hux up`)",
              file=sys.stderr)
        return None
    store = Store(url)
    try:
        version = store.schema_version()
    except Exception as exc:  # noqa: BLE001 - any driver error: say which database and why
        store.dispose()
        print(f"hux tokens: cannot read the bot database {redact_url(url)}: {type(exc).__name__}; "
              "check bot.database_url and that the database is up", file=sys.stderr)
        return None
    if version < LATEST_VERSION:
        store.dispose()
        print(f"hux tokens: the bot database {redact_url(url)} is at schema version {version}, this hux reads "
              f"{LATEST_VERSION}: start the bot once (`hux bot run` or `hux up`) to create or migrate it", file=sys.stderr)
        return None
    return store


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _latest(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        print(f"hux tokens: --limit must be 1-1000, got {args.limit}", file=sys.stderr)
        return 2
    store = _open(args)
    if store is None:
        return 1
    try:
        rows = store.latest_decisions(args.limit)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({"decisions": rows}, indent=2))
        return 0
    if not rows:
        print("no decisions yet: the bot has not looked up any token")
        return 0
    print(table(("decided (UTC)", "symbol", "chain", "score", "outcome", "address", "reason"),
                [(_when(r["decided_at"]), r["symbol"] or "?", r["chain"] or "-", _num(r["score"]), r["outcome"],
                  r["address"], "; ".join(r["reasons"][:2]) or "-") for r in rows], max_width=160))
    return 0


def _show(args: argparse.Namespace) -> int:
    address = args.address.strip()
    if not address or len(address) > MAX_ADDRESS or not address.isalnum():
        print(f"hux tokens show: {address[:60]!r} is not a token address (letters and digits, at most {MAX_ADDRESS})",
              file=sys.stderr)
        return 2
    store = _open(args)
    if store is None:
        return 1
    try:
        token = store.token_detail(address)
    finally:
        store.dispose()
    if token is None:
        print(f"hux tokens show: the bot has not seen {address}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(token, indent=2))
        return 0
    _print_token(token)
    return 0


def _print_token(token: dict[str, Any]) -> None:
    now = time.time()
    print(f"{token['symbol'] or '?'} on {token['chain']}  {token['address']}")
    print(f"mentions {token['mentions']}, first seen {_when(token['first_seen'])}, last seen {_when(token['last_seen'])} UTC"
          f" ({(now - token['last_seen']) / 3600:.1f} h ago)")
    latest = token["decisions"][0] if token["decisions"] else None
    if latest is not None:
        print(f"\nlatest decision {_when(latest['decided_at'])} UTC: {latest['outcome']}, score {_num(latest['score'], '{:.1f}')}, "
              f"risk {latest['risk_level'] or 'unknown'}")
        for reason in latest["reasons"]:
            print(f"  - {reason}")
    if token["decisions"]:
        print("\ndecisions")
        print(table(("decided (UTC)", "outcome", "score", "price USD", "liquidity USD"),
                    [(_when(d["decided_at"]), d["outcome"], _num(d["score"], "{:.1f}"), _num(d["price_usd"], "{:.6g}"),
                      _num(d["liquidity_usd"], "{:,.0f}")) for d in token["decisions"]]))
    print("\ncall outcomes" if token["calls"] else "\nno calls: the token was never alerted")
    if token["calls"]:
        print(table(("alerted (UTC)", "horizon", "status", "multiple", "liquidity USD (alert -> check)", "rugged"),
                    [(_when(c["alerted_at"]), f"+{c['horizon']}", c["status"], _num(c["multiple"], "{:.2f}x"),
                      f"{_num(c['base_liquidity_usd'], '{:,.0f}')} -> {_num(c['liquidity_usd'], '{:,.0f}')}",
                      "-" if c["rugged"] is None else ("yes" if c["rugged"] else "no")) for c in token["calls"]]))
