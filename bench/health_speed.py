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

Besides it times ``python -c pass`` (the interpreter alone) and
``python -c "import hux.cli"`` plus the health command's imports, so the
start-up share can be split further. Prints a Markdown table and the raw JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
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
from hux.stack.plan import StackPaths  # noqa: E402

PORTS = ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "doubles", "inbox")
MAX_SETTLE_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(home: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HUX__") and k not in ("HUX_TELEGRAM_TOKEN", "HUX_CONFIG", "HUX_ENV_FILE")}
    env.update(HUX_HOME=str(home), HUX_CONFIG=str(config), HUX_ENV_FILE=str(home / ".env"))
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - started, result


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settled(settings, paths: StackPaths) -> bool:
    report = asyncio.run(run_health(settings, paths))
    if report.status == "fail":
        return False
    return all(c.status == "pass" for c in report.checks
               if c.name.startswith("target ") or c.name == "rule groups")


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p95": p95, "min": ordered[0], "max": ordered[-1]}


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="hux-bench-health-") as tmp:
        home = Path(tmp)
        config = home / "hux.toml"
        ports = {name: free_port() for name in PORTS}
        config.write_text("[stack.ports]\n" + "".join(f"{n} = {p}\n" for n, p in ports.items())
                          + f'\n[prometheus]\nscrape_interval = "{args.scrape_interval}"\n'
                          f'evaluation_interval = "{args.scrape_interval}"\n')
        env = env_for(home, config)
        hux = [sys.executable, "-m", "hux.cli"]
        _, result = timed([*hux, "up", "--timeout", "90"], env, home)
        try:
            if result.returncode != 0:
                raise SystemExit(f"hux up failed:\n{result.stdout}\n{result.stderr}")
            settings = load_settings(config, environ=env)
            paths = StackPaths(home)
            deadline = time.monotonic() + MAX_SETTLE_SECONDS
            while not settled(settings, paths):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the stack did not settle within {MAX_SETTLE_SECONDS:.0f} s")
                time.sleep(0.5)
            time.sleep(args.settle)
            command, checks, counts, cpu = [], [], [], []
            baseline: dict[str, list[float]] = {"command": [], "cpu": [], "checks": []}
            statuses: dict[str, int] = {}
            baseline_env = {**env, "PYTHONPATH": str(args.baseline_src)} if args.baseline_src else None
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
            imports = [timed([sys.executable, "-c", "import hux.cli; hux.cli.build_parser()"], env, home)[0]
                       for _ in range(args.runs)]
        finally:
            timed([*hux, "down"], env, home)
    return {
        "runs": args.runs, "checks_per_run": max(counts), "statuses": statuses,
        "command_seconds": command, "command_cpu_seconds": cpu, "checks_seconds": checks,
        "startup_seconds": [c - k for c, k in zip(command, checks)],
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
        row("`import hux.cli; build_parser()` (start-up imports)", "parser_import_seconds"),
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
