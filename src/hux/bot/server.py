"""The bot's HTTP endpoints (loopback by default).

``GET /metrics``  the catalogue in the Prometheus text format (0.0.4), which
                  Prometheus 2.x and 3.x both scrape
``GET /health``   200 while the process serves requests (liveness)
``GET /ready``    200 when the database is reachable and the intake queue is
                  not saturated, else 503; JSON body says which and the mode
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from hux import __version__
from hux.bot.exposition import Exposition


@dataclass
class ReadyState:
    mode: str                        # "demo" | "live"
    database_up: Callable[[], bool]
    queue_length: Callable[[], int]
    queue_capacity: int
    sources: Callable[[], list[str]]

    def report(self) -> dict[str, Any]:
        length = self.queue_length()
        saturated = length >= self.queue_capacity
        db = self.database_up()
        ready = db and not saturated
        reasons = []
        if not db:
            reasons.append("database unreachable")
        if saturated:
            reasons.append("intake queue saturated")
        return {
            "ready": ready,
            "mode": self.mode,
            "demo": self.mode == "demo",
            "message": ("demo mode: sample feed and local market doubles" if self.mode == "demo" else "live mode")
            + ("" if ready else "; not ready: " + ", ".join(reasons)),
            "database": {"reachable": db},
            "queue": {"length": length, "capacity": self.queue_capacity, "saturated": saturated},
            "sources": self.sources(),
            "version": __version__,
        }


def build_app(registry: CollectorRegistry, ready: ReadyState) -> web.Application:
    started = time.time()
    exposition = Exposition(registry)

    async def metrics(_: web.Request) -> web.Response:
        body = exposition.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "uptime_seconds": round(time.time() - started, 1), "mode": ready.mode})

    async def ready_handler(_: web.Request) -> web.Response:
        report = ready.report()
        return web.json_response(report, status=200 if report["ready"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready_handler)
    return app


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # private, but aiohttp exposes the bound sockets only here
        if isinstance(server, asyncio.Server) and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
