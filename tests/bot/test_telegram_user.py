"""Telegram as a user account, at its boundary: Telethon's own message, event and error objects drive the
source and the login flow; a client double stands in for Telegram's servers (no MTProto server runs here)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from telethon import errors, events, utils
from telethon.tl import types
from telethon.tl.functions.messages import CheckChatInviteRequest

from hux.bot import app as app_module
from hux.bot.config import BotConfig
from hux.bot.sources.telegram_user import secure_session_file, session_path, state_path
from hux.bot.telegram_chats import ChatSpecError, parse_chat
from hux.bot.telegram_login import LoginRefused, Prompts, login
from hux.config import ConfigError
from hux.doubles.market import start_doubles
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until

pytestmark = pytest.mark.timeout(60)

MINT = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
ALPHA = types.Channel(id=1111, title="Alpha Calls", photo=types.ChatPhotoEmpty(), date=None, megagroup=True,
                      username="alpha_calls", access_hash=1)
VIP = types.Channel(id=2222, title="VIP Insiders", photo=types.ChatPhotoEmpty(), date=None, megagroup=True, access_hash=2)
OTHER = types.Channel(id=3333, title="Not Listed", photo=types.ChatPhotoEmpty(), date=None, megagroup=True, access_hash=3)
PERSON = types.User(id=44, first_name="Dev", username="dev_person")


def key(chat: types.Channel, message_id: str) -> str:
    """The inbox key the Bot API source writes for this message: the marked chat id (-100…)."""
    return f"telegram:{utils.get_peer_id(chat)}:{message_id}"


def message(chat: types.Channel, message_id: int, text: str) -> types.Message:
    return types.Message(id=message_id, peer_id=types.PeerChannel(chat.id), date=datetime.now(timezone.utc), message=text)


class FakeTelegram:
    """Telegram's side: the chats, their history, and the client connected now."""

    def __init__(self) -> None:
        self.usernames: dict[str, Any] = {"alpha_calls": ALPHA, "dev_person": PERSON}
        self.invites: dict[str, Any] = {"VipInviteHash1": types.ChatInviteAlready(chat=VIP)}
        self.history: dict[int, list[types.Message]] = {ALPHA.id: [], VIP.id: [], OTHER.id: []}
        self.authorized = True
        self.flood_on_resolve: list[int] = []   # FloodWait seconds to answer the next resolutions with
        self.clients: list[FakeClient] = []

    def factory(self) -> "FakeClient":
        client = FakeClient(self)
        self.clients.append(client)
        return client

    @property
    def current(self) -> "FakeClient":
        return self.clients[-1]

    async def post(self, chat: types.Channel, message_id: int, text: str, *, edited: bool = False) -> None:
        """A message in ``chat``: kept in its history and pushed to the connected client as Telethon would."""
        msg = message(chat, message_id, text)
        self.history[chat.id].append(msg)
        client = self.clients[-1] if self.clients else None
        if client is not None and client.connected_now:
            await client.dispatch(msg, edited=edited)


class FakeClient:
    """What the source uses of ``telethon.TelegramClient``, answering from ``FakeTelegram``."""

    def __init__(self, server: FakeTelegram) -> None:
        self.server = server
        self.handlers: list[tuple[Any, Any]] = []
        self.connected_now = False
        self.disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def connect(self) -> None:
        self.connected_now = True

    async def disconnect(self) -> None:
        self.connected_now = False

    async def is_user_authorized(self) -> bool:
        return self.server.authorized

    def _flood(self) -> None:
        if self.server.flood_on_resolve:
            raise errors.FloodWaitError(request=None, capture=self.server.flood_on_resolve.pop(0))

    async def get_entity(self, value: Any) -> Any:
        self._flood()
        if isinstance(value, int):
            for chat in (ALPHA, VIP):
                if value in (chat.id, -1000000000000 - chat.id):
                    return chat
            raise ValueError(f"Could not find the input entity for PeerChannel(channel_id={value})")
        if value not in self.server.usernames:
            raise errors.UsernameNotOccupiedError(request=None)
        return self.server.usernames[value]

    async def __call__(self, request: Any) -> Any:
        assert isinstance(request, CheckChatInviteRequest)
        self._flood()
        if request.hash not in self.server.invites:
            raise errors.InviteHashExpiredError(request=None)
        return self.server.invites[request.hash]

    async def iter_messages(self, entity: Any, *, min_id: int = 0, limit: int | None = None):
        newest_first = sorted((m for m in self.server.history[entity.id] if m.id > min_id), key=lambda m: -m.id)
        for found in newest_first[:limit]:
            yield found

    def add_event_handler(self, callback: Any, builder: Any) -> None:
        self.handlers.append((callback, builder))

    def remove_event_handler(self, callback: Any) -> None:
        self.handlers = [(cb, b) for cb, b in self.handlers if cb is not callback]

    async def dispatch(self, msg: types.Message, *, edited: bool) -> None:
        """Telethon's update loop: build the event the way it does and call the matching handlers."""
        for callback, builder in list(self.handlers):
            wanted = events.MessageEdited if edited else events.NewMessage
            if type(builder) is not wanted:
                continue
            event = wanted.Event(msg)
            chats = builder.chats
            if chats is not None and event.chat_id not in chats:
                continue  # Telethon filters by the resolved chat ids
            await callback(event)

    def lose_connection(self) -> None:
        """Telethon gave up reconnecting: its ``disconnected`` future completes."""
        self.connected_now = False
        self.disconnected.set_result(None)


