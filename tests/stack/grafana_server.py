"""A stand-in for the `grafana server` binary (Grafana cannot be installed here), for the stack tests.

It accepts the command line the supervisor builds (``server --homepath H --config
C``), reads the ini the stack writes the way Grafana does (``[server]``
address and port, ``[security]`` admin user and ``$__file{...}`` password,
``[paths] provisioning`` datasources), and serves the shared Grafana API double
(``tests.doubles.grafana``) plus what the stack's health check and Prometheus use:
``GET /api/datasources/uid/:uid/health`` (authenticated; queries the datasource's
Prometheus like Grafana does) and an unauthenticated ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import re
import signal
import sys
from pathlib import Path

import httpx
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # run as a script: the checkout's tests package
from tests.doubles.grafana import STATE_KEY, VERSION, GrafanaState, build_app  # after the path


def read_ini(path: Path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(path)
    return ini


def expand(value: str) -> str:
    """Grafana's ``$__file{path}`` expansion."""
    match = re.fullmatch(r"\$__file\{(.+)\}", value.strip())
    return Path(match.group(1)).read_text(encoding="utf-8").strip() if match else value


#: uid -> (user, password) of a provisioned datasource with basicAuth (expanded like Grafana does)
BASIC_AUTH: dict[str, tuple[str, str]] = {}


def seed_datasources(state: GrafanaState, provisioning: Path) -> None:
    for file in sorted((provisioning / "datasources").glob("*.y*ml")):
        for ds in (yaml.safe_load(file.read_text()) or {}).get("datasources") or []:
            state.add_datasource(ds["uid"], ds["name"], ds.get("type", "prometheus"), ds.get("url", ""),
                                 is_default=bool(ds.get("isDefault")))
            if ds.get("basicAuth"):
                password = (ds.get("secureJsonData") or {}).get("basicAuthPassword", "")
                BASIC_AUTH[ds["uid"]] = (ds.get("basicAuthUser", ""), expand(password))


def make_app(state: GrafanaState) -> web.Application:
    app = build_app(state)

    @web.middleware
    async def metrics(request: web.Request, handler):
        if request.path == "/metrics":   # Grafana serves its own metrics without auth by default
            body = f'# TYPE grafana_build_info gauge\ngrafana_build_info{{version="{VERSION}"}} 1\n'
            return web.Response(text=body, content_type="text/plain")
        return await handler(request)

    async def datasource_health(request: web.Request) -> web.Response:
        ds = request.app[STATE_KEY].datasources.get(request.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        try:
            async with httpx.AsyncClient(timeout=2, auth=BASIC_AUTH.get(ds["uid"])) as client:
                answer = await client.get(ds["url"].rstrip("/") + "/api/v1/query", params={"query": "1+1"})
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return web.json_response({"status": "ERROR", "message": f"Post \"{ds['url']}\": {exc}"}, status=400)
        return web.json_response({"status": "OK", "message": "Successfully queried the Prometheus API."})

    app.middlewares.insert(0, metrics)
    app.router.add_get("/api/datasources/uid/{uid}/health", datasource_health)
    return app


async def serve(host: str, port: int, state: GrafanaState) -> None:
    runner = web.AppRunner(make_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f'logger=http.server level=info msg="HTTP Server Listen" address={host}:{port}', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grafana")
    parser.add_argument("command", choices=["server"])
    parser.add_argument("--homepath", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    if not (Path(args.homepath) / "conf" / "defaults.ini").is_file():
        print(f"Grafana-server init failed: could not find config defaults in {args.homepath}", file=sys.stderr)
        return 1
    ini = read_ini(Path(args.config))
    state = GrafanaState(admin_user=ini.get("security", "admin_user", fallback="admin"),
                         admin_password=expand(ini.get("security", "admin_password", fallback="admin")))
    seed_datasources(state, Path(ini.get("paths", "provisioning")))
    asyncio.run(serve(ini.get("server", "http_addr"), ini.getint("server", "http_port"), state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
