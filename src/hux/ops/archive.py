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
import hmac
import io
import json
import os
import re
import shutil
import stat
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hux import __version__
from hux.ops.errors import ArchiveError, BackupError, OpsError
from hux.ops.progress import Progress
from hux.units import human_bytes

FORMAT = "hux-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("prometheus", "grafana")
CHUNK = 1024 * 1024
NAME_RE = re.compile(r"hux-(?P<kind>[a-z]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<seq>\d+))?\.tar\.gz")
PARTIAL_SUFFIX = ".partial"
#: the authenticator (authenticated archives): HMAC-SHA256 of the manifest bytes, the archive's second member
AUTH_MEMBER = "manifest.hmac"
AUTH_CONTEXT = b"hux-backup manifest v1\n"
MIN_KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 4096
# bounds on what a restore reads from an archive before trusting it
MAX_MANIFEST_BYTES = 8 * 1024 * 1024  # a manifest of 100 000 files is about 15 MB; hux writes far fewer
MAX_AUTH_BYTES = 4096
MAX_HEADER_BYTES = 64 * 1024  # a pax / GNU long-name member header
MAX_FILES = 100_000
MAX_QUERIES = 1000
MAX_NAME = 1024
MAX_MEMBER_BYTES = 1 << 50
SAFE_FILE_MODE = 0o600  # unpacked files and folders: owner-only, never the modes the archive claims
SAFE_DIR_MODE = 0o700


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_arcname(name: str) -> str:
    """Archive member names are relative, normalised POSIX paths (no ``..``, no absolute paths, no control
    characters, at most MAX_NAME characters and 255 per component)."""
    pure = PurePosixPath(name)
    if (not name or len(name) > MAX_NAME or pure.is_absolute() or ".." in pure.parts or str(pure) != name
            or name in (MANIFEST, AUTH_MEMBER) or _CONTROL.search(name)
            or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in pure.parts)):
        raise ArchiveError(f"unsafe or reserved file name in archive: {name[:200]!r}")
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
    hmac_key: bytes | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Pack ``entries`` with a manifest into ``dest_dir``; returns the archive path and the full manifest.

    With ``hmac_key`` the manifest is followed by its authenticator (AUTH_MEMBER).

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
                    if hmac_key is not None:
                        auth = authenticator(hmac_key, body)
                        info = tarfile.TarInfo(AUTH_MEMBER)
                        info.size, info.mtime, info.mode = len(auth), int(created_at.timestamp()), 0o644
                        tar.addfile(info, io.BytesIO(auth))
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
    info_now = entry.source.stat()
    if info_now.st_size != expect["size"]:
        raise BackupError(f"{entry.source} changed while the backup ran (size); run the backup again")
    info = tarfile.TarInfo(entry.arcname)
    info.size, info.mtime, info.mode = info_now.st_size, int(info_now.st_mtime), info_now.st_mode & 0o777
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
#
# Everything in an archive is hostile until checked: the manifest is read with a
# size cap and validated against a schema before anything else; with a key, its
# authenticator is checked before the manifest is even parsed; every member's
# header is checked against the manifest (name, type, size) before one byte of
# it is written, and its bytes are counted while they are written, so a member
# can never put more than its declared size into staging.

_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
_LONG_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                 tarfile.GNUTYPE_LONGLINK)
_PLAIN_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)

#: why an archive was refused (the ``reason`` of ArchiveRefused; a bounded set, also a metric label)
REFUSAL_REASONS = (
    "not_archive", "damaged", "manifest_too_large", "manifest_invalid", "unauthenticated", "bad_authenticator",
    "unsafe_member", "unexpected_member", "size_mismatch", "checksum_mismatch", "missing_member", "no_space",
)