# --------------------------------------------------------------------------- the chats setting
@pytest.mark.parametrize(("entry", "kind", "value"), [
    ("@alpha_calls", "username", "alpha_calls"), ("alpha_calls", "username", "alpha_calls"),
    ("https://t.me/alpha_calls", "username", "alpha_calls"), ("t.me/+VipInviteHash1", "invite", "VipInviteHash1"),
    ("https://t.me/joinchat/VipInviteHash1", "invite", "VipInviteHash1"), (-1001234567890, "id", -1001234567890),
    ("-1001234567890", "id", -1001234567890),
])
def test_each_accepted_chat_form(entry, kind, value) -> None:
    spec = parse_chat(entry)
    assert (spec.kind, spec.value) == (kind, value)


@pytest.mark.parametrize("entry", ["@ab", "https://evil.example/alpha", "t.me/+x", "../../etc", "", 0, True, 2**70, "@a b"])
def test_entries_that_name_no_chat_are_refused_with_the_accepted_forms(entry) -> None:
    with pytest.raises(ChatSpecError, match="@username"):
        parse_chat(entry)


def test_the_settings_name_every_bad_chat_and_need_api_id_and_chats() -> None:
    with pytest.raises(ValidationError) as bad:
        BotConfig.model_validate({"telegram_user": {"chats": ["@alpha_calls", "nope!", "@x"]}})
    assert "chat 2:" in str(bad.value) and "chat 3:" in str(bad.value) and "chat 1:" not in str(bad.value)
    with pytest.raises(ValidationError, match="api_id"):
        BotConfig.model_validate({"telegram_user": {"enabled": True, "chats": ["@alpha_calls"]}})


# --------------------------------------------------------------------------- the source in a running bot
async def inbox_keys(app) -> set[str]:
    from sqlalchemy import select

    from hux.bot.store import inbox

    def read() -> set[str]:
        with app.persistence.store.engine.connect() as conn:
            return {row.key for row in conn.execute(select(inbox.c.key))}

    return await asyncio.to_thread(read)


def user_config(home: Path, doubles_url: str, **user: Any) -> BotConfig:
    return bot_config(
        demo={"enabled": False},
        telegram_user={"enabled": True, "api_id": 12345, "api_hash_env": "HUX_TEST_TG_API_HASH",
                       "chats": ["@alpha_calls", "https://t.me/+VipInviteHash1"], **user},
        dexscreener={"base_url": f"{doubles_url}/dexscreener"}, rugcheck={"base_url": f"{doubles_url}/rugcheck"},
        goplus={"base_url": f"{doubles_url}/goplus"},
        webhook={"url": f"{doubles_url}/webhook/hooks/alerts"},
    )


