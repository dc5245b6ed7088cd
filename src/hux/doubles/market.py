"""All market-data doubles behind one port: what demo mode and the stack's tests talk to.

``build_app()`` mounts:

``/dexscreener/...``  DexScreener (``hux.doubles.dexscreener``)
``/rugcheck/...``     RugCheck (``hux.doubles.rugcheck``)
``/goplus/...``       GoPlus Security (``hux.doubles.goplus``)
``/telegram/...``     Telegram Bot API (``hux.doubles.telegram``)
``/webhook/...``      a generic JSON webhook receiver (``hux.doubles.webhook``)

Each mounted API keeps its own ``/_double/faults`` and ``/_double/stats``
(e.g. ``/dexscreener/_double/faults``). The root adds combined controls:

``GET /_double/faults``     ``{"dexscreener": {...}, "rugcheck": {...}, "goplus": {...}, "telegram": {...}, "webhook": {...}}``
``PUT /_double/faults``     same shape; the APIs named are replaced (missing fields take defaults),
                            the others keep their settings; all validated before any changes
``DELETE /_double/faults``  clear every API's faults
``GET /_double/stats``      every API's request counts
``GET /_double/health``     ``{"status": "ok"}``
"""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hux.doubles import dexscreener, goplus, rugcheck, telegram, webhook
from hux.doubles.faults import FAULTS, FaultInjector, FaultSettings, json_error

APIS = ("dexscreener", "rugcheck", "goplus", "telegram", "webhook")
#: Seconds a stopping server waits for in-flight requests (hanging ones are released first).
SHUTDOWN_TIMEOUT = 2.0


SUBAPPS: web.AppKey[dict[str, web.Application]] = web.AppKey("subapps")
INJECTORS: web.AppKey[dict[str, FaultInjector]] = web.AppKey("injectors")


def build_app(*, telegram_state: telegram.TelegramState | None = None, seed: int | None = None,
              market: dexscreener.Market | None = None) -> web.Application:
    """The combined app. ``app[SUBAPPS][name]`` is each API's sub-app, ``app[INJECTORS][name]`` its injector."""
    subapps = {
        "dexscreener": dexscreener.build_app(market=market, seed=seed),
        "rugcheck": rugcheck.build_app(seed=seed),
        "goplus": goplus.build_app(seed=seed),
        "telegram": telegram.build_app(telegram_state, seed=seed),
        "webhook": webhook.build_app(seed=seed),
    }
    injectors: dict[str, FaultInjector] = {name: sub[FAULTS] for name, sub in subapps.items()}
    app = web.Application()
    app[SUBAPPS] = subapps
    app[INJECTORS] = injectors

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response({name: inj.settings.to_json() for name, inj in injectors.items()})

    async def put_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "body must be JSON: {\"dexscreener\": {...}, \"rugcheck\": {...}, ...}")
        if not isinstance(body, dict):
            return json_error(400, f"body must be an object keyed by API ({', '.join(APIS)})")
        unknown = sorted(set(body) - set(APIS))
        if unknown:
            return json_error(400, f"unknown API(s) {', '.join(unknown)}; known: {', '.join(APIS)}")
        try:
            parsed = {name: FaultSettings.from_json(value, where=name) for name, value in body.items()}
        except ValueError as exc:
            return json_error(400, str(exc))
        for name, settings in parsed.items():
            injectors[name].set(settings)
        return await get_faults(request)

    async def delete_faults(request: web.Request) -> web.Response:
        for injector in injectors.values():
            injector.reset()
        return await get_faults(request)

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response({name: inj.stats_json() for name, inj in injectors.items()})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "apis": list(APIS)})

    app.router.add_get("/_double/faults", get_faults)
    app.router.add_put("/_double/faults", put_faults)
    app.router.add_delete("/_double/faults", delete_faults)
    app.router.add_get("/_double/stats", get_stats)
    app.router.add_get("/_double/health", health)
    for name, sub in subapps.items():
        app.add_subapp(f"/{name}", sub)
    return app


@dataclass
class RunningDoubles:
    """A started combined double. URLs: ``base_url + "/dexscreener"`` etc."""

    app: web.Application
    runner: web.AppRunner
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, api: str) -> str:
        """Base URL of one API, e.g. ``url("dexscreener")``."""
        if api not in APIS:
            raise ValueError(f"unknown double {api!r}; known: {', '.join(APIS)}")
        return f"{self.base_url}/{api}"

    @property
    def telegram(self) -> telegram.TelegramState:
        """Pending updates (``inject_message``) and sent messages (``sent``) of the Telegram double."""
        return self.app[SUBAPPS]["telegram"][telegram.TELEGRAM]

    @property
    def faults(self) -> dict[str, FaultInjector]:
        """Each API's fault injector (``.set(FaultSettings(...))``, ``.reset()``, ``.stats``)."""
        return self.app[INJECTORS]

    @property
    def market(self) -> dexscreener.Market:
        return self.app[SUBAPPS]["dexscreener"][dexscreener.MARKET]

    @property
    def webhook_received(self) -> "deque[dict[str, Any]]":
        """What the webhook receiver got: ``{"name", "payload"}``, oldest first."""
        return self.app[SUBAPPS]["webhook"][webhook.RECEIVED]

    async def stop(self) -> None:
        for injector in self.faults.values():
            injector.stop()
        self.telegram.stop()
        await self.runner.cleanup()


async def start_doubles(
    host: str = "127.0.0.1", port: int = 0, *, telegram_state: telegram.TelegramState | None = None, seed: int | None = None,
    market: dexscreener.Market | None = None,
) -> RunningDoubles:
    """Serve the combined doubles on ``host:port`` (0: an ephemeral port) in the running event loop."""
    app = build_app(telegram_state=telegram_state, seed=seed, market=market)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot serve the doubles on {host}:{port}: {exc.strerror}; pick another port") from None
    actual_port = runner.addresses[0][1]
    return RunningDoubles(app=app, runner=runner, host=host, port=actual_port)


async def serve_forever(host: str, port: int, *, ready: "asyncio.Event | None" = None) -> None:
    """Run the doubles until cancelled (``hux doubles serve``)."""
    doubles = await start_doubles(host, port)
    print(f"doubles listening on {doubles.base_url}", flush=True)
    for api in APIS:
        print(f"  {api:12s} {doubles.url(api)}", flush=True)
    print(f"  faults       {doubles.base_url}/_double/faults", flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:  # SIGTERM (supervisors, docker stop) ends as cleanly as Ctrl-C
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals on this platform
        pass
    try:
        await stop.wait()
    finally:
        await doubles.stop()
    print("doubles stopped", flush=True)
