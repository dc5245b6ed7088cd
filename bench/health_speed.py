#!/usr/bin/env python3
"""How long `hux health` takes on the idle demo stack, and where the time goes.

    .venv/bin/python bench/health_speed.py [--runs 30] [--scrape-interval 5s] [--settle 10] [--baseline-src DIR]

Starts the real native stack (Prometheus, Alertmanager, node_exporter, the demo
bot; Grafana when installed) through the CLI in a temporary HUX_HOME on free
loopback ports, waits until every target is up and every rule group has been
evaluated (plus ``--settle`` seconds, so the stack is idle), then runs
``hux health --json`` as a command ``--runs`` times, one after the other, and
stops the stack with ``hux down``. For each run it records:

* ``command``: wall time of the whole command, as an operator waits for it;
* ``checks``: the checks alone (the report's own ``duration_seconds``);
* ``start-up and output``: the difference (interpreter start, imports, settings, printing);
* ``CPU``: user + system CPU time of the command, which a busy machine inflates far less than wall time.

One untimed run first (per checkout) writes the bytecode of modules edited since they last ran, as an
installed ``hux`` has it (PYTHONDONTWRITEBYTECODE is not passed on).

Besides it times ``python -c pass`` (the interpreter alone) and
``import hux.cli; hux.cli.build_parser("health")`` (the health command's parser
and every module it imports), so the start-up share can be split further. The
stack comes from ``bench/_stack.py``, as ``bench/stack_lifecycle.py``'s does.
Prints a Markdown table and the raw JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import demo_stack, stats, timed


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(args: argparse.Namespace) -> dict:
    with demo_stack(args.scrape_interval, prefix="hux-bench-health-") as (stack, _):
        stack.wait_settled()
        time.sleep(args.settle)
        env, home = stack.env, stack.home
        hux = [sys.executable, "-m", "hux.cli"]
        command, checks, counts, cpu = [], [], [], []
        baseline: dict[str, list[float]] = {"command": [], "cpu": [], "checks": []}
        statuses: dict[str, int] = {}
        baseline_env = None
        if args.baseline_src:
            # an older checkout refuses the ports it does not know yet (its settings forbid unknown keys)
            config = stack.home / "hux-baseline.toml"
            config.write_text("".join(line for line in stack.config.read_text().splitlines(keepends=True)
                                      if line.split("=")[0].strip() not in args.baseline_without_port))
            baseline_env = {**env, "PYTHONPATH": str(args.baseline_src), "HUX_CONFIG": str(config)}
        for warm_up in (env, baseline_env):   # untimed: writes the bytecode of modules edited since their last run
            if warm_up is not None:
                timed([*hux, "health", "--json"], warm_up, home, timeout=60)
        for _ in range(args.runs):
            if baseline_env is not None:   # alternate, so both see the same load
                before = cpu_children()
                seconds, res = timed([*hux, "health", "--json"], baseline_env, home, timeout=60)
                baseline["cpu"].append(cpu_children() - before)
                baseline["command"].append(seconds)
                baseline["checks"].append(json.loads(res.stdout)["duration_seconds"])
            before = cpu_children()
            seconds, res = timed([*hux, "health", "--json"], env, home, timeout=60)
            cpu.append(cpu_children() - before)
            report = json.loads(res.stdout)
            command.append(seconds)
            checks.append(report["duration_seconds"])
            counts.append(len(report["checks"]))
            statuses[report["status"]] = statuses.get(report["status"], 0) + 1
        interpreter = [timed([sys.executable, "-c", "pass"], env, home)[0] for _ in range(args.runs)]
        imports = [timed([sys.executable, "-c", "import hux.cli; hux.cli.build_parser('health')"], env, home)[0]
                   for _ in range(args.runs)]
    return {
        "runs": args.runs, "checks_per_run": max(counts), "statuses": statuses,
        "command_seconds": command, "command_cpu_seconds": cpu, "checks_seconds": checks,
        "startup_seconds": [c - k for c, k in zip(command, checks, strict=True)],
        "interpreter_seconds": interpreter, "parser_import_seconds": imports,
        "load_average": os.getloadavg(),
        **({"baseline_src": str(args.baseline_src), "baseline_command_seconds": baseline["command"],
            "baseline_command_cpu_seconds": baseline["cpu"], "baseline_checks_seconds": baseline["checks"]}
           if args.baseline_src else {}),
    }


def table(out: dict) -> str:
    def row(label: str, key: str) -> str:
        s = stats(out[key])
        return f"| {label} | median **{s['median']:.3f} s**, p95 {s['p95']:.3f} s, min {s['min']:.3f} s, max {s['max']:.3f} s |"

    return "\n".join([
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
        f"{out['runs']} runs of `hux health --json` ({out['checks_per_run']} checks; statuses {out['statuses']}); "
        f"load average after: {', '.join(f'{x:.1f}' for x in out['load_average'])}.",
        "",
        "| measure | result |",
        "|---|---|",
        row("`hux health --json`, the whole command", "command_seconds"),
        row("— CPU time of the command (user + system)", "command_cpu_seconds"),
        row("— the checks alone (in-process)", "checks_seconds"),
        row("— start-up and output (command − checks)", "startup_seconds"),
        row("`python -c pass` (the interpreter alone)", "interpreter_seconds"),
        row("`import hux.cli; build_parser('health')` (the command's parser and its imports)", "parser_import_seconds"),
        *([row(f"baseline ({out['baseline_src']}): the whole command", "baseline_command_seconds"),
           row("baseline: CPU time of the command", "baseline_command_cpu_seconds"),
           row("baseline: the checks alone", "baseline_checks_seconds")] if "baseline_src" in out else []),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--scrape-interval", default="5s")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of idle after settling")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout's src/ (e.g. a `git worktree` of an older commit): its `hux health` "
                             "runs alternately with this one against the same stack, for a before/after figure")
    parser.add_argument("--baseline-without-port", action="append", default=[], metavar="NAME",
                        help="a stack.ports key the baseline does not know (e.g. inbox): left out of its settings")
    args = parser.parse_args()
    if not 1 <= args.runs <= 500:
        parser.error("--runs must be between 1 and 500")
    out = measure(args)
    print(table(out))
    print()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
