"""Containers in docker mode: System Overview reads cAdvisor per compose service, natively the process metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from hux.monitoring.compose import MEMORY_LIMITS
from hux.monitoring.dashboards import build_dashboards, panel_queries, substitute
from hux.monitoring.render import docker_files
from hux.monitoring.rules import ALERTS, rule_files
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[2]
SERVICE = "container_label_com_docker_compose_service"
CONTAINER_PANELS = {"CPU per container", "Memory per container (share of its limit)", "Memory per container",
                    "Container restarts", "Network per container"}


def _docker(settings):
    return settings.model_copy(update={"stack": settings.stack.model_copy(update={"mode": "docker"})})


def _overview(settings) -> dict[str, list[str]]:
    board = build_dashboards(settings)["hux-system-overview"]
    out: dict[str, list[str]] = {}
    for title, expr in panel_queries(board):
        out.setdefault(title, []).append(expr)
    return out


def test_docker_mode_reads_cadvisor_per_service_and_native_mode_the_processes(make_settings):
    settings = make_settings()
    native, docker = _overview(settings), _overview(_docker(settings))
    assert CONTAINER_PANELS <= set(docker)
    assert not CONTAINER_PANELS & set(native)
    assert {"CPU per component", "Resident memory per component", "Restarts per component"} <= set(native)
    assert not any("container_" in e for exprs in native.values() for e in exprs)
    for title in CONTAINER_PANELS:
        assert all(f"sum by ({SERVICE})" in e for e in docker[title]), title
    assert "container_spec_memory_limit_bytes" in docker["Memory per container (share of its limit)"][0]
    assert "> 0)" in docker["Memory per container (share of its limit)"][0]     # unlimited (0) left out
    assert "changes(container_start_time_seconds" in docker["Container restarts"][0]
    assert len(docker["Network per container"]) == 2


def test_the_committed_docker_dashboards_are_the_docker_mode_ones(make_settings):
    files = docker_files(make_settings())   # native settings: the docker tree is rendered in docker mode anyway
    board = json.loads(files["docker/grafana/dashboards/hux-system-overview.json"])
    assert CONTAINER_PANELS <= {title for title, _ in panel_queries(board)}
    committed = json.loads((REPO / "docker/grafana/dashboards/hux-system-overview.json").read_text())
    assert CONTAINER_PANELS <= {title for title, _ in panel_queries(committed)}


def test_every_compose_service_has_a_memory_limit(make_settings):
    compose = yaml.safe_load(docker_files(make_settings())["docker-compose.yml"])
    assert {name: s.get("mem_limit") for name, s in compose["services"].items()} == MEMORY_LIMITS


def test_container_alerts_are_rendered_from_the_settings(make_settings):
    settings = make_settings("[alerts]\ncontainer_restarts_max = 5\ncontainer_memory_ratio = 0.8\n")
    assert ALERTS["ContainerRestarting"] == ALERTS["ContainerMemoryNearLimit"] == "warning"
    rules = {r["alert"]: r for group in rule_files(settings)["host-alerts.yml"]["groups"]
             for r in group["rules"] if "alert" in r}
    assert rules["ContainerRestarting"]["expr"].endswith("> 5")
    assert rules["ContainerMemoryNearLimit"]["expr"].endswith("> 0.8")
    assert "container_spec_memory_limit_bytes" in rules["ContainerMemoryNearLimit"]["expr"]


PANEL_TEST = """
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'container_memory_working_set_bytes{{name="hux-bot-1",{svc}="bot"}}'
        values: '486400000x5'
      - series: 'container_spec_memory_limit_bytes{{name="hux-bot-1",{svc}="bot"}}'
        values: '512000000x5'
      - series: 'container_memory_working_set_bytes{{name="hux-cadvisor-1",{svc}="cadvisor"}}'
        values: '900000000x5'
      - series: 'container_spec_memory_limit_bytes{{name="hux-cadvisor-1",{svc}="cadvisor"}}'
        values: '0x5'
      - series: 'container_memory_working_set_bytes{{id="/"}}'
        values: '4000000000x5'
      - series: 'container_start_time_seconds{{name="hux-bot-1",{svc}="bot"}}'
        values: '1000 1000 1100 1100 1200 1200'
    promql_expr_test:
      - expr: '{memory}'
        eval_time: 5m
        exp_samples:
          - labels: '{{{svc}="bot"}}'
            value: 0.95
      - expr: '{restarts}'
        eval_time: 5m
        exp_samples:
          - labels: '{{{svc}="bot"}}'
            value: 2
"""


def test_container_panel_queries_on_cadvisor_series(make_settings, tmp_path):
    """The memory panel leaves out an unlimited container and cgroups without a service; restarts count starts."""
    promtool = require_binary("promtool")
    queries = _overview(_docker(make_settings()))
    memory = substitute(queries["Memory per container (share of its limit)"][0], rate_interval="1m", interval="1m",
                        range_="1h")
    restarts = substitute(queries["Container restarts"][0], rate_interval="1m", interval="1m", range_="1h")
    memory = memory.replace("'", "\\'")
    test = tmp_path / "panels.test.yml"
    test.write_text(PANEL_TEST.format(svc=SERVICE, memory=memory, restarts=restarts))   # 486.4 MB / 512 MB = 0.95
    proc = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
