"""Child output capture: one log file per component, rotated by size.

Prometheus, Alertmanager, node_exporter and Grafana write their logs to
stdout/stderr. The supervisor pipes both into a :class:`LogPump` thread that
appends each line to the component's required log file (``logs/prometheus.log``, ...) through a
:class:`RotatingLog`: when the file would exceed ``max_bytes`` it becomes
``name.log.1`` (older ones shift to ``.2`` ... ``.backups``) and a fresh file
starts. Exactly one writer owns each file, so rotation never races: the bot
writes ``logs/mr_hux_alpha_bot.log`` itself and its stdout/stderr go to a
separate ``mr_hux_alpha_bot.stderr.log``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


def _open_private(path: Path) -> IO[bytes]:
    """Append to ``path``, created 0600 (an existing file is tightened): logs carry private data."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


class RotatingLog:
    """Append-only file with size-based rotation; safe to share between threads."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = _open_private(self.path)
        self._size = self._fh.tell()

    def _rotate(self) -> None:
        self._fh.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = _open_private(self.path)
        self._size = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._fh.closed:
                return
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._fh.write(data)
            self._fh.flush()
            self._size += len(data)

    def note(self, message: str) -> None:
        """A line from the supervisor itself, marked so it reads apart from the child's output."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.write(f"{stamp} hux-supervisor: {message}\n".encode())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


class LogPump(threading.Thread):
    """Copies a child's combined stdout/stderr pipe into a RotatingLog until EOF."""

    def __init__(self, name: str, stream: IO[bytes], sink: RotatingLog) -> None:
        super().__init__(name=f"log-{name}", daemon=True)
        self._stream = stream
        self._sink = sink

    def run(self) -> None:
        try:
            for line in iter(self._stream.readline, b""):
                self._sink.write(line)
        except (OSError, ValueError):
            pass  # pipe closed under us during shutdown
        finally:
            try:
                self._stream.close()
            except OSError:
                pass


def tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> list[str]:
    """Last ``lines`` lines of a log file (for error messages), empty when it does not exist."""
    try:
        with Path(path).open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]
