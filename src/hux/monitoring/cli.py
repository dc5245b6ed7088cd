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
    only.add_argument("--kubernetes", type=Path, metavar="DIR",
                      help="only Kubernetes manifests for kube-prometheus-stack, into DIR (PrometheusRule, "
                      "ServiceMonitor, AlertmanagerConfig, dashboard ConfigMaps, the bot's Deployment and Service; "
                      "apply with `kubectl apply --server-side -k DIR`)")
    # --kubernetes options; unset: kube-prometheus-stack's usual values (hux.monitoring.kubernetes.KubeOptions)
    render.add_argument("--namespace", help="--kubernetes: the namespace of every object")
    render.add_argument("--release", help="--kubernetes: the Helm release of kube-prometheus-stack (its Prometheus "
                        "and Alertmanager select objects labelled release=<it>)")
    render.add_argument("--image", help="--kubernetes: the bot's image, with an exact tag")
    render.add_argument("--datasource-uid", help="--kubernetes: uid of Grafana's Prometheus datasource")
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

    targets = subparsers.add_parser(
        "targets",
        help="add, remove or list scrape targets on other hosts (node_exporters, bots); no restart needed",
        description="Edit the target files Prometheus discovers targets from (data/targets/<kind>.json, "
        "re-read every prometheus.target_refresh_interval and on change). The local node_exporter and "
        "stack.bot_targets stay targets of the rendered config.",
    )
    actions = targets.add_subparsers(dest="action", required=True, metavar="{add,remove,list}")
    for action, verb in (("add", "start scraping"), ("remove", "stop scraping")):
        sub = actions.add_parser(action, help=f"{verb} HOST:PORT")
        sub.add_argument("kind", choices=("node", "bot"), help="node: a node_exporter; bot: a bot instance")
        sub.add_argument("target", metavar="HOST:PORT", help="e.g. 10.0.0.5:9100, [2001:db8::5]:9100")
        sub.set_defaults(func=_targets)
    listing = actions.add_parser("list", help="every node and bot target: the rendered ones and the files' ones")
    listing.add_argument("kind", nargs="?", choices=("node", "bot"), help="only this kind")
    listing.add_argument("--json", action="store_true", help="print the targets as JSON")
    listing.set_defaults(func=_targets)


def _targets(args: argparse.Namespace) -> int:
    from hux.monitoring import targets
    from hux.monitoring.settings import load_settings

    settings = load_settings(args.config)
    directory = paths.Layout.current().targets_dir
    try:
        if args.action == "add":
            added = targets.add_target(settings, directory, args.kind, args.target)
            print(f"added {args.kind} target {added} to {targets.target_file(directory, args.kind)}; Prometheus "
                  f"picks it up within {settings.prometheus.target_refresh_interval} (no restart)")
            return 0
        if args.action == "remove":
            removed = targets.remove_target(settings, directory, args.kind, args.target)
            print(f"removed {args.kind} target {removed}; its series go stale once Prometheus re-reads "
                  f"{targets.target_file(directory, args.kind)}")
            return 0
        kinds = [args.kind] if args.kind else list(targets.KINDS)
        rows = [{"kind": kind, "target": target, "source": source}
                for kind in kinds
                for source, listed in (("rendered config", targets.local_targets(settings, kind)),
                                       (str(targets.target_file(directory, kind)), targets.read_targets(directory, kind)))
                for target in listed]
    except targets.TargetError as exc:
        print(f"hux targets: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['kind']:<5} {row['target']:<40} {row['source']}")
    return 0


def default_docker_root() -> Path:
    """The repository checkout this package runs from, else $HUX_HOME."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "hux").is_dir() else paths.home()


def _render(args: argparse.Namespace) -> int:
    from hux.monitoring import render
    from hux.monitoring.settings import load_settings

    settings = load_settings(args.config)
    if args.kubernetes:
        from hux.monitoring import kubernetes

        given = {"namespace": args.namespace, "release": args.release, "image": args.image,
                 "datasource_uid": args.datasource_uid}
        options = kubernetes.KubeOptions(**{key: value for key, value in given.items() if value is not None})
        written = kubernetes.render_kubernetes(settings, options, args.kubernetes)
        print(f"kubernetes: wrote {len(written)} manifests to {args.kubernetes}; apply them with "
              f"`kubectl apply --server-side -k {args.kubernetes}` (docs/scaling.md)")
        return 0
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
