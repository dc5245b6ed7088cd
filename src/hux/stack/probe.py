"""Asking a component whether it is ready: short, parallel HTTP GETs.

Prometheus, Alertmanager and node_exporter answer only with the stack's basic
auth credentials (``hux.monitoring.auth``): every client here carries them,
scoped to those three components' URLs, unless told otherwise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import httpx

from hux import paths
from hux.monitoring import auth as stack_auth

DEFAULT_TIMEOUT = 1.0


def default_auth() -> httpx.Auth | None:
    """The credentials of the stack under ``$HUX_HOME``, sent only to its three authenticated components."""
    return stack_auth.client_auth(paths.data_dir())


@dataclass(frozen=True)
class Probe:
    url: str
    ok: bool
    status: int | None
    detail: str
    elapsed: float
    body: Any = None   # parsed JSON when the answer was JSON


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def get(client: httpx.AsyncClient, url: str, *, timeout: float = DEFAULT_TIMEOUT,
              auth: Any = None, want_json: bool = False) -> Probe:
    started = time.perf_counter()
    try:
        # No per-request auth: the client's own (the stack's scoped credentials) applies.
        response = await client.get(url, timeout=timeout, auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth)
    except httpx.TimeoutException:
        return Probe(url, False, None, f"no answer within {timeout:g} s", time.perf_counter() - started)
    except httpx.ConnectError:
        return Probe(url, False, None, "connection refused (not listening)", time.perf_counter() - started)
    except httpx.HTTPError as exc:
        return Probe(url, False, None, f"{type(exc).__name__}: {_short(str(exc))}", time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    body: Any = None
    if want_json or "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    ok = response.status_code == 200
    detail = "ready" if ok else f"HTTP {response.status_code}: {_short(response.text)}"
    return Probe(url, ok, response.status_code, detail, elapsed, body)


async def probe_all(urls: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
                    auth: Mapping[str, Any] | None = None) -> dict[str, Probe]:
    auth = auth or {}
    async with httpx.AsyncClient(verify=False, follow_redirects=False, auth=default_auth()) as client:
        results = await asyncio.gather(*(get(client, url, timeout=timeout, auth=auth.get(name))
                                         for name, url in urls.items()))
    return dict(zip(urls, results, strict=True))


def probe_all_sync(urls: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
                   auth: Mapping[str, Any] | None = None) -> dict[str, Probe]:
    return asyncio.run(probe_all(urls, timeout=timeout, auth=auth))


async def wait_ready(urls: Mapping[str, str], *, timeout: float, interval: float = 0.2,
                     auth: Mapping[str, Any] | None = None, give_up: Any = None,
                     progress: Any = None) -> dict[str, Probe]:
    """Poll until every URL answers 200 or ``timeout`` passes. Returns the last probe of each.

    ``give_up(name) -> str | None`` may end the wait early for a component that is
    failing for good (e.g. crash-looping); ``progress(name, probe)`` is told when one turns ready.
    """
    auth = auth or {}
    deadline = time.monotonic() + timeout
    last: dict[str, Probe] = {}
    pending = set(urls)
    async with httpx.AsyncClient(verify=False, follow_redirects=False, auth=default_auth()) as client:
        while pending:
            names = sorted(pending)
            probes = await asyncio.gather(*(get(client, urls[n], timeout=min(1.0, timeout), auth=auth.get(n))
                                            for n in names))
            for name, result in zip(names, probes, strict=True):
                last[name] = result
                if result.ok:
                    pending.discard(name)
                    if progress:
                        progress(name, result)
                elif give_up is not None:
                    reason = give_up(name)
                    if reason:
                        last[name] = Probe(result.url, False, result.status, reason, result.elapsed)
                        pending.discard(name)
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(interval)
    return last


def names_ready(results: Mapping[str, Probe], names: Iterable[str]) -> bool:
    return all(results.get(n) is not None and results[n].ok for n in names)
