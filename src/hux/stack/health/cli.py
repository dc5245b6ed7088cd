"""``hux health``: the deep health check from the command line (pass/warn/fail per check, exit 1 on a failure).

A module of its own so that ``hux health`` imports the health package and little
else: ``hux.cli`` imports only the module of the command it runs, and this one
leaves out the supervisor, the renderer and the other stack commands
(docs/benchmarks.md, "`hux health`").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from hux.monitoring.settings import load_settings
from hux.paths import Layout
from hux.stack.cli_common import mode_flags, resolve_mode
from hux.stack.health.model import HealthReport
from hux.stack.health.run import run_health
from hux.stack.output import Console, paint, table, use_colour


def health_report(config: str | None, forced_mode: str | None) -> HealthReport:
    """Load the settings and run every check against the stack under $HUX_HOME."""
    settings = load_settings(config)
    return asyncio.run(run_health(settings, Layout.current(), mode=resolve_mode(settings, forced_mode)))


def print_health(report: HealthReport, con: Console, *, as_json: bool) -> None:
    if as_json:
        con.say(json.dumps(report.to_dict(), indent=2))
        return
    colour = use_colour(con.out)
    width = int(os.environ.get("COLUMNS", "0") or 0) or 120
    rows = []
    for check in report.checks:
        detail = check.reason + (f" → fix: {check.fix}" if check.fix and check.status != "pass" else "")
        rows.append([check.name, paint(check.status.upper().ljust(4), check.status, colour), detail])
    con.say(table(["CHECK", "STATUS", "DETAIL"], rows, max_width=width))
    counts = report.counts()
    con.say()
    con.say(f"health: {paint(report.status.upper(), report.status, colour)} — {counts['fail']} failing, "
            f"{counts['warn']} warning, {counts['pass']} passing ({report.duration:.2f} s)")
    if report.failing():
        con.say("failing: " + ", ".join(report.failing()))


def _health(args: argparse.Namespace) -> int:
    report = health_report(args.config, args.mode)
    print_health(report, Console(), as_json=args.json)
    return report.exit_code


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = subparsers.add_parser("health", help="deep health check: pass/warn/fail per check, non-zero exit on failure")
    health.add_argument("--json", action="store_true", help="machine-readable output")
    # Also after the command, for the wrapper scripts (`run_monitoring_health.sh --config hux.toml`).
    health.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="settings file (as `hux --config`)")
    mode_flags(health)
    health.set_defaults(func=_health)
