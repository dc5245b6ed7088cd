"""The archive format: checksums, damaged and foreign archives, retention, the backup metrics file."""

from __future__ import annotations

import io
import json
import os
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hux.ops import archive as arc
from hux.ops.errors import ArchiveError, BackupError
from hux.ops.textfile import FILE_NAME, BackupRun, read_values, record_run


def _sources(tmp_path: Path) -> list[arc.Entry]:
    src = tmp_path / "src"
    (src / "blocks" / "01ABC").mkdir(parents=True)
    (src / "blocks" / "01ABC" / "index").write_bytes(os.urandom(70_000))
    (src / "blocks" / "01ABC" / "meta.json").write_text('{"ulid": "01ABC"}')
    (src / "silences.json").write_text("[]")
    return arc.entries_from_dir(src / "blocks", "prometheus/snapshot") + [arc.Entry("alertmanager/silences.json",
                                                                                    src / "silences.json")]


def _write(tmp_path: Path, kind: str = "prometheus") -> tuple[Path, dict]:
    return arc.write_archive(tmp_path / "backups", kind, _sources(tmp_path), {"note": "test"})


def _repack(source: Path, target: Path, mutate) -> None:
    """Copy an archive member by member, letting ``mutate(name, data)`` change contents (manifest untouched)."""
    with tarfile.open(source, "r:gz") as tin, tarfile.open(target, "w:gz") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read()
            data = mutate(member.name, data)
            info = tarfile.TarInfo(member.name)
            info.size, info.mode = len(data), member.mode
            tout.addfile(info, io.BytesIO(data))


def test_round_trip_unpacks_identical_files_and_manifest_lists_every_checksum(tmp_path: Path) -> None:
    path, manifest = _write(tmp_path)
    assert path.name.startswith("hux-prometheus-") and path.name.endswith(".tar.gz")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list(path.parent.glob("*.partial"))
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {"prometheus/snapshot/01ABC/index", "prometheus/snapshot/01ABC/meta.json",
                           "alertmanager/silences.json"}
    assert listed["prometheus/snapshot/01ABC/index"]["size"] == 70_000
    assert manifest["total_bytes"] == sum(f["size"] for f in manifest["files"])
    dest = tmp_path / "dest"
    dest.mkdir()
    assert arc.verify_archive(path, expected_kind="prometheus", dest=dest)["note"] == "test"
    assert (dest / "prometheus/snapshot/01ABC/index").read_bytes() == (tmp_path / "src/blocks/01ABC/index").read_bytes()
    assert arc.read_manifest(path)["kind"] == "prometheus"


def test_altered_file_is_refused_and_staging_left_empty(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    _repack(path, bad, lambda name, data: data[:-1] + bytes([data[-1] ^ 0xFF]) if name.endswith("index") else data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="checksum mismatch for prometheus/snapshot/01ABC/index"):
        arc.verify_archive(bad, expected_kind="prometheus", dest=dest)
    assert list(dest.iterdir()) == []


def test_corrupt_compressed_stream_is_reported_as_corrupt(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="truncated or corrupt|checksum mismatch"):
        arc.verify_archive(path)


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        arc.verify_archive(path, expected_kind="prometheus")


def test_wrong_archive_types_get_clear_errors(tmp_path: Path) -> None:
    grafana, _ = _write(tmp_path, "grafana")
    with pytest.raises(ArchiveError, match="is a grafana backup.*hux restore grafana"):
        arc.verify_archive(grafana, expected_kind="prometheus")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ArchiveError, match="not a gzip-compressed tar"):
        arc.read_manifest(text)
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("etc/hosts")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hosts"))
    with pytest.raises(ArchiveError, match="does not start with manifest.json"):
        arc.read_manifest(foreign)
    with pytest.raises(ArchiveError, match="does not exist"):
        arc.read_manifest(tmp_path / "missing.tar.gz")


