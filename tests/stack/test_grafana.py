"""Native Grafana under the supervisor, with a stand-in `grafana` binary serving the Grafana API double."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from hux.stack import binaries
from tests.stack.conftest import StackUnderTest, kill_until_named, start_stack, stop_stack, wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


def fake_grafana_install(root: Path) -> tuple[Path, Path]:
    """A tarball-like layout: <home>/conf/defaults.ini and <home>/bin/grafana."""
    home = root / "grafana-home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "defaults.ini").write_text("; stand-in install\n")
    (home / "bin").mkdir()
    binary = home / "bin" / "grafana"
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'grafana_server.py'} \"$@\"\n")
    binary.chmod(0o755)
    return binary, home


@pytest.fixture(scope="module")
def grafana_stack(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("grafana")
    binary, home = fake_grafana_install(root)
    running = start_stack(root / "home", env_extra={"HUX_GRAFANA_BINARY": str(binary), "HUX_GRAFANA_HOME": str(home),
                                                   "PYTHONPATH": str(HERE.parents[1])})
    yield running
    stop_stack(running)


def test_grafana_is_found_by_its_install_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary, home = fake_grafana_install(tmp_path)
    monkeypatch.setenv("HUX_GRAFANA_BINARY", str(binary))
    monkeypatch.delenv("HUX_GRAFANA_HOME", raising=False)
    found = binaries.find_grafana()
    assert found == binaries.GrafanaInstall(binary=str(binary), home=str(home), modern=True)
    assert found.argv(Path("/x.ini")) == [str(binary), "server", "--homepath", str(home), "--config", "/x.ini"]
    (home / "conf" / "defaults.ini").unlink()
    assert binaries.find_grafana() is None, "a binary without its home directory cannot start"


def test_up_runs_grafana_with_a_generated_password(grafana_stack: StackUnderTest) -> None:
    out = grafana_stack.up_output
    assert grafana_stack.url("grafana") in out and "skipped" not in out
    assert "Grafana login: admin / the password in data/grafana/admin_password" in out
    password_file = grafana_stack.home / "data" / "grafana" / "admin_password"
    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 and password not in ("", "admin")
    ini = (grafana_stack.home / "data" / "grafana" / "grafana.ini").read_text()
    assert f"admin_password = $__file{{{password_file}}}" in ini and password not in ini
    assert "http_addr = 127.0.0.1" in ini
    cmdline = Path(f"/proc/{grafana_stack.component('grafana')['pid']}/cmdline").read_text()
    assert password not in cmdline
    assert password not in (grafana_stack.home / "logs" / "grafana.log").read_text()


def test_health_checks_grafana_and_its_datasource(grafana_stack: StackUnderTest) -> None:
    def settled():
        report = grafana_stack.health()
        checks = {c.name: c for c in report.checks}
        target = f"target grafana 127.0.0.1:{grafana_stack.ports['grafana']}"
        return checks if report.status != "fail" and checks.get(target) and checks[target].status == "pass" else None

    checks = wait_for(settled, 40, "a health run without failures, Grafana scraped")
    assert checks["grafana ready"].status == "pass" and "database ok" in checks["grafana ready"].reason
    assert checks["grafana datasource hux-prometheus"].status == "pass"
    assert "grafana" not in {c.name for c in checks.values() if c.status == "warn"}

    # A password file that no longer matches what Grafana runs with: named, with the fix.
    password_file = grafana_stack.home / "data" / "grafana" / "admin_password"
    original = password_file.read_text()
    password_file.write_text("not-the-password\n")
    try:
        report = grafana_stack.health()
        failing = {c.name: c for c in report.checks if c.status == "fail"}
        assert "refused the admin credentials" in failing["grafana datasource hux-prometheus"].reason
    finally:
        password_file.write_text(original)


def test_a_killed_grafana_is_named_and_restarted(grafana_stack: StackUnderTest) -> None:
    _, _, kills = kill_until_named(grafana_stack, "grafana", "grafana ready")
    wait_for(lambda: grafana_stack.component("grafana").get("restarts") == kills
             and grafana_stack.component("grafana").get("state") == "running", 20, "Grafana restarted")
    wait_for(lambda: grafana_stack.health().status != "fail", 30, "health to pass again")
