"""The backup archive format: one ``.tar.gz`` with ``manifest.json`` as its first member.

Layout::

    hux-<kind>-<YYYYmmddTHHMMSSZ>.tar.gz
      manifest.json          format, kind, creation time, what is inside, and
                             every file's size and SHA-256
      <kind-specific files>  e.g. prometheus/snapshot/<block>/..., alertmanager/silences.json,
                             configs/..., grafana/dashboards/<uid>.json

The manifest comes first so listing archives reads a few kilobytes, and a
restore can refuse a wrong archive before unpacking anything. Archives are
written to ``<name>.partial`` and renamed only when complete, so a crash or a
full disk never leaves something that looks like a backup. Reading verifies
every checksum while unpacking into a staging directory; the caller moves the
staged files into place only when everything matched.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from hux import __version__
from hux.ops.errors import ArchiveError, BackupError
from hux.ops.progress import Progress, human_bytes

FORMAT = "hux-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("prometheus", "grafana")
CHUNK = 1024 * 1024
NAME_RE = re.compile(r"^hux-(?P<kind>[a-z]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<seq>\d+))?\.tar\.gz$")
PARTIAL_SUFFIX = ".partial"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file to pack: its name inside the archive and where it is now."""

    arcname: str
    source: Path


def _check_arcname(name: str) -> str:
    """Archive member names are relative, normalised POSIX paths (no ``..``, no absolute paths)."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or str(pure) != name or name == MANIFEST:
        raise ArchiveError(f"unsafe or reserved file name in archive: {name!r}")
    return name


def entries_from_dir(root: Path, prefix: str) -> list[Entry]:
    """Every regular file under ``root`` as entries named ``prefix/<relative path>`` (sorted, stable)."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            out.append(Entry(f"{prefix}/{rel}" if prefix else rel, path))
    return out


def disk_full_message(dest_dir: Path, needed: int | None = None) -> str:
    try:
        free = shutil.disk_usage(dest_dir).free
        space = f"{human_bytes(free)} free"
    except OSError:
        space = "free space unknown"
    need = f", the archive needs up to about {human_bytes(needed)}" if needed else ""
    return (
        f"no space left in {dest_dir} ({space}{need}): free some space, prune old archives "
        "(`hux backups prune`) or point backup.dir at a larger disk. Nothing was changed"
    )


def unique_archive_path(dest_dir: Path, kind: str, when: datetime) -> Path:
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = dest_dir / f"hux-{kind}-{stamp}.tar.gz"
    seq = 2
    while candidate.exists() or candidate.with_name(candidate.name + PARTIAL_SUFFIX).exists():
        candidate = dest_dir / f"hux-{kind}-{stamp}-{seq}.tar.gz"
        seq += 1
    return candidate


def write_archive(
    dest_dir: Path,
    kind: str,
    entries: Iterable[Entry],
    manifest: dict[str, Any],
    *,
    progress: Progress | None = None,
    compresslevel: int = 6,
    created_at: datetime | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Pack ``entries`` with a manifest into ``dest_dir``; returns the archive path and the full manifest.

    Two passes: the first hashes every file (the manifest goes first in the
    archive), the second packs and hashes again, refusing files that changed
    in between. Any failure removes the partial file and raises BackupError.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}")
    progress = progress or Progress(quiet=True)
    entries = sorted(entries, key=lambda e: e.arcname)
    seen: set[str] = set()
    for entry in entries:
        _check_arcname(entry.arcname)
        if entry.arcname in seen:
            raise BackupError(f"two files would be stored as {entry.arcname} in the archive")
        seen.add(entry.arcname)
    created_at = created_at or utcnow()
    try:
        dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # archives can hold the Alertmanager webhook URL
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {dest_dir}: {exc.strerror}; fix backup.dir") from None

    files: list[dict[str, Any]] = []
    total = sum(e.source.stat().st_size for e in entries)
    progress.start("checksumming", total)
    for entry in entries:
        digest = hashlib.sha256()
        size = 0
        with entry.source.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
        files.append({"path": entry.arcname, "size": size, "sha256": digest.hexdigest()})
    progress.finish()

    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created_at": iso(created_at),
        "created_at_unix": round(created_at.timestamp(), 3),
        "hux_version": __version__,
        "hostname": os.uname().nodename,
        **manifest,
        "total_bytes": total,
        "files": files,
    }
    target = unique_archive_path(dest_dir, kind, created_at)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    expected = {f["path"]: f for f in files}
    try:
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=int(created_at.timestamp())) as gz:
                with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    body = json.dumps(full, indent=2, sort_keys=True).encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mtime, info.mode = len(body), int(created_at.timestamp()), 0o644
                    tar.addfile(info, io.BytesIO(body))
                    progress.start("packing", total)
                    for entry in entries:
                        _add_file(tar, entry, expected[entry.arcname], progress)
                    progress.finish()
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(partial, target)
        _fsync_dir(dest_dir)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise BackupError(disk_full_message(dest_dir, total)) from None
        raise BackupError(f"could not write the archive {partial}: {exc.strerror or exc}; nothing was kept") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target, full


