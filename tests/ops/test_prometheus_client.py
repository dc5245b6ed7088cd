"""The one Prometheus client (hux.ops.clients.Prometheus): its errors tell "no answer" from "refused"."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hux.ops.clients import Prometheus
from hux.ops.errors import ApiError
from tests.conftest import free_port


def test_a_refused_query_carries_the_http_status(prom_factory) -> None:
    prom = prom_factory()
    with Prometheus(prom.url, auth=None, timeout=5) as client:
        with pytest.raises(ApiError, match="Prometheus refused /api/v1/query: .*parse error") as caught:
            client.query("sum(")
        assert caught.value.status == 400
        assert client.query("vector(1)")["result"]
        assert client.targets(state="active") == {"activeTargets": [], "droppedTargets": []}
        assert client.alertmanagers()["activeAlertmanagers"] == []


def test_no_answer_has_no_status() -> None:
    with Prometheus(f"http://127.0.0.1:{free_port()}", auth=None, timeout=2) as client:
        with pytest.raises(ApiError, match="Prometheus is not reachable") as caught:
            client.runtimeinfo()
        assert caught.value.status is None


class _OtherShapes(BaseHTTPRequestHandler):
    """Another program on Prometheus's port: "success" answers of the wrong shape ([] for an object and back)."""

    def do_GET(self) -> None:  # http.server API
        shape: object = {"values": "a"} if "/label/" in self.path else ["a", "b"]
        data = json.dumps({"status": "success", "data": shape}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_of_the_wrong_shape_is_an_api_error_naming_the_endpoint() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherShapes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with Prometheus(f"http://127.0.0.1:{server.server_address[1]}", auth=None, timeout=5) as client:
            with pytest.raises(ApiError, match="/api/v1/status/runtimeinfo: expected a JSON object, got list"):
                client.runtimeinfo()
            with pytest.raises(ApiError, match="/api/v1/rules: expected a JSON object, got list"):
                client.rules()
            with pytest.raises(ApiError, match="/api/v1/label/…/values: expected a JSON array, got dict"):
                client.label_values("job")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
