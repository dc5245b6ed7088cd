"""Basic auth in front of Prometheus, Alertmanager and node_exporter (native mode), used by every client of ours.

Alertmanager 0.25 serves its whole configuration, webhook URLs and their
tokens included, from ``GET /api/v2/status``. Natively the three components
run with a generated web config (user ``hux``, bcrypt hash); the password sits
in ``data/auth/password`` (0600, directory 0700) and every client of ours
sends it: Prometheus's scrapes and alerting, the readiness probes, the health
check, hot reload, backup, notify-test.

The first tests need no binaries; the rest share one real stack (driven
through the CLI) whose webhook receiver URL carries a token.
"""

from __future__ import annotations

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring import auth
from hux.monitoring.render import docker_files, native_files
from hux.monitoring.settings import Settings, load_settings
from tests.conftest import free_port
from tests.stack.conftest import StackUnderTest, start_stack, stop_stack, wait_for

TOKEN = "tok-3f9a1c7e55d24b0b"
AUTHED_COMPONENTS = ("prometheus", "alertmanager", "node_exporter")
AUTHED_JOBS = ("prometheus", "alertmanager", "node")
SETTLE = 40.0   # s: bound for targets and rules to settle after a start


def settings_from(tmp_path: Path, toml: str = "") -> Settings:
    path = tmp_path / "hux-settings.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path, environ={})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ----- without binaries ----------------------------------------------------------------------------


def test_credentials_are_generated_private_and_kept(tmp_path: Path) -> None:
    origins = ["http://127.0.0.1:9090", "http://127.0.0.1:9093"]
    files, created = auth.ensure(tmp_path / "data", origins, cost=4)
    assert created
    password = files.password_file.read_text(encoding="utf-8").strip()
    assert len(password) >= 32
    assert _mode(files.directory) == 0o700
    for path in (files.password_file, files.web_config, files.origins_file, files.http_client_config):
        assert _mode(path) == 0o600, path
    web = yaml.safe_load(files.web_config.read_text(encoding="utf-8"))
    assert set(web["basic_auth_users"]) == {auth.USER}
    assert password not in files.web_config.read_text(encoding="utf-8")
    assert auth.verify(password, web["basic_auth_users"][auth.USER])
    client = yaml.safe_load(files.http_client_config.read_text(encoding="utf-8"))
    assert client == {"basic_auth": {"username": auth.USER, "password_file": str(files.password_file)}}
    before = files.web_config.read_text(encoding="utf-8")
    again, created_again = auth.ensure(tmp_path / "data", origins, cost=4)
    assert not created_again
    assert again.password_file.read_text(encoding="utf-8").strip() == password
    assert again.web_config.read_text(encoding="utf-8") == before    # same hash: no needless change


def test_loose_modes_are_tightened_and_an_empty_password_is_replaced(tmp_path: Path) -> None:
    files, _ = auth.ensure(tmp_path / "data", [], cost=4)
    files.directory.chmod(0o755)
    files.password_file.write_text("")
    files.password_file.chmod(0o644)
    again, created = auth.ensure(tmp_path / "data", [], cost=4)
    assert created and again.password_file.read_text().strip()
    assert _mode(again.directory) == 0o700 and _mode(again.password_file) == 0o600
    web = yaml.safe_load(again.web_config.read_text())
    assert auth.verify(again.password_file.read_text().strip(), web["basic_auth_users"][auth.USER])


def test_an_operator_web_config_keeps_its_settings_and_gains_our_user(tmp_path: Path) -> None:
    ours = "basic_auth_users:\n  hux: $2b$04$abcdefghijklmnopqrstuuKqBqvRtGnmc1n2T4lYb3qjPq1wC7bSO\n"
    operator = "basic_auth_users:\n  alice: $2b$04$xyz\nhttp_server_config:\n  http2: false\n"
    merged = yaml.safe_load(auth.merge_web_config(operator, ours))
    assert merged["basic_auth_users"] == {"alice": "$2b$04$xyz", "hux": yaml.safe_load(ours)["basic_auth_users"]["hux"]}
    assert merged["http_server_config"] == {"http2": False}
    with pytest.raises(auth.AuthError, match="YAML mapping"):
        auth.merge_web_config("- just a list\n", ours)


def _request(url: str) -> httpx.Request:
    return httpx.Request("GET", url)