@pytest.fixture
async def telegram(hux_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A logged-in session file, the api hash in the environment, and Telegram's side behind the factory."""
    server = FakeTelegram()
    monkeypatch.setenv("HUX_TEST_TG_API_HASH", "0123456789abcdef0123456789abcdef")
    real = app_module.telegram_user_client_factory

    def factory(cfg: BotConfig):
        real(cfg)  # the real checks (api hash, session file, its mode) run
        return server.factory

    monkeypatch.setattr(app_module, "telegram_user_client_factory", factory)
    session = session_path(BotConfig().state_dir())
    secure_session_file(session)
    session.write_bytes(b"SQLite format 3\x00 (a logged-in session)")
    doubles = await start_doubles(port=0)
    yield server, doubles
    await doubles.stop()


async def test_listed_chats_feed_the_pipeline_and_other_chats_are_refused(telegram, hux_home: Path) -> None:
    server, doubles = telegram
    async with running_bot(user_config(hux_home, doubles.base_url), demo=False) as app:
        source = next(s for s in app.sources if s.name == "telegram_user")
        assert await wait_until(source.connected.is_set, 10)
        reg = app.metrics.registry
        assert metric_value(reg, "hux_telegram_user_chats", state="resolved") == 2
        await server.post(ALPHA, 501, f"ca {MINT} 🚀")
        await server.post(VIP, 77, "gm")
        await server.post(ALPHA, 501, f"ca {MINT} (edited)", edited=True)
        await server.current.dispatch(message(OTHER, 9, f"ca {MINT}"), edited=False)  # filtered by Telethon
        await source._accept(app.intake, [(message(OTHER, 10, f"ca {MINT}"), False)], None)  # the allowlist's 2nd line
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 3, 20)
        assert metric_value(reg, "hux_messages_received_total", source="telegram_user", group="Alpha Calls") == 2
        assert metric_value(reg, "hux_messages_received_total", source="telegram_user", group="VIP Insiders") == 1
        for group in ("Alpha Calls", "VIP Insiders"):   # each chat's newest message, by its Telegram date
            age = time.time() - metric_value(reg, "hux_telegram_user_last_message_timestamp_seconds", group=group)
            assert 0 <= age < 30, (group, age)
        assert metric_value(reg, "hux_telegram_user_last_message_timestamp_seconds", group="Not Listed") == 0
        assert metric_value(reg, "hux_messages_rejected_total", source="telegram_user", reason="chat_not_allowed") == 1
        assert metric_value(reg, "hux_token_candidates_total", kind="solana") >= 1
        counts = await asyncio.to_thread(app.persistence.store.counts)
        assert counts["inbox"] == 3
        # the Bot API's key: the same message seen by both sources is one inbox row
        assert await inbox_keys(app) == {key(ALPHA, "501"), key(ALPHA, "501e"), key(VIP, "77")}
    assert state_path(BotConfig().state_dir()).stat().st_mode & 0o777 == 0o600


