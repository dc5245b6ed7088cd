"""Health checks that need no running stack: receivers, backups, disk, output formats."""

from __future__ import annotations

import asyncio
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest
from aiosmtpd.controller import Controller
from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring.dashboards import EMPTY_UNLESS
from hux.monitoring.settings import load_settings
from hux.stack.health import (
    CheckResult,
    HealthReport,
    NotAnswering,
    check_backup,
    check_disk,
    check_receivers,
    client_auth,
    describe_bot_ready,
    grafana_vars_to_promql,
    run_health,
)
from hux.stack.health.alertmanager_checks import metric_value
from hux.stack.health.cli import print_health
from hux.stack.health.dashboard_checks import check_dashboards, query_outcomes
from hux.stack.health.model import PASS, WARN
from hux.stack.output import Console
from hux.stack.plan import StackPaths
from tests.conftest import free_port
from tests.ops.conftest import prom_factory  # noqa: F401 - the fixture: a real Prometheus on a free port
from tests.stack.conftest import stack_env


def settings_for(home: Path, toml: str = "", env: dict[str, str] | None = None):
    (home / "hux.toml").write_text(toml)
    return load_settings(home / "hux.toml", environ=stack_env(home, env))


def run(settings, home: Path, check) -> list[CheckResult]:
    report = asyncio.run(run_health(settings, StackPaths(home), checks=[("check", check)]))
    return report.checks


class _Sink:
    async def handle_DATA(self, server, session, envelope):  # aiosmtpd API
        return "250 OK"


class _Hook(BaseHTTPRequestHandler):
    def do_HEAD(self):  # http.server API
        self.send_response(405)   # a webhook that only takes POST still answers
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def smtp_port():
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


@pytest.fixture
def webhook_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token-123"
    server.shutdown()
    server.server_close()


def test_reachable_receivers_pass_and_their_secrets_stay_out_of_the_report(tmp_path, smtp_port, webhook_url,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("HOOK", webhook_url)   # receiver secrets are read from the environment at check time
    settings = settings_for(tmp_path, f'[receivers.email]\nenabled = true\nsmtp_smarthost = "127.0.0.1:{smtp_port}"\n'
                                      f'[receivers.webhook]\nenabled = true\nurl_env = "HOOK"\n'
                                      '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n',
                            env={"HOOK": webhook_url})
    checks = {c.name: c for c in run(settings, tmp_path, check_receivers)}
    assert checks["receiver email"].status == "pass" and "220" in checks["receiver email"].reason
    assert checks["receiver webhook"].status == "pass" and "HTTP 405" in checks["receiver webhook"].reason
    assert "secret-token-123" not in json.dumps([c.to_dict() for c in checks.values()])
    assert "receiver slack" not in checks, "only enabled receivers are checked"


def test_unreachable_receivers_fail_with_the_setting_to_fix(tmp_path) -> None:
    dead = free_port()
    settings = settings_for(tmp_path, f'[receivers.email]\nenabled = true\nsmtp_smarthost = "127.0.0.1:{dead}"\n'
                                      f'[receivers.webhook]\nenabled = true\nurl = "http://127.0.0.1:{free_port()}/x"\n'
                                      '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n')
    checks = {c.name: c for c in run(settings, tmp_path, check_receivers)}
    assert checks["receiver email"].status == "fail"
    assert f"cannot connect to SMTP 127.0.0.1:{dead}" in checks["receiver email"].reason
    assert "receivers.email.smtp_smarthost" in checks["receiver email"].fix
    assert checks["receiver webhook"].status == "fail" and "unreachable" in checks["receiver webhook"].reason


def _textfile(home: Path, text: str) -> None:
    directory = home / "data" / "node_exporter" / "textfile"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hux_backup.prom").write_text(text)


def test_backup_age_from_the_textfile_metrics(tmp_path) -> None:
    settings = settings_for(tmp_path)
    [none] = run(settings, tmp_path, check_backup)
    assert none.status == "warn" and "no backup taken yet" in none.reason and "backup_monitoring.py" in none.fix

    now = time.time()
    _textfile(tmp_path, f'hux_backup_last_success{{kind="prometheus"}} 1\n'
                        f'hux_backup_last_success_timestamp_seconds{{kind="prometheus"}} {now - 3600}\n')
    [fresh] = run(settings, tmp_path, check_backup)
    assert fresh.status == "pass" and "prometheus 60 min ago" in fresh.reason

    _textfile(tmp_path, f'hux_backup_last_success{{kind="prometheus"}} 1\n'
                        f'hux_backup_last_success_timestamp_seconds{{kind="prometheus"}} {now - 3 * 86400}\n')
    [old] = run(settings, tmp_path, check_backup)
    assert old.status == "warn" and "older than backup.max_age (26h)" in old.reason

    _textfile(tmp_path, f'hux_backup_last_success{{kind="grafana"}} 0\n'
                        f'hux_backup_last_success_timestamp_seconds{{kind="grafana"}} {now - 60}\n')
    [failed] = run(settings, tmp_path, check_backup)
    assert failed.status == "warn" and "last grafana backup run failed" in failed.reason


def test_disk_check_groups_data_directories_by_filesystem(tmp_path) -> None:
    settings = settings_for(tmp_path)
    for name in ("prometheus", "alertmanager", "bot"):
        (tmp_path / "data" / name).mkdir(parents=True)
    [disk] = run(settings, tmp_path, check_disk)
    assert "data/prometheus, data/alertmanager, data/bot" in disk.reason and "free" in disk.reason
    strict = settings_for(tmp_path, "[alerts]\ndisk_free_ratio = 0.99\n")
    [full] = run(strict, tmp_path, check_disk)
    assert full.status == "fail" and "retention" in full.fix


def test_a_stack_that_is_not_running_fails_with_how_to_start_it(tmp_path) -> None:
    settings = settings_for(tmp_path, "[stack.ports]\n" + "".join(
        f"{n} = {free_port()}\n" for n in ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "inbox")))
    report = asyncio.run(run_health(settings, StackPaths(tmp_path)))
    assert report.exit_code == 1
    failing = {c.name: c for c in report.checks if c.status == "fail"}
    for name in ("prometheus ready", "alertmanager ready", "node_exporter ready", "bot ready"):
        assert "connection refused" in failing[name].reason and "hux up" in failing[name].fix
    # every other Prometheus-backed check says it could not look, instead of piling up failures
    assert {c.name for c in report.checks if c.reason.startswith("not checked")} >= {"prometheus config", "rule groups"}


