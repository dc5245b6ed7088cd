"""The ``hux`` command: one entry point for everything the project does.

Each area registers its own sub-commands (``register(subparsers)``) and only
this module, the top of the package graph (docs/architecture.md), wires them
together: the bot (``hux.bot.cli``), monitoring-as-code (``hux.monitoring.cli``),
the local API doubles (``hux.doubles.cli``), running the stack (``hux.stack.cli``)
and operator tasks such as backup and maintenance (``hux.ops.cli``), which gets
from here how a restore stops and starts Prometheus (``hux.stack.control``).
"""

from __future__ import annotations

import argparse
import sys

from hux import __version__
from hux.bot import cli as bot_cli
from hux.config import ConfigError
from hux.doubles import cli as doubles_cli
from hux.monitoring import cli as monitoring_cli
from hux.ops import cli as ops_cli
from hux.stack import cli as stack_cli
from hux.stack.control import native_control


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
    bot_cli.register(sub)
    doubles_cli.register(sub)
    monitoring_cli.register(sub)
    stack_cli.register(sub)
    # ops sits below the stack: how a restore stops and starts Prometheus is handed to it from here
    ops_cli.register(sub, prometheus_control=native_control)
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
