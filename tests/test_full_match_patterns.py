"""Every pattern that admits a name from outside matches the whole of it.

Python's ``$`` also matches before a trailing newline, so ``^...$`` with
``re.match`` admits ``"valid\\n"``. These validators must refuse it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from hux.bot.clients.dexscreener import validate_address
from hux.bot.config import BotConfig
from hux.ops.archive import list_archives

MINT = "So11111111111111111111111111111111111111112"
EVM = "0x" + "ab" * 20


@pytest.mark.parametrize("address", [MINT, EVM])
def test_dexscreener_refuses_an_address_with_a_trailing_newline(address: str) -> None:
    assert validate_address(address) == address
    with pytest.raises(ValueError, match="not a Solana"):
        validate_address(address + "\n")


async def test_rugcheck_does_not_ask_for_a_mint_with_a_trailing_newline() -> None:
    from hux.bot.clients.rugcheck import RugCheckClient

    class Unreachable:
        async def get_json(self, *args, **kwargs):  # pragma: no cover - reaching it is the failure
            raise AssertionError("a malformed mint must never become a request path")

    client = RugCheckClient(Unreachable())  # type: ignore[arg-type]
    assert await client.report_summary(MINT + "\n") is None


def test_allowed_chats_refuses_a_username_with_a_trailing_newline() -> None:
    assert BotConfig.model_validate({"telegram": {"allowed_chats": ["@alpha_calls"]}})
    with pytest.raises(ValidationError, match="not a public username"):
        BotConfig.model_validate({"telegram": {"allowed_chats": ["@alpha_calls\n"]}})


def test_backup_listing_ignores_a_file_whose_name_only_starts_like_an_archive(tmp_path: Path) -> None:
    ours = tmp_path / "hux-prometheus-20260101T000000Z.tar.gz"
    ours.write_bytes(b"")
    (tmp_path / (ours.name + "\n")).write_bytes(b"")   # not ours: retention must never prune it
    names = [info.path.name for info in list_archives(tmp_path, read_manifests=False)]
    assert names == [ours.name]
    assert sorted(os.listdir(tmp_path)) == sorted([ours.name, ours.name + "\n"])
