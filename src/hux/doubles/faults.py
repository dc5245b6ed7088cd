"""Runtime fault injection and request statistics shared by every double.

Each double API has one ``FaultInjector``. Its settings are changed over HTTP
while the double runs:

``GET /_double/faults``     current settings
``PUT /_double/faults``     replace them (fields left out take their default)
``DELETE /_double/faults``  back to no faults
``GET /_double/stats``      requests served, by endpoint and HTTP status

Settings (JSON object, all optional)::

    {"error_rate": 0.0,             # fraction of requests answered with error_status
     "error_status": 503,           # 400..599
     "latency_seconds": 0.0,        # added before every answer (0..120)
     "rate_limit_status_rate": 0.0, # fraction answered 429
     "retry_after": null,           # seconds sent with 429/5xx answers (null: none)
     "malformed_rate": 0.0,         # fraction answered 200 with a broken body
     "hang": false,                 # accept requests and never answer (until hang is cleared)
     "even": false}                 # rates as exact, evenly spaced shares instead of random draws

For each request, in order: hang, latency, 429 draw, error draw, malformed
draw, then the real answer. With ``"even": true`` each rate is applied as an
exact share (0.1: every tenth request), which gives tests an exact error
ratio and never two faults in a row for rates up to 0.5.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

#: A hanging request is released after this long at most, so a forgotten fault cannot pin a server forever.
MAX_HANG_SECONDS = 300.0
MAX_LATENCY_SECONDS = 120.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Builds the API's own error answer: (status, retry_after) -> response.
ErrorResponder = Callable[[int, "float | None"], web.Response]


@dataclass(frozen=True)
class FaultSettings:
    error_rate: float = 0.0
    error_status: int = 503
    latency_seconds: float = 0.0
    rate_limit_status_rate: float = 0.0
    retry_after: float | None = None
    malformed_rate: float = 0.0
    hang: bool = False
    even: bool = False

    @classmethod
    def from_json(cls, data: Any, *, where: str = "faults") -> "FaultSettings":
        """Validate a settings object; ValueError names the bad key and the accepted values."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object of fault settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key in ("error_rate", "rate_limit_status_rate", "malformed_rate"):
            if key in data:
                values[key] = _number(data[key], f"{where}.{key}", 0.0, 1.0)
        if "latency_seconds" in data:
            values["latency_seconds"] = _number(data["latency_seconds"], f"{where}.latency_seconds", 0.0, MAX_LATENCY_SECONDS)
        if "retry_after" in data and data["retry_after"] is not None:
            values["retry_after"] = _number(data["retry_after"], f"{where}.retry_after", 0.0, 86400.0)
        if "error_status" in data:
            status = data["error_status"]
            if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError(f"{where}.error_status: expected an HTTP error status 400..599, got {status!r}")
            values["error_status"] = status
        if "hang" in data:
            if not isinstance(data["hang"], bool):
                raise ValueError(f"{where}.hang: expected true or false, got {data['hang']!r}")
            values["hang"] = data["hang"]
        if "even" in data:
            if not isinstance(data["even"], bool):
                raise ValueError(f"{where}.even: expected true or false, got {data['even']!r}")
            values["even"] = data["even"]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name}: expected a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


#: Request arrival times an injector remembers (the oldest are forgotten first).
MAX_ARRIVALS = 100_000


def max_in_window(arrivals: Sequence[float], window: float) -> int:
    """The most requests that arrived within any ``window`` seconds (sliding)."""
    times = sorted(arrivals)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


