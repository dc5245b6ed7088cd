"""A small JSON-over-HTTP client shared by the Prometheus, Alertmanager and Grafana clients.

It turns transport failures and error statuses into ``ApiError`` messages that
name the component, the request and the next step, and it never puts request
headers (which may carry credentials) into a message.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterable, Mapping, Self
from urllib.parse import urlsplit

import httpx

from hux.ops.errors import ApiError, OpsError


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when the answer is a JSON object; ApiError naming ``what`` otherwise (a proxy or another
    program on the port answers JSON of another shape)."""
    if not isinstance(value, dict):
        raise ApiError(f"{what}: expected a JSON object, got {type(value).__name__}", url=what)
    return value


def json_array(value: Any, what: str) -> list[Any]:
    """``value`` when the answer is a JSON array; ApiError naming ``what`` otherwise."""
    if not isinstance(value, list):
        raise ApiError(f"{what}: expected a JSON array, got {type(value).__name__}", url=what)
    return value


def is_loopback_url(url: str) -> bool:
    """True when every address the URL's host resolves to is a loopback address."""
    host = urlsplit(url).hostname
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def require_loopback(url: str, *, what: str, allow_remote: bool = False) -> None:
    """Admin APIs (snapshot, delete series) are only driven over loopback unless explicitly allowed."""
    if allow_remote or is_loopback_url(url):
        return
    raise OpsError(
        f"refusing to call {what} at {url}: it is not a loopback address. The admin API should only be "
        "reachable locally; run this on the Prometheus host against http://127.0.0.1:<port>, "
        "or pass --allow-remote if you really mean it"
    )


def _short_body(response: httpx.Response, limit: int = 300) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit]
    if isinstance(data, Mapping):
        for key in ("error", "message", "msg"):
            if data.get(key):
                return str(data[key])[:limit]
    return str(data)[:limit]


class JsonApi:
    """Requests against one component: ``JsonApi("http://127.0.0.1:9090", name="Prometheus")``."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        hint: str = "",
        auth_hint: str = "",
        verify: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.hint = hint or f"is {name} running? (`hux status`)"
        self.auth_hint = auth_hint
        # verify=False skips loading the CA bundle (about 0.1 s of CPU per client), for callers that
        # talk plain HTTP to the stack's own loopback components and start often (`hux health`).
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=dict(headers or {}), auth=auth, trust_env=False,
            verify=verify,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200,),
        timeout: float | None = None,
    ) -> httpx.Response:
        ok = tuple(ok)
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        if timeout is not None:
            kwargs["timeout"] = timeout
        where = f"{method} {self.base_url}{path}"
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(f"{self.name} did not answer {where} in time: {self.hint}", url=where) from None
        except httpx.TransportError as exc:
            raise ApiError(f"{self.name} is not reachable ({where}: {exc}): {self.hint}", url=where) from None
        if response.status_code not in ok:
            raise self.error_for(response, where)
        return response

    def error_for(self, response: httpx.Response, where: str) -> ApiError:
        detail = _short_body(response)
        if response.status_code == 401 and self.auth_hint:
            detail = f"{detail or response.reason_phrase}; {self.auth_hint}"
        return ApiError(
            f"{self.name} answered {response.status_code} to {where}: {detail or response.reason_phrase}",
            status=response.status_code,
            url=where,
        )

    def get_json(self, path: str, *, params: Any = None, ok: Iterable[int] = (200,), timeout: float | None = None) -> Any:
        return self._decode(self.request("GET", path, params=params, ok=ok, timeout=timeout), path)

    def post_json(self, path: str, *, json: Any = None, params: Any = None, data: Any = None,
                  headers: Mapping[str, str] | None = None, ok: Iterable[int] = (200,),
                  timeout: float | None = None) -> Any:
        response = self.request("POST", path, json=json, params=params, data=data, headers=headers, ok=ok,
                                timeout=timeout)
        return self._decode(response, path) if response.content else None

    def _decode(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"{self.name} answered {path} with something that is not JSON "
                f"({response.headers.get('content-type', 'no content type')}): is {self.base_url} really {self.name}?",
                status=response.status_code,
                url=path,
            ) from None

    def reachable(self, path: str, timeout: float = 2.0) -> bool:
        try:
            response = self._client.get(path, timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
