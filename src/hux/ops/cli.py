"""Operator commands: backup, restore, archive housekeeping, the maintenance routine, notify-test.

``hux backup prometheus|grafana|all``, ``hux restore prometheus|grafana ARCHIVE``,
``hux backups list|prune|verify``, ``hux maintain daily|weekly|monthly [--html PATH]``,
``hux notify-test``. URLs, directories and retention come from the settings
(``stack.ports``, ``backup.*``); every one can be overridden on the command line.
Exit codes: 0 done, 1 failed (the message says why and what to do), 2 bad usage or
configuration, 3 done but a follow-up check needs attention.

ops sits below the stack in the package graph (docs/architecture.md): it does not
know who runs Prometheus. ``register`` takes ``prometheus_control``, a function of
the home that returns how to stop and start Prometheus there (a
``hux.ops.service.ServiceControl``) or None; ``hux.cli`` passes the native stack's.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from hux import paths
from hux.monitoring.alertmanager import native_paging
from hux.monitoring.durations import duration_seconds
from hux.monitoring.grafana_install import grafana_decision
from hux.monitoring.settings import Settings, load_settings
from hux.monitoring.status import FAIL, PASS, WARN
from hux.ops import alerts as alerts_view
from hux.ops import archive as arc
from hux.ops import dashboard_snapshot
from hux.ops.errors import OpsError
from hux.ops.grafana_backup import GrafanaCredentials, backup_grafana, restore_grafana
from hux.ops.maintenance import MaintenanceContext, daily, monthly, render_html, render_text, weekly
from hux.ops.notify import notify_test
from hux.ops.progress import Progress
from hux.ops.prometheus_backup import (
    HaSources,
    HaTargets,
    Replica,
    backup_prometheus,
    describe_parts,
    restore_ha,
    restore_prometheus,
)
from hux.ops.service import CommandControl, ServiceControl
from hux.ops.textfile import record_refusal
from hux.units import human_bytes

#: how to stop and start a component (``prometheus``, ``prometheus_b``, ``victoria_metrics``) under a home, when
#: something there runs it (None: nothing does)
ControlFactory = Callable[[Path, str], "ServiceControl | None"]

EXIT_FAILED = 1
EXIT_ATTENTION = 3


@dataclass
class OpsSettings:
    """Where things are, from the settings with command-line overrides."""

    settings: Settings
    home: Path
    prometheus_url: str
    alertmanager_url: str
    grafana_url: str
    backup_dir: Path
    keep: int
    keep_days: int | None
    run_dir: Path
    prometheus_data_dir: Path
    textfile_dir: Path
    log_dir: Path
    grafana_user: str
    grafana_password_file: Path | None
    hmac_key_file: Path | None = None  # backup.hmac_key_file: authenticated archives when set
    data_dir: Path | None = None  # the home's data directory (each component's data is data/<component>)


def load_ops_settings(args: argparse.Namespace) -> OpsSettings:
    settings = load_settings(getattr(args, "config", None))
    layout = paths.Layout.current()

    def given(name: str, default: Path) -> Path:
        value = getattr(args, name, None)
        return layout.resolve(value) if value else default

    return OpsSettings(
        settings=settings,
        home=layout.home,
        prometheus_url=getattr(args, "prometheus_url", None) or settings.url("prometheus"),
        alertmanager_url=getattr(args, "alertmanager_url", None) or settings.url("alertmanager"),
        grafana_url=getattr(args, "grafana_url", None) or settings.url("grafana"),
        backup_dir=given("backup_dir", layout.backup_dir(settings.backup.dir)),
        keep=settings.backup.keep,
        keep_days=settings.backup.keep_days,
        run_dir=given("config_dir", layout.run_dir),
        prometheus_data_dir=given("data_dir", layout.prometheus_data),
        textfile_dir=given("textfile_dir", layout.textfile_dir),
        log_dir=given("log_dir", layout.logs),
        grafana_user=settings.grafana.admin_user,
        grafana_password_file=given("password_file", layout.grafana_password_file(settings.grafana.admin_password_file)),
        hmac_key_file=layout.resolve(settings.backup.hmac_key_file) if settings.backup.hmac_key_file else None,
        data_dir=layout.data,
    )


def ha_replicas(ops: OpsSettings) -> tuple[Replica, ...]:
    """Topology "ha": the replicas from the settings, a first, each with its data directory (data/<component>)."""
    assert ops.data_dir is not None
    return tuple(Replica(label, ops.settings.url(name), ops.data_dir / name, name)
                 for name, label in ops.settings.stack.prometheus_replicas().items())


def _refuse_single_source(args: argparse.Namespace, command: str) -> None:
    """In the HA topology the parts come from the settings: one URL or data directory cannot name them."""
    given = [flag for flag, name in (("--prometheus-url", "prometheus_url"), ("--data-dir", "data_dir"),
                                     ("--stop-command", "stop_command"), ("--start-command", "start_command"))
             if getattr(args, name, None)]
    if given:
        raise OpsError(f"{' and '.join(given)}: with stack.topology = \"ha\", `hux {command}` takes every "
                       "replica and VictoriaMetrics from the settings (stack.ports) and stops and starts each one "
                       "through the native stack; drop these options")


def ha_sources(args: argparse.Namespace, ops: OpsSettings) -> HaSources:
    assert ops.data_dir is not None
    _refuse_single_source(args, "backup prometheus")
    members = ((args.alertmanager_url,) if getattr(args, "alertmanager_url", None)
               else tuple(ops.settings.url(m) for m in ops.settings.stack.alertmanager_members()))
    return HaSources(
        replicas=ha_replicas(ops),
        alertmanager_urls=members,
        victoria_metrics_url=ops.settings.url("victoria_metrics"),
        victoria_metrics_data_dir=ops.data_dir / "victoria_metrics",
        victoria_metrics_latency=duration_seconds(ops.settings.victoria_metrics.latency_offset),
    )


def hmac_key(ops: OpsSettings) -> bytes | None:
    """The backup HMAC key (backup.hmac_key_file), or None when archives are not authenticated."""
    return arc.load_hmac_key(ops.hmac_key_file) if ops.hmac_key_file else None


def _fail(command: str, exc: Exception) -> int:
    print(f"hux {command}: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _guard(command: str, func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except OpsError as exc:
            _count_refusal(command, args, exc)
            return _fail(command, exc)

    return run


def _count_refusal(command: str, args: argparse.Namespace, exc: OpsError) -> None:
    """A refused archive or API name (an error with a ``reason``) is counted in the textfile collector."""
    reason = getattr(exc, "reason", None)
    if not reason:
        return
    kind = command.split()[-1]
    textfile = getattr(args, "textfile_dir", None) or paths.Layout.current().textfile_dir
    try:
        record_refusal(Path(textfile), kind, reason)
    except OSError:
        pass  # the refusal itself is reported; the count is best effort


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(quiet=getattr(args, "quiet", False))


# --- backup ------------------------------------------------------------------------------------


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _print_backup(result: Any) -> None:
    manifest = result.manifest
    print(f"{result.kind} backup written: {result.path}")
    print(f"  size {human_bytes(result.size)} in {result.duration:.1f}s, {len(manifest['files'])} files, "
          f"{human_bytes(manifest['total_bytes'])} unpacked")
    if result.kind == "prometheus":
        prom = manifest["prometheus"]
        covered = prom.get("time_range")
        replica = f" (replica {prom['replica']}, {prom['url']})" if prom.get("replica") else ""
        print(f"  Prometheus {prom.get('version')}{replica}: {len(prom['blocks'])} block(s), {prom['samples']:,} samples"
              + (f", {covered['from']} .. {covered['to']}" if covered else ""))
        for down in prom.get("replicas_down") or []:
            print(f"  replica {down['replica']} at {down['url']} was {down['reason']}: the snapshot is replica "
                  f"{prom['replica']}'s")
        vm = manifest.get("victoria_metrics")
        if vm and "snapshot" in vm:
            version = f" {vm['version']}" if vm.get("version") else ""
            print(f"  VictoriaMetrics{version} at {vm['url']}: snapshot {vm['snapshot']}, "
                  f"{vm['files']} files, {human_bytes(vm['bytes'])}; deleted from its data directory")
        check = manifest["verification"]
        if covered and check["end"] > covered["min_ms"] / 1000:
            print(f"  verification: {len(check['queries'])} queries over {arc.iso(_utc(check['start']))} .. "
                  f"{arc.iso(_utc(check['end']))}, answers recorded for the restore")
        else:
            print("  verification: no data old enough yet (the last seconds before a snapshot are not compared)")
        am = manifest.get("alertmanager", {})
        if "silences" in am:
            print(f"  Alertmanager: {am['silences']} silence(s) from {am['url']}")
        excluded = manifest.get("configs", {}).get("excluded_secrets") or []
        if excluded:
            print(f"  configs: secrets left out ({', '.join(excluded)}); they are re-rendered from the environment")
    else:
        counts = manifest["grafana"]["counts"]
        print("  " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
        for kind, items in manifest["grafana"]["needs_secrets"].items():
            for item in items:
                print(f"  note: {kind.replace('_', ' ')[:-1]} {item['name']} has secrets Grafana cannot export "
                      f"({', '.join(item['fields'])}): re-enter them after a restore")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    for path in result.pruned:
        print(f"  pruned old archive {path.name}")


def backup_prometheus_cmd(args: argparse.Namespace, ops: OpsSettings | None = None) -> int:
    ops = ops or load_ops_settings(args)
    result = backup_prometheus(
        prometheus_url=ops.prometheus_url,
        backup_dir=ops.backup_dir,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        data_dir_fallback=ops.prometheus_data_dir,
        alertmanager_url=None if args.no_silences else ops.alertmanager_url,
        config_dir=None if args.no_configs else ops.run_dir,
        textfile_dir=None if args.no_metrics else ops.textfile_dir,
        keep=None if args.no_prune else ops.keep,
        keep_days=ops.keep_days,
        allow_remote=args.allow_remote,
        progress=_progress(args),
        hmac_key=hmac_key(ops),
        ha=ha_sources(args, ops) if ops.settings.stack.ha else None,
    )
    _print_backup(result)
    return EXIT_ATTENTION if result.warnings else 0


def grafana_credentials(args: argparse.Namespace, ops: OpsSettings) -> GrafanaCredentials:
    password_file = ops.grafana_password_file
    if password_file is not None and not password_file.exists() and not getattr(args, "password_file", None):
        password_file = None
    return GrafanaCredentials.from_env(user=ops.grafana_user, password_file=password_file)


def backup_grafana_cmd(args: argparse.Namespace, ops: OpsSettings | None = None) -> int:
    ops = ops or load_ops_settings(args)
    result = backup_grafana(
        grafana_url=ops.grafana_url,
        credentials=grafana_credentials(args, ops),
        backup_dir=ops.backup_dir,
        textfile_dir=None if args.no_metrics else ops.textfile_dir,
        keep=None if args.no_prune else ops.keep,
        keep_days=ops.keep_days,
        progress=_progress(args),
        hmac_key=hmac_key(ops),
    )
    _print_backup(result)
    return EXIT_ATTENTION if result.warnings else 0


def backup_all_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    codes = []
    for name, func in (("prometheus", backup_prometheus_cmd), ("grafana", backup_grafana_cmd)):
        grafana = grafana_decision(ops.settings) if name == "grafana" else None
        if grafana is not None and grafana.error:
            codes.append(_fail("backup grafana", OpsError(grafana.error)))
            continue
        if grafana is not None and not grafana.run:
            print(f"grafana backup skipped: Grafana is not part of this stack. {grafana.reason}")
            continue
        try:
            codes.append(func(args, ops))
        except OpsError as exc:
            codes.append(_fail(f"backup {name}", exc))
    return max(codes) if codes else 0


# --- restore -----------------------------------------------------------------------------------


def _print_steps(report: Any) -> None:
    width = max((len(step) for step, _, _ in report.steps), default=10)
    for step, status, detail in report.steps:
        print(f"  {step.ljust(width)}  {status.upper():8s} {detail}")


def _service_control(args: argparse.Namespace, ops: OpsSettings,
                     prometheus_control: ControlFactory | None) -> ServiceControl | None:
    """How to stop/start Prometheus: given commands, else what runs it under the home (the native stack), else offline."""
    if args.stop_command or args.start_command:
        if not (args.stop_command and args.start_command):
            raise OpsError("give both --stop-command and --start-command")
        return CommandControl.from_strings(args.stop_command, args.start_command)
    return prometheus_control(ops.home, "prometheus") if prometheus_control is not None else None


def restore_ha_cmd(args: argparse.Namespace, ops: OpsSettings, prometheus_control: ControlFactory | None) -> int:
    """Topology "ha": both replicas, then VictoriaMetrics, each stopped and started alone by the native stack."""
    assert ops.data_dir is not None
    _refuse_single_source(args, "restore prometheus")

    def control(name: str) -> ServiceControl | None:
        return prometheus_control(ops.home, name) if prometheus_control is not None else None

    replicas = ha_replicas(ops)
    controls = [control(r.component) for r in replicas]
    managed = next((str(getattr(c, "configs_managed", "") or "") for c in controls if c is not None), "")
    members = ((args.alertmanager_url,) if args.alertmanager_url
               else tuple(ops.settings.url(m) for m in ops.settings.stack.alertmanager_members()))
    targets = HaTargets(
        replicas=tuple(zip(replicas, controls, strict=True)),
        alertmanager_urls=members,
        victoria_metrics_url=ops.settings.url("victoria_metrics"),
        victoria_metrics_data_dir=ops.data_dir / "victoria_metrics",
        victoria_metrics_control=control("victoria_metrics"),
    )
    report = restore_ha(
        Path(args.archive), targets=targets, restore_silences=not args.no_silences, keep_old=args.keep_old,
        configs_skipped=managed or "the HA topology's configs are rendered from the settings (`hux render`)",
        progress=_progress(args), hmac_key=hmac_key(ops), allow_unauthenticated=args.allow_unauthenticated,
    )
    print(f"restored {args.archive} into replicas {', '.join(r.label for r in replicas)} and VictoriaMetrics")
    _print_steps(report)
    return 0 if report.ok else EXIT_ATTENTION


def restore_prometheus_cmd(args: argparse.Namespace, prometheus_control: ControlFactory | None = None) -> int:
    ops = load_ops_settings(args)
    if ops.settings.stack.ha:
        return restore_ha_cmd(args, ops, prometheus_control)
    control = _service_control(args, ops, prometheus_control)
    #: a control whose owner renders the configs itself (the native stack) says so; they are not restored then
    configs_managed = str(getattr(control, "configs_managed", "") or "")
    stack_managed = bool(configs_managed)
    restore_configs = not args.no_configs and not stack_managed
    report = restore_prometheus(
        Path(args.archive),
        data_dir=ops.prometheus_data_dir,
        prometheus_url=ops.prometheus_url,
        control=control,
        alertmanager_url=None if args.no_silences else ops.alertmanager_url,
        config_dir=ops.run_dir if restore_configs else None,
        restore_configs=restore_configs,
        keep_old=args.keep_old,
        configs_skipped=configs_managed if stack_managed and not args.no_configs else "",
        progress=_progress(args),
        hmac_key=hmac_key(ops),
        allow_unauthenticated=args.allow_unauthenticated,
    )
    print(f"restored {args.archive} into {ops.prometheus_data_dir}")
    _print_steps(report)
    return 0 if report.ok else EXIT_ATTENTION


def restore_grafana_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    report = restore_grafana(Path(args.archive), grafana_url=ops.grafana_url,
                             credentials=grafana_credentials(args, ops), overwrite=not args.keep_existing,
                             progress=_progress(args), hmac_key=hmac_key(ops),
                             allow_unauthenticated=args.allow_unauthenticated)
    print(f"restored {args.archive} into Grafana at {ops.grafana_url}")
    _print_steps(report)
    return 0 if report.ok else EXIT_ATTENTION


# --- archives ----------------------------------------------------------------------------------


def backups_list_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    archives = arc.list_archives(ops.backup_dir)
    if args.json:
        print(json.dumps([{
            "path": str(a.path), "kind": a.kind, "created_at": arc.iso(a.created_at), "size": a.size,
            "problem": a.problem or None,
            "time_range": (a.manifest or {}).get("prometheus", {}).get("time_range"),
        } for a in archives], indent=2))
        return 0
    if not archives:
        print(f"no backups in {ops.backup_dir}")
        return 0
    print(f"backups in {ops.backup_dir} (keep {ops.keep} per kind, older than {ops.keep_days} days pruned):")
    for a in archives:
        detail = a.problem and f"DAMAGED: {a.problem}"
        if not detail and a.manifest:
            if a.kind == "prometheus":
                covered = a.manifest.get("prometheus", {}).get("time_range")
                detail = f"{covered['from']} .. {covered['to']}" if covered else "empty TSDB"
            else:
                counts = a.manifest.get("grafana", {}).get("counts", {})
                detail = f"{counts.get('dashboards', 0)} dashboards, {counts.get('folders', 0)} folders"
        print(f"  {a.path.name:44s} {a.kind:10s} {human_bytes(a.size):>10s}  {detail}")
    return 0


def backups_prune_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    keep = args.keep if args.keep is not None else ops.keep
    keep_days = args.keep_days if args.keep_days is not None else ops.keep_days
    doomed = arc.prune(ops.backup_dir, keep=keep, keep_days=keep_days, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for a in doomed:
        print(f"{verb} {a.path.name}")
    print(f"{len(doomed)} archive(s) {verb} (keep {keep} per kind, and any younger than {keep_days} days)")
    return 0


def backups_verify_cmd(args: argparse.Namespace) -> int:
    manifest = arc.verify_archive(Path(args.archive), progress=_progress(args),
                                  hmac_key=hmac_key(load_ops_settings(args)),
                                  allow_unauthenticated=args.allow_unauthenticated)
    print(f"{args.archive}: {manifest['kind']} backup of {manifest['created_at']}, {len(manifest['files'])} files, "
          f"{human_bytes(manifest['total_bytes'])}: every checksum matches; {manifest.auth}")
    if manifest["kind"] == "prometheus":
        for line in describe_parts(Path(args.archive), manifest):
            print(f"  {line}")
    return 0


# --- maintenance and notify-test ----------------------------------------------------------------


def maintain_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    ctx = MaintenanceContext(
        prometheus_url=ops.prometheus_url, alertmanager_url=ops.alertmanager_url, log_dir=ops.log_dir,
        backup_dir=ops.backup_dir, textfile_dir=ops.textfile_dir, run_dir=ops.run_dir,
        prometheus_data_dir=ops.prometheus_data_dir, settings=ops.settings, allow_remote=args.allow_remote,
    )
    try:
        if args.task == "daily":
            report = daily(ctx)
        elif args.task == "weekly":
            report = weekly(ctx)
        else:
            report = monthly(ctx, clean=args.clean)
    finally:
        ctx.close()
    if args.html:
        target = Path(args.html)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_html(report), encoding="utf-8")
    if not args.quiet:
        sys.stdout.write(render_text(report))
    if args.html:
        print(f"HTML report: {args.html}")
    return {PASS: 0, WARN: EXIT_ATTENTION, FAIL: EXIT_FAILED}[report.status]


def notify_test_cmd(args: argparse.Namespace) -> int:
    ops = load_ops_settings(args)
    labels = {}
    for item in args.label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OpsError(f"--label {item!r}: use NAME=VALUE")
        labels[key] = value
    print(f"sending test alerts through Alertmanager at {ops.alertmanager_url} ...", flush=True)
    result = notify_test(ops.alertmanager_url, severities=tuple(args.severity or ("critical", "warning")),
                         extra_labels=labels, timeout=args.timeout, resolve=not args.no_resolve)
    print(f"test id {result.test_id}: {result.in_alertmanager} test alert(s) in Alertmanager, waited {result.waited:.0f}s")
    for alertname, receivers in result.routes.items():
        print(f"  {alertname} -> {', '.join(receivers) or '(no receiver)'}")
    if not result.integrations:
        print("  no receiver with a notification integration is reached by the test alerts")
    for item in result.integrations:
        print(f"  {item.integration:10s} {item.status.upper():14s} {item.delivered} delivered, {item.failed} failed "
              f"attempt(s) (expected {item.expected}; receivers: {', '.join(item.receivers)})")
    for name in result.unreached:
        print(f"  receiver {name} is not reached by severity-routed alerts (e.g. the Watchdog heartbeat)")
    if result.resolved:
        print("  test alerts resolved")
    print(result.paging.sentence())
    return 0 if result.ok else EXIT_FAILED


def alerts_cmd(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    try:
        since = duration_seconds(args.since)
    except ValueError as exc:
        raise OpsError(f"--since: {exc}") from None
    layout = paths.Layout.current()
    view = alerts_view.load_view(layout, since, native_paging(settings))
    sys.stdout.write(alerts_view.to_json(view) + "\n" if args.json else alerts_view.to_text(view, layout))
    return 0


# --- argument parsing --------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, prometheus: bool = False, alertmanager: bool = False,
            grafana: bool = False, backups: bool = False) -> None:
    if prometheus:
        parser.add_argument("--prometheus-url", metavar="URL", help="default: from the settings (http://127.0.0.1:9090)")
        parser.add_argument("--data-dir", metavar="DIR",
                            help="Prometheus's TSDB directory (default: its --storage.tsdb.path, else data/prometheus)")
    if alertmanager:
        parser.add_argument("--alertmanager-url", metavar="URL", help="default: from the settings (http://127.0.0.1:9093)")
    if grafana:
        parser.add_argument("--grafana-url", metavar="URL", help="default: from the settings (http://127.0.0.1:3000)")
        parser.add_argument("--password-file", metavar="FILE",
                            help="Grafana admin password file (default: grafana.admin_password_file or "
                                 "data/grafana/admin_password); HUX_GRAFANA_TOKEN or HUX_GRAFANA_PASSWORD win")
    if backups:
        parser.add_argument("--backup-dir", metavar="DIR", help="default: backup.dir (data/backups)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command group run without its sub-command: its help, exit 2."""
    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return show


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, prometheus_control: ControlFactory | None = None) -> None:
    """The operator commands; ``prometheus_control`` (from ``hux.cli``) says how a restore stops/starts Prometheus."""
    backup = subparsers.add_parser("backup", help="back up Prometheus (+ silences, configs) and Grafana into archives")
    bsub = backup.add_subparsers(dest="backup_kind", metavar="KIND")
    for kind, helptext, func in (
        ("prometheus", "TSDB snapshot (admin API, loopback only), Alertmanager silences, rendered configs",
         backup_prometheus_cmd),
        ("grafana", "folders, dashboards, datasources, alerting objects through Grafana's HTTP API", backup_grafana_cmd),
        ("all", "both, one archive each", backup_all_cmd),
    ):
        p = bsub.add_parser(kind, help=helptext, description=helptext)
        _common(p, prometheus=kind != "grafana", alertmanager=kind != "grafana", grafana=kind != "prometheus",
                backups=True)
        if kind != "grafana":
            p.add_argument("--config-dir", metavar="DIR", help="rendered configs to archive (default: data/run)")
            p.add_argument("--no-silences", action="store_true", help="do not save Alertmanager silences")
            p.add_argument("--no-configs", action="store_true", help="do not archive the rendered configs")
            p.add_argument("--allow-remote", action="store_true",
                           help="allow the admin API on a non-loopback Prometheus URL (not recommended)")
        p.add_argument("--textfile-dir", metavar="DIR",
                       help="node_exporter textfile directory for the backup metrics (default: data/node_exporter/textfile)")
        p.add_argument("--no-metrics", action="store_true", help="do not update the backup metrics")
        p.add_argument("--no-prune", action="store_true", help="keep every old archive this time")
        p.set_defaults(func=_guard(f"backup {kind}", func))
    backup.set_defaults(func=_usage(backup))

    restore = subparsers.add_parser("restore", help="restore a backup archive (checksums verified first)")
    rsub = restore.add_subparsers(dest="restore_kind", metavar="KIND")
    rp = rsub.add_parser(
        "prometheus", help="swap the snapshot in, verify queries, roll back on any mismatch",
        description="Verify the archive, stop Prometheus, restore the configs, move the data directory aside, swap in "
                    "the snapshot, start Prometheus and compare the verification queries recorded at backup time. "
                    "The old data is removed only after they match; otherwise everything is rolled back.",
    )
    rp.add_argument("archive", metavar="ARCHIVE")
    _common(rp, prometheus=True, alertmanager=True, backups=False)
    rp.add_argument("--config-dir", metavar="DIR", help="where to restore the configs (default: data/run)")
    rp.add_argument("--stop-command", metavar="CMD", help="command that stops Prometheus (default: the native stack's supervisor "
                                                              "stops and starts Prometheus alone)")
    rp.add_argument("--start-command", metavar="CMD", help="command that starts Prometheus")
    rp.add_argument("--no-configs", action="store_true", help="leave the config files as they are")
    rp.add_argument("--no-silences", action="store_true", help="do not re-import Alertmanager silences")
    rp.add_argument("--keep-old", action="store_true", help="keep the previous data directory (renamed) after success")
    rp.add_argument("--allow-unauthenticated", action="store_true",
                    help="restore an archive without an authenticator although backup.hmac_key_file is set "
                         "(archives made before the key was set)")
    rp.set_defaults(func=_guard("restore prometheus",
                                functools.partial(restore_prometheus_cmd, prometheus_control=prometheus_control)))
    rg = rsub.add_parser("grafana", help="recreate folders (parents first), dashboards, datasources, alerting")
    rg.add_argument("archive", metavar="ARCHIVE")
    _common(rg, grafana=True)
    rg.add_argument("--keep-existing", action="store_true", help="do not overwrite dashboards that already exist")
    rg.add_argument("--allow-unauthenticated", action="store_true",
                    help="restore an archive without an authenticator although backup.hmac_key_file is set "
                         "(archives made before the key was set)")
    rg.set_defaults(func=_guard("restore grafana", restore_grafana_cmd))
    restore.set_defaults(func=_usage(restore))

    backups = subparsers.add_parser("backups", help="list, prune or verify backup archives")
    asub = backups.add_subparsers(dest="backups_action", metavar="ACTION")
    lp = asub.add_parser("list", help="archives with their kind, size and time range")
    _common(lp, backups=True)
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=_guard("backups list", backups_list_cmd))
    pp = asub.add_parser("prune", help="apply the retention policy (backup.keep, backup.keep_days)")
    _common(pp, backups=True)
    pp.add_argument("--keep", type=int, metavar="N", help="newest archives kept per kind (default: backup.keep)")
    pp.add_argument("--keep-days", type=int, metavar="D", help="also keep archives younger than D days")
    pp.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    pp.set_defaults(func=_guard("backups prune", backups_prune_cmd))
    vp = asub.add_parser("verify", help="check every checksum of an archive")
    vp.add_argument("archive", metavar="ARCHIVE")
    vp.add_argument("--quiet", "-q", action="store_true")
    vp.add_argument("--allow-unauthenticated", action="store_true",
                    help="accept an archive without an authenticator although backup.hmac_key_file is set")
    vp.set_defaults(func=_guard("backups verify", backups_verify_cmd))
    backups.set_defaults(func=_usage(backups))

    maintain = subparsers.add_parser("maintain", help="the daily, weekly and monthly maintenance reports")
    maintain.add_argument("task", choices=("daily", "weekly", "monthly"))
    _common(maintain, prometheus=True, alertmanager=True, backups=True)
    maintain.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    maintain.add_argument("--log-dir", metavar="DIR", help="log directory to review (default: logs)")
    maintain.add_argument("--textfile-dir", metavar="DIR", help="default: data/node_exporter/textfile")
    maintain.add_argument("--config-dir", metavar="DIR", help="rendered configs to check (default: data/run)")
    maintain.add_argument("--clean", action="store_true",
                          help="monthly: delete the series of targets that no longer exist (admin API)")
    maintain.add_argument("--allow-remote", action="store_true", help="allow the admin API on a non-loopback URL")
    maintain.set_defaults(func=_guard("maintain", maintain_cmd))

    notify = subparsers.add_parser("notify-test", help="send a test alert through Alertmanager, report delivery")
    _common(notify, alertmanager=True)
    notify.add_argument("--severity", action="append", metavar="LEVEL",
                        help="severity of a test alert (repeatable; default: critical and warning)")
    notify.add_argument("--label", action="append", metavar="NAME=VALUE", help="extra label on the test alerts")
    notify.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="how long to wait for delivery (default: the longest group_wait + 45 s)")
    notify.add_argument("--no-resolve", action="store_true", help="leave the test alerts firing (they expire in 1 h)")
    notify.set_defaults(func=_guard("notify-test", notify_test_cmd))

    alerts = subparsers.add_parser("alerts", help="what the local alert inbox received: firing now, history, heartbeat",
                                   description="What fires now (with the runbook's first steps), the notifications "
                                               "received since --since, and when the last Watchdog heartbeat "
                                               "arrived, from the local alert inbox (logs/alerts.log).")
    alerts.add_argument("--since", default="24h", metavar="DURATION", help="history window, e.g. 2h, 30m (default: 24h)")
    alerts.add_argument("--json", action="store_true", help="machine-readable output")
    alerts.set_defaults(func=_guard("alerts", alerts_cmd))

    dashboard_snapshot.register(subparsers)   # hux dashboards snapshot