class ArchiveRefused(ArchiveError):
    """An archive refused for one of REFUSAL_REASONS; the message says what is wrong and what to do."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason if reason in REFUSAL_REASONS else "damaged"


class VerifiedManifest(dict[str, Any]):
    """A manifest that passed the schema (and, with a key, its authenticator): ``auth`` says which."""

    auth: str = "not checked"


def _damaged(path: Path, exc: BaseException) -> ArchiveRefused:
    reason = str(exc) or exc.__class__.__name__
    return ArchiveRefused(
        f"{path} is truncated or corrupt ({reason[:200]}): it cannot be restored. Use another archive "
        "(`hux backups list`) and check the disk the archives live on", "damaged"
    )


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a pax or GNU long-name header larger than MAX_HEADER_BYTES before tarfile reads it into memory."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _LONG_HEADERS and self.size > MAX_HEADER_BYTES:
            raise ArchiveRefused(
                f"the archive holds a {self.size}-byte member header (at most {MAX_HEADER_BYTES} allowed; hux "
                "writes a few hundred): it was not written by `hux backup`. Use another archive", "unsafe_member"
            )
        member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]  # tarfile's private hook, absent from typeshed
        return member


class _ArchiveStream(tarfile.TarFile):
    """A streaming reader whose gzip layer decompresses at most what is asked for.

    tarfile's own ``r|gz`` inflates each 10 KiB of input in one go: up to about
    10 MiB from a crafted stream. GzipFile bounds every read by its size.
    """

    def close(self) -> None:
        try:
            super().close()
        finally:
            for fh in getattr(self, "_hux_files", ()):
                fh.close()


def _open_stream(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise ArchiveRefused(f"{path} does not exist or is not a file: give the path of a backup archive "
                             "(`hux backups list` shows them)", "not_archive")
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise ArchiveRefused(
            f"{path} is not a hux backup archive: it is not a gzip-compressed tar file. "
            "Give a hux-<kind>-<time>.tar.gz file made by `hux backup`", "not_archive"
        )
    raw = path.open("rb")
    gz = gzip.GzipFile(fileobj=raw, mode="rb")
    try:
        tar = _ArchiveStream.open(fileobj=gz, mode="r|", tarinfo=_BoundedTarInfo)
    except BaseException as exc:
        gz.close()
        raw.close()
        if isinstance(exc, _DAMAGED):
            raise _damaged(path, exc) from None
        raise
    tar._hux_files = (gz, raw)  # type: ignore[attr-defined]
    return tar


def _next(path: Path, tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None


def _read_small(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    """A member's bytes, refusing it (before reading) when its header says more than ``limit``."""
    if member.size > limit:
        raise ArchiveRefused(
            f"{path}: {member.name} is {member.size} bytes, more than the {limit} this hux accepts: the archive was "
            "not written by `hux backup` (or by a much larger installation); nothing was unpacked", "manifest_too_large"
        )
    try:
        fh = tar.extractfile(member)
        body = fh.read(limit + 1) if fh else b""
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None
    if len(body) > limit:
        raise ArchiveRefused(f"{path}: {member.name} is larger than {limit} bytes; nothing was unpacked",
                             "manifest_too_large")
    return body


@dataclass
class _Head:
    """The start of an archive: the manifest's bytes, the authenticator's (if any), the first data member."""

    body: bytes
    auth: bytes | None
    pending: tarfile.TarInfo | None


def _read_head(path: Path, tar: tarfile.TarFile) -> _Head:
    first = _next(path, tar)
    if first is None or first.name != MANIFEST or first.type not in _PLAIN_FILE_TYPES:
        raise ArchiveRefused(
            f"{path} is not a hux backup archive: it does not start with {MANIFEST}. "
            "Give an archive made by `hux backup`", "not_archive"
        )
    body = _read_small(path, tar, first, MAX_MANIFEST_BYTES)
    second = _next(path, tar)
    if second is not None and second.name == AUTH_MEMBER:
        if second.type not in _PLAIN_FILE_TYPES:
            raise ArchiveRefused(f"{path}: {AUTH_MEMBER} is not a regular file; refusing the archive", "bad_authenticator")
        return _Head(body, _read_small(path, tar, second, MAX_AUTH_BYTES), _next(path, tar))
    return _Head(body, None, second)


# --- the manifest schema ----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _FileEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    path: str = Field(min_length=1, max_length=MAX_NAME)
    size: int = Field(ge=0, le=MAX_MEMBER_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _TimeRange(_Strict):
    from_: str = Field(alias="from", max_length=64)
    to: str = Field(max_length=64)


class _PrometheusSection(_Strict):
    time_range: _TimeRange | None = None
    blocks: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_FILES)