def test_extra_or_unsafe_members_are_refused(tmp_path: Path) -> None:
    path, manifest = _write(tmp_path)
    extra = tmp_path / "extra.tar.gz"
    with tarfile.open(path, "r:gz") as tin, tarfile.open(extra, "w:gz") as tout:
        for member in tin.getmembers():
            tout.addfile(member, tin.extractfile(member))
        info = tarfile.TarInfo("prometheus/snapshot/evil")
        info.size = 3
        tout.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ArchiveError, match="does not list"):
        arc.verify_archive(extra)
    with pytest.raises(ArchiveError, match="unsafe"):
        arc.write_archive(tmp_path / "b2", "prometheus", [arc.Entry("../escape", tmp_path / "src/silences.json")], {})


def test_missing_member_is_reported(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    short = tmp_path / "short.tar.gz"
    with tarfile.open(path, "r:gz") as tin, tarfile.open(short, "w:gz") as tout:
        for member in tin.getmembers():
            if member.name != "alertmanager/silences.json":
                tout.addfile(member, tin.extractfile(member))
    with pytest.raises(ArchiveError, match="missing 1 file"):
        arc.verify_archive(short)


def test_retention_keeps_newest_per_kind_and_young_archives(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    now = datetime(2024, 5, 20, 12, tzinfo=timezone.utc)
    for days in (0, 1, 2, 10, 40, 50):
        stamp = (now - timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")
        (backups / f"hux-prometheus-{stamp}.tar.gz").write_bytes(b"x")
    (backups / f"hux-grafana-{(now - timedelta(days=90)):%Y%m%dT%H%M%SZ}.tar.gz").write_bytes(b"x")
    (backups / "unrelated.tar.gz").write_bytes(b"x")
    doomed = arc.prune(backups, keep=2, keep_days=30, dry_run=True, now=now)
    assert sorted(a.path.name[15:23] for a in doomed) == ["20240331", "20240410"]  # 50 and 40 days old
    removed = arc.prune(backups, keep=2, keep_days=None, now=now)
    assert len(removed) == 4
    left = sorted(p.name for p in backups.iterdir())
    assert len(left) == 4 and "unrelated.tar.gz" in left  # newest two prometheus, the only grafana, the stranger


def test_backup_metrics_file_is_merged_per_kind(tmp_path: Path) -> None:
    textfile = tmp_path / "textfile"
    record_run(textfile, BackupRun("prometheus", 1000.0, 12.5, True, 4096, finished_at=1012.5))
    record_run(textfile, BackupRun("grafana", 2000.0, 1.0, True, 100, finished_at=2001.0))
    record_run(textfile, BackupRun("prometheus", 3000.0, 2.0, False))
    values = read_values(textfile / FILE_NAME)
    assert values["prometheus"] == {
        "hux_backup_last_attempt_timestamp_seconds": 3000.0,
        "hux_backup_last_success": 0.0,
        "hux_backup_last_duration_seconds": 2.0,
        "hux_backup_last_success_timestamp_seconds": 1012.5,  # the failed run keeps the last success
        "hux_backup_last_size_bytes": 4096.0,
    }
    assert values["grafana"]["hux_backup_last_success"] == 1.0
    text = (textfile / FILE_NAME).read_text()
    assert "# TYPE hux_backup_last_success gauge" in text
    assert [p.name for p in textfile.iterdir()] == [FILE_NAME]  # no temporary file left behind


def test_unwritable_backup_dir_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BackupError, match="cannot create the backup directory"):
        arc.write_archive(blocker / "sub", "prometheus", _sources(tmp_path), {})


def test_manifest_json_is_sorted_and_readable(tmp_path: Path) -> None:
    path, manifest = _write(tmp_path)
    with tarfile.open(path, "r:gz") as tar:
        first = tar.getmembers()[0]
        assert first.name == "manifest.json"
        assert json.loads(tar.extractfile(first).read()) == manifest
