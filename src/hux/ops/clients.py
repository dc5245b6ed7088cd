"""Typed clients for the Prometheus and Alertmanager HTTP APIs used by backup and maintenance.

Natively both run behind basic auth (``hux.monitoring.auth``). Every client
here carries the stack's credentials from ``$HUX_HOME/data/auth`` by default,
scoped to the stack's own URLs: a Prometheus named with ``--prometheus-url``
elsewhere, or a temporary one started for a restore check, never receives them.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import httpx

from hux import paths
from hux.monitoring import auth as stack_auth
from hux.ops.errors import ApiError, OpsError
from hux.ops.jsonapi import JsonApi, json_array, json_object, require_loopback


def _ts(value: float) -> str:
    return f"{value:.3f}"


class _StackDefault:
    """Marker: use the stack's scoped credentials (pass ``auth=None`` to send none)."""


STACK_AUTH = _StackDefault()


def _auth(auth: Any) -> httpx.Auth | tuple[str, str] | None:
    return stack_auth.client_auth(paths.data_dir()) if isinstance(auth, _StackDefault) else auth


#: what a 401 from Prometheus or Alertmanager means and what to do
AUTH_HINT = ("it wants the stack's credentials: run this with the HUX_HOME of the stack (they are in "
             "data/auth/password there), and `hux up` to re-render data/auth/web.yml if they still do not match")


def _form(params: Any) -> dict[str, Any]:
    """Form fields for a POST; repeated keys (``match[]``) become lists."""
    if isinstance(params, dict):
        return params
    form: dict[str, Any] = {}
    for key, value in params or []:
        form.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 and not k.endswith("[]") else v for k, v in form.items()}


