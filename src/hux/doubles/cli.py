"""``hux doubles serve``: run the market-data doubles (DexScreener, RugCheck, GoPlus, Telegram, webhook) on one port."""

from __future__ import annotations

import argparse
import asyncio
import sys

DEFAULT_PORT = 8010


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("doubles", help="local doubles of the external APIs (DexScreener, RugCheck, GoPlus, Telegram)")
    sub = parser.add_subparsers(dest="doubles_command", metavar="ACTION")
    serve = sub.add_parser(
        "serve",
        help="serve the doubles until interrupted",
        description="Serve DexScreener under /dexscreener, RugCheck under /rugcheck, GoPlus under /goplus, the Telegram Bot API under "
        "/telegram and a webhook receiver under /webhook; inject faults with PUT /_double/faults.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    serve.set_defaults(func=_serve)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)


def _serve(args: argparse.Namespace) -> int:
    from hux.doubles.market import serve_forever

    if not 0 <= args.port <= 65535:
        print(f"hux doubles serve: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_forever(args.host, args.port))
    except OSError as exc:
        print(f"hux doubles serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
