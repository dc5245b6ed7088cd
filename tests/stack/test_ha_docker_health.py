"""`hux health` in docker mode with ``stack.topology = "ha"``: the HA layer reported from the published ports.

No Docker engine here, so the containers are stood in for by the real binaries (two Prometheus replicas, three
Alertmanagers gossiping, VictoriaMetrics) with the command lines the native plan renders, without the web config
(the docker path runs them without auth), listening on 127.0.0.2: the address the docker settings publish on
(``stack.publish_address``), while ``stack.bind_address`` stays 127.0.0.1 where nothing listens. The docker
context must find them there; the native context, asking the bind address, must not.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from hux.monitoring.render import render_native
from hux.monitoring.settings import Settings, load_settings
from hux.stack.components import build_plan, decide_grafana
from hux.stack.health import CheckResult, run_health
from hux.stack.health.ha_checks import check_ha
from hux.stack.plan import StackPaths
from tests.conftest import free_port, require_binary
from tests.ops.conftest import _stop
from tests.stack.conftest import BINARIES, PORT_NAMES, base_config, stack_env
from tests.stack.test_ha_drills import HA_PORTS

PUBLISHED = "127.0.0.2"
STAND_INS = ("prometheus", "prometheus_b", "alertmanager", "alertmanager_b", "alertmanager_c", "victoria_metrics")
HA_TOPOLOGY = '[stack]\ntopology = "ha"\n'
#: one set of free ports for both settings files: the stand-ins listen where the docker settings publish
PORTS = {name: free_port() for name in (*PORT_NAMES, *HA_PORTS)}


def _settings(home: Path, name: str, stack: str) -> Settings:
    (home / name).write_text(base_config(PORTS, HA_TOPOLOGY + stack))
    return load_settings(home / name, environ=stack_env(home))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, StackPaths]]:
    for binary in (*BINARIES, "victoria-metrics"):
        require_binary(binary)
    home = tmp_path_factory.mktemp("ha-docker")
    paths = StackPaths(home)
    native = _settings(home, "stand-ins.toml", f'bind_address = "{PUBLISHED}"\n')
    rendered = render_native(native, paths.run_dir, data_dir=paths.data, grafana_enabled=False)
    plan = build_plan(native, paths, rendered, grafana=decide_grafana(native))
    paths.logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in STAND_INS:
            spec = plan.component(name)
            argv = [a for a in spec.argv if not a.startswith("--web.config.file=")]
            with open(paths.logs / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=home))
        docker = _settings(home, "hux.toml", f'mode = "docker"\npublish_address = "{PUBLISHED}"\n')
        yield docker, paths
    finally:
        for proc in procs:
            _stop(proc)


def _ha(settings: Settings, paths: StackPaths, mode: str) -> dict[str, CheckResult]:
    report = asyncio.run(run_health(settings, paths, mode=mode, checks=[("ha", check_ha)]))
    return {check.name: check for check in report.checks}


def test_docker_mode_reports_the_ha_layer_from_the_published_ports(stand_ins) -> None:
    settings, paths = stand_ins
    ports = settings.stack.ports
    want = {"prometheus_b ready", "alertmanager_b ready", "alertmanager_c ready", "victoria_metrics ready",
            "alertmanager cluster", "remote write prometheus", "remote write prometheus_b", "victoria_metrics dedup"}
    deadline, checks = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        checks = _ha(settings, paths, "docker")
        if set(checks) == want and all(c.status == "pass" for c in checks.values()):
            break
        time.sleep(1)
    assert set(checks) == want, sorted(checks)
    assert all(c.status == "pass" for c in checks.values()), {n: (c.status, c.reason) for n, c in checks.items()}
    assert checks["prometheus_b ready"].reason.startswith(f"http://{PUBLISHED}:{ports.prometheus_b} ready")
    assert checks["alertmanager cluster"].reason.startswith("3 members, each sees all")
    assert "s behind" in checks["remote write prometheus_b"].reason

    # the native context asks the bind address (127.0.0.1), where nothing of the stand-ins listens
    native = _ha(settings, paths, "native")
    assert native["prometheus_b ready"].status == "fail"
    assert f"http://127.0.0.1:{ports.prometheus_b}/-/ready" in native["prometheus_b ready"].reason


def test_a_member_down_under_docker_names_its_compose_service(stand_ins, tmp_path: Path) -> None:
    settings, paths = stand_ins
    # the same settings with alertmanager_c's host port moved where nothing listens: that member is "down"
    moved = settings.model_copy(update={"stack": settings.stack.model_copy(update={
        "ports": settings.stack.ports.model_copy(update={"alertmanager_c": free_port()})})})
    checks = _ha(moved, paths, "docker")
    down = checks["alertmanager_c ready"]
    assert down.status == "fail" and "connection refused" in down.reason
    assert down.fix == "`docker compose logs alertmanager-c`; `hux restart alertmanager-c`"
    assert checks["alertmanager cluster"].status == "warn" and "alertmanager_c: no answer" in checks[
        "alertmanager cluster"].reason
