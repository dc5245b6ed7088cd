"""The ``hux`` command: one entry point for everything the project does.

Each area registers its own sub-commands (``register(subparsers)``) so the
dispatcher stays small: the bot (``hux.bot.cli``), monitoring-as-code
(``hux.monitoring.cli``), the local API doubles (``hux.doubles.cli``), running the stack (``hux.stack.cli``) and operator
tasks such as backup and maintenance (``hux.ops.cli``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hux import __version__
from hux.config import ConfigError

AREAS = ("hux.bot.cli", "hux.doubles.cli", "hux.monitoring.cli", "hux.stack.cli", "hux.ops.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hux",
        description="Mr Hux Alpha Bot and its monitoring stack.",
    )
    parser.add_argument("--version", action="version", version=f"hux {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="settings file (default: $HUX_CONFIG, else ./hux.toml if present, else the embedded defaults)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "\0"):  # a missing area, not a broken import
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"hux: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
