"""Prometheus backup and restore against real Prometheus and Alertmanager processes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from hux.ops import archive as arc
from hux.ops.clients import Alertmanager, Prometheus
from hux.ops.errors import ArchiveError, BackupError, OpsError, RestoreError
from hux.ops.prometheus_backup import backup_prometheus, restore_prometheus
from hux.ops.service import CallableControl
from hux.ops.textfile import FILE_NAME, read_values
from tests.ops.conftest import PromProcess, create_blocks, known_series

pytestmark = pytest.mark.integration

#: queries whose answers the restore must reproduce exactly (independent of the tool's own checks)
PROBES = [
    ("sum(hux_messages_received_total)", None),
    ('hux_queue_length{instance="127.0.0.1:8001"}', None),
    ("count_over_time(up[1h])", None),
    ("sum(rate(hux_messages_received_total[5m]))", None),
]


def answers(url: str, at: float) -> list:
    with Prometheus(url) as prom:
        out = [prom.query(expr, at)["result"] for expr, _ in PROBES]
        out.append(prom.query_range("hux_queue_length", at - 7200, at, 60)["result"])
    return out


def self_scrape(port: int) -> str:
    return ("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
            f"  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")


@pytest.fixture
def seeded(tmp_path: Path, prom_factory):
    """A Prometheus whose TSDB holds 3 h of known series (backfilled blocks) plus live self-scrapes."""
    end = time.time() - 900
    proc = prom_factory(start=False)
    create_blocks(known_series(end), proc.data_dir, tmp_path)
    proc.config.write_text(self_scrape(proc.port))
    proc.start()
    return proc, end


def _snapshot_dirs(proc: PromProcess) -> list[Path]:
    return list((proc.data_dir / "snapshots").glob("*")) if (proc.data_dir / "snapshots").exists() else []


def _data_listing(proc: PromProcess) -> set[str]:
    return {str(p.relative_to(proc.data_dir)) for p in proc.data_dir.rglob("*")
            if not {"wal", "chunks_head", "snapshots"} & set(p.relative_to(proc.data_dir).parts) and p.name != "lock"}


def test_backup_wipe_restore_round_trip_gives_identical_answers(tmp_path: Path, seeded, am_factory) -> None:
    proc, end = seeded
    am = am_factory()
    config_dir = tmp_path / "run"
    (config_dir / "rules").mkdir(parents=True)
    (config_dir / "prometheus.yml").write_text("global: {}\n")
    (config_dir / "rules" / "bot.yml").write_text("groups: []\n")
    (config_dir / "secrets").mkdir()
    (config_dir / "secrets" / "smtp_password").write_text("s3cret")
    before = answers(proc.url, end - 60)
    assert before[0] and before[0][0]["value"][1] != "0"

    result = backup_prometheus(prometheus_url=proc.url, backup_dir=tmp_path / "backups", data_dir=proc.data_dir,
                               alertmanager_url=am.url, config_dir=config_dir, textfile_dir=tmp_path / "textfile",
                               keep=5, keep_days=30)
    manifest = result.manifest
    assert result.path.exists() and result.size == result.path.stat().st_size
    assert _snapshot_dirs(proc) == []  # snapshot removed after packing
    assert manifest["prometheus"]["version"].startswith(("2.", "3."))
    covered = manifest["prometheus"]["time_range"]
    assert covered["min_ms"] <= (end - 3 * 3600) * 1000 + 1 and covered["max_ms"] >= (end - 15) * 1000
    assert {"configs/prometheus.yml", "configs/rules/bot.yml", "alertmanager/silences.json"} <= {
        f["path"] for f in manifest["files"]}
    assert not any("secrets" in f["path"] for f in manifest["files"])
    assert manifest["configs"]["excluded_secrets"] == ["secrets/smtp_password"]
    assert len(manifest["verification"]["queries"]) >= 8
    metrics = read_values(tmp_path / "textfile" / FILE_NAME)["prometheus"]
    assert metrics["hux_backup_last_success"] == 1 and metrics["hux_backup_last_size_bytes"] == result.size

    # wipe: the data is lost, Prometheus comes back empty
    proc.stop()
    shutil.rmtree(proc.data_dir)
    (config_dir / "prometheus.yml").write_text("global: {scrape_interval: 5s}\n")
    proc.start()
    assert answers(proc.url, end - 60)[0] == []

    report = restore_prometheus(result.path, data_dir=proc.data_dir, prometheus_url=proc.url,
                                control=CallableControl(proc.stop, proc.start, "test fixture"),
                                alertmanager_url=am.url, config_dir=config_dir, collection_timeout=30)
    steps = {step: status for step, status, _ in report.steps}
    assert steps["verify archive"] == "ok"
    assert steps["verify restored data"] == "ok"
    assert steps["restore configuration files"] == "ok"
    assert steps["verify metric collection"] == "ok"
    assert report.ok
    assert answers(proc.url, end - 60) == before
    assert (config_dir / "prometheus.yml").read_text() == "global: {}\n"  # restored config
    assert (config_dir / "secrets" / "smtp_password").read_text() == "s3cret"  # secrets untouched
    assert not list(proc.data_dir.parent.glob("data.pre-restore-*"))  # old data removed after verification
    assert not list(proc.data_dir.parent.glob(".data.restore-*"))  # staging cleaned


def _silence(matchers: list[dict], starts: datetime, ends: datetime, comment: str) -> dict:
    return {"matchers": matchers, "startsAt": starts.isoformat(), "endsAt": ends.isoformat(),
            "createdBy": "ops-test", "comment": comment}


def test_silences_round_trip_through_a_real_alertmanager(tmp_path: Path, seeded, am_factory) -> None:
    proc, _ = seeded
    source = am_factory()
    now = datetime.now(timezone.utc)
    with Alertmanager(source.url) as am:
        am.add_silence(_silence([{"name": "alertname", "value": "ServiceDown", "isRegex": False, "isEqual": True}],
                                now - timedelta(minutes=5), now + timedelta(hours=2), "maintenance window"))
        am.add_silence(_silence([{"name": "job", "value": "bot|node", "isRegex": True, "isEqual": True},
                                 {"name": "severity", "value": "info", "isRegex": False, "isEqual": False}],
                                now + timedelta(hours=1), now + timedelta(hours=3), "tomorrow's upgrade"))
        expired = am.add_silence(_silence([{"name": "x", "value": "y", "isRegex": False, "isEqual": True}],
                                          now - timedelta(minutes=5), now + timedelta(hours=1), "expired one"))
        am.expire_silence(expired)
    result = backup_prometheus(prometheus_url=proc.url, backup_dir=tmp_path / "b", data_dir=proc.data_dir,
                               alertmanager_url=source.url)
    assert result.manifest["alertmanager"]["silences"] == 2

    target = am_factory()  # a fresh Alertmanager: the silences were lost with it
    report = restore_prometheus(result.path, data_dir=proc.data_dir, prometheus_url=proc.url,
                                control=CallableControl(proc.stop, proc.start), alertmanager_url=target.url,
                                check_collection=False)
    assert report.silences is not None and len(report.silences.added) == 2
    with Alertmanager(target.url) as am:
        restored = am.silences(("active", "pending"))
    by_comment = {s["comment"]: s for s in restored}
    assert set(by_comment) == {"maintenance window", "tomorrow's upgrade"}
    assert by_comment["tomorrow's upgrade"]["status"]["state"] == "pending"
    assert by_comment["maintenance window"]["status"]["state"] == "active"
    assert sorted((m["name"], m["value"], m["isRegex"], m["isEqual"])
                  for m in by_comment["tomorrow's upgrade"]["matchers"]) == [
        ("job", "bot|node", True, True), ("severity", "info", False, False)]
    # running it again adds nothing twice
    again = restore_prometheus(result.path, data_dir=proc.data_dir, prometheus_url=proc.url,
                               control=CallableControl(proc.stop, proc.start), alertmanager_url=target.url,
                               check_collection=False)
    assert again.silences.added == [] and again.silences.already_present == 2


def _rewrite_manifest(source: Path, target: Path, change) -> None:
    with tarfile.open(source, "r:gz") as tin, tarfile.open(target, "w:gz") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(member.name)
            info.size, info.mode = len(data), member.mode
            tout.addfile(info, io.BytesIO(data))


@pytest.fixture
def backed_up(tmp_path: Path, seeded):
    proc, end = seeded
    result = backup_prometheus(prometheus_url=proc.url, backup_dir=tmp_path / "backups", data_dir=proc.data_dir)
    return proc, end, result


def _assert_untouched(proc: PromProcess, end: float, listing: set[str], before: list, starts: int) -> None:
    assert proc.running and proc.starts == starts  # never stopped
    assert _data_listing(proc) == listing
    assert answers(proc.url, end - 60) == before
    assert not list(proc.data_dir.parent.glob(".data.restore-*"))


@pytest.mark.parametrize("damage", ["altered block file", "truncated", "wrong kind", "not an archive", "no manifest"])
def test_damaged_or_foreign_archive_is_refused_and_data_untouched(tmp_path: Path, backed_up, damage: str) -> None:
    proc, end, result = backed_up
    before, listing, starts = answers(proc.url, end - 60), _data_listing(proc), proc.starts
    bad = tmp_path / "bad.tar.gz"
    if damage == "altered block file":
        with tarfile.open(result.path, "r:gz") as tin, tarfile.open(bad, "w:gz") as tout:
            for member in tin.getmembers():
                data = tin.extractfile(member).read()
                if member.name.endswith("/index"):
                    data = data[:100] + bytes([data[100] ^ 0x01]) + data[101:]
                info = tarfile.TarInfo(member.name)
                info.size, info.mode = len(data), member.mode
                tout.addfile(info, io.BytesIO(data))
        expected = "checksum mismatch"
    elif damage == "truncated":
        bad.write_bytes(result.path.read_bytes()[: result.size * 2 // 3])
        # Depending on where the cut falls, gzip reports a broken stream or the
        # tar ends early and manifest files are missing: both must say truncated.
        expected = "truncated"
    elif damage == "wrong kind":
        _rewrite_manifest(result.path, bad, lambda m: m.update(kind="grafana"))
        expected = "is a grafana backup"
    elif damage == "not an archive":
        bad.write_text("this is not a backup\n")
        expected = "not a gzip-compressed tar"
    else:
        with tarfile.open(bad, "w:gz") as tar:
            tar.add(proc.config, arcname="prometheus.yml")
        expected = "does not start with manifest.json"
    with pytest.raises(ArchiveError, match=expected):
        restore_prometheus(bad, data_dir=proc.data_dir, prometheus_url=proc.url,
                           control=CallableControl(proc.stop, proc.start))
    _assert_untouched(proc, end, listing, before, starts)


def test_verification_mismatch_rolls_back_to_the_previous_data(tmp_path: Path, backed_up) -> None:
    proc, end, result = backed_up
    before, listing = answers(proc.url, end - 60), _data_listing(proc)

    def lie(manifest: dict) -> None:  # the archive's data is intact, but its recorded answers disagree
        manifest["verification"]["queries"][0]["result"] = [["{}", "123456789"]]

    tampered = tmp_path / "tampered.tar.gz"
    _rewrite_manifest(result.path, tampered, lie)
    with pytest.raises(RestoreError, match="(?s)verification queries.*Rolled back"):
        restore_prometheus(tampered, data_dir=proc.data_dir, prometheus_url=proc.url,
                           control=CallableControl(proc.stop, proc.start))
    assert proc.running
    assert _data_listing(proc) == listing
    assert answers(proc.url, end - 60) == before
    assert not list(proc.data_dir.parent.glob("data.pre-restore-*"))


def test_running_prometheus_without_a_way_to_stop_it_is_left_alone(tmp_path: Path, backed_up) -> None:
    proc, end, result = backed_up
    listing = _data_listing(proc)
    with pytest.raises(RestoreError, match="--stop-command"):
        restore_prometheus(result.path, data_dir=proc.data_dir, prometheus_url=proc.url, control=None)
    assert proc.running and _data_listing(proc) == listing


def test_offline_restore_verifies_with_a_temporary_prometheus(tmp_path: Path, backed_up) -> None:
    proc, end, result = backed_up
    before = answers(proc.url, end - 60)
    proc.stop()
    shutil.rmtree(proc.data_dir)
    report = restore_prometheus(result.path, data_dir=proc.data_dir, prometheus_url=proc.url, control=None)
    assert dict((s, st) for s, st, _ in report.steps)["verify restored data"] == "ok"
    proc.start()
    assert answers(proc.url, end - 60) == before


def test_backup_refuses_a_non_loopback_admin_api(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="not a loopback address"):
        backup_prometheus(prometheus_url="http://192.0.2.10:9090", backup_dir=tmp_path / "b", textfile_dir=tmp_path / "t")
    assert read_values(tmp_path / "t" / FILE_NAME)["prometheus"]["hux_backup_last_success"] == 0
    assert not (tmp_path / "b").exists()


def test_backup_explains_a_disabled_admin_api(tmp_path: Path, prom_factory) -> None:
    proc = prom_factory(start=False)
    binary = shutil.which("prometheus")
    with proc.log.open("ab") as log:
        proc.proc = subprocess.Popen([binary, f"--config.file={proc.config}", f"--storage.tsdb.path={proc.data_dir}",
                                      f"--web.listen-address=127.0.0.1:{proc.port}"], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(proc.url + "/-/ready").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    with pytest.raises(OpsError, match="--web.enable-admin-api"):
        backup_prometheus(prometheus_url=proc.url, backup_dir=tmp_path / "b", data_dir=proc.data_dir)


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a size-limited tmpfs (needs root, as `scripts/run_tests.py` runs in CI): "
                    f"{done.stderr.strip()}", pytrace=False)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_during_backup_gives_a_clear_error_and_leaves_nothing(tmp_path: Path, prom_factory,
                                                                        small_tmpfs: Path) -> None:
    proc = prom_factory(start=False)
    end = time.time() - 900
    lines = ["# HELP noise Noise.", "# TYPE noise gauge"]
    for series in range(120):  # random values barely compress: well over the 256 KiB the tmpfs holds
        lines += [f'noise{{s="{series}"}} {uuid.uuid4().int % 10**12 / 7} {end - 7200 + i * 15:.3f}' for i in range(480)]
    create_blocks("\n".join(lines + ["# EOF"]) + "\n", proc.data_dir, tmp_path)
    proc.start()
    before, listing = answers(proc.url, end - 60), _data_listing(proc)
    with pytest.raises(BackupError, match=r"no space left in .*tiny.*Nothing was changed"):
        backup_prometheus(prometheus_url=proc.url, backup_dir=small_tmpfs, data_dir=proc.data_dir,
                          textfile_dir=tmp_path / "textfile")
    assert list(small_tmpfs.iterdir()) == []  # no partial archive, no staging directory
    assert _snapshot_dirs(proc) == []
    assert _data_listing(proc) == listing and answers(proc.url, end - 60) == before
    assert read_values(tmp_path / "textfile" / FILE_NAME)["prometheus"]["hux_backup_last_success"] == 0


def test_listing_reads_manifests(tmp_path: Path, backed_up) -> None:
    _, _, result = backed_up
    (result.path.parent / "hux-prometheus-20200101T000000Z.tar.gz").write_bytes(b"broken")
    listed = arc.list_archives(result.path.parent)
    assert [a.kind for a in listed] == ["prometheus", "prometheus"]
    assert listed[0].problem and "gzip" in listed[0].problem
    assert listed[1].manifest["prometheus"]["time_range"] == result.manifest["prometheus"]["time_range"]
