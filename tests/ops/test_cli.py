"""The `hux` operator commands and the backup script (scripts/backup_monitoring.py), end to end on real processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hux.cli import main
from hux.ops.textfile import FILE_NAME, read_values
from tests.ops.conftest import create_blocks, known_series

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def running(hux_home: Path, tmp_path: Path, prom_factory, am_factory):
    end = time.time() - 900
    proc = prom_factory(start=False)
    create_blocks(known_series(end, hours=1), proc.data_dir, tmp_path)
    proc.start()
    am = am_factory()
    return proc, am, hux_home


def test_backup_list_verify_prune_restore_and_maintain(running, capsys, tmp_path: Path) -> None:
    proc, am, home = running
    urls = ["--prometheus-url", proc.url, "--alertmanager-url", am.url]
    assert main(["backup", "prometheus", *urls, "--data-dir", str(proc.data_dir), "--no-configs", "-q"]) == 0
    out = capsys.readouterr().out
    assert "prometheus backup written:" in out and "0 silence(s)" in out
    archives = sorted((home / "data" / "backups").glob("hux-prometheus-*.tar.gz"))
    assert len(archives) == 1
    assert read_values(home / "data/node_exporter/textfile" / FILE_NAME)["prometheus"]["hux_backup_last_success"] == 1

    assert main(["backups", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["path"] == str(archives[0]) and listed[0]["time_range"]["hours"] > 0.9
    assert main(["backups", "verify", str(archives[0])]) == 0
    assert "every checksum matches" in capsys.readouterr().out

    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archives[0].read_bytes()[:-300])
    assert main(["backups", "verify", str(broken)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err

    html = tmp_path / "reports" / "daily.html"
    code = main(["maintain", "daily", *urls, "--html", str(html)])
    out = capsys.readouterr().out
    assert code in (0, 1, 3) and "Daily maintenance report" in out and "== Alert status" in out
    assert html.read_text().startswith("<!DOCTYPE html>")

    proc.stop()  # offline restore: verified with a temporary Prometheus
    assert main(["restore", "prometheus", str(archives[0]), *urls, "--data-dir", str(proc.data_dir), "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"verify restored data\s+OK", out) and "FAILED" not in out
    proc.start()

    assert main(["backup", "prometheus", *urls, "--data-dir", str(proc.data_dir), "--no-configs", "-q"]) == 0
    capsys.readouterr()
    assert main(["backups", "prune", "--keep", "1", "--keep-days", "0"]) == 0
    assert "1 archive(s) removed" in capsys.readouterr().out
    assert len(list((home / "data" / "backups").glob("hux-prometheus-*.tar.gz"))) == 1


def test_restore_refuses_a_running_prometheus_it_cannot_stop(running, capsys) -> None:
    proc, am, home = running
    urls = ["--prometheus-url", proc.url, "--alertmanager-url", am.url]
    assert main(["backup", "prometheus", *urls, "--data-dir", str(proc.data_dir), "--no-configs", "-q"]) == 0
    archive = next((home / "data" / "backups").glob("*.tar.gz"))
    capsys.readouterr()
    assert main(["restore", "prometheus", str(archive), *urls, "--data-dir", str(proc.data_dir)]) == 1
    assert "--stop-command" in capsys.readouterr().err
    assert proc.running


def test_seed_backup_script_runs_the_backup(running) -> None:
    proc, am, home = running
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "backup_monitoring.py"), "--prometheus-url", proc.url,
         "--alertmanager-url", am.url, "--data-dir", str(proc.data_dir), "--no-configs"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "prometheus backup written:" in done.stdout
    assert list((home / "data" / "backups").glob("hux-prometheus-*.tar.gz"))


def test_grafana_backup_without_credentials_says_what_to_set(hux_home: Path, capsys, monkeypatch) -> None:
    for name in ("HUX_GRAFANA_TOKEN", "HUX_GRAFANA_PASSWORD", "HUX_GRAFANA_USER"):
        monkeypatch.delenv(name, raising=False)
    assert main(["backup", "grafana", "--grafana-url", "http://127.0.0.1:9"]) == 1
    assert "HUX_GRAFANA_TOKEN" in capsys.readouterr().err


def test_grafana_backup_and_restore_commands(hux_home: Path, capsys, monkeypatch) -> None:
    from tests.doubles.grafana import GrafanaInThread, GrafanaState

    monkeypatch.setenv("HUX_GRAFANA_TOKEN", "cli-token")
    source = GrafanaState(tokens={"cli-token": "Admin"})
    source.add_folder("ops", "Operations")
    source.add_folder("bot", "Bot", "ops")
    source.add_dashboard("d1", "Queue", "bot")
    source.add_datasource("pg", "DB", "postgres", secure={"password": "x"})
    with GrafanaInThread(source) as grafana:
        assert main(["backup", "grafana", "--grafana-url", grafana.url, "-q"]) == 0
    out = capsys.readouterr().out
    assert "grafana backup written:" in out and "re-enter them after a restore" in out and "cli-token" not in out
    archive = next((hux_home / "data" / "backups").glob("hux-grafana-*.tar.gz"))
    target = GrafanaState(tokens={"cli-token": "Admin"})
    with GrafanaInThread(target) as grafana:
        assert main(["restore", "grafana", str(archive), "--grafana-url", grafana.url, "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"folders\s+OK\s+2 created", out) and re.search(r"re-enter secrets\s+ACTION\s+datasource DB", out)
    assert target.dashboards["d1"]["folderUid"] == "bot" and target.folders["bot"]["parentUid"] == "ops"
