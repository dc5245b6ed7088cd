#!/usr/bin/env python3
"""Stack benchmarks: `up` to all-healthy, one full `health` run, idle memory of the native stack.

    .venv/bin/python bench/stack_lifecycle.py [--runs 3] [--health-runs 20] [--idle 60] [--scrape-interval 15s]

Each run starts the real native stack (Prometheus, Alertmanager, node_exporter,
the demo bot; Grafana when installed) from nothing in a temporary HUX_HOME on
free loopback ports — never the stack's fixed ports — through the real CLI:

* ``up`` — wall time of ``hux up`` (render, validate, start, every component ready);
* ``health passes`` — from the start of ``hux up`` until a health run has no failure;
* ``settled`` — ... until, in addition, every target has been scraped and is up and
  every rule group has been evaluated (Prometheus spreads first scrapes and
  evaluations over one interval, so this follows the scrape interval);
* ``health`` — wall time of ``hux health --json`` as a command (Python start-up
  included) and the in-process duration of the checks themselves;
* ``idle RSS`` — sum of the resident memory of every process of the stack
  (components and supervisor) after ``--idle`` seconds;
* ``down`` — wall time of ``hux down``.

Results print as a Markdown table (for docs/benchmarks.md) and as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hux.monitoring.settings import load_settings  # noqa: E402
from hux.stack.health import run_health  # noqa: E402
from hux.stack.native import NativeStack  # noqa: E402
from hux.stack.plan import StackPaths  # noqa: E402

PORTS = ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles", "inbox")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(home: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX__") and k not in ("HUX_TELEGRAM_TOKEN",)}
    env.update(HUX_HOME=str(home), HUX_CONFIG=str(config), HUX_ENV_FILE=str(home / ".env"))
    return env


def hux(env: dict[str, str], *args: str, timeout: float = 180) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "hux.cli", *args], env=env, cwd=env["HUX_HOME"],
                            capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - started, result


def health_state(settings, paths: StackPaths) -> tuple[bool, bool]:
    """(health passes: nothing failing, settled: also every target scraped and up, every rule group evaluated)."""
    report = asyncio.run(run_health(settings, paths))
    if report.status == "fail":
        return False, False
    for check in report.checks:
        if (check.name.startswith("target ") or check.name == "rule groups") and check.status != "pass":
            return True, False
    return True, True


def one_run(args: argparse.Namespace, index: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hux-bench-") as tmp:
        home = Path(tmp)
        config = home / "hux.toml"
        ports = {name: free_port() for name in PORTS}
        config.write_text("[stack.ports]\n" + "".join(f"{n} = {p}\n" for n, p in ports.items())
                          + f'\n[prometheus]\nscrape_interval = "{args.scrape_interval}"\n'
                          f'evaluation_interval = "{args.scrape_interval}"\n')
        env = env_for(home, config)
        settings = load_settings(config, environ=env)
        paths = StackPaths(home)
        started = time.perf_counter()
        up_seconds, result = hux(env, "up", "--timeout", "60")
        if result.returncode != 0:
            hux(env, "down")
            raise SystemExit(f"hux up failed:\n{result.stdout}\n{result.stderr}")
        deadline = time.monotonic() + 120
        passes_seconds = None
        while True:
            passes, settled = health_state(settings, paths)
            if passes and passes_seconds is None:
                passes_seconds = time.perf_counter() - started
            if settled:
                break
            if time.monotonic() > deadline:
                hux(env, "down")
                raise SystemExit("the stack did not settle within 120 s")
            time.sleep(0.1)
        healthy_seconds = time.perf_counter() - started
        out: dict = {"run": index, "up_seconds": up_seconds, "health_passes_seconds": passes_seconds,
                     "all_healthy_seconds": healthy_seconds}
        if index == 0:
            cli, inproc = [], []
            for _ in range(args.health_runs):
                seconds, res = hux(env, "health", "--json")
                cli.append(seconds)
                inproc.append(json.loads(res.stdout)["duration_seconds"])
            out["health_cli_seconds"] = cli
            out["health_checks_seconds"] = inproc
            out["health_checks_count"] = len(json.loads(res.stdout)["checks"])
            time.sleep(args.idle)
            memory = NativeStack(paths).memory()
            out["idle_rss_bytes"] = memory
            out["idle_rss_total_bytes"] = sum(memory.values())
        down_seconds, _ = hux(env, "down")
        out["down_seconds"] = down_seconds
        return out


def summarise(runs: list[dict], args: argparse.Namespace) -> str:
    first = runs[0]

    def stats(values: list[float]) -> str:
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        return f"median {statistics.median(values):.2f} s, p95 {p95:.2f} s, max {values[-1]:.2f} s"

    mib = {k: v / 2**20 for k, v in first["idle_rss_bytes"].items()}
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"scrape/evaluation interval {args.scrape_interval}; {len(runs)} runs.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| `hux up` (render, validate, start, all components ready) | {stats([r['up_seconds'] for r in runs])} | — |",
        f"| `hux up` to `hux health` passing (exit 0: no check fails) "
        f"| {stats([r['health_passes_seconds'] for r in runs])} | ≤ 15 s |",
        f"| `hux up` to every target scraped and up and every rule group evaluated "
        f"| {stats([r['all_healthy_seconds'] for r in runs])} | ≤ 15 s |",
        f"| `hux health --json`, whole command ({first['health_checks_count']} checks, {len(first['health_cli_seconds'])} runs) "
        f"| {stats(first['health_cli_seconds'])} | ≤ 2 s |",
        f"| the checks alone (in-process) | {stats(first['health_checks_seconds'])} | — |",
        f"| idle native stack, sum of RSS after {args.idle:.0f} s | {first['idle_rss_total_bytes'] / 2**20:.0f} MiB "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(mib.items(), key=lambda kv: -kv[1]))} MiB) | stated |",
        f"| `hux down` | {stats([r['down_seconds'] for r in runs])} | — |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--health-runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle before measuring memory")
    parser.add_argument("--scrape-interval", default="15s", help="the operator's default is 15s")
    args = parser.parse_args()
    runs = [one_run(args, i) for i in range(args.runs)]
    print(summarise(runs, args))
    print()
    print(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
