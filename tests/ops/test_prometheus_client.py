"""The one Prometheus client (hux.ops.clients.Prometheus): its errors tell "no answer" from "refused"."""

from __future__ import annotations

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
