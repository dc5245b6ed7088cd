"""Prometheus backup and restore (with Alertmanager silences and the rendered configs).

Backup (``backup_prometheus``)

1. a TSDB snapshot through the admin API (loopback only), which hard-links
   the persisted blocks and writes the in-memory head as one more block;
2. the verification answers (``hux.ops.verify``) over the range it covers;
3. Alertmanager's active and pending silences (v2 API);
4. the rendered configs (``data/run``; ``secrets/`` left out, it is re-rendered
   from the environment; the archive is owner-only since ``alertmanager.yml``
   may hold a webhook URL);
5. one archive with a manifest (``hux.ops.archive``); the snapshot directory is
   removed whatever happens; the backup metrics are updated; old archives are
   pruned by the retention policy.

Restore (``restore_prometheus``), following the spec's recovery steps:

1. verify every checksum while unpacking into a staging directory next to
   the data directory (a bad archive is refused before anything is touched);
2. stop Prometheus (``ServiceControl``), restore the configuration files, move
   the current data directory aside and the snapshot's blocks into its place;
3. start Prometheus and run the verification queries: identical answers, or
   everything is rolled back (old data and configs back, Prometheus started);
4. only then remove the old data directory; re-import the silences;
5. verify metric collection (fresh ``up`` samples) and point at
   ``hux notify-test`` for the last step, testing notifications.

Topology "ha" (``HaSources``, ``restore_ha``): the snapshot comes from the first
replica that is ready, VictoriaMetrics' own snapshot (``hux.ops.victoria``) and
the silences of one member join it; a restore puts the snapshot into every
replica in turn, then VictoriaMetrics' into it. An archive restores only into
a stack of the topology it records (``check_topology``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from hux.monitoring.durations import duration_or
from hux.monitoring.yamlout import load as yaml_load
from hux.ops import archive as arc
from hux.ops import names, verify, victoria
from hux.ops import silences as sil
from hux.ops.clients import Alertmanager, Prometheus
from hux.ops.errors import ApiError, ArchiveError, BackupError, RestoreError
from hux.ops.jsonapi import require_loopback
from hux.ops.progress import Progress
from hux.ops.service import LocalPrometheus, ServiceControl, tsdb_locked, wait_unlocked
from hux.ops.textfile import BackupRun, record_run

KIND = "prometheus"
SNAPSHOT_PREFIX = "prometheus/snapshot"
SILENCES_FILE = "alertmanager/silences.json"
CONFIGS_PREFIX = "configs"
#: only samples older than the snapshot minus a margin are verified: a scrape appends its samples
#: (stamped with the scrape's start) within its timeout, a rule evaluation within its run time
MIN_VERIFY_MARGIN_SECONDS = 15.0
MAX_VERIFY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Replica:
    """One Prometheus replica of the HA topology: its ``replica`` label, URL and data directory."""

    label: str
    url: str
    data_dir: Path
    component: str = "prometheus"


@dataclass(frozen=True)
class HaSources:
    """Topology "ha": where a backup finds each part (the replicas in order of preference, a first)."""

    replicas: tuple[Replica, ...]
    alertmanager_urls: tuple[str, ...]
    victoria_metrics_url: str
    victoria_metrics_data_dir: Path
    #: VictoriaMetrics' -search.latencyOffset (victoria_metrics.latency_offset): recent samples it does not show yet
    victoria_metrics_latency: float


def topology_of(manifest: dict[str, Any]) -> str:
    """The topology an archive was taken from (archives from before topologies were recorded: "single")."""
    return str(manifest.get("topology") or "single")


@dataclass
class BackupResult:
    kind: str
    path: Path
    size: int
    duration: float
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    pruned: list[Path] = field(default_factory=list)


# --- backup ------------------------------------------------------------------------


def resolve_data_dir(prom: Prometheus, given: Path | None, fallback: Path | None = None) -> Path:
    """Where the snapshot lands: ``given``, else Prometheus's own absolute --storage.tsdb.path, else ``fallback``."""
    if given is not None:
        return Path(given)
    try:
        path = prom.flags().get("storage.tsdb.path", "")
    except ApiError:
        path = ""
    if path and os.path.isabs(path):
        return Path(path)
    if fallback is not None:
        return Path(fallback)
    raise BackupError(
        f"cannot tell where Prometheus keeps its data (storage.tsdb.path is {path!r}, relative to its working "
        "directory): pass --data-dir"
    )


