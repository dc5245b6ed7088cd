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


def private_dir(path: Path, *, tighten: bool | None = None) -> Path:
    """``path`` as a directory only its owner can enter (0700).

    Missing directories (parents too) are created 0700. An existing one is
    tightened when ``tighten`` says so, by default when it lies inside the home
    (our layout: data/, logs/, ...); elsewhere it is the operator's and left as it is.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
    if missing or (_inside_home(path) if tighten is None else tighten):
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read (0600): created empty when missing, tightened otherwise."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        mode = os.fstat(fd).st_mode & 0o7777
        if mode & 0o077:
            os.fchmod(fd, mode & ~0o077)
    finally:
        os.close(fd)
    return path


def _inside_home(path: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(home()) and Path(path).resolve() != home()
    except OSError:
        return False
