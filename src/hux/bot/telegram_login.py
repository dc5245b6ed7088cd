"""``hux bot login``: log the Telegram user account in once (phone, code, optional 2FA password).

The prompts come from ``Prompts`` (the terminal in the CLI, scripted answers in
the tests) and the MTProto client from a factory, so the flow is tested with
Telethon's own errors and a client double. Nothing typed is logged or printed
back: not the phone number, not the code, not the password. The session file
is created 0600 in a 0700 directory before Telethon writes the login into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telethon import errors

#: Wrong codes or passwords accepted before giving up (Telegram limits tries too).
ATTEMPTS = 3
_PHONE_RE = re.compile(r"\+?[0-9][0-9 ()-]{5,24}")
_CODE_RE = re.compile(r"[0-9]{5,6}")


class LoginRefused(Exception):
    """The login did not happen; the message says why and what to do."""


@dataclass(frozen=True)
class Prompts:
    ask: Callable[[str], str]      # shown input (the phone number, the code)
    secret: Callable[[str], str]   # hidden input (the 2FA password)
    say: Callable[[str], None]


def _describe(me: Any) -> str:
    """Who logged in, without the phone number."""
    name = " ".join(part for part in (getattr(me, "first_name", None), getattr(me, "last_name", None)) if part)
    username = getattr(me, "username", None)
    return f"{name or 'the account'}" + (f" (@{username})" if username else "")


async def login(client: Any, prompts: Prompts, *, attempts: int = ATTEMPTS) -> str:
    """Log ``client`` in; returns who is logged in. ``LoginRefused`` when it cannot be done."""
    try:
        await client.connect()
    except OSError as exc:
        raise LoginRefused(f"cannot reach Telegram ({exc}): check the network, then run `hux bot login` again") from None
    try:
        if await client.is_user_authorized():
            return _describe(await client.get_me())
        phone = prompts.ask("Phone number of the account, international format (+44 7700 900123): ").strip()
        if not _PHONE_RE.fullmatch(phone):
            raise LoginRefused("that is not a phone number: digits with the country code, e.g. +44 7700 900123")
        phone = re.sub(r"[ ()-]", "", phone)
        try:
            await client.send_code_request(phone)
        except (errors.PhoneNumberInvalidError, errors.PhoneNumberBannedError) as exc:
            raise LoginRefused(f"Telegram refuses this phone number ({type(exc).__name__}): check it") from None
        prompts.say("Telegram sent a login code to the account (in the Telegram app, or by SMS).")
        await _enter_code(client, prompts, phone, attempts)
        return _describe(await client.get_me())
    except errors.FloodWaitError as exc:
        raise LoginRefused(f"Telegram asks to wait {exc.seconds} s before trying again (FloodWait)") from None
    finally:
        await client.disconnect()


async def _enter_code(client: Any, prompts: Prompts, phone: str, attempts: int) -> None:
    for _ in range(attempts):
        code = prompts.ask("Login code: ").strip().replace(" ", "")
        if not _CODE_RE.fullmatch(code):
            prompts.say("The code is the 5 or 6 digits Telegram sent; try again.")
            continue
        try:
            await client.sign_in(phone=phone, code=code)
            return
        except errors.PhoneCodeInvalidError:
            prompts.say("Telegram says that code is wrong; try again.")
        except errors.PhoneCodeExpiredError:
            raise LoginRefused("the code has expired: run `hux bot login` again for a new one") from None
        except errors.SessionPasswordNeededError:
            await _enter_password(client, prompts, attempts)
            return
    raise LoginRefused(f"no valid code after {attempts} tries: run `hux bot login` again for a new one")


async def _enter_password(client: Any, prompts: Prompts, attempts: int) -> None:
    prompts.say("The account has two-step verification.")
    for _ in range(attempts):
        password = prompts.secret("Two-step verification password (not shown): ")
        if not password:
            prompts.say("The password is empty; try again.")
            continue
        try:
            await client.sign_in(password=password)
            return
        except errors.PasswordHashInvalidError:
            prompts.say("Telegram says that password is wrong; try again.")
    raise LoginRefused(f"no valid password after {attempts} tries: run `hux bot login` again")