def read_blocks(snapshot_dir: Path) -> list[dict[str, Any]]:
    blocks = []
    for meta_path in sorted(snapshot_dir.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise BackupError(f"{meta_path} is unreadable: the snapshot is damaged; run the backup again") from None
        stats = meta.get("stats", {})
        blocks.append({
            "ulid": meta.get("ulid", meta_path.parent.name),
            "minTime": int(meta["minTime"]),
            "maxTime": int(meta["maxTime"]),
            "numSamples": int(stats.get("numSamples", 0)),
            "numSeries": int(stats.get("numSeries", 0)),
        })
    return blocks


def time_range(blocks: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not blocks:
        return None
    lo = min(b["minTime"] for b in blocks)
    hi = max(b["maxTime"] for b in blocks)  # exclusive, in milliseconds
    return {
        "min_ms": lo,
        "max_ms": hi,
        "from": arc.iso(_dt(lo / 1000)),
        "to": arc.iso(_dt(hi / 1000)),
        "hours": round((hi - lo) / 3_600_000, 2),
    }


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def verify_margin(prom: Prometheus) -> float:
    """The longest scrape timeout in Prometheus's running config plus 10 s (between 15 and 60 s)."""
    try:
        config = yaml_load(prom.get_json("/api/v1/status/config")["data"]["yaml"]) or {}
    except (ApiError, KeyError, TypeError, yaml.YAMLError):
        return MAX_VERIFY_MARGIN_SECONDS
    default = duration_or((config.get("global") or {}).get("scrape_timeout"), 10.0)
    longest = max([default] + [duration_or(job.get("scrape_timeout"), default) for job in config.get("scrape_configs") or []])
    return min(MAX_VERIFY_MARGIN_SECONDS, max(MIN_VERIFY_MARGIN_SECONDS, longest + 10.0))


def config_entries(config_dir: Path) -> tuple[list[arc.Entry], list[str]]:
    """Rendered config files worth archiving, and what was left out (``secrets/``: re-rendered from the environment).

    Owner-only files such as ``alertmanager.yml`` (it can hold a webhook URL) are
    archived: the archive is written owner-only too.
    """
    entries: list[arc.Entry] = []
    excluded: list[str] = []
    if not config_dir.is_dir():
        return entries, excluded
    for path in sorted(config_dir.rglob("*")):
        rel = path.relative_to(config_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if rel.parts[0] == "secrets":
            if path.is_file():
                excluded.append(rel.as_posix())
            continue
        if not path.is_file() or path.is_symlink():
            continue
        entries.append(arc.Entry(f"{CONFIGS_PREFIX}/{rel.as_posix()}", path))
    return entries, excluded


def backup_prometheus(
    *,
    prometheus_url: str,
    backup_dir: Path,
    data_dir: Path | None = None,
    data_dir_fallback: Path | None = None,
    alertmanager_url: str | None = None,
    config_dir: Path | None = None,
    textfile_dir: Path | None = None,
    keep: int | None = None,
    keep_days: int | None = None,
    allow_remote: bool = False,
    progress: Progress | None = None,
    compresslevel: int = 6,
    hmac_key: bytes | None = None,
    ha: HaSources | None = None,
) -> BackupResult:
    """Snapshot, silences and configs into one archive in ``backup_dir``. Raises BackupError/OpsError.

    With ``hmac_key`` (backup.hmac_key_file) the archive is authenticated. With ``ha`` (topology "ha") the
    snapshot comes from the first replica that is ready (``prometheus_url`` and ``data_dir`` are not used),
    the silences from the first member that answers, and VictoriaMetrics' snapshot is archived too."""
    progress = progress or Progress(quiet=True)
    return recorded_backup(
        KIND,
        lambda: _backup_prometheus(
            prometheus_url=prometheus_url, backup_dir=Path(backup_dir), data_dir=data_dir,
            data_dir_fallback=data_dir_fallback, alertmanager_url=alertmanager_url, config_dir=config_dir,
            allow_remote=allow_remote, progress=progress, compresslevel=compresslevel, hmac_key=hmac_key, ha=ha,
        ),
        backup_dir=Path(backup_dir), textfile_dir=textfile_dir, keep=keep, keep_days=keep_days,
    )


def recorded_backup(
    kind: str,
    run: Callable[[], BackupResult],
    *,
    backup_dir: Path,
    textfile_dir: Path | None,
    keep: int | None,
    keep_days: int | None,
) -> BackupResult:
    """Run one backup, record its outcome for node_exporter (success or not), then prune old archives."""
    started, clock = time.time(), time.monotonic()
    try:
        result = run()
    except BaseException:
        if textfile_dir is not None:
            record_run(Path(textfile_dir), BackupRun(kind, started, time.monotonic() - clock, success=False))
        raise
    result.duration = time.monotonic() - clock
    if textfile_dir is not None:
        record_run(Path(textfile_dir), BackupRun(kind, started, result.duration, success=True,
                                                  size_bytes=result.size, finished_at=time.time()))
    if keep is not None:
        result.pruned = [a.path for a in arc.prune(Path(backup_dir), keep=keep, keep_days=keep_days)]
    return result


def choose_replica(ha: HaSources, progress: Progress) -> tuple[Replica, list[dict[str, str]]]:
    """The first replica that is ready (a, else b) and the ones passed over, with why."""
    passed: list[dict[str, str]] = []
    for replica in ha.replicas:
        with Prometheus(replica.url) as prom:
            if prom.ready():
                return replica, passed
        passed.append({"replica": replica.label, "url": replica.url, "reason": "not ready"})
        progress.step(f"replica {replica.label} at {replica.url} is not ready: trying the next one")
    raise BackupError("no Prometheus replica is ready (" + ", ".join(f"{r.label} at {r.url}" for r in ha.replicas)
                      + "): nothing to snapshot. Start the stack (`hux up`) and check `hux status`")


def _export_silences(urls: tuple[str, ...], staging: Path, warnings: list[str]) -> tuple[arc.Entry | None, dict[str, Any]]:
    """Active and pending silences from the first Alertmanager that answers (cluster members gossip them)."""
    errors = []
    for url in urls:
        try:
            with Alertmanager(url) as am:
                exported = sil.export(am)
        except ApiError as exc:
            errors.append(str(exc))
            continue
        path = staging / "silences.json"
        path.write_text(json.dumps(exported, indent=2, sort_keys=True), encoding="utf-8")
        section: dict[str, Any] = {"url": url, "silences": len(exported)}
        if errors:
            section["skipped"] = errors
        return arc.Entry(SILENCES_FILE, path), section
    warnings.append(f"silences not saved: {'; '.join(errors)}")
    return None, {"url": urls[0] if urls else None, "error": "; ".join(errors)}


def _backup_prometheus(
    *, prometheus_url: str, backup_dir: Path, data_dir: Path | None, data_dir_fallback: Path | None,
    alertmanager_url: str | None, config_dir: Path | None, allow_remote: bool, progress: Progress,
    compresslevel: int, hmac_key: bytes | None = None, ha: HaSources | None = None,
) -> BackupResult:
    warnings: list[str] = []
    replica: Replica | None = None
    passed: list[dict[str, str]] = []
    if ha is not None:
        replica, passed = choose_replica(ha, progress)
        prometheus_url, data_dir, data_dir_fallback = replica.url, None, replica.data_dir
    require_loopback(prometheus_url, what="the Prometheus admin API (TSDB snapshot)", allow_remote=allow_remote)
    with Prometheus(prometheus_url) as prom:
        build = prom.buildinfo()
        tsdb_dir = resolve_data_dir(prom, data_dir, data_dir_fallback)
        source = f" (replica {replica.label})" if replica else ""
        progress.step(f"snapshotting Prometheus {build.get('version', '?')} at {prometheus_url}{source}")
        requested_at = time.time()
        snapshots = tsdb_dir / "snapshots"
        before = names.snapshot_children(snapshots)
        name = names.safe_component(prom.snapshot(allow_remote=allow_remote), what="snapshot name",
                                    source=f"Prometheus at {prometheus_url}")
        if name in before:
            raise BackupError(
                f"Prometheus at {prometheus_url} answered with snapshot {name}, which was already there before this "
                f"backup: it is not the snapshot just taken, so it is neither archived nor removed. Check that "
                f"--prometheus-url and --data-dir point at the same Prometheus"
            )
        snapshot_dir = snapshots / name
        staging: Path | None = None
        try:
            if snapshot_dir.is_symlink() or not snapshot_dir.is_dir():
                raise BackupError(
                    f"Prometheus wrote snapshot {name}, but it is not in {tsdb_dir}/snapshots: its data directory "
                    "is elsewhere (pass --data-dir) or on another machine (run the backup on the Prometheus host). "
                    f"Remove snapshots/{name} from its data directory by hand"
                )
            blocks = read_blocks(snapshot_dir)
            covered = time_range(blocks)
            progress.step(
                f"snapshot {name}: {len(blocks)} block(s)"
                + (f", {covered['from']} .. {covered['to']}" if covered else ", no data yet")
            )
            margin = verify_margin(prom)
            end = requested_at - margin
            if covered:
                end = min(end, covered["max_ms"] / 1000)
                start = covered["min_ms"] / 1000
            else:
                start = end
            verification = verify.record(prom, start, end)

            backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            staging = Path(_mkdtemp(backup_dir))
            entries = arc.entries_from_dir(snapshot_dir, SNAPSHOT_PREFIX)
            am_urls = ha.alertmanager_urls if ha is not None and alertmanager_url else (
                (alertmanager_url,) if alertmanager_url else ())
            am_section: dict[str, Any] = {"url": alertmanager_url, "skipped": "no Alertmanager URL given"}
            if am_urls:
                silences_entry, am_section = _export_silences(am_urls, staging, warnings)
                entries += [silences_entry] if silences_entry else []
            excluded: list[str] = []
            if config_dir is not None:
                config_list, excluded = config_entries(Path(config_dir))
                entries += config_list
                if not config_list:
                    warnings.append(f"no rendered configs found in {config_dir}")
            prom_section: dict[str, Any] = {
                "url": prometheus_url,
                "version": build.get("version"),
                "revision": build.get("revision"),
                "snapshot": name,
                "blocks": blocks,
                "time_range": covered,
                "samples": sum(b["numSamples"] for b in blocks),
            }
            manifest: dict[str, Any] = {
                "topology": "ha" if ha is not None else "single",
                "contents": {
                    "prometheus_snapshot": SNAPSHOT_PREFIX if blocks else None,
                    "silences": SILENCES_FILE if "silences" in am_section else None,
                    "configs": CONFIGS_PREFIX if config_dir is not None else None,
                },
                "prometheus": prom_section,
                "alertmanager": am_section,
                "configs": {"dir": str(config_dir) if config_dir else None, "excluded_secrets": excluded},
                "verification": verification,
            }
            with contextlib.ExitStack() as vm_snapshot:
                if ha is not None:
                    prom_section.update(replica=replica.label if replica else None, replicas_down=passed)
                    manifest["victoria_metrics"] = _victoria_part(ha, vm_snapshot, entries, manifest, start,
                                                                  margin, progress, warnings)
                path, full = arc.write_archive(backup_dir, KIND, entries, manifest, progress=progress,
                                               compresslevel=compresslevel, hmac_key=hmac_key)
        except OSError as exc:
            raise BackupError(_os_error_message(exc, backup_dir)) from None
        finally:
            ours = names.only_new_child(snapshots, name, before)  # never delete what this run did not create
            if ours is not None:
                shutil.rmtree(ours, ignore_errors=True)
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(KIND, path, path.stat().st_size, 0.0, full, warnings)


def _victoria_part(ha: HaSources, stack: contextlib.ExitStack, entries: list[arc.Entry], manifest: dict[str, Any],
                   start: float, margin: float, progress: Progress, warnings: list[str]) -> dict[str, Any]:
    """VictoriaMetrics' snapshot (deleted when ``stack`` closes, after the archive is written) and its answers.

    VictoriaMetrics down is a warning: the replica's snapshot is still worth keeping, the manifest says
    what is missing."""
    try:
        snap = stack.enter_context(victoria.snapshot(ha.victoria_metrics_url, ha.victoria_metrics_data_dir,
                                                     progress=progress, warnings=warnings))
        taken_at = time.time()
        # samples reach it by remote write and show after its latency offset: only older ones are compared
        end = taken_at - margin - ha.victoria_metrics_latency
        with victoria.VictoriaMetrics(ha.victoria_metrics_url) as vm:
            verification = verify.record(vm, min(start, end), end)
    except (ApiError, BackupError) as exc:
        warnings.append(f"VictoriaMetrics is not in this backup: {exc}")
        manifest["contents"]["victoria_metrics_snapshot"] = None
        return {"url": ha.victoria_metrics_url, "error": str(exc)}
    entries += snap.entries
    manifest["contents"]["victoria_metrics_snapshot"] = victoria.SNAPSHOT_PREFIX
    return {**snap.section, "verification": verification}


def _mkdtemp(backup_dir: Path) -> str:
    return tempfile.mkdtemp(prefix=".hux-staging-", dir=backup_dir)


def _os_error_message(exc: OSError, where: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return arc.disk_full_message(where)
    return f"backup failed: {exc.strerror or exc} ({exc.filename or where}); nothing was kept"


# --- restore -----------------------------------------------------------------------


@dataclass
class RestoreReport:
    archive: Path
    manifest: dict[str, Any]
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (step, status, detail)
    silences: sil.ImportResult | None = None
    restarted_at: float = 0.0

    def add(self, step: str, status: str, detail: str = "") -> None:
        self.steps.append((step, status, detail))

    @property
    def ok(self) -> bool:
        return all(status != "failed" for _, status, _ in self.steps)


class _ConfigSwap:
    """Restores config files into ``config_dir``, remembering what was there to put it back."""

    def __init__(self, source: Path, config_dir: Path) -> None:
        self.source, self.config_dir = source, config_dir
        self._aside: Path | None = None  # made on first use (mkdtemp): commit() removes only that
        self.changed: list[tuple[Path, bool]] = []  # (target, existed before)

    @property
    def aside(self) -> Path:
        if self._aside is None:
            self.config_dir.parent.mkdir(parents=True, exist_ok=True)
            self._aside = Path(tempfile.mkdtemp(prefix=f".{self.config_dir.name}.pre-restore-",
                                                dir=self.config_dir.parent))
        return self._aside

    def apply(self) -> int:
        for path in sorted(self.source.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(self.source)
            # the same files the backup takes: never secrets/ (re-rendered from the environment), no dot files
            if rel.parts[0] == "secrets" or any(part.startswith(".") for part in rel.parts):
                continue
            target = self.config_dir / rel
            if target.is_file() and not target.is_symlink() and target.read_bytes() == path.read_bytes():
                continue
            existed = target.is_file() and not target.is_symlink()
            mode = arc.SAFE_FILE_MODE
            if existed:
                mode = target.stat().st_mode & 0o750  # keep the mode it had (never wider than 0750)
                keep = self.aside / rel
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(target, keep)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".restore-tmp", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.chmod(tmp, mode)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.changed.append((target, existed))
        return len(self.changed)

    def rollback(self) -> None:
        for target, existed in reversed(self.changed):
            if existed:
                shutil.copy2(self.aside / target.relative_to(self.config_dir), target)
            else:
                target.unlink(missing_ok=True)
        self.changed.clear()
        self.commit()

    def commit(self) -> None:
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None


def restore_prometheus(
    archive_path: Path,
    *,
    data_dir: Path,
    prometheus_url: str,
    control: ServiceControl | None = None,
    alertmanager_url: str | None = None,
    config_dir: Path | None = None,
    restore_configs: bool = True,
    restore_silences: bool = True,
    keep_old: bool = False,
    ready_timeout: float = 180.0,
    collection_timeout: float = 90.0,
    check_collection: bool = True,
    configs_skipped: str = "",
    progress: Progress | None = None,
    hmac_key: bytes | None = None,
    allow_unauthenticated: bool = False,
) -> RestoreReport:
    """Restore a Prometheus archive; RestoreError (after rolling back) or ArchiveError when refused.

    ``configs_skipped``: why the configuration files are not restored (shown in the report), if so.
    ``hmac_key``: the archive must carry a matching authenticator (checked before anything is unpacked)
    unless ``allow_unauthenticated``.
    """
    progress = progress or Progress(quiet=True)
    archive_path, data_dir = Path(archive_path), Path(data_dir)
    # the manifest first (size-capped, schema-checked, authenticated with a key): a bad archive is refused
    # before anything is written; its validated total (the sum of its files) sizes the free-space check
    manifest = arc.read_manifest(archive_path, hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
    arc.check_kind(archive_path, manifest, KIND)
    check_topology(archive_path, manifest, "single")
    report = RestoreReport(archive_path, manifest)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    arc.check_free_space(data_dir.parent, manifest["total_bytes"], what=f"the archive next to {data_dir}")
    staging = arc.Staging(data_dir, "restore")
    try:
        manifest = arc.verify_archive(archive_path, expected_kind=KIND, dest=staging.path, progress=progress,
                                      hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
    except BaseException:
        staging.remove()
        raise
    report.manifest = manifest
    report.add("verify archive", "ok", f"{len(manifest['files'])} files, checksums match; {manifest.auth}")
    if configs_skipped:
        report.add("restore configuration files", "skipped", configs_skipped)
    try:
        _swap_and_verify(report, staging, data_dir=data_dir, prometheus_url=prometheus_url, control=control,
                         config_dir=config_dir if restore_configs else None, keep_old=keep_old,
                         ready_timeout=ready_timeout, progress=progress)
    finally:
        staging.remove()

    if restore_silences and alertmanager_url and manifest.get("contents", {}).get("silences"):
        _restore_silences(report, archive_path, alertmanager_url)
    elif restore_silences and manifest.get("contents", {}).get("silences"):
        report.add("silences", "skipped", "no Alertmanager URL given")
    if config_dir is not None and restore_configs and alertmanager_url:
        _reload_alertmanager(report, alertmanager_url)
    if control is not None and check_collection:
        _check_collection(report, prometheus_url, collection_timeout, since=report.restarted_at)
    report.add("test notifications", "next", "run `hux notify-test` to send a test alert through every receiver")
    return report


PARTS = (("prometheus_snapshot", "Prometheus snapshot"), ("victoria_metrics_snapshot", "VictoriaMetrics snapshot"),
         ("silences", "silences"), ("configs", "configs"))


def describe_parts(archive_path: Path, manifest: dict[str, Any]) -> list[str]:
    """What a Prometheus archive holds, part by part, and where each part came from; ArchiveRefused when the
    manifest names a part none of its files belong to."""
    contents = manifest.get("contents") or {}
    paths = [item["path"] for item in manifest.get("files", [])]
    lines = [f"topology {topology_of(manifest)}"]
    for key, label in PARTS:
        prefix = contents.get(key)
        if not prefix:
            continue
        count = sum(1 for path in paths if path == prefix or path.startswith(prefix.rstrip("/") + "/"))
        if count == 0:
            raise arc.ArchiveRefused(f"{archive_path}: its manifest lists a {label} ({prefix}) but no file of it: the "
                                 "archive is damaged or was altered; use another one (`hux backups list`)",
                                 "manifest_invalid")
        lines.append(f"{label}: {count} file(s){_source(manifest, key)}")
    if topology_of(manifest) == "ha" and not contents.get("victoria_metrics_snapshot"):
        error = (manifest.get("victoria_metrics") or {}).get("error")
        lines.append("no VictoriaMetrics snapshot" + (f" ({error})" if error else ""))
    return lines


def _source(manifest: dict[str, Any], key: str) -> str:
    if key == "prometheus_snapshot":
        prom = manifest.get("prometheus") or {}
        replica = f"replica {prom['replica']} at " if prom.get("replica") else ""
        return f" from {replica}{prom.get('url')}"
    if key == "victoria_metrics_snapshot":
        vm = manifest.get("victoria_metrics") or {}
        return f" ({vm.get('snapshot')}) from {vm.get('url')}"
    if key == "silences":
        return f" ({(manifest.get('alertmanager') or {}).get('silences')}) from {(manifest.get('alertmanager') or {}).get('url')}"
    return ""


def check_topology(archive_path: Path, manifest: dict[str, Any], running: str) -> None:
    """A Prometheus archive restores only into a stack of the topology it was taken from."""
    taken = topology_of(manifest)
    if taken != running:
        raise RestoreError(
            f"{archive_path} is a backup of the {taken} topology, but this stack runs the {running} topology "
            f"(stack.topology = \"{running}\"): restore it into a stack with stack.topology = \"{taken}\" "
            "(another HUX_HOME, or change the setting and `hux up` first). Nothing was changed"
        )


@dataclass(frozen=True)
class HaTargets:
    """Topology "ha": where a restore puts each part, and how it stops and starts each component."""

    replicas: tuple[tuple[Replica, ServiceControl | None], ...]
    alertmanager_urls: tuple[str, ...]
    victoria_metrics_url: str
    victoria_metrics_data_dir: Path
    victoria_metrics_control: ServiceControl | None


def _link_tree(source: Path, dest: Path) -> None:
    """``source``'s files under ``dest`` as hard links (copies across filesystems); TSDB blocks never change."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    shutil.copytree(source, dest, copy_function=link)


def restore_ha(
    archive_path: Path,
    *,
    targets: HaTargets,
    restore_silences: bool = True,
    keep_old: bool = False,
    ready_timeout: float = 180.0,
    collection_timeout: float = 90.0,
    check_collection: bool = True,
    configs_skipped: str = "",
    progress: Progress | None = None,
    hmac_key: bytes | None = None,
    allow_unauthenticated: bool = False,
) -> RestoreReport:
    """Restore an HA archive: its Prometheus snapshot into every replica (each stopped and started alone, in
    turn, and verified), then its VictoriaMetrics snapshot, then the silences through one member.

    A replica that fails verification is rolled back and the restore stops there (the error says what was
    restored before it). The archive is unpacked once; the second replica gets hard links of the blocks."""
    progress = progress or Progress(quiet=True)
    archive_path = Path(archive_path)
    manifest = arc.read_manifest(archive_path, hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
    arc.check_kind(archive_path, manifest, KIND)
    check_topology(archive_path, manifest, "ha")
    describe_parts(archive_path, manifest)
    report = RestoreReport(archive_path, manifest)
    first = targets.replicas[0][0].data_dir
    first.parent.mkdir(parents=True, exist_ok=True)
    arc.check_free_space(first.parent, manifest["total_bytes"], what=f"the archive next to {first}")
    stagings = [arc.Staging(replica.data_dir, "restore") for replica, _ in targets.replicas]
    try:
        manifest = arc.verify_archive(archive_path, expected_kind=KIND, dest=stagings[0].path, progress=progress,
                                      hmac_key=hmac_key, allow_unauthenticated=allow_unauthenticated)
        report.manifest = manifest
        source = manifest.get("prometheus", {}).get("replica")
        report.add("verify archive", "ok", f"{len(manifest['files'])} files, checksums match; {manifest.auth}; "
                   f"Prometheus snapshot of replica {source}")
        if configs_skipped:
            report.add("restore configuration files", "skipped", configs_skipped)
        blocks = stagings[0].path / SNAPSHOT_PREFIX
        blocks.mkdir(parents=True, exist_ok=True)
        for staging in stagings[1:]:
            _link_tree(blocks, staging.path / SNAPSHOT_PREFIX)
        done: list[str] = []
        for (replica, control), staging in zip(targets.replicas, stagings, strict=True):
            part = RestoreReport(archive_path, manifest)
            try:
                _swap_and_verify(part, staging, data_dir=replica.data_dir, prometheus_url=replica.url,
                                 control=control, config_dir=None, keep_old=keep_old, ready_timeout=ready_timeout,
                                 progress=progress)
            except RestoreError as exc:
                raise RestoreError(f"replica {replica.label}: {exc}" + _restored_before(done)) from None
            finally:
                report.steps += [(f"replica {replica.label}: {step}", status, detail)
                                 for step, status, detail in part.steps]
            report.restarted_at = max(report.restarted_at, part.restarted_at)
            done.append(f"replica {replica.label}")
        vm_files = stagings[0].path / victoria.SNAPSHOT_PREFIX
        vm = manifest.get("victoria_metrics") or {}
        if manifest.get("contents", {}).get("victoria_metrics_snapshot") and vm_files.is_dir():
            try:
                victoria.swap_in(vm_files, storage_dir=targets.victoria_metrics_data_dir,
                                 url=targets.victoria_metrics_url, control=targets.victoria_metrics_control,
                                 verification=vm.get("verification") or {}, keep_old=keep_old,
                                 ready_timeout=ready_timeout, progress=progress, add=report.add)
            except RestoreError as exc:
                raise RestoreError(f"{exc}{_restored_before(done)}") from None
        else:
            report.add("VictoriaMetrics", "skipped", "the archive holds no VictoriaMetrics snapshot"
                       + (f" (at backup time: {vm['error']})" if vm.get("error") else "")
                       + "; its data was left as it is")
    finally:
        for staging in stagings:
            staging.remove()

    if restore_silences and manifest.get("contents", {}).get("silences"):
        _restore_silences(report, archive_path, _first_answering(targets.alertmanager_urls))
    if check_collection:
        for replica, control in targets.replicas:
            if control is not None:
                part = RestoreReport(archive_path, manifest)
                _check_collection(part, replica.url, collection_timeout, since=report.restarted_at)
                report.steps += [(f"replica {replica.label}: {step}", status, detail)
                                 for step, status, detail in part.steps]
    report.add("test notifications", "next", "run `hux notify-test` to send a test alert through every receiver")
    return report


def _restored_before(done: list[str]) -> str:
    return f"\nrestored and verified before this: {', '.join(done)}" if done else ""


def _first_answering(urls: tuple[str, ...]) -> str:
    """The first cluster member that is ready (silences are gossiped to the others); the first one otherwise."""
    for url in urls:
        with Alertmanager(url) as am:
            if am.ready():
                return url
    return urls[0]


def _swap_and_verify(report: RestoreReport, staging: arc.Staging, *, data_dir: Path, prometheus_url: str,
                     control: ServiceControl | None, config_dir: Path | None, keep_old: bool,
                     ready_timeout: float, progress: Progress) -> None:
    manifest = report.manifest
    blocks_dir = staging.path / SNAPSHOT_PREFIX
    blocks_dir.mkdir(parents=True, exist_ok=True)
    prom = Prometheus(prometheus_url)
    running = prom.ready()
    if running and control is None:
        raise RestoreError(
            f"Prometheus is running at {prometheus_url} and hux was not told how to stop it: pass "
            "--stop-command and --start-command (e.g. systemctl stop/start prometheus), or stop it first "
            "for an offline restore. Nothing was changed"
        )
    if not running and tsdb_locked(data_dir):
        raise RestoreError(
            f"{data_dir} is in use by a Prometheus that {prometheus_url} does not reach: stop that Prometheus "
            "or pass the right --prometheus-url. Nothing was changed"
        )
    if running and control is not None:  # (running without a control raised above)
        progress.step(f"stopping Prometheus ({control.description})")
        control.stop()
        _wait_down(prom, data_dir)
        report.add("stop Prometheus", "ok", control.description)

    configs = None
    stamp = arc.utcnow().strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir.with_name(f"{data_dir.name}.pre-restore-{stamp}")
    moved_aside = False
    swapped = False
    try:
        if config_dir is not None and (staging.path / CONFIGS_PREFIX).is_dir():
            configs = _ConfigSwap(staging.path / CONFIGS_PREFIX, config_dir)
            changed = configs.apply()
            report.add("restore configuration files", "ok", f"{changed} file(s) changed in {config_dir}")
        if data_dir.exists():
            os.rename(data_dir, aside)
            moved_aside = True
        os.rename(blocks_dir, data_dir)
        swapped = True
        blocks = manifest.get("prometheus", {}).get("blocks", [])
        report.add("swap in snapshot blocks", "ok",
                   f"{len(blocks)} block(s); previous data kept in {aside.name} until verified" if moved_aside
                   else f"{len(blocks)} block(s)")
        report.restarted_at = time.time()
        problems = _start_and_compare(prom, data_dir, control, manifest, ready_timeout, progress)
        if problems:
            raise RestoreError(
                "the restored data does not answer the verification queries as recorded at backup time:\n  "
                + "\n  ".join(problems[:5])
            )
        report.add("verify restored data", "ok",
                   f"{len(manifest.get('verification', {}).get('queries', []))} queries identical to backup time")
    except BaseException as exc:
        _rollback(prom, control, data_dir, aside, moved_aside, swapped, configs, running, ready_timeout)
        if isinstance(exc, Exception):
            raise RestoreError(f"{exc}\nRolled back: the previous data and configs are in place"
                               + (" and Prometheus is running again" if running else "")) from None
        raise
    finally:
        prom.close()
    if configs is not None:
        configs.commit()
    if moved_aside:
        if keep_old:
            report.add("previous data", "kept", str(aside))
        else:
            shutil.rmtree(aside, ignore_errors=True)
            report.add("previous data", "removed", "after the restored data verified")


def _wait_down(prom: Prometheus, data_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while prom.ready():
        if time.monotonic() > deadline:
            raise RestoreError(f"Prometheus still answers {timeout:.0f}s after the stop command; nothing was changed")
        time.sleep(0.2)
    wait_unlocked(data_dir, timeout)


def _start_and_compare(prom: Prometheus, data_dir: Path, control: ServiceControl | None, manifest: dict[str, Any],
                       ready_timeout: float, progress: Progress) -> list[str]:
    verification = manifest.get("verification", {})
    if control is None:
        progress.step("verifying with a temporary Prometheus (the real one is not running)")
        with LocalPrometheus(data_dir, ready_timeout=ready_timeout) as local, Prometheus(local.url) as temp:
            return verify.compare(temp, verification)
    progress.step("starting Prometheus")
    control.start()
    prom.wait_ready(ready_timeout)
    progress.step("running the verification queries")
    return verify.compare(prom, verification)


def _rollback(prom: Prometheus, control: ServiceControl | None, data_dir: Path, aside: Path, moved_aside: bool,
              swapped: bool, configs: _ConfigSwap | None, was_running: bool, ready_timeout: float) -> None:
    if control is not None and prom.ready():
        control.stop()
        _wait_down(prom, data_dir)
    if swapped:
        shutil.rmtree(data_dir, ignore_errors=True)
    if moved_aside:
        os.rename(aside, data_dir)
    if configs is not None:
        configs.rollback()
    if was_running and control is not None:
        control.start()
        prom.wait_ready(ready_timeout)


def _restore_silences(report: RestoreReport, archive_path: Path, alertmanager_url: str) -> None:
    try:
        silences = read_member_json(archive_path, SILENCES_FILE, report.manifest)
        with Alertmanager(alertmanager_url) as am:
            result = sil.import_silences(am, silences)
    except (ApiError, ArchiveError) as exc:
        report.add("re-import silences", "failed", str(exc))
        return
    report.silences = result
    status = "failed" if result.failed else "ok"
    detail = (f"{len(result.added)} added, {result.already_present} already present, "
              f"{result.expired} already ended")
    if result.failed:
        detail += "; " + "; ".join(result.failed[:3])
    report.add("re-import silences", status, detail)


def read_member_json(archive_path: Path, member: str, manifest: dict[str, Any]) -> Any:
    """One small JSON member of a verified archive, checked against its manifest checksum."""

    body = arc.read_member(archive_path, member, manifest)  # bounded by its declared size, checksum checked
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ArchiveError(f"{archive_path}: {member} is not valid JSON; re-import skipped") from None


def _reload_alertmanager(report: RestoreReport, alertmanager_url: str) -> None:
    with Alertmanager(alertmanager_url) as am:
        try:
            am.request("POST", "/-/reload", ok=(200,))
        except ApiError as exc:
            report.add("reload Alertmanager config", "failed", str(exc))
            return
    report.add("reload Alertmanager config", "ok", "")


def _check_collection(report: RestoreReport, prometheus_url: str, timeout: float, *, since: float) -> None:
    """Recovery step 3: metric collection works again (a scrape newer than the restart)."""
    deadline = time.monotonic() + timeout
    with Prometheus(prometheus_url) as prom:
        while True:
            try:
                latest = prom.scalar("max(timestamp(up))")
                targets = prom.targets().get("activeTargets", [])
            except ApiError as exc:
                report.add("verify metric collection", "failed", str(exc))
                return
            if not targets and time.monotonic() > deadline:
                report.add("verify metric collection", "skipped", "Prometheus has no scrape targets configured")
                return
            scraped = targets and all(t.get("health") != "unknown" for t in targets)
            if scraped and latest is not None and latest >= since:
                up = sum(1 for t in targets if t.get("health") == "up")
                down = [f"{t['labels'].get('job')}/{t['labels'].get('instance')}" for t in targets
                        if t.get("health") == "down"]
                detail = f"{up}/{len(targets)} targets up" + (f"; down: {', '.join(down[:5])}" if down else "")
                report.add("verify metric collection", "ok" if not down else "warning", detail)
                return
            if time.monotonic() > deadline:
                report.add("verify metric collection", "failed",
                           f"no new scrape within {timeout:.0f}s: check the targets page and logs/prometheus.log")
                return
            time.sleep(1.0)
