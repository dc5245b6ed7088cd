"""Telegram Bot API double: ``getUpdates`` long polling, ``sendMessage``, ``answerCallbackQuery``, ``getMe``.

Follows https://core.telegram.org/bots/api: methods live at
``/bot<token>/<method>``, take parameters from the query string, a form or a
JSON body, and answer ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": N, "description": "..."}`` (429 adds ``"parameters":
{"retry_after": N}``). ``getUpdates`` returns updates with ``update_id >=
offset``, forgets the ones before it, waits up to ``timeout`` seconds when
there are none, and answers 409 to a poll superseded by a newer one.
``sendMessage`` checks an optional ``reply_markup`` the way Telegram does for
an ``InlineKeyboardMarkup`` (rows of buttons, each with ``text`` and one of
``callback_data`` (1-64 bytes) or ``url``); a pressed button arrives as a
``callback_query`` update (``TelegramState.inject_callback``), answered with
``answerCallbackQuery`` (its ``callback_query_id`` must be one the double
sent, at most once).

Test and demo controls (not part of the Bot API):

``POST /_double/callbacks`` queue a pressed inline button: ``{"data", "user_id"?, "chat_id"?, "message_id"?}``
``POST /_double/updates``  queue incoming messages: ``{"text", "chat_title"?, "chat_id"?, "user_id"?, "chat_type"?}`` or a list
``GET /_double/sent``      messages the bot sent (``sendMessage``), oldest first
``DELETE /_double/sent``   forget them
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import deque
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from hux.doubles.faults import FAULTS, FaultInjector, add_control_routes, json_error

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Mr Hux Alpha Bot",
    "username": "mr_hux_alpha_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": True,
    "supports_inline_queries": False,
}
MAX_TEXT = 4096
MAX_POLL_TIMEOUT = 50
MAX_PENDING = 10_000
MAX_SENT = 5_000
#: The Bot API's Chat.type values.
CHAT_TYPES = ("private", "group", "supergroup", "channel")
# Tags Telegram's HTML parse mode accepts.
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler", "tg-emoji", "blockquote"}


class _EntityChecker(HTMLParser):
    """Rejects what Telegram rejects with "can't parse entities": unknown or unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS and self.error is None:
            self.error = f"Unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if (not self.stack or self.stack[-1] != tag) and self.error is None:
            self.error = f"Unexpected end tag \"{tag}\""
        elif self.stack:
            self.stack.pop()


def check_html(text: str) -> str | None:
    """``None`` when ``text`` is valid Telegram HTML, else the parse error."""
    checker = _EntityChecker()
    checker.feed(text)
    checker.close()
    if checker.error is None and checker.stack:
        checker.error = f"Can't find end tag corresponding to start tag \"{checker.stack[-1]}\""
    return checker.error


def _strip_html(text: str) -> str:
    parts: list[str] = []

    class _Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            parts.append(data)

    parser = _Text(convert_charrefs=True)
    parser.feed(text)
    parser.close()
    return "".join(parts)


def _chat_type(chat_id: int | str) -> str:
    """Negative ids are groups, ``@name`` is a public channel, positive ids are private chats."""
    text = str(chat_id)
    return "supergroup" if text.startswith("-") else "channel" if text.startswith("@") else "private"


def _chat_id(title: str) -> int:
    return -1_000_000_000_000 - int.from_bytes(hashlib.sha256(title.encode()).digest()[:4], "big")


