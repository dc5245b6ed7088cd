"""The runtime layout has one home (hux.paths.Layout): every package that names a runtime file agrees with it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hux import paths
from hux.monitoring import auth
from hux.monitoring.settings import load_settings
from hux.ops.cli import load_ops_settings
from hux.stack import components
from hux.stack.health.runtime import runtime_for
from hux.stack.plan import StackPaths


def test_the_layout_names_every_runtime_place_under_the_home(tmp_path: Path) -> None:
    layout = paths.Layout(tmp_path)
    assert layout.data == tmp_path / "data" and layout.logs == tmp_path / "logs"
    assert layout.run_dir == tmp_path / "data/run"
    assert layout.prometheus_data == tmp_path / "data/prometheus"
    assert layout.textfile_dir == tmp_path / "data/node_exporter/textfile"
    assert layout.auth_dir == tmp_path / "data/auth" == auth.auth_files(layout.data).directory
    assert layout.grafana_password_file() == tmp_path / "data/grafana/admin_password"
    assert layout.backup_dir() == tmp_path / "data/backups"
    assert layout.supervisor_dir == tmp_path / "data/supervisor" and layout.supervisor_log == tmp_path / "logs/supervisor.log"
    assert layout.web_config_file("prometheus") == tmp_path / "web/prometheus.yml"


def test_the_stack_reads_the_same_layout() -> None:
    assert StackPaths is paths.Layout


def test_the_rendered_dashboards_and_snapshots_have_one_place(tmp_path: Path) -> None:
    """`hux health` (its dashboard check) and `hux dashboards snapshot` read the dashboards from the same place."""
    layout = paths.Layout(tmp_path)
    assert layout.dashboards_dir == tmp_path / "data/run/grafana/dashboards"
    assert runtime_for("native").dashboards_dir(layout) == layout.dashboards_dir
    assert layout.snapshots_dir == tmp_path / "data/snapshots"


def test_ops_defaults_come_from_the_layout(hux_home: Path) -> None:
    ops = load_ops_settings(argparse.Namespace(config=None))
    layout = paths.Layout(hux_home)
    assert ops.home == layout.home
    assert ops.run_dir == layout.run_dir
    assert ops.prometheus_data_dir == layout.prometheus_data
    assert ops.textfile_dir == layout.textfile_dir
    assert ops.log_dir == layout.logs
    assert ops.backup_dir == layout.backup_dir(ops.settings.backup.dir)
    assert ops.grafana_password_file == layout.grafana_password_file()


@pytest.mark.parametrize("configured", ["secrets/grafana_password", "~/grafana_password"])
def test_a_configured_grafana_password_file_is_the_same_file_for_the_stack_and_ops(
    hux_home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    """A relative grafana.admin_password_file is taken from the home by `hux up` and `hux backup` alike,
    whatever the current directory (the stack once took it from the current directory, ops from the home)."""
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(hux_home / "user"))
    monkeypatch.setenv("HUX__GRAFANA__ADMIN_PASSWORD_FILE", configured)
    settings = load_settings(None)
    stack_file = components.grafana_password_file(settings, StackPaths(hux_home))
    ops_file = load_ops_settings(argparse.Namespace(config=None)).grafana_password_file
    assert stack_file == ops_file
    assert stack_file.is_absolute() and stack_file.is_relative_to(hux_home)
