"""The native stack end to end, with the real binaries, driven like an operator drives it.

The tests in this module share one running stack and run in order: up, health,
crashes and restarts, configuration changes (refused and accepted), restart,
down. Each test leaves the stack healthy for the next one.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess

import httpx
import pytest

from tests.stack.conftest import ROOT, StackUnderTest, kill_until_named, wait_for

pytestmark = pytest.mark.integration

COMPONENTS = ("prometheus", "alertmanager", "node_exporter", "inbox", "bot")
SETTLE = 40.0   # s: bound for targets/rules to settle after a start or a restart


def no_failures(stack: StackUnderTest):
    """The health report once nothing fails and every target has been scraped and is up; else None."""
    report = stack.health()
    targets = [c for c in report.checks if c.name.startswith("target ")]
    settled = targets and all(c.status == "pass" for c in targets)
    return report if report.status != "fail" and settled else None


def test_up_starts_every_component_and_reports_where_things_are(stack: StackUnderTest) -> None:
    out = stack.up_output
    for name in COMPONENTS:
        assert stack.url(name) in out, f"{name} URL missing from the up summary:\n{out}"
        assert stack.component(name)["state"] == "running"
        assert stack.component(name)["restarts"] == 0
    for log in ("prometheus.log", "alertmanager.log", "node_exporter.log", "mr_hux_alpha_bot.log",
                "mr_hux_alpha_bot.stderr.log", "supervisor.log"):
        assert (stack.home / "logs" / log).is_file(), log
        assert f"logs/{log}" in out or log in ("supervisor.log",) or log.startswith("mr_hux"), log
    assert "logs/mr_hux_alpha_bot.log" in out
    # No Grafana binary here: skipped, and the summary says how to get it.
    assert "Grafana is not installed, so it is skipped" in out
    assert "grafana.com/grafana/download" in out
    # ... and where the dashboards are without it.
    assert "Dashboards without Grafana: `hux dashboards snapshot` writes all three" in out
    assert "data/snapshots/" in out
    # Everything listens on loopback only.
    for name in COMPONENTS:
        assert stack.settings().stack.bind_address == "127.0.0.1"
        assert stack.url(name).startswith("http://127.0.0.1:")
    # The Grafana admin password exists anyway (never admin/admin), private to its owner.
    password_file = stack.home / "data" / "grafana" / "admin_password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert len(password_file.read_text().strip()) >= 24
    assert password_file.read_text().strip() not in out


def test_a_dashboard_snapshot_of_the_running_stack(stack: StackUnderTest) -> None:
    """`hux dashboards snapshot` with nothing but the defaults: the stack's URL, its credentials, data/snapshots."""
    wait_for(lambda: no_failures(stack), SETTLE, "targets scraped and up")
    result = stack.hux("dashboards", "snapshot", "--since", "5m")
    assert result.returncode == 0, result.stdout + result.stderr
    [written] = (stack.home / "data" / "snapshots").glob("dashboards-*.html")
    assert f"wrote {written}" in result.stdout
    page = written.read_text()
    # Every query answered (with the stack's credentials); a fresh stack has no rates yet, so not every panel
    # has data (the browser test, tests/monitoring/test_snapshot_browser.py, waits until each one has).
    assert 'data-state="error"' not in page and 'data-state="unsupported"' not in page
    assert page.count('data-state="data"') >= 20, result.stdout


