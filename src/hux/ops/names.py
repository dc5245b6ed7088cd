"""Names that come from outside (an API answer, an archive) and meet the file system or a URL path.

One rule for every such name (a Prometheus snapshot name, a Grafana uid used
as a file name): it becomes exactly one path component or it is refused.
``safe_component`` is the only way such a name is joined onto a path.
``quote_segment`` is the only way one is put into a URL path (so ``../`` in a
uid can never turn ``/api/dashboards/uid/<uid>`` into another endpoint).

``only_new_child`` is the other half: we delete a directory someone else
created on our request (a TSDB snapshot) only when it is a real directory,
directly inside the expected parent, that was not there before the request.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from hux.ops.errors import OpsError

MAX_COMPONENT = 128
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class UnsafeNameError(OpsError):
    """A name from outside cannot be used as a file or directory name."""

    reason = "unsafe_name"


def is_safe_component(name: object) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= MAX_COMPONENT and _SAFE.fullmatch(name) is not None
            and ".." not in name)


def safe_component(name: object, *, what: str, source: str) -> str:
    """``name`` if it is one safe path component (letters, digits, ``._-``, no ``..``, at most 128 characters).

    ``what`` names the thing (``"snapshot name"``), ``source`` who sent it; the
    error says both, shows the name (cut short) and what to do.
    """
    if is_safe_component(name):
        return name  # type: ignore[return-value]
    shown = repr(name)[:80]
    raise UnsafeNameError(
        f"{source} sent the {what} {shown}, which is not a safe file name (allowed: letters, digits, '.', '_', '-', "
        f"at most {MAX_COMPONENT} characters, no '..', no '/'): refusing to use it as a path. Check that the URL "
        "points at the server you mean; nothing was written or deleted for it"
    )


def quote_segment(value: object) -> str:
    """``value`` as one URL path segment: every ``/``, ``?``, ``#``, ``%`` and ``.``-only segment is escaped."""
    text = str(value)
    quoted = quote(text, safe="")
    if quoted in (".", ".."):
        quoted = quoted.replace(".", "%2E")
    return quoted


def snapshot_children(parent: Path) -> set[str]:
    """Names directly inside ``parent`` now (empty when it does not exist)."""
    try:
        return {child.name for child in parent.iterdir()}
    except OSError:
        return set()


def only_new_child(parent: Path, name: str, before: set[str]) -> Path | None:
    """``parent/name`` when it is ours to remove: a safe name, not there before, a real directory inside ``parent``."""
    if not is_safe_component(name) or name in before:
        return None
    path = parent / name
    try:
        if path.is_symlink() or not path.is_dir():
            return None
        if path.resolve().parent != parent.resolve():
            return None
    except OSError:
        return None
    return path
