"""Plain-text tables for people (the JSON forms are for machines)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Sequence, TextIO

COLOURS = {"pass": "32", "warn": "33", "fail": "31", "running": "32", "backoff": "31", "stopped": "33"}


@dataclass
class Console:
    """Where a command's lines for people go (stdout unless told otherwise), flushed line by line."""

    out: TextIO = field(default_factory=lambda: sys.stdout)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


def use_colour(stream: TextIO = sys.stdout) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"


def paint(text: str, key: str, colour: bool) -> str:
    code = COLOURS.get(key)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_width: int = 0) -> str:
    """Left-aligned columns; the last column wraps at ``max_width`` (0 = no wrapping)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lead = sum(widths[:-1]) + 2 * (len(headers) - 1)
    last_width = max(20, max_width - lead) if max_width else 0
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:-1], widths[:-1], strict=True)) + "  " + headers[-1]]
    for row in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=False))
        chunks = _wrap(row[-1], last_width) if last_width else [row[-1]]
        lines.append(f"{head}  {chunks[0]}".rstrip())
        lines.extend(" " * (lead + 2) + chunk for chunk in chunks[1:])
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, current = text.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines
