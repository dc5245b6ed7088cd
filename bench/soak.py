"""Soak: the default stack (native, demo feed, production-default alerting) for N minutes, then what reached
the alert inbox and what each component cost.

    .venv/bin/python bench/soak.py --minutes 60 [--json PATH]

It starts `hux up` in a scratch HUX_HOME on free loopback ports (never the stack's fixed ports, so it runs
beside a real stack), with nothing but the ports configured: every interval, threshold and `for` is the
shipped default. Every `--sample` seconds it reads each component's CPU seconds and RSS from /proc (by the
pids the supervisor records; a restarted component is noted). At the end it lists every notification the
inbox received (by alertname and status, from its index), each component's CPU seconds and RSS growth, and
runs `hux down`. Exit status 1 when anything but the Watchdog heartbeat reached the inbox (a false page on a
healthy demo), 2 when the stack did not start.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hux.monitoring.inbox.store import WATCHDOG, InboxStore  # noqa: E402
from hux.stack.native import NativeStack  # noqa: E402
from hux.stack.plan import StackPaths  # noqa: E402
from hux.stack.procs import cpu_seconds, rss_bytes  # noqa: E402
from hux.units import human_bytes  # noqa: E402

PORTS = ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles", "inbox")
MAX_MINUTES = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Usage:
    """One component over the soak: CPU seconds used and RSS at the first and last sample (and the peak)."""

    pid: int
    cpu_start: float
    rss_start: int
    cpu_end: float = 0.0
    rss_end: int = 0
    rss_peak: int = 0
    restarted: bool = False

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_end - self.cpu_start

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_start


@dataclass
class SoakResult:
    minutes: float
    home: str
    notifications: dict[str, int] = field(default_factory=dict)    # "alertname status" -> count
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    false_pages: list[str] = field(default_factory=list)


def _hux(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hux.cli", *args], env=env, cwd=env["HUX_HOME"],
                          capture_output=True, text=True, timeout=timeout)


def _pids(stack: NativeStack) -> dict[str, int]:
    return {name: ident.pid for name, ident in stack.recorded_children().items() if ident.alive()}


def _sample(stack: NativeStack, usage: dict[str, Usage]) -> None:
    for name, pid in _pids(stack).items():
        cpu, rss = cpu_seconds(pid), rss_bytes(pid)
        if cpu is None:
            continue
        seen = usage.get(name)
        if seen is None:
            usage[name] = Usage(pid, cpu, rss, cpu, rss, rss)
            continue
        if seen.pid != pid:       # restarted: keep counting from the new process
            seen.restarted = True
            seen.cpu_start -= cpu_seconds(seen.pid) or seen.cpu_end
            seen.pid = pid
        seen.cpu_end, seen.rss_end, seen.rss_peak = cpu, rss, max(seen.rss_peak, rss)


def soak(minutes: float, sample: float, keep: bool) -> SoakResult:
    home = Path(tempfile.mkdtemp(prefix="hux-soak-"))
    config = home / "hux.toml"
    config.write_text("[stack.ports]\n" + "".join(f"{name} = {free_port()}\n" for name in PORTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX__") and k != "HUX_TELEGRAM_TOKEN"}
    env.update(HUX_HOME=str(home), HUX_CONFIG=str(config), HUX_ENV_FILE=str(home / ".env"))
    result = SoakResult(minutes, str(home))
    up = _hux(env, "up", "--timeout", "120")
    try:
        if up.returncode != 0:
            print(up.stdout + up.stderr, file=sys.stderr)
            raise SystemExit(2)
        started = time.time()
        stack = NativeStack(StackPaths(home))
        usage: dict[str, Usage] = {}
        deadline = time.monotonic() + minutes * 60
        while True:
            _sample(stack, usage)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(sample, left))
        store = InboxStore.for_layout(StackPaths(home), readonly=True)
        try:
            entries = store.history(started - 60, include_watchdog=True, limit=1_000_000)
        finally:
            store.close()
        counts = collections.Counter(f"{e.alertname} {e.status}" for e in entries)
        result.notifications = dict(sorted(counts.items()))
        result.false_pages = sorted({e.alertname for e in entries if e.alertname != WATCHDOG})
        result.usage = {name: {**asdict(u), "cpu_seconds": round(u.cpu_seconds, 2), "rss_growth": u.rss_growth}
                        for name, u in sorted(usage.items())}
    finally:
        _hux(env, "down")
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    return result


def report(result: SoakResult) -> str:
    lines = [f"soak: {result.minutes:g} min of the default demo stack ({result.home})", "",
             "notifications that reached the inbox:"]
    lines += [f"  {key:50s} {count}" for key, count in result.notifications.items()] or ["  none"]
    lines += ["", f"{'component':15s} {'CPU s':>8s} {'RSS start':>11s} {'RSS end':>11s} {'growth':>11s} "
                  f"{'peak':>11s}"]
    for name, u in result.usage.items():
        lines.append(f"{name:15s} {u['cpu_seconds']:8.1f} {human_bytes(u['rss_start']):>11s} "
                     f"{human_bytes(u['rss_end']):>11s} {human_bytes(u['rss_growth']):>11s} "
                     f"{human_bytes(u['rss_peak']):>11s}" + ("  (restarted)" if u["restarted"] else ""))
    lines.append("")
    lines.append("FALSE PAGES: " + ", ".join(result.false_pages) if result.false_pages
                 else "only the Watchdog heartbeat arrived: no false page")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help=f"how long (at most {MAX_MINUTES:g})")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between /proc samples")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch HUX_HOME (logs, inbox) afterwards")
    args = parser.parse_args()
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    if not 1 <= args.sample <= 600:
        parser.error("--sample must be in [1, 600]")
    result = soak(args.minutes, args.sample, args.keep)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 1 if result.false_pages else 0


if __name__ == "__main__":
    sys.exit(main())