class FaultInjector:
    """Holds one API's fault settings and statistics and applies them to its routes."""

    def __init__(
        self,
        api: str,
        error_responder: ErrorResponder,
        malformed_bodies: list[tuple[bytes, str]],
        *,
        seed: int | None = None,
    ) -> None:
        self.api = api
        self.settings = FaultSettings()
        self._error_responder = error_responder
        self._malformed = malformed_bodies
        self._rng = random.Random(seed)
        self._credit: dict[str, float] = defaultdict(float)  # "even" mode: accumulated share per draw kind
        self.stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # When each request arrived (monotonic), for measuring a caller's request rate against the API's limit.
        self.arrivals: deque[float] = deque(maxlen=MAX_ARRIVALS)
        self._changed: asyncio.Event | None = None
        self.stopping = False

    # -------------------------------------------------------------- settings
    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def set(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._credit.clear()
        if self._changed is not None:  # wake hanging requests so they re-read the settings
            self._changed.set()
            self._changed = asyncio.Event()

    def reset(self) -> None:
        self.set(FaultSettings())

    def stop(self) -> None:
        """Release every hanging request (server shutdown)."""
        self.stopping = True
        self.set(self.settings)

    def stats_json(self) -> dict[str, Any]:
        by_endpoint = {endpoint: dict(statuses) for endpoint, statuses in sorted(self.stats.items())}
        return {"requests": by_endpoint, "total": sum(sum(s.values()) for s in by_endpoint.values())}

    # ------------------------------------------------------------ per request
    def wrap(self, endpoint: str, handler: Handler) -> Handler:
        """``handler`` with faults applied first and its answer counted under ``endpoint``."""

        async def faulted(request: web.Request) -> web.StreamResponse:
            self.arrivals.append(time.monotonic())
            response: web.StreamResponse | None = await self._inject(request)
            if response is None:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    response = exc
            self.stats[endpoint][str(response.status)] += 1
            return response

        return faulted

    def _draw(self, kind: str, rate: float, even: bool) -> bool:
        """Whether this request gets the ``kind`` fault: a random draw, or the next slot of an exact share."""
        if rate <= 0:
            return False
        if not even:
            return self._rng.random() < rate
        self._credit[kind] += rate
        if self._credit[kind] >= 1.0 - 1e-9:
            self._credit[kind] -= 1.0
            return True
        return False

    async def _inject(self, request: web.Request) -> web.Response | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_HANG_SECONDS
        while self.settings.hang and not self.stopping and loop.time() < deadline:
            try:
                await asyncio.wait_for(self._event().wait(), timeout=min(5.0, deadline - loop.time()))
            except TimeoutError:
                pass
        settings = self.settings
        if settings.latency_seconds > 0 and not self.stopping:
            await asyncio.sleep(settings.latency_seconds)
        if self._draw("rate_limit", settings.rate_limit_status_rate, settings.even):
            return self._error_responder(429, settings.retry_after)
        if self._draw("error", settings.error_rate, settings.even):
            return self._error_responder(settings.error_status, settings.retry_after)
        if self._draw("malformed", settings.malformed_rate, settings.even) and self._malformed:
            body, content_type = self._rng.choice(self._malformed)
            return web.Response(status=200, body=body, content_type=content_type)
        return None


#: Where each double's app keeps its injector.
FAULTS: web.AppKey["FaultInjector"] = web.AppKey("faults")


def add_control_routes(app: web.Application, injector: FaultInjector) -> None:
    """``/_double/faults`` and ``/_double/stats`` for one API's app."""

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(injector.settings.to_json())

    async def put_faults(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            settings = FaultSettings.from_json(data)
        except ValueError as exc:  # includes JSONDecodeError
            return json_error(400, str(exc))
        injector.set(settings)
        return web.json_response(settings.to_json())

    async def delete_faults(_: web.Request) -> web.Response:
        injector.reset()
        return web.json_response(injector.settings.to_json())

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(injector.stats_json())

    app.router.add_get("/_double/faults", get_faults)
    app.router.add_put("/_double/faults", put_faults)
    app.router.add_delete("/_double/faults", delete_faults)
    app.router.add_get("/_double/stats", get_stats)

    async def release_hangs(_: web.Application) -> None:
        injector.stop()

    app.on_shutdown.append(release_hangs)