def test_under_docker_the_runtime_decides_what_is_checked_and_how_to_fix_it(tmp_path) -> None:
    """One Runtime object holds the docker differences: no credentials, no bot probe, Grafana expected,
    `docker compose logs` as the fix, and no supervisor state read."""
    settings = settings_for(tmp_path, "[stack.ports]\n" + "".join(
        f"{n} = {free_port()}\n" for n in ("prometheus", "alertmanager", "node_exporter", "grafana", "bot", "inbox")))
    (tmp_path / "data" / "auth").mkdir(parents=True)
    (tmp_path / "data" / "auth" / "password").write_text("secret\n")
    assert client_auth(settings, StackPaths(tmp_path), "docker") is None
    assert client_auth(settings, StackPaths(tmp_path), "native") is not None
    report = asyncio.run(run_health(settings, StackPaths(tmp_path), mode="docker"))
    checks = {c.name: c for c in report.checks}
    assert report.mode == "docker" and "bot ready" not in checks
    assert checks["prometheus ready"].fix == "`docker compose logs prometheus`; `hux restart prometheus`"
    assert checks["grafana ready"].status == "fail" and "docker compose logs grafana" in checks["grafana ready"].fix


def test_report_formats() -> None:
    report = HealthReport([CheckResult("a ready", "pass", "ready"), CheckResult("b", "warn", "meh", "do x"),
                           CheckResult("c ready", "fail", "down", "start it")], duration=0.12)
    data = report.to_dict()
    assert data["status"] == "fail" and data["counts"] == {"pass": 1, "warn": 1, "fail": 1}
    assert report.exit_code == 1 and report.failing() == ["c ready"]
    out = _capture(lambda con: print_health(report, con, as_json=False))
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert "FAIL" in lines[3] and "→ fix: start it" in lines[3]
    assert "→ fix" not in lines[1], "passing checks carry no fix"
    assert "health: FAIL — 1 failing, 1 warning, 1 passing" in out and "failing: c ready" in out
    warn_only = HealthReport([CheckResult("b", "warn", "meh", "do x")], duration=0.1)
    assert warn_only.exit_code == 0


def test_grafana_variables_become_promql() -> None:
    expr = 'sum(rate(x_total{job=~"$job"}[$__rate_interval])) / $__interval'
    assert grafana_vars_to_promql(expr, 15) == 'sum(rate(x_total{job=~".*"}[60s])) / 15s'


def _capture(write) -> str:
    import io

    buffer = io.StringIO()
    write(Console(buffer))
    return buffer.getvalue()


# ----- dashboard queries against a real Prometheus, batched -------------------------------------------


def _query_requests(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)


def _outcomes(settings, home: Path, exprs: list[str]) -> list:
    found: list = []

    async def check(ctx):
        found.extend(await query_outcomes(ctx, exprs))
        return []

    run(settings, home, check)
    return found


