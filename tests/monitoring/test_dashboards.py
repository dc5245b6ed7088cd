"""The three dashboards: structure, datasource, units, thresholds, variables, and queries that parse."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from hux.monitoring.dashboards import build_dashboards, panel_queries, substitute
from tests.conftest import require_binary

UIDS = {"hux-system-overview": "System Overview", "hux-token-monitoring": "Token Monitoring",
        "hux-risk-monitoring": "Risk Monitoring"}


@pytest.fixture
def boards(make_settings):
    return build_dashboards(make_settings())


def _panels(board):
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel


def test_three_dashboards_with_fixed_uids(boards):
    assert {uid: b["title"] for uid, b in boards.items()} == UIDS
    for board in boards.values():
        assert "hux" in board["tags"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]


def test_every_panel_uses_the_provisioned_datasource_and_has_a_unit(boards, make_settings):
    uid = make_settings().grafana.datasource_uid
    for board in boards.values():
        for panel in _panels(board):
            if panel["type"] == "alertlist":   # no PromQL: tests/monitoring/test_grafana_provisioning.py
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
            if panel["type"] != "table":
                assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"


def test_template_variables(boards):
    for uid, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        # a host selector where host panels are (many hosts: `hux targets add node`)
        with_hosts = uid in ("hux-system-overview", "hux-risk-monitoring")
        expected = {"node", "job", "instance"} if with_hosts else {"job", "instance"}
        assert set(variables) == expected
        for var in variables.values():
            assert var["includeAll"] and var["allValue"] == ".*" and var["datasource"]["uid"] == "hux-prometheus"
        for _, expr in panel_queries(board):
            assert '="$' not in expr, f"variables must be matched with =~: {expr}"
            if re.search(r"\bnode_|:node_", expr):
                assert 'instance=~"$node"' in expr, f"a host panel without the host selector: {expr}"


def test_thresholds_come_from_the_alert_settings(make_settings):
    settings = make_settings("[alerts]\nlatency_seconds = 7.5\nqueue_backlog_ratio = 0.7\napi_usage_ratio = 0.6\n")
    risk = build_dashboards(settings)["hux-risk-monitoring"]
    by_title = {p["title"]: p for p in _panels(risk)}

    def steps(title):
        return [s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps("Message to decision latency") == [None, 7.5]
    assert steps("Intake queue use") == [None, 0.7]
    assert steps("API usage of the rate limit") == [None, 0.6]
    assert by_title["Message to decision latency"]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {
        "mode": "dashed"}


def test_seed_sections_are_present(boards):
    titles = {uid: {p["title"] for p in b["panels"]} for uid, b in boards.items()}
    assert {"Key metrics (all bot instances)", "Host resources", "Component health and resources",
            "CPU busy by mode", "Memory used", "Filesystem space free", "Disk I/O", "Network traffic",
            "Component up"} <= titles["hux-system-overview"]
    assert {"Token decisions by outcome", "Token processing time", "Score distribution (selected range)",
            "Success rate per pipeline stage", "Messages by group (top 10)"} <= titles["hux-token-monitoring"]
    assert {"Pipeline error rate by stage", "Message to decision latency", "API usage of the rate limit",
            "Intake queue use", "Firing alerts"} <= titles["hux-risk-monitoring"]


def test_every_panel_query_parses(boards, tmp_path: Path):
    """promtool parses each query (variables substituted) as a recording rule: no syntax error reaches Grafana."""
    require_binary("promtool")
    rules = []
    for uid, board in boards.items():
        for index, (_title, expr) in enumerate(panel_queries(board)):
            rules.append({"record": f"dashboard_query:{uid.replace('-', '_')}:{index}",
                          "expr": substitute(expr, rate_interval="1m", interval="15s", range_="1h")})
    assert len(rules) >= 60
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
