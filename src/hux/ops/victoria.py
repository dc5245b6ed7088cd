"""VictoriaMetrics, the HA topology's long-term store, in backups and restores.

Backup: ``snapshot`` asks VictoriaMetrics for a snapshot (``/snapshot/create``),
lists its files and deletes it again (``/snapshot/delete``) whatever happens.
A snapshot lives in ``<storageDataPath>/snapshots/<name>``; its ``data/small``,
``data/big`` and ``indexdb`` are symlinks to hard-linked copies elsewhere under
``storageDataPath`` (``data/*/snapshots/<name>``, ``indexdb/snapshots/<name>``),
so the files are archived under their path inside the snapshot, following
those links only while they stay inside ``storageDataPath``.

Restore: ``swap_in`` stops VictoriaMetrics, moves its data directory aside,
puts the snapshot's files in its place (a snapshot's files are a complete
``storageDataPath``), starts it and compares the verification queries recorded
at backup time; any failure puts the previous data back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from hux.ops import archive as arc
from hux.ops import names, verify
from hux.ops.clients import Prometheus
from hux.ops.errors import ApiError, BackupError, OpsError, RestoreError
from hux.ops.jsonapi import require_loopback
from hux.ops.progress import Progress
from hux.ops.service import ServiceControl, flock_held

SNAPSHOT_PREFIX = "victoria_metrics/snapshot"
#: VictoriaMetrics holds this flock while it runs (in storageDataPath and in data/)
LOCK_FILE = "flock.lock"


class VictoriaMetrics(Prometheus):
    """VictoriaMetrics single-node: the Prometheus query API plus its snapshot API. Loopback, no login."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        super().__init__(base_url, timeout=timeout, auth=None)
        self.name = "VictoriaMetrics"
        self.hint = "is victoria_metrics running? (`hux status`)"

    def ready(self) -> bool:
        return self.reachable("/health")

    def version(self) -> str | None:
        """``vm_app_version``'s version label (VictoriaMetrics 1.79 has no buildinfo endpoint)."""
        try:
            text = self.request("GET", "/metrics").text
        except ApiError:
            return None
        for line in text.splitlines():
            if line.startswith("vm_app_version{"):
                for part in line.split("{", 1)[1].split("}", 1)[0].split(","):
                    key, _, value = part.partition("=")
                    if key.strip() == "version":
                        return value.strip().strip('"')[:128] or None   # Debian's build leaves it empty
        return None

    def _snapshot_call(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        require_loopback(self.base_url, what="VictoriaMetrics' snapshot API")
        body = self._decode(self.request("GET", path, params=params, ok=(200,), timeout=600), path)
        if not isinstance(body, dict) or body.get("status") != "ok":
            error = body.get("msg") or body.get("error") if isinstance(body, dict) else body
            raise ApiError(f"VictoriaMetrics refused {path}: {str(error)[:300]}", url=path)
        return body

    def create_snapshot(self) -> str:
        body = self._snapshot_call("/snapshot/create")
        return names.safe_component(body.get("snapshot"), what="snapshot name",
                                    source=f"VictoriaMetrics at {self.base_url}")

    def delete_snapshot(self, name: str) -> None:
        self._snapshot_call("/snapshot/delete", {"snapshot": name})


@dataclass
class Snapshot:
    """A snapshot taken for one backup: its name, the files to archive and the manifest section."""

    name: str
    entries: list[arc.Entry]
    section: dict[str, Any] = field(default_factory=dict)


def snapshot_entries(snapshot_dir: Path, storage_dir: Path) -> list[arc.Entry]:
    """Every file of the snapshot as ``victoria_metrics/snapshot/<path inside it>``; its symlinks are followed
    only to directories inside ``storage_dir`` (anything else is refused: it is not a snapshot we know)."""
    root = storage_dir.resolve()
    entries: list[arc.Entry] = []
    for dirpath, dirnames, filenames in os.walk(snapshot_dir, followlinks=True):
        here = Path(dirpath)
        if not here.resolve().is_relative_to(root):
            raise BackupError(f"VictoriaMetrics' snapshot links {here} outside its data directory {storage_dir}: "
                              "refusing to archive it; check -storageDataPath")
        dirnames.sort()
        for filename in sorted(filenames):
            path = here / filename
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise BackupError(f"{path} links outside {storage_dir}: refusing to archive it")
            if not path.is_file():
                continue
            entries.append(arc.Entry(f"{SNAPSHOT_PREFIX}/{path.relative_to(snapshot_dir).as_posix()}", path))
            if len(entries) > arc.MAX_FILES:
                raise BackupError(f"VictoriaMetrics' snapshot holds more than {arc.MAX_FILES} files: "
                                  "more than an archive takes")
    return entries


@contextlib.contextmanager
def snapshot(url: str, storage_dir: Path, *, progress: Progress, warnings: list[str]) -> Iterator[Snapshot]:
    """A fresh snapshot of VictoriaMetrics at ``url`` whose data is ``storage_dir``; deleted (through its API)
    on the way out whatever happened; a failed delete is a warning that says how to delete it by hand."""
    with VictoriaMetrics(url) as vm:
        version = vm.version()
        progress.step(f"snapshotting VictoriaMetrics {version or '?'} at {url}")
        snapshots = storage_dir / "snapshots"
        before = names.snapshot_children(snapshots)
        name = vm.create_snapshot()
        try:
            if name in before:
                raise BackupError(f"VictoriaMetrics at {url} answered with snapshot {name}, which was there before "
                                  "this backup: check that its URL and data directory belong together")
            where = snapshots / name
            if where.is_symlink() or not where.is_dir():
                raise BackupError(f"VictoriaMetrics wrote snapshot {name}, but it is not in {snapshots}: its "
                                  f"-storageDataPath is not {storage_dir}")
            entries = snapshot_entries(where, storage_dir)
            size = sum(e.source.stat().st_size for e in entries)
            progress.step(f"VictoriaMetrics snapshot {name}: {len(entries)} file(s), {size} bytes")
            yield Snapshot(name, entries, {"url": url, "version": version, "snapshot": name,
                                           "files": len(entries), "bytes": size, "deleted": True})
        finally:
            if name not in before:   # never delete a snapshot this run did not create
                try:
                    vm.delete_snapshot(name)
                except OpsError as exc:
                    warnings.append(f"VictoriaMetrics snapshot {name} was not deleted ({exc}): delete it with "
                                    f"`curl '{url}/snapshot/delete?snapshot={name}'`")


def vm_locked(storage_dir: Path) -> bool:
    """True while a VictoriaMetrics holds the flock of ``storage_dir``."""
    return flock_held(storage_dir / LOCK_FILE)


def _wait(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RestoreError(message)
        time.sleep(0.2)


def swap_in(files: Path, *, storage_dir: Path, url: str, control: ServiceControl | None,
            verification: dict[str, Any], keep_old: bool, ready_timeout: float,
            progress: Progress, add: Callable[[str, str, str], None]) -> None:
    """Replace VictoriaMetrics' data with the snapshot's ``files`` (moved, not copied) and verify it.

    ``add(step, status, detail)`` reports each step. Without a control VictoriaMetrics must be stopped: the data
    is swapped and the check is left to its next start (said in the report)."""
    vm = VictoriaMetrics(url)
    try:
        running = vm.ready()
        if running and control is None:
            raise RestoreError(f"VictoriaMetrics is running at {url} and hux cannot stop it (the native stack does "
                               "not run it here): stop it first. Its data was not changed")
        if not running and vm_locked(storage_dir):
            raise RestoreError(f"{storage_dir} is in use by a VictoriaMetrics that {url} does not reach: stop it. "
                               "Its data was not changed")
        if running and control is not None:
            progress.step(f"stopping VictoriaMetrics ({control.description})")
            control.stop()
            _wait(lambda: not vm.ready() and not vm_locked(storage_dir), 60,
                  "VictoriaMetrics still runs 60 s after the stop command; its data was not changed")
            add("stop VictoriaMetrics", "ok", control.description)
        stamp = arc.utcnow().strftime("%Y%m%dT%H%M%SZ")
        aside = storage_dir.with_name(f"{storage_dir.name}.pre-restore-{stamp}")
        moved_aside = swapped = False
        try:
            if storage_dir.exists():
                os.rename(storage_dir, aside)
                moved_aside = True
            shutil.move(str(files), str(storage_dir))   # a rename on one filesystem
            swapped = True
            add("swap in VictoriaMetrics snapshot", "ok",
                f"previous data kept in {aside.name} until verified" if moved_aside else "")
            if control is None:
                add("verify VictoriaMetrics data", "skipped", "VictoriaMetrics is not running here: start it "
                    "(`hux up`) and compare a known series with a replica")
            else:
                progress.step("starting VictoriaMetrics")
                control.start()
                _wait(vm.ready, ready_timeout, f"VictoriaMetrics did not become ready within {ready_timeout:.0f}s")
                problems = verify.compare(vm, verification)
                if problems:
                    raise RestoreError("the restored VictoriaMetrics does not answer the verification queries as "
                                       "recorded at backup time:\n  " + "\n  ".join(problems[:5]))
                add("verify VictoriaMetrics data", "ok",
                    f"{len(verification.get('queries', []))} queries identical to backup time")
        except BaseException as exc:
            if control is not None and vm.ready():
                control.stop()
                _wait(lambda: not vm.ready() and not vm_locked(storage_dir), 60,
                      "VictoriaMetrics still runs 60 s after the stop command: roll back by hand")
            if swapped:
                shutil.rmtree(storage_dir, ignore_errors=True)
            if moved_aside:
                os.rename(aside, storage_dir)
            if running and control is not None:
                control.start()
            if isinstance(exc, Exception):
                raise RestoreError(f"{exc}\nRolled back: VictoriaMetrics' previous data is in place") from None
            raise
        if moved_aside:
            if keep_old:
                add("previous VictoriaMetrics data", "kept", str(aside))
            else:
                shutil.rmtree(aside, ignore_errors=True)
                add("previous VictoriaMetrics data", "removed", "after the restored data verified")
    finally:
        vm.close()
