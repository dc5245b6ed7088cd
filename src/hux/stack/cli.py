"""`hux up | down | status | restart | reload`: running the stack (`hux health`: ``hux.stack.health.cli``)."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable

from hux.config import ConfigError
from hux.stack import commands
from hux.stack.binaries import MissingBinary
from hux.stack.cli_common import mode_flags, resolve_mode
from hux.stack.components import ORDER
from hux.stack.docker import DockerUnavailable
from hux.stack.native import StackError
from hux.stack.output import Console
from hux.stack.plan import StackPaths

Handler = Callable[[argparse.Namespace], int]

def guard(func: Handler) -> Handler:
    """A stack command whose failure is an error of ours (a stack not running, a missing binary, no docker):
    the message, which says what to do, and exit 1."""
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (StackError, MissingBinary, DockerUnavailable) as exc:
            print(f"hux: {exc}", file=sys.stderr)
            return 1
    return run


@guard
def _up(args: argparse.Namespace) -> int:
    con = Console()
    settings = commands.load(args.config)
    if resolve_mode(settings, args.mode) == "docker":
        return commands.up_docker(settings, con, timeout=args.timeout, compose_file=args.compose_file)
    return commands.up_native(args.config, timeout=args.timeout, foreground=args.foreground, con=con)


@guard
def _down(args: argparse.Namespace) -> int:
    con = Console()
    paths = StackPaths.current()
    # Stopping must work even when the settings were just broken: the native stack needs none.
    code = commands.down_native(paths, con, timeout=args.timeout)
    try:
        settings = commands.load(args.config)
    except ConfigError:
        if args.mode == "docker":
            raise
        return code
    if resolve_mode(settings, args.mode) == "docker":
        code = commands.docker_simple(settings, "down", con, compose_file=args.compose_file) or code
    return code


@guard
def _status(args: argparse.Namespace) -> int:
    con = Console()
    settings = commands.load(args.config)
    if resolve_mode(settings, args.mode) == "docker":
        return commands.docker_simple(settings, "status", con, compose_file=args.compose_file)
    return commands.status_native(settings, StackPaths.current(), con, as_json=args.json)


@guard
def _restart(args: argparse.Namespace) -> int:
    con = Console()
    settings = commands.load(args.config)
    if resolve_mode(settings, args.mode) == "docker":
        return commands.docker_simple(settings, "restart", con, compose_file=args.compose_file,
                                      services=args.components)
    return commands.restart_native(args.config, args.components, timeout=args.timeout, con=con)


@guard
def _reload(args: argparse.Namespace) -> int:
    return commands.reload_native(args.config, Console())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up", help="start the stack (render, start, wait until ready); on a running stack: apply config changes",
        description="Render and validate the configuration, start Prometheus, Alertmanager, node_exporter, "
                    "Grafana (when installed) and the bot under a supervisor, wait until each is ready and print "
                    "the URLs and log files. On a running stack it validates and hot-reloads the configuration.",
    )
    up.add_argument("--foreground", action="store_true",
                    help="keep the supervisor in this process (containers, systemd); Ctrl-C stops the stack")
    up.add_argument("--timeout", type=float, default=commands.DEFAULT_UP_TIMEOUT,
                    help="seconds to wait for every component to be ready (default: %(default)s)")
    mode_flags(up)
    up.set_defaults(func=_up)

    down = subparsers.add_parser("down", help="stop exactly what `hux up` started (by recorded pid)")
    down.add_argument("--timeout", type=float, default=60.0, help="seconds for a graceful stop (default: %(default)s)")
    mode_flags(down)
    down.set_defaults(func=_down)

    status = subparsers.add_parser("status", help="components, pids, restart counts, readiness, URLs, logs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    mode_flags(status)
    status.set_defaults(func=_status)

    restart = subparsers.add_parser("restart", help="restart some components (or, with none named, the whole stack)")
    restart.add_argument("components", nargs="*", metavar="COMPONENT", help=f"any of: {', '.join(ORDER)}")
    restart.add_argument("--timeout", type=float, default=commands.DEFAULT_UP_TIMEOUT)
    mode_flags(restart)
    restart.set_defaults(func=_restart)

    reload = subparsers.add_parser(
        "reload", help="re-render, validate (promtool/amtool) and hot-reload the configuration of the running stack",
    )
    reload.set_defaults(func=_reload)
