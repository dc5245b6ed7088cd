"""Process identity on Linux: find out whether a recorded pid is still *our* process.

A pid alone is not an identity: after a process exits the kernel may hand the
same number to an unrelated program. We record the pid together with the
process start time (``/proc/<pid>/stat`` field 22, clock ticks since boot): a
reused pid belongs to a process started later, so the pair names exactly one
process for as long as the machine runs. The program path is recorded too, for
people; it is not part of the test because a wrapper script that ``exec``s the
real program (Grafana's ``bin/grafana-server``) keeps its pid and start time but
changes its command line. ``down`` and the supervisor signal nothing that fails
this test, and never look processes up by name.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 overall; 20th after "(comm)"


def proc_state(pid: int) -> str | None:
    """One-letter state (R, S, Z, ...) or None when the pid does not exist."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of one process so far (``/proc/<pid>/stat`` fields 14 and 15), None when gone."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else None


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


@dataclass(frozen=True)
class ProcessIdentity:
    """What we record about a process we started, to recognise it later."""

    pid: int
    start_ticks: int
    argv0: str

    @classmethod
    def of(cls, pid: int) -> "ProcessIdentity | None":
        ticks = start_ticks(pid)
        argv = cmdline(pid)
        if ticks is None:
            return None
        return cls(pid=pid, start_ticks=ticks, argv0=argv[0] if argv else "")

    @classmethod
    def from_dict(cls, data: Any) -> "ProcessIdentity | None":
        """The identity a state file recorded; None unless it is well formed (a corrupt file signals nothing)."""
        if not isinstance(data, dict):
            return None
        pid, ticks = data.get("pid"), data.get("start_ticks", -1)
        if not (isinstance(pid, int) and not isinstance(pid, bool) and isinstance(ticks, int)
                and not isinstance(ticks, bool)) or not 1 < pid < 1 << 22:
            return None
        return cls(pid=pid, start_ticks=ticks, argv0=str(data.get("argv0", ""))[:4096])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def alive(self) -> bool:
        """True while the pid still names the very process we recorded (zombies count as gone)."""
        return start_ticks(self.pid) == self.start_ticks and proc_state(self.pid) not in (None, "Z", "X")

    def signal(self, sig: int) -> bool:
        """Send ``sig`` only if the pid is still ours. Returns whether it was sent."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_gone(self, timeout: float, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(poll)
        return not self.alive()

    def terminate(self, timeout: float = 10.0) -> bool:
        """SIGTERM, wait, then SIGKILL. True when the process is gone afterwards."""
        if not self.signal(signal.SIGTERM):
            return True
        if self.wait_gone(timeout):
            return True
        self.signal(signal.SIGKILL)
        return self.wait_gone(5.0)