class Prometheus(JsonApi):
    """``/api/v1`` of one Prometheus server."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, auth: Any = STACK_AUTH, verify: bool = True) -> None:
        super().__init__(base_url, name="Prometheus", timeout=timeout, auth=_auth(auth),
                         auth_hint=AUTH_HINT, verify=verify)

    def _data(self, path: str, *, params: Any = None, method: str = "GET", timeout: float | None = None) -> Any:
        """``data`` of an API answer. ApiError otherwise: ``status`` is None when Prometheus did not answer,
        else the HTTP status of its refusal."""
        ok = (200, 400, 422, 503)
        if method == "GET":
            response = self.request("GET", path, params=params, ok=ok, timeout=timeout)
        else:
            response = self.request("POST", path, data=_form(params), ok=ok, timeout=timeout)
        body = self._decode(response, path)
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise ApiError(f"Prometheus refused {path}: {error}", status=response.status_code, url=path)
        return body.get("data")

    # --- status ---------------------------------------------------------------
    def ready(self) -> bool:
        return self.reachable("/-/ready")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.25)
        raise OpsError(f"Prometheus at {self.base_url} did not become ready within {timeout:.0f}s: "
                       "check logs/prometheus.log")

    def buildinfo(self) -> dict[str, Any]:
        return json_object(self._data("/api/v1/status/buildinfo"), "/api/v1/status/buildinfo")

    def flags(self) -> dict[str, str]:
        return json_object(self._data("/api/v1/status/flags"), "/api/v1/status/flags")

    def runtimeinfo(self) -> dict[str, Any]:
        return json_object(self._data("/api/v1/status/runtimeinfo"), "/api/v1/status/runtimeinfo")

    def tsdb_status(self) -> dict[str, Any]:
        return json_object(self._data("/api/v1/status/tsdb"), "/api/v1/status/tsdb")

    def targets(self, state: str | None = None) -> dict[str, Any]:
        """``activeTargets`` and ``droppedTargets``; ``state="active"`` leaves the dropped ones out."""
        return json_object(self._data("/api/v1/targets", params={"state": state} if state else None), "/api/v1/targets")

    def alertmanagers(self) -> dict[str, Any]:
        return json_object(self._data("/api/v1/alertmanagers"), "/api/v1/alertmanagers")

    def rules(self) -> list[dict[str, Any]]:
        return json_array(json_object(self._data("/api/v1/rules"), "/api/v1/rules").get("groups", []), "/api/v1/rules")

    def alerts(self) -> list[dict[str, Any]]:
        return json_array(json_object(self._data("/api/v1/alerts"), "/api/v1/alerts").get("alerts", []), "/api/v1/alerts")

    def label_values(self, label: str, *, start: float | None = None, end: float | None = None,
                     match: Iterable[str] = ()) -> list[str]:
        params: list[tuple[str, str]] = [("match[]", m) for m in match]
        if start is not None:
            params.append(("start", _ts(start)))
        if end is not None:
            params.append(("end", _ts(end)))
        return json_array(self._data(f"/api/v1/label/{label}/values", params=params), "/api/v1/label/…/values")

    def series(self, match: Iterable[str], *, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        params: list[tuple[str, str]] = [("match[]", m) for m in match]
        if start is not None:
            params.append(("start", _ts(start)))
        if end is not None:
            params.append(("end", _ts(end)))
        return json_array(self._data("/api/v1/series", params=params, method="POST"), "/api/v1/series")

    # --- queries --------------------------------------------------------------
    def query(self, expr: str, at: float | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        params = {"query": expr}
        if at is not None:
            params["time"] = _ts(at)
        return json_object(self._data("/api/v1/query", params=params, method="POST", timeout=timeout), "/api/v1/query")

    def query_range(self, expr: str, start: float, end: float, step: float, *, timeout: float | None = None) -> dict[str, Any]:
        params = {"query": expr, "start": _ts(start), "end": _ts(end), "step": f"{max(step, 0.001):.3f}"}
        return json_object(self._data("/api/v1/query_range", params=params, method="POST", timeout=timeout),
                           "/api/v1/query_range")

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        """The single value of an expression that yields one sample (or a scalar); None when empty."""
        data = self.query(expr, at)
        result: Any = data.get("result")
        if data.get("resultType") == "scalar":
            return float(result[1])
        if not result:
            return None
        return float(result[0]["value"][1])

    def vector(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        data = self.query(expr, at)
        if data.get("resultType") != "vector":
            return []
        return [(item["metric"], float(item["value"][1])) for item in data.get("result", [])]

    # --- admin API (loopback only) ---------------------------------------------
    def _admin(self, path: str, *, params: Any = None, allow_remote: bool = False, ok: Iterable[int] = (200, 204)) -> Any:
        require_loopback(self.base_url, what="the Prometheus admin API", allow_remote=allow_remote)
        try:
            response = self.request("POST", path, params=params, ok=tuple(ok) + (404, 405, 500, 503), timeout=600)
        except ApiError:
            raise
        if response.status_code in (404, 405) or "admin apis disabled" in response.text.lower():
            raise ApiError(
                f"Prometheus at {self.base_url} has its admin API disabled ({response.status_code} on {path}): "
                "start it with --web.enable-admin-api (the native stack does)",
                status=response.status_code, url=path,
            )
        if response.status_code >= 500:
            raise self.error_for(response, f"POST {self.base_url}{path}")
        return response.json() if response.content else None

    def snapshot(self, *, skip_head: bool = False, allow_remote: bool = False) -> str:
        body = self._admin("/api/v1/admin/tsdb/snapshot", params={"skip_head": str(skip_head).lower()},
                           allow_remote=allow_remote)
        try:
            return str(body["data"]["name"])
        except (TypeError, KeyError):
            raise ApiError(f"Prometheus answered the snapshot request without a snapshot name: {body!r}") from None

    def delete_series(self, matchers: Iterable[str], *, start: float | None = None, end: float | None = None,
                      allow_remote: bool = False) -> None:
        params: list[tuple[str, str]] = [("match[]", m) for m in matchers]
        if start is not None:
            params.append(("start", _ts(start)))
        if end is not None:
            params.append(("end", _ts(end)))
        self._admin("/api/v1/admin/tsdb/delete_series", params=params, allow_remote=allow_remote)

    def clean_tombstones(self, *, allow_remote: bool = False) -> None:
        self._admin("/api/v1/admin/tsdb/clean_tombstones", allow_remote=allow_remote)


class Alertmanager(JsonApi):
    """``/api/v2`` of one Alertmanager."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, auth: Any = STACK_AUTH) -> None:
        super().__init__(base_url, name="Alertmanager", timeout=timeout, auth=_auth(auth),
                         auth_hint=AUTH_HINT)

    def ready(self) -> bool:
        return self.reachable("/-/ready")

    def status(self) -> dict[str, Any]:
        return json_object(self.get_json("/api/v2/status"), "/api/v2/status")

    def silences(self, states: Iterable[str] = ("active", "pending")) -> list[dict[str, Any]]:
        wanted = set(states)
        found = self.get_json("/api/v2/silences")
        return [s for s in found if s.get("status", {}).get("state") in wanted]

    def add_silence(self, silence: dict[str, Any]) -> str:
        body = self.post_json("/api/v2/silences", json=silence)
        return str(body.get("silenceID", "")) if isinstance(body, dict) else ""

    def expire_silence(self, silence_id: str) -> None:
        self.request("DELETE", f"/api/v2/silence/{silence_id}", ok=(200,))

    def alerts(self, *, active: bool = True, silenced: bool = True, inhibited: bool = True,
               filters: Iterable[str] = ()) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [
            ("active", str(active).lower()), ("silenced", str(silenced).lower()), ("inhibited", str(inhibited).lower()),
        ]
        params += [("filter", f) for f in filters]
        return json_array(self.get_json("/api/v2/alerts", params=params), "/api/v2/alerts")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.request("POST", "/api/v2/alerts", json=alerts, ok=(200,))

    def metrics_text(self) -> str:
        return self.request("GET", "/metrics").text