def _header(scoped: httpx.Auth, url: str) -> str | None:
    flow = scoped.auth_flow(_request(url))
    return next(flow).headers.get("authorization")


def test_credentials_go_only_to_the_stack_origins() -> None:
    scoped = auth.ScopedBasicAuth("hux", "s3cret", ["http://127.0.0.1:9090", "http://localhost:9093/"])
    assert _header(scoped, "http://127.0.0.1:9090/api/v1/query?query=up") is not None
    assert _header(scoped, "http://LOCALHOST:9093/api/v2/status") is not None
    for url in ("http://127.0.0.1:8000/ready", "https://127.0.0.1:9090/", "http://hooks.example.org:9090/x",
                "http://127.0.0.1:90900/", "http://127.0.0.2:9090/"):
        assert _header(scoped, url) is None, url


@given(host=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True), port=st.integers(1, 65535),
       path=st.text(alphabet="abc/?=&%", max_size=20))
@example(host="127.0.0.1", port=9091, path="/")
@example(host="127.0.0.1.example.org", port=9090, path="/")
def test_no_other_origin_ever_receives_the_password(host: str, port: int, path: str) -> None:
    scoped = auth.ScopedBasicAuth("hux", "s3cret", ["http://127.0.0.1:9090"])
    if (host, port) == ("127.0.0.1", 9090):
        return
    try:
        request = _request(f"http://{host}:{port}/{path}")
    except httpx.InvalidURL:
        return
    assert next(scoped.auth_flow(request)).headers.get("authorization") is None


