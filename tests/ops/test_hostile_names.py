"""Names from an API never become paths unchecked, and the backup deletes only what it created.

The hostile peers are real HTTP servers on loopback: a small Prometheus
impostor answering the snapshot endpoint with a name of its choosing, and the
Grafana double holding a dashboard whose uid climbs out of the staging folder.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux.ops import archive as arc
from hux.ops.errors import OpsError
from hux.ops.grafana_backup import GrafanaCredentials, backup_grafana
from hux.ops.names import UnsafeNameError, quote_segment, safe_component
from hux.ops.prometheus_backup import backup_prometheus
from tests.doubles.grafana import GrafanaInThread, GrafanaState

TOKEN = "glsa_hostile_names"


class _Impostor(BaseHTTPRequestHandler):
    """Answers like a Prometheus admin API, with the snapshot name the test chose."""

    snapshot_name: object = ""
    requests: list[str] = []

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # http.server API
        self.requests.append(f"GET {self.path}")
        if self.path.startswith("/api/v1/status/buildinfo"):
            self._send(200, {"status": "success", "data": {"version": "2.42.0", "revision": "impostor"}})
        else:
            self._send(404, {"status": "error", "error": "not here"})

    def do_POST(self) -> None:
        self.requests.append(f"POST {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/api/v1/admin/tsdb/snapshot"):
            self._send(200, {"status": "success", "data": {"name": self.snapshot_name}})
        else:
            self._send(404, {"status": "error", "error": "not here"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor():
    handler = type("Handler", (_Impostor,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "data.txt").write_text("keep me")
    return victim


@pytest.mark.parametrize("name_of", [
    lambda victim: str(victim),                               # absolute path
    lambda victim: "../../precious",                          # climbs out of <data>/snapshots
    lambda victim: "snap/../../../precious",
    lambda victim: "",
])
def test_hostile_snapshot_name_is_refused_and_nothing_is_deleted(tmp_path: Path, impostor, name_of) -> None:
    handler, url = impostor
    victim = _victim(tmp_path)
    tsdb = tmp_path / "tsdb"
    (tsdb / "snapshots").mkdir(parents=True)
    handler.snapshot_name = name_of(victim)
    with pytest.raises(OpsError) as refused:
        backup_prometheus(prometheus_url=url, backup_dir=tmp_path / "backups", data_dir=tsdb)
    assert (victim / "sub" / "data.txt").read_text() == "keep me"
    assert "not a safe file name" in str(refused.value)
    assert not list((tmp_path / "backups").glob("*.tar.gz")) if (tmp_path / "backups").exists() else True


def test_snapshot_name_of_a_directory_that_was_already_there_is_neither_packed_nor_deleted(tmp_path: Path,
                                                                                         impostor) -> None:
    handler, url = impostor
    tsdb = tmp_path / "tsdb"
    kept = tsdb / "snapshots" / "20240101T000000Z-operator-kept"
    (kept / "01BLOCK").mkdir(parents=True)
    (kept / "01BLOCK" / "meta.json").write_text('{"ulid": "01BLOCK", "minTime": 0, "maxTime": 1}')
    handler.snapshot_name = kept.name
    with pytest.raises(OpsError) as refused:
        backup_prometheus(prometheus_url=url, backup_dir=tmp_path / "backups", data_dir=tsdb)
    assert (kept / "01BLOCK" / "meta.json").exists()
    assert "already there before this backup" in str(refused.value)


def test_dashboard_uid_that_climbs_out_of_staging_is_skipped_with_a_warning(tmp_path: Path) -> None:
    state = GrafanaState(admin_password="pw", tokens={TOKEN: "Admin"})
    state.add_dashboard("good-one", "Good")
    state.add_dashboard("../../../../escaped", "Evil")
    state.add_dashboard("..", "Dots")
    backups = tmp_path / "backups"
    with GrafanaInThread(state) as grafana:
        result = backup_grafana(grafana_url=grafana.url, credentials=GrafanaCredentials(token=TOKEN, source="t"),
                                backup_dir=backups)
    assert not list(tmp_path.rglob("escaped*")), "a file was written outside the staging folder"
    names = {f["path"] for f in result.manifest["files"]}
    assert "grafana/dashboards/good-one.json" in names
    assert not any("escaped" in n or n.endswith("/...json") for n in names)
    assert any("escaped" in w and "not a safe file name" in w for w in result.warnings)
    assert any("'..'" in w for w in result.warnings)
    assert [p.name for p in backups.iterdir()] == [result.path.name]  # no staging left behind
    assert arc.verify_archive(result.path, expected_kind="grafana")["kind"] == "grafana"


@given(st.text(max_size=300))
@example("..")
@example(".")
@example("a/b")
@example("/etc")
@example("-rf")
@example("a\x00b")
def test_safe_component_is_one_component_or_a_clear_refusal(name: str) -> None:
    base = Path("/base")
    try:
        safe = safe_component(name, what="test name", source="a test")
    except UnsafeNameError as exc:
        assert "not a safe file name" in str(exc)
        return
    joined = base / safe
    assert joined.parent == base and joined.name == safe and safe not in (".", "..")
    assert not safe.startswith("-") and len(safe) <= 128


@given(st.text(max_size=200))
@example("..")
@example("../../api/admin")
def test_quote_segment_stays_one_segment(value: str) -> None:
    quoted = quote_segment(value)
    assert "/" not in quoted and "?" not in quoted and "#" not in quoted
    assert quoted not in (".", "..")