class TelegramState:
    """Pending updates, sent messages and the long-poll wake-up of one double."""

    def __init__(self, token: str | None = None, *, known_chats: set[int | str] | None = None) -> None:
        self.token = token  # None: any well-formed token is accepted
        self.known_chats = known_chats  # None: every chat exists
        self.pending: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING)
        self.sent: deque[dict[str, Any]] = deque(maxlen=MAX_SENT)
        self.next_update_id = 100_000
        self.callbacks: dict[str, bool] = {}  # callback_query id -> answered
        self.answered: deque[dict[str, Any]] = deque(maxlen=MAX_SENT)
        self.next_message_id = 1
        self.poll_generation = 0
        self.stopping = False
        self._wakeup: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def stop(self) -> None:
        self.stopping = True
        self._wake()

    def inject_message(
        self, text: str, *, chat_title: str = "Alpha Hunters", chat_id: int | None = None, user_id: int = 424242,
        date: int | None = None, chat_type: str = "supergroup",
    ) -> dict[str, Any]:
        """Queue a message as the next update; returns the update.

        ``chat_type`` is the Bot API's Chat.type: ``private`` (a one-to-one chat
        with ``user_id``, whose chat id is the user's id), ``group``,
        ``supergroup`` or ``channel`` (a channel post, without a sender).
        """
        if chat_type not in CHAT_TYPES:
            raise ValueError(f"chat_type must be one of {', '.join(CHAT_TYPES)}, got {chat_type!r}")
        sender = {"id": user_id, "is_bot": False, "first_name": f"user{user_id % 1000}"}
        if chat_type == "private":
            chat: dict[str, Any] = {"id": chat_id if chat_id is not None else user_id, "first_name": sender["first_name"],
                                    "type": "private"}
        else:
            chat = {"id": chat_id if chat_id is not None else _chat_id(chat_title), "title": chat_title, "type": chat_type}
        message: dict[str, Any] = {"message_id": self.next_message_id, "chat": chat,
                                   "date": int(date if date is not None else time.time()), "text": text}
        if chat_type != "channel":
            message["from"] = sender
        self.next_message_id += 1
        return self.inject_update({"channel_post" if chat_type == "channel" else "message": message})

    def inject_callback(self, data: str, *, user_id: int = 424242, chat_id: int = -1001000000001,
                        message_id: int = 1) -> dict[str, Any]:
        """Queue a ``callback_query`` update: ``user_id`` pressed the button carrying ``data`` under the
        bot's message ``message_id`` in ``chat_id``. Returns the update."""
        query_id = str(4_000_000_000 + self.next_update_id)
        self.callbacks[query_id] = False
        sender = {"id": user_id, "is_bot": False, "first_name": f"user{user_id % 1000}"}
        message = {"message_id": message_id, "date": int(time.time()), "text": "…",
                   "chat": {"id": chat_id, "type": _chat_type(chat_id)},
                   "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")}}
        return self.inject_update({"callback_query": {"id": query_id, "from": sender, "message": message,
                                                      "chat_instance": str(abs(chat_id)), "data": data}})

    def inject_update(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Queue an update made of ``fields`` exactly as given (any shape, for hostile-input tests);
        the double only assigns its ``update_id``. Returns the update."""
        update = {"update_id": self.next_update_id, **{k: v for k, v in fields.items() if k != "update_id"}}
        self.next_update_id += 1
        self.pending.append(update)
        self._wake()
        return update

    def confirm(self, offset: int) -> None:
        """Forget updates before ``offset`` (negative: keep only the last ``-offset``)."""
        if offset < 0:
            while len(self.pending) > -offset:
                self.pending.popleft()
            return
        while self.pending and self.pending[0]["update_id"] < offset:
            self.pending.popleft()

    async def poll(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]] | None:
        """Updates for one getUpdates call; ``None`` when a newer poll took over (409)."""
        self.poll_generation += 1
        generation = self.poll_generation
        self._wake()  # an older poll still waiting now sees it was superseded
        deadline = time.monotonic() + timeout
        while True:
            if offset is not None:
                self.confirm(offset)
            if self.pending or self.stopping:
                return list(self.pending)[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(self._event().wait(), timeout=remaining)
            except TimeoutError:
                return []
            if generation != self.poll_generation:
                return None


def _telegram_error(status: int, description: str, retry_after: float | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": math.ceil(retry_after)}  # Telegram speaks whole seconds
    return web.json_response(body, status=status)


_DESCRIPTIONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _fault_response(status: int, retry_after: float | None) -> web.Response:
    if status == 429:
        wait = f": retry after {math.ceil(retry_after)}" if retry_after is not None else ""
        return _telegram_error(429, f"Too Many Requests{wait}", retry_after)
    return _telegram_error(status, _DESCRIPTIONS.get(status, "Error"), retry_after)


MALFORMED_BODIES: list[tuple[bytes, str]] = [
    (b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html"),
    (b'{"ok":true,"result":[{"update_id":', "application/json"),
    (b'{"ok":true,"result":{"unexpected":"object"}}', "application/json"),
    (b'{"ok":"yes"}', "application/json"),
]


async def _params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters: query string, then a JSON or form body on top."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the JSON body must be an object")
            params.update(body)
        else:
            params.update(dict(await request.post()))
    return params


def check_reply_markup(markup: Any) -> str | None:
    """``None`` when ``markup`` is an InlineKeyboardMarkup Telegram accepts, else its error description."""
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return "Bad Request: can't parse reply keyboard markup JSON object"
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        return "Bad Request: object expected as reply markup"
    for row in markup["inline_keyboard"]:
        if not isinstance(row, list):
            return "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays"
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                return "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            data = button.get("callback_data")
            if data is None and not isinstance(button.get("url"), str):
                return "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field"
            if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= 64):
                return "Bad Request: BUTTON_DATA_INVALID"
    return None


def _int(value: Any, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"Bad Request: field \"{name}\" must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"Bad Request: field \"{name}\" must be a number") from None


TELEGRAM: web.AppKey[TelegramState] = web.AppKey("telegram")


def build_app(state: TelegramState | None = None, *, seed: int | None = None) -> web.Application:
    """The Telegram double (``app[TELEGRAM]`` is its ``TelegramState``, ``app[FAULTS]`` its injector)."""
    state = state or TelegramState()
    faults = FaultInjector("telegram", _fault_response, MALFORMED_BODIES, seed=seed)
    app = web.Application()
    app[TELEGRAM] = state
    app[FAULTS] = faults

    def authorised(request: web.Request) -> bool:
        token = request.match_info["token"]
        if state.token is not None:
            return token == state.token
        number, _, secret = token.partition(":")
        return number.isdigit() and len(secret) >= 20

    async def get_updates(request: web.Request) -> web.Response:
        if not authorised(request):
            return _telegram_error(401, "Unauthorized")
        try:
            params = await _params(request)
            offset = _int(params.get("offset"), "offset", None)
            limit = min(100, max(1, _int(params.get("limit"), "limit", 100) or 100))
            timeout = min(MAX_POLL_TIMEOUT, max(0, _int(params.get("timeout"), "timeout", 0) or 0))
        except ValueError as exc:
            return _telegram_error(400, str(exc) if str(exc).startswith("Bad Request") else f"Bad Request: {exc}")
        updates = await state.poll(offset, limit, timeout)
        if updates is None:
            return _telegram_error(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
        return web.json_response({"ok": True, "result": updates})

    async def checked_params(request: web.Request) -> dict[str, Any] | web.Response:
        """The call's parameters, or the error Telegram answers to a wrong token or an unreadable body."""
        if not authorised(request):
            return _telegram_error(401, "Unauthorized")
        try:
            return await _params(request)
        except ValueError as exc:
            return _telegram_error(400, f"Bad Request: {exc}")

    async def send_message(request: web.Request) -> web.Response:
        params = await checked_params(request)
        if isinstance(params, web.Response):
            return params
        chat_id = params.get("chat_id")
        text = params.get("text")
        if chat_id is None or chat_id == "":
            return _telegram_error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _telegram_error(400, "Bad Request: message text is empty")
        if state.known_chats is not None and chat_id not in state.known_chats and str(chat_id) not in {str(c) for c in state.known_chats}:
            return _telegram_error(400, "Bad Request: chat not found")
        parse_mode = params.get("parse_mode")
        plain = text
        if parse_mode == "HTML":
            problem = check_html(text)
            if problem:
                return _telegram_error(400, f"Bad Request: can't parse entities: {problem}")
            plain = _strip_html(text)
        if len(plain) > MAX_TEXT:
            return _telegram_error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            problem = check_reply_markup(markup)
            if problem:
                return _telegram_error(400, problem)
            markup = json.loads(markup) if isinstance(markup, str) else markup
        message = {
            "message_id": state.next_message_id,
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": chat_id, "type": _chat_type(chat_id)},
            "date": int(time.time()),
            "text": plain,
        }
        if markup is not None:
            message["reply_markup"] = markup
        state.next_message_id += 1
        state.sent.append({"chat_id": chat_id, "text": text, "parse_mode": parse_mode, "message": message,
                           "reply_markup": markup})
        return web.json_response({"ok": True, "result": message})

    async def answer_callback_query(request: web.Request) -> web.Response:
        params = await checked_params(request)
        if isinstance(params, web.Response):
            return params
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or state.callbacks.get(query_id) is not False:
            return _telegram_error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        state.callbacks[query_id] = True
        state.answered.append({"callback_query_id": query_id, "text": params.get("text")})
        return web.json_response({"ok": True, "result": True})

    async def get_me(request: web.Request) -> web.Response:
        if not authorised(request):
            return _telegram_error(401, "Unauthorized")
        return web.json_response({"ok": True, "result": BOT_USER})

    async def unknown_method(request: web.Request) -> web.Response:
        return _telegram_error(404, "Not Found")

    async def inject(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "body must be JSON: {\"text\": ..., \"chat_title\": ...} or a list of those")
        items = body if isinstance(body, list) else [body]
        created = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                return json_error(400, "each message needs a string \"text\" (optional: chat_title, chat_id, user_id, chat_type)")
            if item.get("chat_type", "supergroup") not in CHAT_TYPES:
                return json_error(400, f"chat_type must be one of {', '.join(CHAT_TYPES)}")
        for item in items:
            created.append(
                state.inject_message(
                    item["text"],
                    chat_title=str(item.get("chat_title") or "Alpha Hunters")[:128],
                    chat_id=item.get("chat_id") if isinstance(item.get("chat_id"), int) else None,
                    user_id=item.get("user_id") if isinstance(item.get("user_id"), int) else 424242,
                    chat_type=item.get("chat_type", "supergroup"),
                )
            )
        return web.json_response({"updates": created})

    async def sent(_: web.Request) -> web.Response:
        return web.json_response({"messages": list(state.sent)})

    async def clear_sent(_: web.Request) -> web.Response:
        state.sent.clear()
        return web.json_response({"messages": []})

    async def inject_callback(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "body must be JSON: {\"data\": ..., \"user_id\": ...}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), str):
            return json_error(400, "a pressed button needs a string \"data\" (optional: user_id, chat_id, message_id)")
        ints = {k: body[k] for k in ("user_id", "chat_id", "message_id") if isinstance(body.get(k), int)}
        return web.json_response({"update": state.inject_callback(body["data"], **ints)})

    for method, handler, label in (("getUpdates", get_updates, "getUpdates"), ("sendMessage", send_message, "sendMessage"),
                                   ("answerCallbackQuery", answer_callback_query, "answerCallbackQuery"), ("getMe", get_me, "getMe")):
        wrapped = faults.wrap(label, handler)
        app.router.add_route("GET", f"/bot{{token}}/{method}", wrapped)
        app.router.add_route("POST", f"/bot{{token}}/{method}", wrapped)
    app.router.add_route("*", "/bot{token}/{method}", unknown_method)
    app.router.add_post("/_double/updates", inject)
    app.router.add_post("/_double/callbacks", inject_callback)
    app.router.add_get("/_double/sent", sent)
    app.router.add_delete("/_double/sent", clear_sent)
    add_control_routes(app, faults)

    async def release_polls(_: web.Application) -> None:
        state.stop()

    app.on_shutdown.append(release_polls)
    return app
