"""HA archives on disk: what `hux backups verify` says of their parts, and hostile ones.

Real archives written by ``hux.ops.archive``, real directories; the backup and restore of a running HA
stack are in tests/stack/test_ha_backup.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hux.cli import main
from hux.ops import archive as arc
from hux.ops.errors import BackupError
from hux.ops.textfile import REFUSALS_FILE
from hux.ops.victoria import SNAPSHOT_PREFIX, snapshot_entries


def _ha_archive(tmp_path: Path, *, with_vm_files: bool = True, topology: str = "ha") -> Path:
    src = tmp_path / "src"
    (src / "prometheus" / "01HX").mkdir(parents=True)
    (src / "prometheus" / "01HX" / "meta.json").write_text('{"ulid": "01HX"}')
    (src / "vm" / "data" / "small" / "2026_12").mkdir(parents=True)
    (src / "vm" / "data" / "small" / "2026_12" / "values.bin").write_bytes(os.urandom(64))
    entries = arc.entries_from_dir(src / "prometheus", "prometheus/snapshot")
    if with_vm_files:
        entries += arc.entries_from_dir(src / "vm", SNAPSHOT_PREFIX)
    path, _ = arc.write_archive(tmp_path / "backups", "prometheus", entries, {
        "topology": topology,
        "contents": {"prometheus_snapshot": "prometheus/snapshot", "victoria_metrics_snapshot": SNAPSHOT_PREFIX},
        "prometheus": {"url": "http://127.0.0.1:9091", "replica": "b", "blocks": []},
        "victoria_metrics": {"url": "http://127.0.0.1:8428", "snapshot": "20261202-ABC",
                             "verification": {"queries": []}},
        "verification": {"queries": []},
    })
    return path


def test_verify_names_each_part_of_an_ha_archive_and_where_it_came_from(hux_home: Path, tmp_path: Path,
                                                                         capsys) -> None:
    archive = _ha_archive(tmp_path)
    assert main(["backups", "verify", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "topology ha" in out
    assert "Prometheus snapshot: 1 file(s) from replica b at http://127.0.0.1:9091" in out
    assert "VictoriaMetrics snapshot: 1 file(s) (20261202-ABC) from http://127.0.0.1:8428" in out


def test_a_manifest_that_lists_a_part_without_its_files_is_refused_and_counted(hux_home: Path, tmp_path: Path,
                                                                             capsys) -> None:
    archive = _ha_archive(tmp_path, with_vm_files=False)
    assert main(["backups", "verify", str(archive)]) == 1
    err = capsys.readouterr().err
    assert "lists a VictoriaMetrics snapshot (victoria_metrics/snapshot) but no file of it" in err
    assert "use another one" in err
    counted = (hux_home / "data" / "node_exporter" / "textfile" / REFUSALS_FILE).read_text()
    assert 'reason="manifest_invalid"' in counted


def test_an_unknown_topology_is_refused_before_anything_is_unpacked(hux_home: Path, tmp_path: Path, capsys) -> None:
    archive = _ha_archive(tmp_path, topology="cluster")
    assert main(["backups", "verify", str(archive)]) == 1
    assert "topology" in capsys.readouterr().err


def test_snapshot_files_are_followed_through_its_links_but_never_out_of_the_data_directory(tmp_path: Path) -> None:
    storage = tmp_path / "victoria_metrics"
    parts = storage / "data" / "small" / "snapshots" / "S1" / "2026_12" / "part"
    parts.mkdir(parents=True)
    (parts / "values.bin").write_bytes(b"v")
    snapshot = storage / "snapshots" / "S1"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "data" / "small").symlink_to("../../../data/small/snapshots/S1")
    names = [e.arcname for e in snapshot_entries(snapshot, storage)]
    assert names == [f"{SNAPSHOT_PREFIX}/data/small/2026_12/part/values.bin"]

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret").write_text("not ours")
    (snapshot / "indexdb").symlink_to(outside)
    with pytest.raises(BackupError, match="outside its data directory"):
        snapshot_entries(snapshot, storage)
