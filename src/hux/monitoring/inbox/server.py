"""The alert inbox process: ``python -m hux.monitoring.inbox``, run by the supervisor.

* ``POST /webhook``: an Alertmanager webhook notification (version 4). Kept in
  ``logs/alerts.log`` and the index, answered 200; a body that is not one is
  answered 400 with the reason and counted
  (``hux_inbox_payloads_rejected_total{reason}``); a notification that cannot
  be written is answered 500 (Alertmanager retries, and its
  ``alertmanager_notifications_failed_total{integration="webhook"}`` makes
  AlertmanagerNotificationsFailing fire) and counted
  (``hux_inbox_write_errors_total{target}``);
* ``GET /metrics``: its own series (``hux.bot.metrics.InboxMetrics``);
* ``GET /ready``: 200 once the index is open.

It listens on loopback (``stack.bind_address``, ``stack.ports.inbox``) and is
handed everything on its command line: it needs no secret and reads no settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hux.bot.metrics import InboxMetrics
from hux.monitoring.alertmanager import INBOX_PATH as WEBHOOK_PATH
from hux.monitoring.durations import duration_seconds
from hux.monitoring.inbox.payload import Rejected, parse
from hux.monitoring.inbox.store import WATCHDOG, InboxStore, Limits, StoreError

LOG = logging.getLogger("hux.inbox")

STORE: web.AppKey[InboxStore] = web.AppKey("store", InboxStore)
METRICS: web.AppKey[InboxMetrics] = web.AppKey("metrics", InboxMetrics)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, read up to one byte past ``limit`` (enough to refuse it as too large)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def build_app(store: InboxStore, metrics: InboxMetrics, *, max_payload_bytes: int) -> web.Application:
    # aiohttp refuses a larger body itself (413); one byte more lets ours answer 400 with the reason.
    app = web.Application(client_max_size=max_payload_bytes + 1)
    app[STORE] = store
    app[METRICS] = metrics
    last = store.last_heartbeat()
    if last is not None:
        metrics.last_heartbeat.set(last)

    async def webhook(request: web.Request) -> web.Response:
        try:
            body = await _read_body(request, max_payload_bytes)
            notification = parse(body, max_payload_bytes)
        except Rejected as exc:
            metrics.rejected.labels(exc.reason).inc()
            LOG.warning("refused a notification from %s: %s", request.remote, exc)
            return web.json_response({"ok": False, "reason": exc.reason, "error": str(exc)}, status=400)
        try:
            entries = store.record(notification)
        except StoreError as exc:
            metrics.write_errors.labels(exc.target).inc()
            LOG.error("could not keep a notification: %s", exc)
            return web.json_response({"ok": False, "error": "the inbox could not write it; see logs/inbox.log"},
                                     status=500)
        metrics.notifications.labels(notification.status, metrics.receiver_label(notification.receiver)).inc()
        for entry in entries:
            metrics.alerts.labels(entry.status).inc()
            if entry.alertname == WATCHDOG:
                metrics.last_heartbeat.set(entry.received_at)
        return web.json_response({"ok": True, "kept": len(entries)})

    async def metrics_page(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/ready", ready)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hux.monitoring.inbox", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-file", type=Path, required=True, help="JSON lines, e.g. logs/alerts.log")
    parser.add_argument("--index", type=Path, required=True, help="the SQLite index, e.g. data/inbox/index.sqlite3")
    parser.add_argument("--log-max-bytes", type=int, default=Limits.log_max_bytes)
    parser.add_argument("--log-keep", type=int, default=Limits.log_keep)
    parser.add_argument("--index-max-entries", type=int, default=Limits.index_max_entries)
    parser.add_argument("--index-retention", default="30d")
    parser.add_argument("--max-payload-bytes", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    limits = Limits(args.log_max_bytes, args.log_keep, args.index_max_entries, duration_seconds(args.index_retention))
    store = InboxStore(args.log_file, args.index, limits)
    try:
        app = build_app(store, InboxMetrics(), max_payload_bytes=args.max_payload_bytes)
    except StoreError as exc:
        print(f"hux inbox: {exc}", file=sys.stderr)
        return 1
    LOG.info("alert inbox on http://%s:%d%s, log %s, index %s", args.host, args.port, WEBHOOK_PATH,
             args.log_file, args.index)
    try:
        web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    finally:
        store.close()
    return 0
