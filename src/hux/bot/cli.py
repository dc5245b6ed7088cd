"""``hux bot run``, ``hux bot check-config`` and ``hux bot login``."""

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

    login = sub.add_parser(
        "login", help="log the Telegram user account in once (phone, code, 2FA password; asked in the terminal)",
        description="Log in as the Telegram user account that reads bot.telegram_user.chats. Needs "
        "bot.telegram_user.api_id and the api hash (from my.telegram.org). Asks for the phone number, the login "
        "code and, with two-step verification, the password; none of them is stored or printed. The session is "
        "kept in data/bot/telegram_user/telegram_user.session (mode 0600): anyone who can read it is logged in "
        "as the account.",
    )
    login.set_defaults(func=_login)

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
        "telegram_user": _telegram_user_state(cfg),
        "settings": cfg.model_dump(),
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for key in ("mode", "listen", "database", "log_file", "telegram_token", "telegram_user"):
            print(f"{key:15s} {summary[key]}")
        print("configuration OK")
    return 0


def _telegram_user_state(cfg: BotConfig) -> str:
    """The user account's readiness in a few words (never the api hash or the session's content)."""
    user = cfg.telegram_user
    if not user.enabled:
        return "off"
    from hux.bot.sources.telegram_user import session_path

    session = session_path(cfg.state_dir())
    missing = [what for what, ok in (("api hash", bool(user.api_hash())),
                                     ("login (run `hux bot login`)", session.is_file() and session.stat().st_size > 0)) if not ok]
    return f"{len(user.chats)} chat(s); " + (f"missing: {', '.join(missing)}" if missing else "logged in")


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


def _login(args: argparse.Namespace) -> int:
    import getpass

    cfg = _load(args)
    user = cfg.telegram_user
    api_hash = user.api_hash()
    if not user.api_id or not api_hash:
        raise ConfigError("hux bot login needs bot.telegram_user.api_id and the api hash "
                          f"(${user.api_hash_env} or bot.telegram_user.api_hash_file): create them at my.telegram.org")
    if not sys.stdin.isatty():
        print("hux bot login: asks for a phone number and a code: run it in a terminal", file=sys.stderr)
        return 2
    from telethon import TelegramClient

    from hux.bot.sources.telegram_user import secure_session_file, session_path
    from hux.bot.telegram_login import LoginRefused, Prompts, login

    session = session_path(cfg.state_dir())
    secure_session_file(session)  # 0600 before Telethon writes the login into it
    client = TelegramClient(str(session), user.api_id, api_hash)
    prompts = Prompts(ask=input, secret=getpass.getpass, say=print)
    try:
        who = asyncio.run(login(client, prompts))
    except LoginRefused as exc:
        print(f"hux bot login: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\nhux bot login: interrupted; nothing was logged in", file=sys.stderr)
        return 1
    finally:
        secure_session_file(session)
    print(f"logged in as {who}; the session is in {session} (0600). Enable bot.telegram_user and restart the bot.")
    return 0
