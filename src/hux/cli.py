"""The ``hux`` command: one entry point for everything the project does.

Each area registers its own sub-commands (``register(subparsers)``) and only
this module, the top of the package graph (docs/architecture.md), wires them
together: the bot (``hux.bot.cli``), monitoring-as-code (``hux.monitoring.cli``),
the local API doubles (``hux.doubles.cli``), running the stack (``hux.stack.cli``,
``hux.stack.health.cli``) and operator tasks such as backup and maintenance
(``hux.ops.cli``), which gets from here how a restore stops and starts
Prometheus (``hux.stack.control``).

``COMMANDS`` names, one line per command, the module that registers it. A run
imports only the module of the command it runs (``importlib``, here and nowhere
else in the project; tests/test_import_graph.py checks the table like imports):
``hux health`` does not pay for the bot, the renderer or the backups. Without a
known command (``hux``, ``hux --help``, a typo) every module is registered, so
the help lists them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

from hux import __version__
from hux.config import ConfigError

#: every command -> the module whose ``register(subparsers, **WIRING[module]())`` adds it; the help lists
#: the modules in this order. A new command: one line here (tests/test_cli_dispatch.py checks the table is complete).
COMMANDS: dict[str, str] = {
    "bot": "hux.bot.cli",
    "doubles": "hux.doubles.cli",
    "render": "hux.monitoring.cli",
    "check-config": "hux.monitoring.cli",
    "targets": "hux.monitoring.cli",
    "up": "hux.stack.cli",
    "down": "hux.stack.cli",
    "status": "hux.stack.cli",
    "restart": "hux.stack.cli",
    "reload": "hux.stack.cli",
    "health": "hux.stack.health.cli",
    "tokens": "hux.stack.tokens",
    "backup": "hux.ops.cli",
    "restore": "hux.ops.cli",
    "backups": "hux.ops.cli",
    "maintain": "hux.ops.cli",
    "notify-test": "hux.ops.cli",
    "alerts": "hux.ops.cli",
    "dashboards": "hux.ops.cli",
}



def _ops_wiring() -> dict[str, Any]:
    """ops sits below the stack: how a restore stops and starts Prometheus is handed to it from here."""
    # Imported here, not at the top: only the ops commands need the supervisor's modules (measured start-up
    # cost of every other command, e.g. `hux health`: docs/benchmarks.md).
    from hux.stack.control import native_control

    return {"prometheus_control": native_control}


#: what a module's ``register`` is handed besides the sub-parsers (made only when that module is registered)
WIRING: dict[str, Callable[[], dict[str, Any]]] = {
    "hux.ops.cli": _ops_wiring,
}

#: the options ``hux`` itself takes before the command, and whether each takes a value
_TOP_OPTIONS = {"--config": True, "--version": False, "--help": False}


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, as the parser will read it: the first word that is neither one of ``hux``'s
    own options (or an abbreviation of one, as argparse accepts) nor the value of ``--config``. None when
    there is none, when help is asked for, or when something before it is not one of ``hux``'s options
    (the full parser then decides)."""
    words = iter(argv)
    for word in words:
        if not word.startswith("-") or word == "-":
            return word
        if word == "-h":
            return None
        name, eq, _ = word.partition("=")
        matches = [option for option in _TOP_OPTIONS if len(name) > 2 and option.startswith(name)]
        if len(matches) != 1 or matches[0] == "--help":
            return None
        if _TOP_OPTIONS[matches[0]] and not eq:
            next(words, None)   # the option's value
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """``hux``'s parser: with a known ``command``, only the module that registers it; otherwise every module."""
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
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        wiring = WIRING[name]() if name in WIRING else {}
        importlib.import_module(name).register(sub, **wiring)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_of(argv))
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
