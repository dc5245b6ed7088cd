"""Telegram Bot API: ``getUpdates`` long polling and ``sendMessage``.

Every method is ``{api_base}/bot<TOKEN>/<method>`` and answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "...", "parameters": {"retry_after": N}}``
(https://core.telegram.org/bots/api#making-requests). The token is a secret:
it lives only in the ``ApiClient``'s base URL and is registered there as a
secret, so errors and logs show ``bot***`` instead.
"""

from __future__ import annotations

from typing import Any

from hux.bot.clients.http import ApiClient
from hux.bot.metrics import BotMetrics

API = "telegram"
DEFAULT_API_BASE = "https://api.telegram.org"
#: Documented: a bot should not send more than about 20 messages per minute to one group.
GROUP_MESSAGES_PER_MINUTE = 20
#: Documented maximum length of a message text.
MAX_MESSAGE_LENGTH = 4096


def _result(body: Any) -> Any:
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("ok") is not True:
        raise ValueError(f"'ok' is not true: {str(body.get('description', ''))[:120]}")
    if "result" not in body:
        raise KeyError("result")
    return body["result"]


def parse_updates(body: Any) -> list[Any]:
    """``result`` of getUpdates, each entry as received: the source validates every update and
    counts the ones it refuses (``hux.bot.sources.telegram.parse_update``), so none vanishes unseen."""
    result = _result(body)
    if not isinstance(result, list):
        raise TypeError(f"'result' should be a list of updates, got {type(result).__name__}")
    return result


def parse_message(body: Any) -> dict[str, Any]:
    result = _result(body)
    if not isinstance(result, dict) or not isinstance(result.get("message_id"), int):
        raise TypeError("'result' should be a Message object with a message_id")
    return result


def bot_base_url(api_base: str, token: str) -> str:
    """``{api_base}/bot<TOKEN>``: pass it to ``ApiClient`` together with ``secrets=(token,)``."""
    if not token or any(c.isspace() or c in "/?#" for c in token):
        raise ValueError("the Telegram bot token is empty or has characters a token cannot have: check token_env/token_file")
    return f"{api_base.rstrip('/')}/bot{token}"


class TelegramBotApi:
    """The two Bot API methods the bot uses. ``http``'s base URL ends in ``/bot<TOKEN>``."""

    def __init__(self, http: ApiClient) -> None:
        self.http = http

    @classmethod
    def create(
        cls,
        token: str,
        metrics: BotMetrics,
        api_base: str = DEFAULT_API_BASE,
        **http_options: Any,
    ) -> "TelegramBotApi":
        """A client whose ApiClient knows the token as a secret. ``http_options`` go to ``ApiClient``."""
        secrets = tuple(http_options.pop("secrets", ())) + (token,)
        http = ApiClient(API, bot_base_url(api_base, token), metrics, secrets=secrets,
                         endpoints=("getUpdates", "sendMessage", "answerCallbackQuery", "getMe"), **http_options)
        return cls(http)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get_updates(self, offset: int | None, timeout: int = 25, limit: int = 100) -> list[Any]:
        """Long-poll for updates with ``update_id >= offset`` (confirming all before it).

        Waits up to ``timeout`` seconds on the server; the HTTP timeout is that
        plus the client's own. Never cached.
        """
        timeout = max(0, int(timeout))
        params: dict[str, Any] = {"timeout": timeout, "limit": min(100, max(1, int(limit)))}
        if offset is not None:
            params["offset"] = int(offset)
        updates: list[Any] = await self.http.get_json(
            "getUpdates", "getUpdates", params, parse=parse_updates, timeout=timeout + self.http.timeout, cache=False
        )
        return updates

    async def send_message(self, chat_id: int | str, text: str, *, parse_mode: str | None = "HTML",
                           reply_markup: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send ``text`` (cut to 4096 characters) to ``chat_id``; returns the sent Message.
        ``reply_markup``: an InlineKeyboardMarkup (buttons under the message)."""
        payload: dict[str, Any] = {
            "chat_id": chat_id,
            "text": text[:MAX_MESSAGE_LENGTH],
            "link_preview_options": {"is_disabled": True},
        }
        if parse_mode:
            payload["parse_mode"] = parse_mode
        if reply_markup is not None:
            payload["reply_markup"] = reply_markup
        sent: dict[str, Any] = await self.http.post_json("sendMessage", "sendMessage", payload, parse=parse_message)
        return sent

    async def answer_callback_query(self, query_id: str, text: str | None = None) -> None:
        """Acknowledge a pressed inline button (Telegram shows a spinner until then); ``text``: a short toast."""
        payload: dict[str, Any] = {"callback_query_id": query_id}
        if text:
            payload["text"] = text[:200]
        await self.http.post_json("answerCallbackQuery", "answerCallbackQuery", payload, parse=_result)

    async def get_me(self) -> dict[str, Any]:
        """The bot's own User object: a cheap check that the token is valid."""
        me: dict[str, Any] = await self.http.get_json("getMe", "getMe", parse=_result, cache=False)
        return me
