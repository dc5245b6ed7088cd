"""What the stack's two command modules share: the --native/--docker flags, the mode they pick, the error guard.

``hux.stack.cli`` (up, down, status, restart, reload) and ``hux.stack.health.cli``
(health) are separate so that ``hux health`` imports the health package and not
the supervisor, the renderer or the docker path's commands (``hux.cli`` imports
only the module of the command it runs). Nothing here imports more than they both need.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

from hux.monitoring.settings import Settings
from hux.stack.binaries import MissingBinary
from hux.stack.docker import DockerUnavailable
from hux.stack.native import StackError

Handler = Callable[[argparse.Namespace], int]


def mode_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--native", dest="mode", action="store_const", const="native",
                       help="local processes under a supervisor (overrides stack.mode)")
    group.add_argument("--docker", dest="mode", action="store_const", const="docker",
                       help="docker compose with the committed docker-compose.yml (overrides stack.mode)")
    parser.add_argument("--compose-file", type=Path, default=None, help="docker path: compose file to use")


def resolve_mode(settings: Settings, forced: str | None) -> str:
    """The mode a command runs in: --native/--docker when given, else ``stack.mode``."""
    return forced or settings.stack.mode


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
