"""``hux render`` and ``hux check-config``: monitoring as code from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hux import paths


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser(
        "render",
        help="render Prometheus, Alertmanager and Grafana configs from the settings (native run dir + docker tree)",
        description="Render the settings into the native run directory (data/run) and the committed docker tree "
        "(docker/, docker-compose.yml). Everything is checked with promtool/amtool before anything is written.",
    )
    render.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the committed docker tree differs from a fresh render")
    render.add_argument("--native-dir", type=Path, metavar="DIR", help="native run directory (default: data/run)")
    render.add_argument("--docker-root", type=Path, metavar="DIR",
                        help="where docker/ and docker-compose.yml live (default: the repository root)")
    only = render.add_mutually_exclusive_group()
    only.add_argument("--native-only", action="store_true", help="only the native run directory")
    only.add_argument("--docker-only", action="store_true", help="only the docker tree")
    render.set_defaults(func=_render)

    check = subparsers.add_parser(
        "check-config",
        help="check the monitoring configs: promtool, rule unit tests, amtool, routing tests",
        description="Run promtool check config/rules, the alert rules' unit tests, amtool check-config and "
        "one amtool routing test per alert against the rendered configuration.",
    )
    check.add_argument("--run-dir", type=Path, metavar="DIR",
                       help="an already rendered native directory (default: render the settings to a temp dir)")
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.set_defaults(func=_check_config)


def default_docker_root() -> Path:
    """The repository checkout this package runs from, else $HUX_HOME."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "hux").is_dir() else paths.home()


def _render(args: argparse.Namespace) -> int:
    from hux.monitoring import render
    from hux.monitoring.settings import load_settings

    settings = load_settings(args.config)
    docker_root = args.docker_root or default_docker_root()
    # In docker mode the native run directory is only rendered when asked for explicitly.
    native = not args.docker_only and (settings.stack.mode == "native" or args.native_only or args.native_dir)
    if args.check:
        status = 0
        if native:
            problems = render.check_native(settings)
            for problem in problems:
                print(f"native: {problem}", file=sys.stderr)
            status |= bool(problems)
        if not args.native_only:
            problems = render.check_docker(settings, docker_root)
            for problem in problems:
                print(f"docker: {problem}", file=sys.stderr)
            if problems:
                print(f"the docker tree under {docker_root} is out of date: run `hux render --docker-only` "
                      "and commit the result", file=sys.stderr)
            status |= bool(problems)
        if not status:
            print("rendered configuration is valid and the committed docker tree is up to date")
        return 1 if status else 0
    if native:
        run_dir = args.native_dir or paths.Layout.current().run_dir
        result = render.render_native(settings, run_dir, data_dir=paths.data_dir())
        print(f"native: wrote {len(result.files)} files to {result.run_dir}"
              + ("" if result.grafana_enabled else " (Grafana not found: its job and provisioning are unused)"))
    if not args.native_only:
        written = render.render_docker(settings, docker_root)
        print(f"docker: wrote {len(written)} files under {docker_root}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from hux.monitoring.checks import run_config_checks
    from hux.monitoring.settings import load_settings

    settings = load_settings(args.config)
    results = run_config_checks(settings, args.run_dir)
    if args.json:
        print(json.dumps([{"check": r.name, "ok": r.ok, "detail": r.detail} for r in results], indent=2))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'}  {r.name:<{width}}")
            if not r.ok:
                print("      " + r.detail.replace("\n", "\n      "))
        failed = sum(not r.ok for r in results)
        print(f"\n{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.ok for r in results) else 1
