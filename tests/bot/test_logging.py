"""Log lines are JSON, rotate, and never carry a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hux.bot import logsetup

TOKEN = "7777777:AAF-very-secret-token-value_123456"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_with_extras_and_redaction(tmp_path: Path, restore_logging) -> None:
    path = tmp_path / "logs" / "bot.log"
    redact = logsetup.configure(path, secrets=[TOKEN], stderr=False)
    redact.add("s3cret-db-pass")
    log = logging.getLogger("hux.bot.test")
    log.info("polling https://api.telegram.org/bot%s/getUpdates", TOKEN, extra={"source": "telegram"})
    log.warning("token without the bot prefix: %s", TOKEN.split(":")[1])
    log.error("db postgresql://hux:s3cret-db-pass@db/hux failed")
    log.error("someone else's token 123456789:ABCdefGHIjklMNOpqrSTUvwxYZ012345")
    try:
        raise RuntimeError(f"boom with {TOKEN}")
    except RuntimeError:
        log.exception("with a traceback")
    text = path.read_text(encoding="utf-8")
    assert TOKEN not in text and "very-secret" not in text and "s3cret-db-pass" not in text
    assert "ABCdefGHIjklMNOpqrSTUvwxYZ012345" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["msg"].startswith("polling https://api.telegram.org/bot***/getUpdates")
    assert lines[0]["source"] == "telegram" and lines[0]["level"] == "INFO" and lines[0]["logger"] == "hux.bot.test"
    assert "postgresql://hux:***@db/hux" in lines[2]["msg"]
    assert "RuntimeError: boom with ***" in lines[4]["exc"]


def test_the_file_rotates(tmp_path: Path, restore_logging) -> None:
    path = tmp_path / "bot.log"
    logsetup.configure(path, max_bytes=2048, backups=2, stderr=False)
    for i in range(200):
        logging.getLogger("hux.bot.test").info("line %d %s", i, "x" * 50)
    assert path.exists() and (tmp_path / "bot.log.1").exists() and (tmp_path / "bot.log.2").exists()
    assert not (tmp_path / "bot.log.3").exists()


#: shapes of Bot API tokens: in a URL path (any length after ``bot<id>:``) and bare (a real token's length)
TOKEN_SHAPES = [
    ("GET https://api.telegram.org/bot12:short/getMe", "GET https://api.telegram.org/bot***/getMe"),
    ("someone else's token 123456789:ABCdefGHIjklMNOpqrSTUvwxYZ012345", "someone else's token ***"),
    (f"https://api.telegram.org/bot{TOKEN}/sendMessage", "https://api.telegram.org/bot***/sendMessage"),
    ("at 12:30 the queue held 7:5 of 20", "at 12:30 the queue held 7:5 of 20"),
]


@pytest.mark.parametrize("text, expected", TOKEN_SHAPES)
def test_one_token_pattern_for_log_lines_and_client_errors(text: str, expected: str) -> None:
    """The bot's own log lines (``Redactor``) and the clients' error texts (``redact``) clean the same shapes."""
    assert logsetup.Redactor()(text) == expected
    assert logsetup.redact(text) == expected