def test_up_twice_is_safe(stack: StackUnderTest) -> None:
    supervisor_pid = stack.state()["supervisor"]["pid"]
    pids = {name: stack.component(name)["pid"] for name in COMPONENTS}
    result = stack.hux("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout
    assert stack.state()["supervisor"]["pid"] == supervisor_pid
    assert {name: stack.component(name)["pid"] for name in COMPONENTS} == pids


def test_health_passes_once_targets_are_scraped(stack: StackUnderTest) -> None:
    report = wait_for(lambda: no_failures(stack), SETTLE, "a health run without failures")
    names = {c.name for c in report.checks}
    for expected in ("prometheus ready", "alertmanager ready", "node_exporter ready", "bot ready",
                     "prometheus config", "rule groups", "prometheus → alertmanager", "alertmanager config",
                     "bot metric families", "last backup"):
        assert expected in names, f"{expected} missing from {sorted(names)}"
    assert {f"target {job} 127.0.0.1:{stack.ports[port]}" for job, port in
            (("prometheus", "prometheus"), ("alertmanager", "alertmanager"), ("node", "node_exporter"),
             ("bot", "bot"))} <= names

    # The CLI: JSON for machines, exit code 0 when nothing fails.
    result = stack.hux("health", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["status"] in ("pass", "warn")
    assert data["counts"]["fail"] == 0
    assert all({"name", "status", "reason", "fix", "duration_seconds"} <= set(c) for c in data["checks"])

    # The POSIX wrapper (the PowerShell one calls the same module): a table for people.
    script = subprocess.run([str(ROOT / "scripts" / "run_monitoring_health.sh"), "--config", str(stack.config)],
                            env=stack.env, capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stdout + script.stderr
    assert script.stdout.splitlines()[0].split()[:3] == ["CHECK", "STATUS", "DETAIL"]
    assert "health: " in script.stdout and "0 failing" in script.stdout


@pytest.mark.parametrize("name", COMPONENTS)
def test_a_killed_component_is_named_failing_then_restarted(stack: StackUnderTest, name: str) -> None:
    wait_for(lambda: no_failures(stack), SETTLE, "a healthy stack before the kill")
    before = stack.component(name)
    victim, report, kills = kill_until_named(stack, name, f"{name} ready")
    assert report.exit_code == 1
    expected = before["restarts"] + kills

    def restarted():
        comp = stack.component(name)
        return comp if comp.get("restarts") == expected and comp.get("state") == "running" else None

    after = wait_for(restarted, 20, f"the supervisor to restart {name}")
    assert after["pid"] != victim.pid
    assert after["last_exit"] == "was killed by SIGKILL"
    row = next(r for r in stack.status()["components"] if r["name"] == name)
    assert row["restarts"] == expected

    wait_for(lambda: no_failures(stack), SETTLE, f"health to pass again after {name} came back")
    log = stack.home / "logs" / ("mr_hux_alpha_bot.stderr.log" if name == "bot" else f"{name}.log")
    assert f"{name} was killed by SIGKILL; restart #{expected}" in log.read_text()


def _alertmanager_config(stack: StackUnderTest) -> bytes:
    return (stack.home / "data" / "run" / "alertmanager.yml").read_bytes()


def test_a_config_that_fails_validation_is_refused_and_the_stack_keeps_serving(stack: StackUnderTest) -> None:
    pids = {name: stack.component(name)["pid"] for name in COMPONENTS}
    running_config = _alertmanager_config(stack)
    # Valid for the settings model, rejected by amtool: `...` cannot be combined with other labels.
    stack.write_config(stack.config_extra + '\n[alertmanager]\ngroup_by = ["...", "alertname"]\n')
    try:
        for verb in ("reload", "up"):
            result = stack.hux(verb)
            assert result.returncode == 2, result.stdout + result.stderr
            assert "refused" in result.stderr and "amtool check-config" in result.stderr, result.stderr
            assert _alertmanager_config(stack) == running_config
    finally:
        stack.write_config(stack.config_extra)
    assert {name: stack.component(name)["pid"] for name in COMPONENTS} == pids
    for name in ("prometheus", "alertmanager"):
        assert httpx.get(stack.url(name) + "/-/ready", auth=stack.credentials, timeout=2).status_code == 200
    wait_for(lambda: no_failures(stack), SETTLE, "health after the refused config")


def test_a_valid_change_is_hot_reloaded_without_restarts(stack: StackUnderTest) -> None:
    pids = {name: stack.component(name)["pid"] for name in COMPONENTS}

    def latency_rule() -> str:
        groups = httpx.get(stack.url("prometheus") + "/api/v1/rules", auth=stack.credentials,
                           timeout=2).json()["data"]["groups"]
        return next(r["query"] for g in groups for r in g["rules"] if r["name"] == "BotHighLatency")

    assert latency_rule().endswith("> 10")
    stack.write_config(stack.config_extra + "\n[alerts]\nlatency_seconds = 12.5\n")
    try:
        result = stack.hux("reload")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "prometheus: configuration reloaded" in result.stdout
        assert "alertmanager: configuration reloaded" in result.stdout
        assert latency_rule().endswith("> 12.5")
    finally:
        stack.write_config(stack.config_extra)
        assert stack.hux("reload").returncode == 0
    assert {name: stack.component(name)["pid"] for name in COMPONENTS} == pids


def test_a_flag_change_restarts_only_that_component(stack: StackUnderTest) -> None:
    pids = {name: stack.component(name)["pid"] for name in COMPONENTS}
    restarts = stack.component("prometheus")["restarts"]
    # Retention is a command-line flag: it takes a new Prometheus process.
    stack.write_config(stack.config_extra, prometheus='retention_time = "2d"')
    result = stack.hux("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "command line changed for prometheus" in result.stdout
    wait_for(lambda: stack.component("prometheus").get("pid") not in (None, pids["prometheus"]), 30,
             "a new Prometheus process")
    assert "--storage.tsdb.retention.time=2d" in open(f"/proc/{stack.component('prometheus')['pid']}/cmdline").read().split("\0")
    assert stack.component("prometheus")["restarts"] == restarts, "a planned restart is not a crash"
    assert {n: stack.component(n)["pid"] for n in COMPONENTS if n != "prometheus"} == \
        {n: p for n, p in pids.items() if n != "prometheus"}
    wait_for(lambda: no_failures(stack), SETTLE, "health after the flag change")


def test_restart_one_component_on_request(stack: StackUnderTest) -> None:
    before = stack.component("alertmanager")
    result = stack.hux("restart", "alertmanager")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alertmanager: restarted, ready" in result.stdout
    after = stack.component("alertmanager")
    assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"]
    assert stack.hux("restart", "nonsense").returncode == 1


def test_status_shows_each_component(stack: StackUnderTest) -> None:
    result = stack.hux("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:5] == ["COMPONENT", "STATE", "READY", "PID", "RESTARTS"]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line and not line.startswith(" ")}
    for name in COMPONENTS:
        assert rows[name][1] == "running" and rows[name][2] == "yes"
        assert rows[name][3] == str(stack.component(name)["pid"])
        assert rows[name][4] == str(stack.component(name)["restarts"])
    assert int(rows["prometheus"][4]) >= 1      # the SIGKILL test above
    data = stack.status()
    assert data["running"] and data["memory_rss_total_bytes"] > 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_down_stops_everything_it_started(stack: StackUnderTest) -> None:
    identities = stack.identities()
    assert set(identities) == {"supervisor", *COMPONENTS}
    # Stopping does not depend on the settings: it works even right after they were broken.
    stack.config.write_text("[stack]\nnot_a_setting = 1\n")
    result = stack.hux("down")
    stack.write_config(stack.config_extra)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in COMPONENTS:
        assert f"{name} (pid {identities[name].pid})" in result.stdout
    for name, ident in identities.items():
        assert not ident.alive(), f"{name} (pid {ident.pid}) is still running"
    for name, port in stack.ports.items():
        if name != "grafana":
            wait_for(lambda port=port: _port_free(port), 5, f"port {port} ({name}) to be free")
    assert not list((stack.home / "data" / "supervisor").glob("*.pid"))
    assert stack.hux("status").returncode == 3
    again = stack.hux("down")
    assert again.returncode == 0 and "nothing is running" in again.stdout
