"""Token extraction: valid addresses and links are found, look-alikes are not."""

from __future__ import annotations

import json

import pytest

from hux.bot import samplefeed
from hux.bot.extract import (
    extract,
    is_evm_address,
    is_solana_address,
    keccak256,
    to_checksum_address,
)
from hux.bot.profile import sample_feed_path

USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
WRAPPED_SOL = "So11111111111111111111111111111111111111112"
# The test vectors of EIP-55 itself.
EIP55_VECTORS = (
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
)


def test_keccak256_known_vectors() -> None:
    # Keccak-256 (not SHA3-256: different padding) of "" and "abc".
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors_pass_and_round_trip(address: str) -> None:
    assert is_evm_address(address)
    assert to_checksum_address(address.lower()) == address
    assert is_evm_address(address.lower()) and is_evm_address("0x" + address[2:].upper())


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_one_flipped_letter_fails(address: str) -> None:
    i = next(i for i in range(2, 42) if address[i].isalpha())
    broken = address[:i] + address[i].swapcase() + address[i + 1:]
    assert not is_evm_address(broken)
    assert extract(f"ca: {broken}") == []


def test_solana_addresses_decode_to_32_bytes() -> None:
    assert is_solana_address(USDC_MINT)
    assert is_solana_address(WRAPPED_SOL)
    assert is_solana_address("11111111111111111111111111111111")  # the system program: 32 zero bytes
    assert not is_solana_address(USDC_MINT[:-3])                   # 41 chars: at most 31 bytes
    assert not is_solana_address(USDC_MINT[:-1] + "zz")           # 45 chars: over 32 bytes
    assert not is_solana_address("z" * 44)                          # 44 chars but more than 32 bytes


@pytest.mark.parametrize("bad_char", ["0", "O", "I", "l"])
def test_base58_lookalikes_with_forbidden_characters_are_ignored(bad_char: str) -> None:
    lookalike = USDC_MINT[:10] + bad_char + USDC_MINT[11:]
    assert not is_solana_address(lookalike)
    assert extract(f"CA: {lookalike} aping now") == []


def test_all_four_kinds_in_one_message() -> None:
    pump = "6p6xgHyF7AeE6TZkSmFsko444wqoP15icUSqi2jfGiPN"
    text = (
        f"buy {USDC_MINT} now https://pump.fun/coin/{pump} "
        f"and https://dexscreener.com/base/{EIP55_VECTORS[0]} also {EIP55_VECTORS[1].lower()}"
    )
    found = extract(text)
    assert [(c.kind, c.chain) for c in found] == [
        ("solana", "solana"),
        ("pumpfun_link", "solana"),
        ("dexscreener_link", "base"),
        ("evm", "evm"),
    ]
    assert found[3].key == EIP55_VECTORS[1].lower()


def test_pump_fun_short_link_and_dexscreener_solana_link() -> None:
    assert [c.kind for c in extract(f"pump.fun/{USDC_MINT}")] == ["pumpfun_link"]
    found = extract(f"https://dexscreener.com/solana/{WRAPPED_SOL}?maker=1")
    assert [(c.address, c.kind) for c in found] == [(WRAPPED_SOL, "dexscreener_link")]


def test_dexscreener_link_with_invalid_or_unknown_chain_address_is_ignored() -> None:
    # The address must fit the chain's family, and the chain must be one the bot follows.
    assert extract(f"https://dexscreener.com/solana/{EIP55_VECTORS[0]}") == []
    assert extract(f"https://dexscreener.com/unknownchain/{USDC_MINT}") == []
    assert extract(f"https://dexscreener.com/ethereum/{USDC_MINT[:-3]}") == []


def test_duplicates_collapse_and_a_link_wins_over_the_bare_address() -> None:
    found = extract(f"{USDC_MINT} {USDC_MINT} https://pump.fun/coin/{USDC_MINT}")
    assert len(found) == 1 and found[0].kind == "pumpfun_link"
    same_evm = extract(f"{EIP55_VECTORS[0]} {EIP55_VECTORS[0].lower()}")
    assert len(same_evm) == 1


def test_not_addresses() -> None:
    tx_hash = "0x" + "ab" * 32
    for text in (
        tx_hash,                                  # 64 hex: a transaction hash
        "0x1234abcd",                             # too short
        "0x" + "0" * 40,                          # the zero address is not a token
        "0x" + "g" * 40,                          # not hex
        USDC_MINT + "xyz",                        # glued to more letters: not a token boundary
        "supercalifragilisticexpialidociousword",  # a long word is not a 32-byte key
        "",
    ):
        assert extract(text) == [], text


def test_odd_input_does_not_break_extraction() -> None:
    assert extract("\x00\ufffd" * 1000 + USDC_MINT)[0].address == USDC_MINT
    assert extract("🚀" * 10_000) == []
    huge = ("chatter " * 130_000) + USDC_MINT  # ~1 MB
    assert [c.address for c in extract(huge)] == [USDC_MINT]


def test_sample_feed_is_realistic() -> None:
    lines = sample_feed_path().read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) >= 300
    assert len({r["group"] for r in records}) >= 10
    kinds: dict[str, int] = {}
    tokens = set()
    lookalikes = 0
    for record in records:
        found = extract(record["text"])
        for c in found:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
            tokens.add(c.key)
        if not found and ("0x" in record["text"] or "CA: " in record["text"]):
            lookalikes += 1
    assert set(kinds) == {"solana", "evm", "pumpfun_link", "dexscreener_link"}
    assert len(tokens) >= 30 and lookalikes >= 10
    # checksummed and lower-case EVM addresses both occur
    evm = [c.address for r in records for c in extract(r["text"]) if c.address.startswith("0x")]
    assert any(a != a.lower() for a in evm) and any(a == a.lower() for a in evm)


def test_sample_feed_is_reproducible() -> None:
    regenerated = [json.dumps(r, ensure_ascii=False) for r in samplefeed.generate_messages(360)]
    assert regenerated == sample_feed_path().read_text(encoding="utf-8").splitlines()
