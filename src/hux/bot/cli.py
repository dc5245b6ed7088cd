"""``hux bot run`` and ``hux bot check-config``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING

from hux.config import ConfigError

if TYPE_CHECKING:
    from hux.bot.config import BotConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bot", help="the Alpha Bot: run it, check its configuration")
    sub = parser.add_subparsers(dest="bot_command", metavar="ACTION")

    run = sub.add_parser(
        "run",
        help="run the bot until interrupted (demo mode when no Telegram token is configured)",
        description="Run the bot: sources -> queue -> workers -> store and alerts, with /metrics, /health and /ready. "
        "Without a Telegram token it runs in demo mode on the sample feed and local market doubles.",
    )
    run.add_argument("--mode", choices=("auto", "demo", "live"), help="override bot.demo.enabled (auto: demo without a token)")
    run.add_argument("--host", help="override bot.host")
    run.add_argument("--port", type=int, help="override bot.port (0: any free port)")
    run.set_defaults(func=_run)

    check = sub.add_parser("check-config", help="validate the [bot] settings and print the effective values (no secrets)")
    check.add_argument("--json", action="store_true", help="print the effective settings as JSON")
    check.set_defaults(func=_check)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)


def _load(args: argparse.Namespace) -> BotConfig:
    from hux.bot.config import load_bot_config

    cfg = load_bot_config(getattr(args, "config", None))
    updates = {}
    if getattr(args, "host", None):
        updates["host"] = args.host
    if getattr(args, "port", None) is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, got {args.port}")
        updates["port"] = args.port
    if getattr(args, "mode", None):
        demo = cfg.demo.model_copy(update={"enabled": {"auto": "auto", "demo": True, "live": False}[args.mode]})
        updates["demo"] = demo
    return cfg.model_copy(update=updates) if updates else cfg


def _check(args: argparse.Namespace) -> int:
    from hux.bot.config import redact_url

    cfg = _load(args)
    token = cfg.telegram.token()
    summary = {
        "mode": "demo" if cfg.demo_active(token) else "live",
        "listen": f"{cfg.host}:{cfg.port}",
        "database": redact_url(cfg.resolved_database_url()),
        "log_file": str(cfg.resolved_log_file()),
        "telegram_token": "set" if token else f"not set (${cfg.telegram.token_env})",
        "settings": cfg.model_dump(),
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for key in ("mode", "listen", "database", "log_file", "telegram_token"):
            print(f"{key:15s} {summary[key]}")
        print("configuration OK")
    return 0


def _run(args: argparse.Namespace) -> int:
    from prometheus_client import disable_created_metrics

    from hux.bot import logsetup

    disable_created_metrics()  # type: ignore[no-untyped-call]  # (prometheus_client leaves it unannotated) *_created series double the series count and no rule uses them

    cfg = _load(args)  # a bad setting stops here, before anything starts (exit 2)
    token = cfg.telegram.token()
    demo = cfg.demo_active(token)
    redact = logsetup.configure(cfg.resolved_log_file(), level=cfg.log_level, max_bytes=cfg.log_max_bytes,
                                backups=cfg.log_backups, secrets=[token or ""])
    redact.add(_password(cfg.resolved_database_url()))
    return asyncio.run(_serve(cfg, token, demo=demo))


async def _serve(cfg: BotConfig, token: str | None, *, demo: bool) -> int:
    from hux.bot.app import BotApp
    from hux.bot.profile import resolve_profile

    profile = await resolve_profile(cfg, token, demo=demo)  # a port taken or no token: ConfigError, nothing started
    app = BotApp(cfg, profile)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stop_event.set)
    try:
        await app.start()
    except ConfigError:
        await app.stop()
        raise
    except OSError as exc:
        await app.stop()
        print(f"hux bot run: cannot start: {exc}", file=sys.stderr)
        return 1
    await app.wait()
    await app.stop()
    return 0


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # noqa: BLE001
        return None
