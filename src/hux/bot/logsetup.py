"""Logging: JSON lines to a rotating file, short lines to stderr, secrets never written.

The file (default ``logs/mr_hux_alpha_bot.log``) holds one JSON object per
line: ``ts`` (UTC ISO-8601), ``level``, ``logger``, ``msg``, then any
``extra`` fields, then ``exc`` for tracebacks. Redaction runs on the final
text of every record in both outputs, so a secret inside an exception or a
library's message (httpx logs request URLs, and Bot API URLs carry the token)
is replaced too: every registered secret, and anything shaped like
``bot<id>:<token>``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from hux import paths

_BOT_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
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
        text = _BOT_TOKEN.sub("***", text)
        return _URL_PASSWORD.sub(r"\g<scheme>***", text)


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

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def configure(log_file: Path, *, level: str = "INFO", max_bytes: int = 10 * 1024 * 1024, backups: int = 5,
              secrets: Iterable[str] = (), stderr: bool = True) -> Redactor:
    """Install the bot's handlers on the root logger (replacing earlier ones); return the redactor."""
    redact = Redactor(secrets)
    paths.private_dir(log_file.parent)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    file_handler = PrivateRotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter(redact))
    root.addHandler(file_handler)
    if stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(TextFormatter(redact))
        root.addHandler(console)
    root.setLevel(level)
    # Chatty libraries: request lines at INFO would flood the log (and carry URLs).
    for name in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return redact