class _HashingReader(io.RawIOBase):
    def __init__(self, fh: Any, progress: Progress) -> None:
        self.fh, self.progress, self.digest, self.size = fh, progress, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.fh.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.digest.update(view)
            self.size += n
            self.progress.advance(n)
        return n or 0


def _add_file(tar: tarfile.TarFile, entry: Entry, expect: dict[str, Any], progress: Progress) -> None:
    stat = entry.source.stat()
    if stat.st_size != expect["size"]:
        raise BackupError(f"{entry.source} changed while the backup ran (size); run the backup again")
    info = tarfile.TarInfo(entry.arcname)
    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
    with entry.source.open("rb") as fh:
        reader = _HashingReader(fh, progress)
        tar.addfile(info, io.BufferedReader(reader, CHUNK))
    if reader.digest.hexdigest() != expect["sha256"]:
        raise BackupError(f"{entry.source} changed while the backup ran (content); run the backup again")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- reading -------------------------------------------------------------------

_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _damaged(path: Path, exc: BaseException) -> ArchiveError:
    reason = str(exc) or exc.__class__.__name__
    return ArchiveError(
        f"{path} is truncated or corrupt ({reason}): it cannot be restored. Use another archive "
        "(`hux backups list`) and check the disk the archives live on"
    )


def _open_stream(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise ArchiveError(f"{path} does not exist or is not a file: give the path of a backup archive "
                           "(`hux backups list` shows them)")
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise ArchiveError(
            f"{path} is not a hux backup archive: it is not a gzip-compressed tar file. "
            "Give a hux-<kind>-<time>.tar.gz file made by `hux backup`"
        )
    try:
        return tarfile.open(path, mode="r|gz")
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None


def _load_manifest(path: Path, tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        first = tar.next()
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None
    if first is None or first.name != MANIFEST or not first.isfile():
        raise ArchiveError(
            f"{path} is not a hux backup archive: it does not start with {MANIFEST}. "
            "Give an archive made by `hux backup`"
        )
    try:
        fh = tar.extractfile(first)
        body = fh.read() if fh else b""
        manifest = json.loads(body)
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None
    except ValueError:
        raise ArchiveError(f"{path}: its {MANIFEST} is not valid JSON; the archive is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path} is not a hux backup archive ({MANIFEST} is not a hux backup manifest)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(
            f"{path} uses backup format version {version!r}, this hux reads up to {FORMAT_VERSION}: "
            "restore it with the hux version that wrote it (or newer)"
        )
    if not isinstance(manifest.get("files"), list):
        raise ArchiveError(f"{path}: its manifest lists no files; the archive is damaged")
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest alone (reads only the start of the archive)."""
    with _open_stream(path) as tar:
        return _load_manifest(path, tar)


def check_kind(path: Path, manifest: dict[str, Any], expected: str) -> None:
    kind = manifest.get("kind")
    if kind != expected:
        raise ArchiveError(
            f"{path} is a {kind} backup, not a {expected} backup: restore it with `hux restore {kind} {path}`"
            if kind in KINDS
            else f"{path} is a backup of unknown kind {kind!r}; expected a {expected} backup"
        )


def verify_archive(
    path: Path,
    *,
    expected_kind: str | None = None,
    dest: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Check every file against the manifest; with ``dest``, unpack into it at the same time.

    Raises ArchiveError on a wrong kind, a truncated or corrupt stream, a
    missing, extra, resized or altered file. ``dest`` must be an empty
    directory the caller owns; on error its contents are removed.
    """
    progress = progress or Progress(quiet=True)
    try:
        with _open_stream(path) as tar:
            manifest = _load_manifest(path, tar)
            if expected_kind:
                check_kind(path, manifest, expected_kind)
            expected = {}
            for item in manifest["files"]:
                name = _check_arcname(str(item.get("path", "")))
                expected[name] = item
            seen: set[str] = set()
            progress.start("verifying" if dest is None else "verifying and unpacking",
                           int(manifest.get("total_bytes") or 0))
            while True:
                try:
                    member = tar.next()
                except _DAMAGED as exc:
                    raise _damaged(path, exc) from None
                if member is None:
                    break
                if member.isdir():
                    continue
                name = member.name
                if name not in expected:
                    raise ArchiveError(f"{path} holds {name!r}, which its manifest does not list: the archive was altered")
                if not member.isfile():
                    raise ArchiveError(f"{path}: {name!r} is not a regular file; refusing the archive")
                if name in seen:
                    raise ArchiveError(f"{path} holds {name!r} twice: the archive was altered")
                seen.add(name)
                _check_member(path, tar, member, expected[name], dest, progress)
            progress.finish()
            missing = sorted(set(expected) - seen)
            if missing:
                raise ArchiveError(
                    f"{path} is missing {len(missing)} file(s) its manifest lists (first: {missing[0]}): "
                    "the archive is truncated or was altered"
                )
    except BaseException:
        if dest is not None:
            _empty_dir(dest)
        raise
    return manifest


def _check_member(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, expect: dict[str, Any],
                  dest: Path | None, progress: Progress) -> None:
    name = member.name
    digest = hashlib.sha256()
    size = 0
    out = None
    if dest is not None:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        out = target.open("xb")
    try:
        try:
            fh = tar.extractfile(member)
            while fh is not None:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
                if out is not None:
                    out.write(chunk)
        except _DAMAGED as exc:
            raise _damaged(path, exc) from None
    finally:
        if out is not None:
            out.close()
    if size != expect.get("size") or digest.hexdigest() != expect.get("sha256"):
        raise ArchiveError(
            f"{path}: checksum mismatch for {name} (the manifest says {expect.get('size')} bytes, "
            f"sha256 {str(expect.get('sha256'))[:12]}…; the archive holds {size} bytes, "
            f"sha256 {digest.hexdigest()[:12]}…). The archive is corrupt or was altered: refusing it"
        )
    if out is not None:
        os.chmod(dest / name, member.mode & 0o777 or 0o644)


def _empty_dir(path: Path) -> None:
    if not path.exists():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --- listing and retention -------------------------------------------------------


@dataclass
class ArchiveInfo:
    path: Path
    kind: str
    created_at: datetime
    size: int
    manifest: dict[str, Any] | None = None
    problem: str = ""

    @property
    def age(self) -> timedelta:
        return utcnow() - self.created_at


def _parse_name(path: Path) -> tuple[str, datetime] | None:
    match = NAME_RE.match(path.name)
    if not match:
        return None
    when = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return match["kind"], when


def list_archives(backup_dir: Path, *, read_manifests: bool = True) -> list[ArchiveInfo]:
    """Archives in ``backup_dir``, oldest first (by the time in their name)."""
    out = []
    if not backup_dir.is_dir():
        return out
    for path in backup_dir.iterdir():
        parsed = _parse_name(path)
        if parsed is None or not path.is_file():
            continue
        kind, when = parsed
        info = ArchiveInfo(path, kind, when, path.stat().st_size)
        if read_manifests:
            try:
                info.manifest = read_manifest(path)
            except ArchiveError as exc:
                info.problem = str(exc).split(":", 1)[-1].strip()
        out.append(info)
    out.sort(key=lambda a: (a.created_at, a.path.name))
    return out


def select_for_pruning(archives: list[ArchiveInfo], *, keep: int, keep_days: int | None,
                       now: datetime | None = None) -> list[ArchiveInfo]:
    """What retention removes: per kind, everything but the newest ``keep`` that is older than ``keep_days``.

    The newest ``keep`` archives of each kind stay whatever their age, so a
    stopped backup job never prunes the last good backup away.
    """
    now = now or utcnow()
    keep = max(1, keep)
    doomed = []
    for kind in sorted({a.kind for a in archives}):
        mine = sorted((a for a in archives if a.kind == kind), key=lambda a: a.created_at, reverse=True)
        for archive in mine[keep:]:
            if keep_days is None or now - archive.created_at > timedelta(days=keep_days):
                doomed.append(archive)
    return doomed


def prune(backup_dir: Path, *, keep: int, keep_days: int | None, dry_run: bool = False,
          now: datetime | None = None) -> list[ArchiveInfo]:
    """Apply retention in ``backup_dir``; also removes stale ``.partial`` files (older than a day)."""
    archives = list_archives(backup_dir, read_manifests=False)
    doomed = select_for_pruning(archives, keep=keep, keep_days=keep_days, now=now)
    if dry_run:
        return doomed
    for archive in doomed:
        archive.path.unlink(missing_ok=True)
    cutoff = time.time() - 86400
    for partial in backup_dir.glob("hux-*" + PARTIAL_SUFFIX):
        try:
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
        except OSError:
            pass
    return doomed


@dataclass
class Staging:
    """A private directory next to ``anchor`` (same filesystem, so moves are renames)."""

    anchor: Path
    label: str
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        parent = self.anchor.parent
        parent.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        self.path = parent / f".{self.anchor.name}.{self.label}-{stamp}-{os.getpid()}"
        self.path.mkdir()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
