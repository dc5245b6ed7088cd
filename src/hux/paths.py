"""Where the project keeps runtime state: one home, with data/ and logs/ under it.

The home is ``$HUX_HOME`` when set, else the current directory (the repository
checkout when run from the README). Tests point ``HUX_HOME`` at a temporary
directory so they never touch an operator's data.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("HUX_HOME") or os.getcwd()).resolve()


def data_dir() -> Path:
    return home() / "data"


def log_dir() -> Path:
    return home() / "logs"