def test_dashboard_queries_are_asked_in_batches(tmp_path, prom_factory) -> None:  # noqa: F811 - the fixture
    prom = prom_factory()
    settings = settings_for(tmp_path, f"[stack.ports]\nprometheus = {prom.port}\n")
    exprs = [f"vector({i})" for i in range(30)] + ["vector(1) < 0"]
    before = _query_requests(prom.url)
    outcomes = _outcomes(settings, tmp_path, exprs)
    assert outcomes == [True] * 30 + [False]
    assert _query_requests(prom.url) - before == 2   # 31 queries, 25 per request


def test_a_refused_batch_is_asked_query_by_query(tmp_path, prom_factory) -> None:  # noqa: F811 - the fixture
    prom = prom_factory()
    settings = settings_for(tmp_path, f"[stack.ports]\nprometheus = {prom.port}\n")
    outcomes = _outcomes(settings, tmp_path, ["vector(1)", "sum(", "1 + 1", "vector(1) < 0"])
    assert outcomes[0] is True and outcomes[2] is True and outcomes[3] is False   # a scalar returns data
    assert isinstance(outcomes[1], NotAnswering) and outcomes[1].answered and "parse error" in str(outcomes[1])


def _board(title: str, panels: list[dict]) -> dict:
    return {"uid": title.lower(), "title": title, "panels": panels, "templating": {"list": []}}


def _panel(title: str, expr: str, present: str | None = None) -> dict:
    panel = {"id": len(title), "type": "stat", "title": title, "targets": [{"refId": "A", "expr": expr}]}
    if present is not None:
        panel[EMPTY_UNLESS] = {"setting": "bot.telegram_user", "present": present}
    return panel


def test_a_panel_of_what_is_not_configured_may_be_empty_and_no_other(tmp_path, prom_factory) -> None:  # noqa: F811
    prom = prom_factory()
    settings = settings_for(tmp_path, f"[stack.ports]\nprometheus = {prom.port}\n")
    boards = StackPaths(tmp_path).dashboards_dir
    boards.mkdir(parents=True)
    nothing = "vector(1) < 0"
    (boards / "a.json").write_text(json.dumps(_board("Off", [
        _panel("drawn", "vector(1)"), _panel("user chats", nothing, present=nothing)])))
    (boards / "b.json").write_text(json.dumps(_board("On", [     # the part runs: its empty panel is reported
        _panel("drawn", "vector(1)"), _panel("user chats", nothing, present="vector(1)")])))
    (boards / "c.json").write_text(json.dumps(_board("Plain", [  # no marker: empty is reported as ever
        _panel("drawn", "vector(1)"), _panel("queue", nothing)])))
    (boards / "d.json").write_text(json.dumps(_board("Forged", [  # a malformed marker counts for nothing
        _panel("queue", nothing) | {EMPTY_UNLESS: {"setting": "x" * 600, "present": nothing}}])))

    results = {r.name: r for r in run(settings, tmp_path, check_dashboards)}
    assert results["dashboard Off"].status == PASS
    assert results["dashboard Off"].reason == ("1 of 2 queries return data; 1 are empty as they should be: "
                                               "bot.telegram_user not configured")
    assert results["dashboard On"].status == WARN and "user chats" in results["dashboard On"].reason
    assert results["dashboard Plain"].status == WARN and "queue" in results["dashboard Plain"].reason
    assert results["dashboard Forged"].status == WARN and "queue" in results["dashboard Forged"].reason


def test_a_prometheus_that_does_not_answer_is_not_a_dashboard_bug(tmp_path) -> None:
    settings = settings_for(tmp_path, f"[stack.ports]\nprometheus = {free_port()}\n")
    outcomes = _outcomes(settings, tmp_path, ["vector(1)", "vector(2)"])
    assert all(isinstance(o, NotAnswering) and not o.answered for o in outcomes)
    assert "did not answer" in str(outcomes[0])


# ----- answers from the components are input too ---------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=10)


@given(body=st.dictionaries(st.sampled_from(["mode", "database", "queue", "sources", "ready"]), _json))
@example(body={"database": "down", "queue": [1], "sources": "replay"})
def test_any_ready_answer_of_the_bot_reads_as_one_line(body) -> None:
    line = describe_bot_ready(body)
    assert isinstance(line, str) and "\n" not in line and "mode" in line


@given(text=st.text(max_size=200))
@example(text="alertmanager_config_last_reload_successful NaNx\n")
@example(text="alertmanager_config_last_reload_successful{a=\"b\"} 1\n")
def test_a_metrics_page_never_crashes_the_alertmanager_check(text) -> None:
    value = metric_value(text, "alertmanager_config_last_reload_successful")
    assert value is None or isinstance(value, float)
