"""Progress for long work, on stderr.

Shown only on a terminal: a pipe, a log file or ``--quiet`` gets nothing, so
scripted runs and cron mail stay clean. Updates are throttled so a fast loop
does not spend its time redrawing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hux.units import human_bytes


class Progress:
    """``with Progress(quiet=args.quiet) as p: p.start("packing", total); p.advance(n)``."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = not quiet and bool(isatty and isatty())
        self.interval = interval
        self._label = ""
        self._total = 0
        self._done = 0
        self._unit = "bytes"
        self._last_draw = 0.0
        self._drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def step(self, message: str) -> None:
        """A one-line stage message (``snapshot taken``), on a terminal only."""
        if not self.enabled:
            return
        self._clear()
        self.stream.write(f"[hux] {message}\n")
        self.stream.flush()

    def start(self, label: str, total: int, unit: str = "bytes") -> None:
        self.finish()
        self._label, self._total, self._done, self._unit = label, max(total, 0), 0, unit
        self._last_draw = 0.0
        self._draw(force=True)

    def advance(self, amount: int) -> None:
        self._done += amount
        self._draw()

    def finish(self) -> None:
        if self._label:
            self._done = max(self._done, self._total)
            self._draw(force=True)
            if self.enabled and self._drawn:
                self.stream.write("\n")
                self.stream.flush()
        self._label = ""
        self._drawn = False

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self._unit == "bytes" else f"{int(n)} {self._unit}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or not self._label:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        pct = f"{100 * self._done / self._total:5.1f}%" if self._total else "     "
        line = f"\r[hux] {self._label}: {pct} {self._fmt(self._done)} / {self._fmt(self._total)}"
        self.stream.write(line.ljust(72))
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 72 + "\r")
            self._drawn = False
