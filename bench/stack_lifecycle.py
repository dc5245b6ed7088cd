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

Results print as a Markdown table (for docs/benchmarks.md) and as JSON. The
stack comes from ``bench/_stack.py``, as ``bench/health_speed.py``'s does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import demo_stack, stats

from hux.stack.native import NativeStack


def one_run(args: argparse.Namespace, index: int) -> dict:
    started = time.perf_counter()
    with demo_stack(args.scrape_interval, up_timeout=60) as (stack, up_seconds):
        passes_seconds = stack.wait_settled(poll=0.1, started=started)
        healthy_seconds = time.perf_counter() - started
        out: dict = {"run": index, "up_seconds": up_seconds, "health_passes_seconds": passes_seconds,
                     "all_healthy_seconds": healthy_seconds}
        if index == 0:
            cli, inproc = [], []
            for _ in range(args.health_runs):
                seconds, res = stack.hux("health", "--json")
                cli.append(seconds)
                inproc.append(json.loads(res.stdout)["duration_seconds"])
            out["health_cli_seconds"] = cli
            out["health_checks_seconds"] = inproc
            out["health_checks_count"] = len(json.loads(res.stdout)["checks"])
            time.sleep(args.idle)
            memory = NativeStack(stack.paths).memory()
            out["idle_rss_bytes"] = memory
            out["idle_rss_total_bytes"] = sum(memory.values())
        down_started = time.perf_counter()
    out["down_seconds"] = time.perf_counter() - down_started   # `hux down` on leaving the stack
    return out


def summarise(runs: list[dict], args: argparse.Namespace) -> str:
    first = runs[0]

    def fmt(values: list[float]) -> str:
        s = stats(values)
        return f"median {s['median']:.2f} s, p95 {s['p95']:.2f} s, max {s['max']:.2f} s"

    mib = {k: v / 2**20 for k, v in first["idle_rss_bytes"].items()}
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"scrape/evaluation interval {args.scrape_interval}; {len(runs)} runs.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| `hux up` (render, validate, start, all components ready) | {fmt([r['up_seconds'] for r in runs])} | — |",
        f"| `hux up` to `hux health` passing (exit 0: no check fails) "
        f"| {fmt([r['health_passes_seconds'] for r in runs])} | ≤ 15 s |",
        f"| `hux up` to every target scraped and up and every rule group evaluated "
        f"| {fmt([r['all_healthy_seconds'] for r in runs])} | ≤ 15 s |",
        f"| `hux health --json`, whole command ({first['health_checks_count']} checks, {len(first['health_cli_seconds'])} runs) "
        f"| {fmt(first['health_cli_seconds'])} | ≤ 2 s |",
        f"| the checks alone (in-process) | {fmt(first['health_checks_seconds'])} | — |",
        f"| idle native stack, sum of RSS after {args.idle:.0f} s | {first['idle_rss_total_bytes'] / 2**20:.0f} MiB "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(mib.items(), key=lambda kv: -kv[1]))} MiB) | stated |",
        f"| `hux down` | {fmt([r['down_seconds'] for r in runs])} | — |",
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