async def test_unreadable_chats_are_named_one_by_one_and_the_others_read(telegram, hux_home: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    server, doubles = telegram
    chats = ["@alpha_calls", "@no_such_chat", "https://t.me/+ExpiredHash99", "@dev_person", "-1009999"]
    caplog.set_level(logging.ERROR, logger="hux.bot.sources.telegram_user")
    async with running_bot(user_config(hux_home, doubles.base_url, chats=chats), demo=False) as app:
        source = next(s for s in app.sources if s.name == "telegram_user")
        assert await wait_until(source.connected.is_set, 10)
        reg = app.metrics.registry
        assert metric_value(reg, "hux_telegram_user_chats", state="resolved") == 1
        assert metric_value(reg, "hux_telegram_user_chats", state="unresolved") == 4
    text = caplog.text
    assert "entry 2 (@no_such_chat)" in text and "no chat has the username @no_such_chat" in text
    assert "entry 3" in text and "invite link has expired" in text
    assert "entry 4 (@dev_person)" in text and "a person, not a group" in text
    assert "entry 5 (-1009999)" in text and "never seen a chat with this id" in text


async def test_flood_wait_is_waited_out_and_counted(telegram, hux_home: Path) -> None:
    server, doubles = telegram
    server.flood_on_resolve = [2]
    async with running_bot(user_config(hux_home, doubles.base_url), demo=False) as app:
        source = next(s for s in app.sources if s.name == "telegram_user")
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_telegram_flood_waits_total", source="telegram_user") == 1, 5)
        assert not source.connected.is_set()  # still waiting
        assert await wait_until(source.connected.is_set, 10)
        assert metric_value(reg, "hux_telegram_flood_wait_seconds_total", source="telegram_user") >= 1.9


async def test_a_lost_connection_reconnects_and_catches_up_within_the_bound(telegram, hux_home: Path) -> None:
    server, doubles = telegram
    cfg = user_config(hux_home, doubles.base_url, catch_up_messages=5, reconnect_max_seconds=0.5)
    async with running_bot(cfg, demo=False) as app:
        source = next(s for s in app.sources if s.name == "telegram_user")
        reg = app.metrics.registry
        assert await wait_until(source.connected.is_set, 10)
        await server.post(ALPHA, 10, "gm")
        assert await wait_until(lambda: metric_value(reg, "hux_messages_received_total", source="telegram_user", group="Alpha Calls") == 1, 10)
        first = server.current
        first.lose_connection()
        for message_id in range(11, 31):  # said while nobody listened
            await server.post(ALPHA, message_id, f"missed {message_id}")
        assert await wait_until(lambda: len(server.clients) == 2 and source.connected.is_set(), 10)
        assert metric_value(reg, "hux_source_reconnects_total", source="telegram_user") == 1
        assert await wait_until(lambda: metric_value(reg, "hux_messages_received_total", source="telegram_user", group="Alpha Calls") == 6, 10)
        assert metric_value(reg, "hux_source_catch_up_messages_total", source="telegram_user", result="read") == 5
        assert metric_value(reg, "hux_source_catch_up_messages_total", source="telegram_user", result="skipped") == 15
        assert await inbox_keys(app) == {key(ALPHA, "10")} | {key(ALPHA, str(i)) for i in range(26, 31)}


async def test_a_logged_out_account_is_reported_and_nothing_is_read(telegram, hux_home: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    server, doubles = telegram
    server.authorized = False
    async with running_bot(user_config(hux_home, doubles.base_url), demo=False) as app:
        assert await wait_until(lambda: "run `hux bot login` once" in caplog.text, 10)
        assert not next(s for s in app.sources if s.name == "telegram_user").connected.is_set()


def test_start_refuses_without_a_login_or_an_api_hash(hux_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = user_config(hux_home, "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="HUX_TEST_TG_API_HASH"):
        app_module.telegram_user_client_factory(cfg)
    monkeypatch.setenv("HUX_TEST_TG_API_HASH", "0123456789abcdef0123456789abcdef")
    with pytest.raises(ConfigError, match="run `hux bot login` once"):
        app_module.telegram_user_client_factory(cfg)
    session = session_path(cfg.state_dir())
    session.parent.mkdir(parents=True)
    session.write_bytes(b"logged in")
    os.chmod(session, 0o644)  # copied in with a loose mode
    app_module.telegram_user_client_factory(cfg)
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert stat.S_IMODE(session.parent.stat().st_mode) == 0o700


# --------------------------------------------------------------------------- hux bot login
class LoginClient:
    """The part of ``TelegramClient`` the login uses; each step answers from a script of Telethon errors."""

    def __init__(self, *, authorized: bool = False, phone_error: Exception | None = None,
                 codes: dict[str, Exception | None] | None = None, passwords: dict[str, Exception | None] | None = None) -> None:
        self.authorized = authorized
        self.phone_error = phone_error
        self.codes = codes or {"12345": None}
        self.passwords = passwords or {}
        self.calls: list[str] = []
        self.disconnected = False

    async def connect(self) -> None:
        self.calls.append("connect")

    async def disconnect(self) -> None:
        self.disconnected = True

    async def is_user_authorized(self) -> bool:
        return self.authorized

    async def send_code_request(self, phone: str) -> None:
        self.calls.append(f"send_code:{phone}")
        if self.phone_error is not None:
            raise self.phone_error

    async def sign_in(self, phone: str | None = None, code: str | None = None, password: str | None = None) -> None:
        if password is not None:
            outcome = self.passwords.get(password, errors.PasswordHashInvalidError(request=None))
        else:
            outcome = self.codes.get(code or "", errors.PhoneCodeInvalidError(request=None))
        self.calls.append("sign_in")
        if outcome is not None:
            raise outcome
        self.authorized = True

    async def get_me(self) -> types.User:
        return types.User(id=7, first_name="Hux", last_name="Operator", username="hux_op", phone="447700900123")


def scripted(*answers: str) -> tuple[Prompts, list[str]]:
    queue = list(answers)
    said: list[str] = []

    def ask(prompt: str) -> str:
        said.append(prompt)
        return queue.pop(0)

    return Prompts(ask=ask, secret=ask, say=said.append), said


async def test_login_with_a_code() -> None:
    client = LoginClient()
    prompts, said = scripted("+44 7700 900123", "12345")
    assert await login(client, prompts) == "Hux Operator (@hux_op)"
    assert client.calls == ["connect", "send_code:+447700900123", "sign_in"] and client.disconnected
    assert not any("900123" in line or "12345" in line for line in said[1:] if not line.endswith(": "))


async def test_a_wrong_code_is_asked_again_then_two_step_password() -> None:
    client = LoginClient(codes={"12345": errors.SessionPasswordNeededError(request=None)},
                         passwords={"correct horse": None})
    prompts, said = scripted("+447700900123", "99999", "12345", "wrong", "correct horse")
    assert await login(client, prompts) == "Hux Operator (@hux_op)"
    assert "Telegram says that code is wrong; try again." in said
    assert "Telegram says that password is wrong; try again." in said
    assert not any("correct horse" in line for line in said)


@pytest.mark.parametrize(("client", "answers", "reason"), [
    (LoginClient(), ("not a phone",), "not a phone number"),
    (LoginClient(phone_error=errors.PhoneNumberInvalidError(request=None)), ("+10000000000",), "refuses this phone number"),
    (LoginClient(phone_error=errors.FloodWaitError(request=None, capture=30)), ("+447700900123",), "wait 30 s"),
    (LoginClient(), ("+447700900123", "11111", "22222", "33333"), "no valid code after 3 tries"),
    (LoginClient(codes={"12345": errors.PhoneCodeExpiredError(request=None)}), ("+447700900123", "12345"), "expired"),
    (LoginClient(codes={"12345": errors.SessionPasswordNeededError(request=None)}),
     ("+447700900123", "12345", "a", "b", "c"), "no valid password after 3 tries"),
])
async def test_login_refusals_say_what_to_do(client: LoginClient, answers, reason) -> None:
    prompts, _ = scripted(*answers)
    with pytest.raises(LoginRefused, match=reason):
        await login(client, prompts)
    assert client.disconnected


async def test_an_account_already_logged_in_asks_nothing() -> None:
    prompts, said = scripted()
    assert await login(LoginClient(authorized=True), prompts) == "Hux Operator (@hux_op)"
    assert said == []


def test_the_login_command_refuses_without_a_terminal(hux_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from hux.cli import main

    settings = hux_home / "settings.toml"
    settings.write_text('[bot.telegram_user]\napi_id = 12345\napi_hash_env = "HUX_TEST_TG_API_HASH"\n')
    monkeypatch.setenv("HUX_TEST_TG_API_HASH", "0123456789abcdef0123456789abcdef")
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115 - closed with the test
    assert main(["--config", str(settings), "bot", "login"]) == 2
    assert "run it in a terminal" in capsys.readouterr().err


def test_fairness_serves_each_user_account_chat_by_its_id_not_its_title() -> None:
    from hux.bot.messages import chat_of
    from hux.bot.messages import make_message

    same_title = [make_message(key=key(chat, "5"), source="telegram_user", group="Alpha Calls", text="gm", sent_at=1.7e9,
                               max_bytes=100) for chat in (ALPHA, VIP)]
    assert [chat_of(m) for m in same_title] == [f"telegram:{utils.get_peer_id(ALPHA)}", f"telegram:{utils.get_peer_id(VIP)}"]


def test_check_config_says_what_the_user_account_still_needs(hux_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from hux.cli import main

    settings = hux_home / "settings.toml"
    settings.write_text('[bot.telegram_user]\nenabled = true\napi_id = 12345\napi_hash_env = "HUX_TEST_TG_API_HASH"\n'
                        'chats = ["@alpha_calls", "https://t.me/+VipInviteHash1"]\n')
    assert main(["--config", str(settings), "bot", "check-config"]) == 0
    assert "2 chat(s); missing: api hash, login (run `hux bot login`)" in capsys.readouterr().out
    monkeypatch.setenv("HUX_TEST_TG_API_HASH", "0123456789abcdef0123456789abcdef")
    session = session_path(BotConfig().state_dir())
    secure_session_file(session)
    session.write_bytes(b"logged in")
    assert main(["--config", str(settings), "bot", "check-config"]) == 0
    out = capsys.readouterr().out
    assert "2 chat(s); logged in" in out and "0123456789abcdef" not in out
