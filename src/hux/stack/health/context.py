"""What every check is handed: settings, layout, the runtime, one HTTP client and one Prometheus client.

Prometheus's API is read through :class:`hux.ops.clients.Prometheus` (the same
client backup and maintenance use) in worker threads, so its reads overlap;
each answer is fetched once per run and shared by the checks that need it
(targets, runtime info). The other components are probed with one async
``httpx`` client. Both carry the stack's credentials scoped to its three
authenticated origins (natively; none under docker).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from hux.monitoring.settings import Settings
from hux.ops.clients import Prometheus
from hux.ops.errors import ApiError
from hux.paths import Layout
from hux.stack import probe
from hux.stack.health.model import WARN, CheckResult
from hux.stack.health.runtime import NativeRuntime, runtime_for

HTTP_TIMEOUT = 1.0          # per request
AUTH_FIX = ("our credentials (data/auth/password) do not match its web config: run `hux up` to re-render "
            "data/auth/web.yml from the password (the components re-read it at once)")
DISCOVERY_GRACE = 30.0      # s after Prometheus starts during which "nothing discovered yet" is not a failure


class NotAnswering(Exception):
    """A component whose API another check needs did not answer, or refused the request.

    ``answered`` tells the two apart: a refusal (a query Prometheus rejects) is
    a finding of its own; no answer means "fix that component first".
    """

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass
class HealthContext:
    settings: Settings
    paths: Layout
    runtime: NativeRuntime = field(default_factory=lambda: runtime_for("native"))
    client: httpx.AsyncClient | None = None
    prometheus: Prometheus | None = None
    timeout: float = HTTP_TIMEOUT
    _memo: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.runtime.name

    def url(self, component: str) -> str:
        """Where this mode reaches ``component`` (the runtime says: listen address or published port)."""
        return self.runtime.url(self.settings, component)

    def supervised(self, name: str) -> dict[str, Any] | None:
        return self.runtime.supervised(self.paths, name)

    def grafana_expected(self) -> tuple[bool, str]:
        return self.runtime.grafana_expected(self.settings, self.supervised("grafana") is not None)

    def down_fix(self, name: str) -> tuple[str, str]:
        return self.runtime.down_fix(self.paths, name)

    async def get(self, url: str, **kwargs: Any) -> probe.Probe:
        assert self.client is not None
        return await probe.get(self.client, url, timeout=self.timeout, **kwargs)

    async def text(self, url: str) -> str:
        """A page's body, "" when it does not answer."""
        assert self.client is not None
        try:
            return (await self.client.get(url, timeout=self.timeout)).text
        except httpx.HTTPError:
            return ""

    # --- Prometheus -------------------------------------------------------------------------------

    def _memoised(self, key: str, make: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        task = self._memo.get(key)
        if task is None:
            task = self._memo[key] = asyncio.ensure_future(make())
        return task

    async def prom(self, what: str, call: Callable[[Prometheus], Any]) -> Any:
        """``call(prometheus)`` in a worker thread, once per ``what`` and run; NotAnswering when it fails."""
        prometheus = self.prometheus
        assert prometheus is not None

        async def fetch() -> Any:
            try:
                return await asyncio.to_thread(call, prometheus)
            except ApiError as exc:
                raise _not_answering(what, exc) from None

        return await asyncio.shield(self._memoised(what, fetch))

    async def runtimeinfo(self) -> dict[str, Any]:
        info: dict[str, Any] = await self.prom("/api/v1/status/runtimeinfo", lambda p: p.runtimeinfo())
        return info

    async def active_targets(self) -> list[dict[str, Any]]:
        data = await self.prom("/api/v1/targets", lambda p: p.targets(state="active"))
        return data.get("activeTargets") or []

    async def query(self, expr: str) -> list[Any]:
        """The result of an instant query (not shared: each expression is asked once anyway)."""
        prometheus = self.prometheus
        assert prometheus is not None
        try:
            data = await asyncio.to_thread(prometheus.query, expr, timeout=self.timeout)
        except ApiError as exc:
            raise _not_answering("/api/v1/query", exc) from None
        return data.get("result") or []

    def close(self) -> None:
        for task in self._memo.values():
            if not task.done():
                task.cancel()


def _not_answering(what: str, exc: ApiError) -> NotAnswering:
    if exc.status is None:
        return NotAnswering(f"Prometheus did not answer {what}: {exc}")
    if exc.status == 401:
        return NotAnswering(f"Prometheus refused {what} with HTTP 401: {AUTH_FIX}", answered=True)
    return NotAnswering(str(exc), answered=True)


# ----- helpers the checks share ---------------------------------------------------------------------


async def still_discovering(ctx: HealthContext) -> float | None:
    """Seconds since Prometheus started, while that is under DISCOVERY_GRACE (service discovery syncs every 5 s)."""
    try:
        info = await ctx.runtimeinfo()
    except NotAnswering:
        return None
    started = parse_time(info.get("startTime", ""))
    if started is None:
        return None
    age = time.time() - started
    return age if age < DISCOVERY_GRACE else None


def discovering(name: str, age: float, what: str) -> CheckResult:
    return CheckResult(name, WARN, f"Prometheus started {age:.0f} s ago and has not discovered its {what} yet",
                       "check again in a few seconds")


def not_checked(name: str, exc: NotAnswering) -> CheckResult:
    return CheckResult(name, WARN, f"not checked: {exc}", "fix the prometheus check first")


def parse_time(text: str) -> float | None:
    """RFC 3339 (nanosecond precision allowed) -> Unix time; None for Go's zero time or a malformed value."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def redact(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"


def backup_dir(ctx: HealthContext) -> Path:
    return ctx.paths.backup_dir(ctx.settings.backup.dir)


__all__ = ["AUTH_FIX", "DISCOVERY_GRACE", "HTTP_TIMEOUT", "HealthContext", "NotAnswering", "backup_dir",
           "discovering", "not_checked", "parse_time", "redact", "still_discovering"]
