"""What the stack's two command modules share: the --native/--docker flags and the mode they pick.

``hux.stack.cli`` (up, down, status, restart, reload) and ``hux.stack.health.cli``
(health) are separate so that ``hux health`` imports the health package and not
the supervisor, the renderer or the docker path's commands (``hux.cli`` imports
only the module of the command it runs). Nothing here imports more than they both need.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hux.monitoring.settings import Settings


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