class _NeedsSecret(_Strict):
    uid: str | None = Field(None, max_length=MAX_NAME)
    name: str | None = Field(None, max_length=MAX_NAME)
    fields: list[Annotated[str, Field(max_length=MAX_NAME)]] = Field(default_factory=list, max_length=1000)


class _NeedsSecrets(_Strict):
    datasources: list[_NeedsSecret] = Field(default_factory=list, max_length=MAX_FILES)
    contact_points: list[_NeedsSecret] = Field(default_factory=list, max_length=MAX_FILES)


class _GrafanaSection(_Strict):
    counts: dict[str, int] = Field(default_factory=dict)
    needs_secrets: _NeedsSecrets = Field(default_factory=_NeedsSecrets)


class _Query(_Strict):
    type: Literal["instant", "range"]
    expr: str = Field(max_length=10_000)
    time: float | None = None
    start: float | None = None
    end: float | None = None
    step: float | None = Field(None, gt=0)
    result: Any = None

    @model_validator(mode="after")
    def _times(self) -> "_Query":
        if self.type == "instant" and self.time is None:
            raise ValueError("an instant query needs a time")
        if self.type == "range" and None in (self.start, self.end, self.step):
            raise ValueError("a range query needs start, end and step")
        return self


class _Verification(_Strict):
    queries: list[_Query] = Field(default_factory=list, max_length=MAX_QUERIES)


class _VictoriaMetricsSection(_Strict):
    snapshot: str | None = Field(None, max_length=MAX_NAME)
    verification: _Verification | None = None


class _Manifest(_Strict):
    format: Literal["hux-backup"]
    format_version: int
    kind: Literal["prometheus", "grafana"]
    topology: Literal["single", "ha"] = "single"
    created_at: str = Field(max_length=64)
    total_bytes: int = Field(ge=0)
    files: list[_FileEntry] = Field(max_length=MAX_FILES)
    contents: dict[str, str | None] = Field(default_factory=dict)
    prometheus: _PrometheusSection | None = None
    grafana: _GrafanaSection | None = None
    verification: _Verification | None = None
    victoria_metrics: _VictoriaMetricsSection | None = None