def test_native_prometheus_config_sends_the_password_file(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    password_file = tmp_path / "data" / "auth" / "password"
    files, _ = native_files(settings, tmp_path / "run", grafana_enabled=True, environ={},
                            auth_password_file=password_file)
    config = yaml.safe_load(files["prometheus.yml"])
    expected = {"username": "hux", "password_file": str(password_file)}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in AUTHED_JOBS:
        assert jobs[name]["basic_auth"] == expected, name
    assert "basic_auth" not in jobs["bot"] and "basic_auth" not in jobs["grafana"]
    assert [am["basic_auth"] for am in config["alerting"]["alertmanagers"]] == [expected]


def test_the_native_grafana_datasource_reads_the_password_from_its_file(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    password_file = tmp_path / "data" / "auth" / "password"
    files, _ = native_files(settings, tmp_path / "run", grafana_enabled=True, environ={},
                            auth_password_file=password_file)
    sources = yaml.safe_load(files["grafana/provisioning/datasources/hux.yml"])["datasources"]
    # Prometheus and the Alertmanager datasource beside it: both behind basic auth, the password by file reference
    assert sorted(source["type"] for source in sources) == ["alertmanager", "prometheus"]
    for source in sources:
        assert source["basicAuth"] is True and source["basicAuthUser"] == "hux"
        assert source["secureJsonData"] == {"basicAuthPassword": f"$__file{{{password_file}}}"}


def test_the_docker_tree_stays_without_credentials(tmp_path: Path) -> None:
    """Docker keeps its components unauthenticated inside the compose network: no file that compose lacks."""
    files = docker_files(settings_from(tmp_path))
    assert "basic_auth" not in files["docker/prometheus/prometheus.yml"]
    assert "password_file" not in files["docker/prometheus/prometheus.yml"]


# ----- the real stack --------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("content-length") or 0)
        _Hook.received.append(self.rfile.read(min(length, 1 << 20)))
        self.send_response(200)
        self.end_headers()

    def do_HEAD(self) -> None:  # the health check's reachability probe
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hook():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, hook):
    home = tmp_path_factory.mktemp("auth-stack")
    url_file = home / "webhook_url"
    url_file.write_text(f"http://127.0.0.1:{hook.server_port}/hook/{TOKEN}\n")
    url_file.chmod(0o600)
    extra = ("\n[receivers.webhook]\nenabled = true\nurl_env = \"HUX_TEST_UNSET_WEBHOOK_URL\"\n"
             f"url_file = \"{url_file}\"\n"
             "\n[alertmanager]\ncritical_receivers = [\"webhook\"]\nwarning_receivers = [\"webhook\"]\n"
             "critical_group_wait = \"1s\"\ngroup_wait = \"1s\"\n"
             "\n[alerts]\nrunbook_base_url = \"https://runbooks.example.org/runbooks.md\"\n")
    running = start_stack(home, config_extra=extra)
    yield running
    stop_stack(running)


def _credentials(stack: StackUnderTest) -> tuple[str, str]:
    return stack.credentials


def test_anonymous_clients_get_401_and_no_webhook_token(stack: StackUnderTest) -> None:
    status = httpx.get(stack.url("alertmanager") + "/api/v2/status", timeout=5)
    assert status.status_code == 401
    assert TOKEN not in status.text
    for name, path in (("prometheus", "/api/v1/status/config"), ("node_exporter", "/metrics"),
                       ("alertmanager", "/api/v2/alerts"), ("prometheus", "/-/ready")):
        assert httpx.get(stack.url(name) + path, timeout=5).status_code == 401, (name, path)
    # The token is still in Alertmanager's config, for the one who holds the password.
    authed = httpx.get(stack.url("alertmanager") + "/api/v2/status", auth=_credentials(stack), timeout=5)
    assert authed.status_code == 200 and TOKEN in authed.text


def test_a_wrong_password_is_refused(stack: StackUnderTest) -> None:
    for name in AUTHED_COMPONENTS:
        path = "/metrics"
        assert httpx.get(stack.url(name) + path, auth=("hux", "wrong"), timeout=5).status_code == 401, name
        assert httpx.get(stack.url(name) + path, auth=("admin", _credentials(stack)[1]), timeout=5).status_code == 401
        assert httpx.get(stack.url(name) + path, auth=_credentials(stack), timeout=5).status_code == 200, name


def test_credential_files_are_private_and_never_in_rendered_files(stack: StackUnderTest) -> None:
    directory = stack.paths.data / "auth"
    assert _mode(directory) == 0o700
    password = _credentials(stack)[1]
    for path in directory.iterdir():
        assert _mode(path) == 0o600, path
    for path in stack.paths.run_dir.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(encoding="utf-8", errors="replace"), path
    for path in stack.paths.logs.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(encoding="utf-8", errors="replace"), path
    assert password not in stack.up_output


def test_every_target_is_up_with_auth_and_health_passes(stack: StackUnderTest) -> None:
    def all_up():
        reply = httpx.get(stack.url("prometheus") + "/api/v1/targets", auth=_credentials(stack), timeout=5).json()
        targets = reply["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for(all_up, SETTLE, "every target up")
    assert {t["labels"]["job"] for t in targets} >= set(AUTHED_JOBS)
    ams = httpx.get(stack.url("prometheus") + "/api/v1/alertmanagers", auth=_credentials(stack), timeout=5).json()
    assert [a["url"] for a in ams["data"]["activeAlertmanagers"]]

    def healthy():
        report = stack.health()
        return report if not report.failing() else None

    report = wait_for(healthy, SETTLE, "a health run without failures")
    names = {c.name for c in report.checks if c.status == "pass"}
    assert {"prometheus ready", "alertmanager ready", "node_exporter ready", "alertmanager config",
            "prometheus → alertmanager"} <= names


def test_rerunning_up_keeps_the_password_and_reload_authenticates(stack: StackUnderTest) -> None:
    before = _credentials(stack)[1]
    result = stack.hux("up", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _credentials(stack)[1] == before
    reload = stack.hux("reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert "prometheus: configuration reloaded" in reload.stdout
    assert "alertmanager: configuration reloaded" in reload.stdout


def test_backup_and_notify_test_use_the_credentials(stack: StackUnderTest, hook) -> None:
    backup = stack.hux("backup", "prometheus", "--quiet", timeout=180)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    archives = list((stack.home / "data" / "backups").rglob("*.tar*"))
    assert archives, backup.stdout
    _Hook.received.clear()
    notify = stack.hux("notify-test", "--severity", "critical", timeout=120)
    assert notify.returncode == 0, notify.stdout + notify.stderr
    assert "DELIVERED" in notify.stdout
    assert any(b"HuxNotificationTest" in body for body in _Hook.received)
    assert _credentials(stack)[1] not in notify.stdout + notify.stderr + backup.stdout + backup.stderr


def test_the_origins_file_names_exactly_the_three_components(stack: StackUnderTest) -> None:
    origins = json.loads((stack.paths.data / "auth" / "origins.json").read_text())
    assert sorted(origins) == sorted(stack.url(name) for name in AUTHED_COMPONENTS)
