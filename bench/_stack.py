"""The demo stack the stack benchmarks run against: one way to start it, wait for it and stop it.

Used by ``bench/stack_lifecycle.py`` and ``bench/health_speed.py``. A stack is the
real native one (Prometheus, Alertmanager, node_exporter, the demo bot; Grafana
when installed) started through the CLI (``hux up``) in a temporary HUX_HOME on
free loopback ports, never the stack's fixed ports.

Run alone it starts a stack, prints the environment to point ``hux`` at it and
keeps it up for ``--seconds`` (for profiling a command by hand), then stops it
(also on SIGTERM):

    .venv/bin/python bench/_stack.py --seconds 600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from hux.monitoring.settings import Ports, Settings, load_settings  # noqa: E402
from hux.stack.health import run_health  # noqa: E402
from hux.stack.plan import StackPaths  # noqa: E402

#: every port of the stack, each a free one
PORTS = tuple(Ports.model_fields)
MAX_SETTLE_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: not passed on: the operator's hux settings, and PYTHONDONTWRITEBYTECODE (an installed hux has its bytecode
#: compiled; without it every module edited since the last compile is compiled again on every command)
DROPPED = ("HUX_TELEGRAM_TOKEN", "HUX_CONFIG", "HUX_ENV_FILE", "PYTHONDONTWRITEBYTECODE")


def env_for(home: Path, config: Path) -> dict[str, str]:
    """This environment without any of the operator's hux settings, pointed at ``home`` and ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX__") and k not in DROPPED}
    env.update(HUX_HOME=str(home), HUX_CONFIG=str(config), HUX_ENV_FILE=str(home / ".env"))
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path,
          timeout: float = 180) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(wall seconds, result) of a command."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - started, result


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p95": p95, "min": ordered[0], "max": ordered[-1]}


@dataclass
class DemoStack:
    """A demo stack's home, settings file, environment and parsed settings."""

    home: Path
    config: Path
    env: dict[str, str]
    settings: Settings
    paths: StackPaths

    def hux(self, *args: str, timeout: float = 180, env: dict[str, str] | None = None,
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """(wall seconds, result) of ``python -m hux.cli ARGS`` against this stack."""
        return timed([sys.executable, "-m", "hux.cli", *args], env or self.env, self.home, timeout=timeout)

    def health_state(self) -> tuple[bool, bool]:
        """(health passes: nothing failing, settled: also every target scraped and up, every rule group evaluated)."""
        report = asyncio.run(run_health(self.settings, self.paths))
        if report.status == "fail":
            return False, False
        settled = all(c.status == "pass" for c in report.checks
                      if c.name.startswith("target ") or c.name == "rule groups")
        return True, settled

    def wait_settled(self, *, poll: float = 0.5, started: float | None = None) -> float | None:
        """Wait until settled (at most MAX_SETTLE_SECONDS); the perf_counter seconds since ``started`` when health
        first passed (None without ``started``)."""
        deadline = time.monotonic() + MAX_SETTLE_SECONDS
        passes_at = None
        while True:
            passes, settled = self.health_state()
            if passes and passes_at is None and started is not None:
                passes_at = time.perf_counter() - started
            if settled:
                return passes_at
            if time.monotonic() > deadline:
                raise SystemExit(f"the stack did not settle within {MAX_SETTLE_SECONDS:.0f} s")
            time.sleep(poll)


@contextlib.contextmanager
def demo_stack(scrape_interval: str, *, up_timeout: float = 90,
               prefix: str = "hux-bench-") -> Iterator[tuple[DemoStack, float]]:
    """Start a demo stack (``hux up``) in a temporary home; yield it with the wall seconds ``hux up`` took.
    ``hux down`` on the way out, whatever happened."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp)
        config = home / "hux.toml"
        ports = {name: free_port() for name in PORTS}
        config.write_text("[stack.ports]\n" + "".join(f"{n} = {p}\n" for n, p in ports.items())
                          + f'\n[prometheus]\nscrape_interval = "{scrape_interval}"\n'
                          f'evaluation_interval = "{scrape_interval}"\n')
        env = env_for(home, config)
        stack = DemoStack(home, config, env, load_settings(config, environ=env), StackPaths(home))
        try:
            up_seconds, result = stack.hux("up", "--timeout", str(up_timeout))
            if result.returncode != 0:
                raise SystemExit(f"hux up failed:\n{result.stdout}\n{result.stderr}")
            yield stack, up_seconds
        finally:
            stack.hux("down")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to keep the stack up (at most 3600)")
    parser.add_argument("--scrape-interval", default="5s")
    args = parser.parse_args()
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be in (0, 3600]")
    # SIGTERM (and SIGINT, which a shell's background job ignores) stop the stack on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with demo_stack(args.scrape_interval) as (stack, _):
        stack.wait_settled()
        print(f"stack up and settled; for {args.seconds:.0f} s:\n"
              f"  export HUX_HOME={stack.home} HUX_CONFIG={stack.config} HUX_ENV_FILE={stack.home / '.env'}",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