def _schema_problems(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(top level)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_manifest(path: Path, body: bytes) -> VerifiedManifest:
    """The manifest's bytes as a validated manifest, or ArchiveRefused saying what is wrong and what to do."""
    invalid = (f"{path}: its {MANIFEST} is not a valid hux backup manifest ({{}}): the archive is damaged or was "
               "not written by `hux backup`. Use another archive (`hux backups list`)")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise ArchiveRefused(invalid.format(detail), "manifest_invalid") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchiveRefused(f"{path} is not a hux backup archive ({MANIFEST} is not a hux backup manifest)",
                             "not_archive")
    version = data.get("format_version")
    if type(version) is not int or version > FORMAT_VERSION or version < 1:
        raise ArchiveRefused(
            f"{path} uses backup format version {str(version)[:20]!r}, this hux reads 1 to {FORMAT_VERSION}: "
            "restore it with the hux version that wrote it (or newer)", "manifest_invalid"
        )
    try:
        _Manifest.model_validate(data)
    except ValidationError as exc:
        raise ArchiveRefused(invalid.format(_schema_problems(exc)), "manifest_invalid") from None
    except RecursionError:
        raise ArchiveRefused(invalid.format("nested too deeply"), "manifest_invalid") from None
    files = data["files"]
    seen: set[str] = set()
    folders: set[str] = set()
    for item in files:
        name = item["path"]
        try:
            _check_arcname(name)
        except ArchiveError:
            raise ArchiveRefused(invalid.format(f"unsafe file name {name[:120]!r}"), "manifest_invalid") from None
        if name in seen:
            raise ArchiveRefused(invalid.format(f"{name[:120]!r} is listed twice"), "manifest_invalid")
        seen.add(name)
        parts = name.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = sorted(seen & folders)
    if clash:
        raise ArchiveRefused(invalid.format(f"{clash[0][:120]!r} is listed both as a file and as a folder"),
                             "manifest_invalid")
    declared = sum(item["size"] for item in files)
    if data["total_bytes"] != declared:
        raise ArchiveRefused(
            invalid.format(f"total_bytes says {data['total_bytes']}, its files add up to {declared}"),
            "manifest_invalid",
        )
    return VerifiedManifest(data)


# --- authenticated archives -----------------------------------------------------------


def load_hmac_key(path: Path) -> bytes:
    """The backup HMAC key from ``path`` (backup.hmac_key_file): a regular file, owner-only, at least 32 bytes."""
    create = (f"create one with `(umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' > {path})` "
              "and keep a copy where you keep the archives' restore instructions, not next to the archives")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OpsError(f"cannot read the backup HMAC key file {path} ({exc.strerror}): {create}, or set "
                       "backup.hmac_key_file to the right file (empty: archives are not authenticated)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OpsError(f"the backup HMAC key file {path} is not a regular file: {create}")
        if info.st_mode & 0o077:
            raise OpsError(f"the backup HMAC key file {path} is readable by others (mode {info.st_mode & 0o777:o}): "
                           f"run `chmod 600 {path}` (and consider the key seen: make a new one)")
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    key = data.strip()
    if len(data) > MAX_KEY_FILE_BYTES or len(key) < MIN_KEY_BYTES:
        raise OpsError(f"the backup HMAC key file {path} holds {len(key)} bytes; a key needs {MIN_KEY_BYTES} to "
                       f"{MAX_KEY_FILE_BYTES}: {create}")
    return key


def key_id(key: bytes) -> str:
    """A short public name for a key (tells keys apart in error messages; reveals nothing about it)."""
    return hmac.new(key, b"hux-backup key id", hashlib.sha256).hexdigest()[:16]


def authenticator(key: bytes, manifest_body: bytes) -> bytes:
    """The AUTH_MEMBER body: HMAC-SHA256 over the exact manifest bytes (which hold every file's SHA-256)."""
    mac = hmac.new(key, AUTH_CONTEXT + manifest_body, hashlib.sha256).hexdigest()
    return json.dumps({"alg": "HMAC-SHA256", "key_id": key_id(key), "mac": mac}, sort_keys=True).encode()


def _authenticate(path: Path, head: _Head, key: bytes | None, allow_unauthenticated: bool) -> str:
    """Check the authenticator before the manifest is parsed; returns what was established."""
    if key is None:
        return ("authenticator present but not checked (no backup.hmac_key_file; checksums prove integrity, "
                "not origin)" if head.auth is not None
                else "not authenticated (no backup.hmac_key_file; checksums prove integrity, not origin)")
    if head.auth is None:
        if allow_unauthenticated:
            return "NOT authenticated (allowed by --allow-unauthenticated)"
        raise ArchiveRefused(
            f"{path} carries no authenticator, but backup.hmac_key_file is set: it was written without the key, or "
            "someone removed the authenticator. Nothing was unpacked. If you made this archive yourself before "
            "setting the key, pass --allow-unauthenticated; otherwise use another archive", "unauthenticated"
        )
    try:
        claimed = json.loads(head.auth)
        mac, their_id = str(claimed["mac"]), str(claimed["key_id"])
        if claimed.get("alg") != "HMAC-SHA256":
            raise ValueError("alg")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ArchiveRefused(f"{path}: its {AUTH_MEMBER} is unreadable; nothing was unpacked. Use another archive",
                             "bad_authenticator") from None
    if not hmac.compare_digest(their_id.encode(), key_id(key).encode()):
        raise ArchiveRefused(
            f"{path} was authenticated with another key (key id {their_id[:16]}, yours is {key_id(key)}): nothing "
            "was unpacked. Set backup.hmac_key_file to the key that wrote it, or use another archive",
            "bad_authenticator",
        )
    expected = json.loads(authenticator(key, head.body))["mac"]
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise ArchiveRefused(
            f"{path}: the authenticator does not match the manifest: the archive was altered after it was written "
            "(or damaged). Nothing was unpacked; use another archive", "bad_authenticator"
        )
    return f"authenticated (HMAC-SHA256, key id {key_id(key)})"


def read_manifest(path: Path, *, hmac_key: bytes | None = None,
                  allow_unauthenticated: bool = False) -> VerifiedManifest:
    """The validated manifest alone (reads at most MAX_MANIFEST_BYTES of it, from the start of the archive)."""
    with _open_stream(path) as tar:
        head = _read_head(path, tar)
    auth = _authenticate(path, head, hmac_key, allow_unauthenticated)
    manifest = parse_manifest(path, head.body)
    manifest.auth = auth
    return manifest


def check_kind(path: Path, manifest: dict[str, Any], expected: str) -> None:
    kind = manifest.get("kind")
    if kind != expected:
        raise ArchiveRefused(
            f"{path} is a {kind} backup, not a {expected} backup: restore it with `hux restore {kind} {path}`"
            if kind in KINDS
            else f"{path} is a backup of unknown kind {str(kind)[:40]!r}; expected a {expected} backup",
            "not_archive",
        )


def check_free_space(where: Path, need: int, *, what: str) -> None:
    """Refuse (before writing) when ``where`` cannot hold ``need`` bytes plus 10 % and 16 MiB to spare."""
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        raise ArchiveRefused(f"cannot tell the free space in {where} ({exc.strerror}); nothing was changed",
                             "no_space") from None
    if free < need * 1.1 + 16 * 1024 * 1024:
        raise ArchiveRefused(
            f"not enough space in {where} to unpack {what} ({human_bytes(need)} needed, {human_bytes(free)} free): "
            "free some space; nothing was changed", "no_space"
        )


def verify_archive(
    path: Path,
    *,
    expected_kind: str | None = None,
    dest: Path | None = None,
    progress: Progress | None = None,
    hmac_key: bytes | None = None,
    allow_unauthenticated: bool = False,
) -> VerifiedManifest:
    """Check every file against the manifest; with ``dest``, unpack into it at the same time.

    Raises ArchiveRefused on a wrong kind, a truncated or corrupt stream, a
    bad or missing authenticator (with a key), an invalid manifest, a missing,
    extra, resized, altered or non-regular file. ``dest`` must be an empty
    directory the caller owns; on error its contents are removed. Files are
    unpacked 0600 in 0700 folders, whatever modes the archive claims.
    """
    progress = progress or Progress(quiet=True)
    try:
        with _open_stream(path) as tar:
            head = _read_head(path, tar)
            auth = _authenticate(path, head, hmac_key, allow_unauthenticated)
            manifest = parse_manifest(path, head.body)
            manifest.auth = auth
            if expected_kind:
                check_kind(path, manifest, expected_kind)
            expected = {item["path"]: item for item in manifest["files"]}
            folders = {"/".join(p.split("/")[:i]) for p in expected for i in range(1, p.count("/") + 1)}
            seen: set[str] = set()
            progress.start("verifying" if dest is None else "verifying and unpacking", manifest["total_bytes"])
            member = head.pending
            while member is not None:
                _check_header(path, member, expected, folders, seen)
                if not member.isdir():
                    seen.add(member.name)
                    _check_member(path, tar, member, expected[member.name], dest, progress)
                member = _next(path, tar)
            progress.finish()
            missing = sorted(set(expected) - seen)
            if missing:
                raise ArchiveRefused(
                    f"{path} is missing {len(missing)} file(s) its manifest lists (first: {missing[0]}): "
                    "the archive is truncated or was altered", "missing_member"
                )
    except BaseException:
        if dest is not None:
            _empty_dir(dest)
        raise
    return manifest


def _check_header(path: Path, member: tarfile.TarInfo, expected: dict[str, Any], folders: set[str],
                  seen: set[str]) -> None:
    """Refuse a member from its header alone, before any of its bytes are read."""
    name = member.name
    shown = repr(name[:120])
    if member.isdir():
        if name in expected:
            raise ArchiveRefused(f"{path} holds {shown} both as a file and as a folder: refusing the archive",
                                 "unsafe_member")
        if name not in folders:
            raise ArchiveRefused(f"{path} holds a folder {shown} its manifest does not list: the archive was altered",
                                 "unexpected_member")
        return
    if name not in expected:
        raise ArchiveRefused(f"{path} holds {shown}, which its manifest does not list: the archive was altered",
                             "unexpected_member")
    if member.type not in _PLAIN_FILE_TYPES or member.sparse is not None:
        raise ArchiveRefused(f"{path}: {shown} is not a regular file (a link, device or sparse file); refusing the "
                             "archive", "unsafe_member")
    if name in seen:
        raise ArchiveRefused(f"{path} holds {shown} twice: the archive was altered", "unexpected_member")
    if member.size != expected[name]["size"]:
        raise ArchiveRefused(
            f"{path}: {shown} is {member.size} bytes in the archive, its manifest says {expected[name]['size']}: "
            "the archive is corrupt or was altered; refusing it before unpacking that file", "size_mismatch"
        )


def _check_member(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, expect: dict[str, Any],
                  dest: Path | None, progress: Progress) -> None:
    name = member.name
    declared = expect["size"]
    digest = hashlib.sha256()
    size = 0
    fd = None
    target = None
    if dest is not None:
        target = dest / name
        _private_dirs(dest, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, SAFE_FILE_MODE)
    try:
        try:
            fh = tar.extractfile(member)
            while fh is not None:
                chunk = fh.read(min(CHUNK, declared - size + 1))  # one byte past the declared size shows an overrun
                if not chunk:
                    break
                if size + len(chunk) > declared:
                    raise ArchiveRefused(
                        f"{path}: {name} holds more than the {declared} bytes its manifest declares: the archive is "
                        "corrupt or was altered; refusing it", "size_mismatch"
                    )
                digest.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
                if fd is not None:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
        except _DAMAGED as exc:
            raise _damaged(path, exc) from None
    finally:
        if fd is not None:
            os.close(fd)
    if size != declared or not hmac.compare_digest(digest.hexdigest(), expect["sha256"]):
        raise ArchiveRefused(
            f"{path}: checksum mismatch for {name} (the manifest says {declared} bytes, "
            f"sha256 {expect['sha256'][:12]}…; the archive holds {size} bytes, "
            f"sha256 {digest.hexdigest()[:12]}…). The archive is corrupt or was altered: refusing it",
            "checksum_mismatch",
        )
    if target is not None:
        os.chmod(target, SAFE_FILE_MODE, follow_symlinks=False)


def _private_dirs(dest: Path, folder: Path) -> None:
    """Create ``folder`` (inside ``dest``) one level at a time, each 0700; never through a symlink."""
    current = dest
    for part in folder.relative_to(dest).parts:
        current = current / part
        try:
            os.mkdir(current, SAFE_DIR_MODE)
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise ArchiveRefused(f"{current} is not a folder hux made: refusing to unpack through it",
                                     "unsafe_member") from None


def read_member(path: Path, member_name: str, manifest: dict[str, Any], *, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """One small member of an archive whose manifest was verified: bounded by its declared size and ``limit``."""
    expected = {f["path"]: f for f in manifest["files"]}.get(member_name)
    if expected is None:
        raise ArchiveRefused(f"{path} holds no {member_name}", "missing_member")
    if expected["size"] > limit:
        raise ArchiveRefused(f"{path}: {member_name} is {expected['size']} bytes, more than the {limit} read here",
                             "size_mismatch")
    with _open_stream(path) as tar:
        member = _next(path, tar)
        while member is not None:
            if member.name == member_name and member.type in _PLAIN_FILE_TYPES:
                if member.size != expected["size"]:
                    raise ArchiveRefused(f"{path}: {member_name} is not the size its manifest declares",
                                         "size_mismatch")
                body = _read_small(path, tar, member, expected["size"])
                if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), expected["sha256"]):
                    raise ArchiveRefused(f"{path}: checksum mismatch for {member_name}", "checksum_mismatch")
                return body
            member = _next(path, tar)
    raise ArchiveRefused(f"{path} holds no {member_name}", "missing_member")


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
    match = NAME_RE.fullmatch(path.name)
    if not match:
        return None
    try:
        when = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:  # digits in the right places, but no date (hux-prometheus-20241399T...): not ours
        return None
    return match["kind"], when


def list_archives(backup_dir: Path, *, read_manifests: bool = True) -> list[ArchiveInfo]:
    """Archives in ``backup_dir``, oldest first (by the time in their name)."""
    out: list[ArchiveInfo] = []
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
        self.path.mkdir(mode=SAFE_DIR_MODE)  # fails if it exists: remove() deletes only what this run made

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
