"""A generic JSON webhook receiver: the target of the bot's webhook output in tests and demos.

``POST /hooks/{name}`` takes a JSON body and answers ``{"ok": true}``; a
body that is not JSON is a 400. ``GET /_double/received`` lists what arrived
(``{"name", "payload"}``, oldest first), ``DELETE /_double/received`` clears it.
Faults apply like on every double.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from aiohttp import web

from hux.doubles.faults import FAULTS, FaultInjector, add_control_routes, json_error

MAX_RECEIVED = 5_000
MAX_BODY = 1 << 20


def _error_response(status: int, retry_after: float | None) -> web.Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    reason = "rate limited" if status == 429 else "receiver failing" if status >= 500 else "request refused"
    return web.json_response({"ok": False, "error": reason}, status=status, headers=headers)


MALFORMED_BODIES: list[tuple[bytes, str]] = [(b"<html>maintenance</html>", "text/html")]


#: The payloads received, oldest first: ``{"name": ..., "payload": ...}``.
RECEIVED: web.AppKey["deque[dict[str, Any]]"] = web.AppKey("received")


def build_app(*, seed: int | None = None) -> web.Application:
    faults = FaultInjector("webhook", _error_response, MALFORMED_BODIES, seed=seed)
    received: deque[dict[str, Any]] = deque(maxlen=MAX_RECEIVED)
    app = web.Application(client_max_size=MAX_BODY)
    app[FAULTS] = faults
    app[RECEIVED] = received

    async def hook(request: web.Request) -> web.Response:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return json_error(400, "the body must be JSON")
        received.append({"name": request.match_info["name"], "payload": payload})
        return web.json_response({"ok": True})

    async def list_received(_: web.Request) -> web.Response:
        return web.json_response({"received": list(received)})

    async def clear_received(_: web.Request) -> web.Response:
        received.clear()
        return web.json_response({"received": []})

    app.router.add_post("/hooks/{name}", faults.wrap("hook", hook))
    app.router.add_get("/_double/received", list_received)
    app.router.add_delete("/_double/received", clear_received)
    add_control_routes(app, faults)
    return app
