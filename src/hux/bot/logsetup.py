"""Logging: JSON lines to a rotating file, short lines to stderr, secrets never written.

The file (default ``logs/mr_hux_alpha_bot.log``) holds one JSON object per
line: ``ts`` (UTC ISO-8601), ``level``, ``logger``, ``msg``, then any
``extra`` fields, then ``exc`` for tracebacks. Redaction runs on the final
text of every record in both outputs, so a secret inside an exception or a
library's message (httpx logs request URLs, and Bot API URLs carry the token)
is replaced too: every registered secret, and anything shaped like
``bot<id>:<token>``.

Secrets are registered process-wide (``register_secrets``): ``configure``
takes the bot token and database password, and each API client registers its
own (the Telegram token in Bot API URLs, a webhook's path). ``configure`` also
puts a filter on httpx's and httpcore's loggers that redacts their records
before any handler sees them; nothing is installed on import.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from hux import paths

#: A Telegram bot token even when it was not registered as a secret: in a Bot API URL ("bot<id>:<any>", the
#: "bot" kept) or bare, shaped like a real one ("<id>:<20+ characters>"). Both outputs use it: the log lines
#: (``Redactor``) and the clients' error texts (``redact``).
_BOT_TOKEN = re.compile(r"(?<=bot)\d+:[A-Za-z0-9_-]+|\d{3,}:[A-Za-z0-9_-]{20,}")
_REDACTED = "***"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^/:@\s]+:)(?P<pw>[^@\s/]+)(?=@)", re.IGNORECASE)
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = set()
        self._ordered: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if not secret or len(secret) < 4:
                continue
            self.secrets.add(secret)
            # A Bot API token is "<bot id>:<secret>": the part after the colon alone is still the secret.
            _, _, tail = secret.partition(":")
            if len(tail) >= 16:
                self.secrets.add(tail)
        self._ordered = sorted(self.secrets, key=len, reverse=True)  # a whole token before its tail

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, "***")
        text = _BOT_TOKEN.sub(_REDACTED, text)
        return _URL_PASSWORD.sub(r"\g<scheme>***", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and anything shaped like a bot token replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return _BOT_TOKEN.sub(_REDACTED, text)


#: Every secret this process knows (tokens, passwords, webhook paths): what every log line is cleaned of.
SECRETS = Redactor()


def register_secrets(*secrets: str | None) -> None:
    """Never log these (the API clients register their tokens and secret URL paths here)."""
    SECRETS.add(*secrets)


#: The libraries that log request URLs (a Bot API URL carries the token). A logger's filters do not
#: apply to its children's records: each logger they log through is named.
LIBRARY_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


class LibraryLogRedaction(logging.Filter):
    """Rewrites a library's log records so that whichever handler takes them (ours, a test's
    capture, a host application's) never sees a registered secret or a bot token."""

    def __init__(self, secrets: Redactor) -> None:
        super().__init__()
        self.redact = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is not ours to fix; drop its args
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = ()
        return True


def redact_library_logs(secrets: Redactor | None = None) -> LibraryLogRedaction:
    """Put one ``LibraryLogRedaction`` on every logger in ``LIBRARY_LOGGERS`` (replacing ours from
    an earlier call); returns it. ``configure`` calls this."""
    installed = LibraryLogRedaction(SECRETS if secrets is None else secrets)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, LibraryLogRedaction)]:
            logger.removeFilter(old)
        logger.addFilter(installed)
    return installed


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Every file it opens (the first and each after a rollover) is 0600: log lines quote chat texts."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def configure(log_file: Path, *, level: str = "INFO", max_bytes: int = 10 * 1024 * 1024, backups: int = 5,
              secrets: Iterable[str] = (), stderr: bool = True) -> Redactor:
    """Install the bot's handlers on the root logger (replacing earlier ones) and the redaction of
    library log records; return the redactor (``SECRETS``, with ``secrets`` registered)."""
    redactor = SECRETS
    redactor.add(*secrets)
    paths.private_dir(log_file.parent)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    file_handler = PrivateRotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter(redactor))
    root.addHandler(file_handler)
    if stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(TextFormatter(redactor))
        root.addHandler(console)
    root.setLevel(level)
    # Chatty libraries: request lines at INFO would flood the log (and carry URLs).
    for name in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    redact_library_logs(redactor)
    return redactor
