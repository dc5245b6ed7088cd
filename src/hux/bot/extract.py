"""Finding token candidates in chat text.

Four kinds (``metrics.CANDIDATE_KINDS``):

* ``solana``: a bare base58 string (alphabet without ``0 O I l``) that decodes
  to exactly 32 bytes, the size of an ed25519 public key / mint address;
* ``evm``: ``0x`` + 40 hex digits. All-lower or all-upper case carries no
  checksum and is accepted; mixed case must pass EIP-55 (keccak-256 of the
  lower-case hex decides which letters are upper case), so a mistyped,
  mixed-case address is refused instead of being looked up;
* ``pumpfun_link``: ``pump.fun/coin/<mint>`` or ``pump.fun/<mint>``;
* ``dexscreener_link``: ``dexscreener.com/<chain>/<address>`` where the
  address is valid for that chain's family.

One compiled regular expression scans each message once; candidates are
de-duplicated per message (a link wins over the bare address inside it).
``extract_capped`` stops validating after a number of candidates (the
per-message cap, ``bot.max_addresses_per_message``) and only counts the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from Crypto.Hash import keccak

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(BASE58_ALPHABET)}
SOLANA_KEY_BYTES = 32

# DexScreener chain ids by address family (the ones the bot follows).
SOLANA_CHAINS = frozenset({"solana"})
EVM_CHAINS = frozenset(
    {"ethereum", "bsc", "base", "arbitrum", "polygon", "optimism", "avalanche", "blast", "linea", "scroll", "zksync", "fantom", "cronos", "mantle", "sonic"}
)
ZERO_ADDRESS = "0x" + "0" * 40

_B58 = "[1-9A-HJ-NP-Za-km-z]"
_EDGE_BEFORE = r"(?<![0-9A-Za-z])"
_EDGE_AFTER = r"(?![0-9A-Za-z])"
_PATTERN = re.compile(
    rf"pump\.fun/(?:coin/)?(?P<pump>{_B58}{{32,44}}){_EDGE_AFTER}"
    rf"|dexscreener\.com/(?P<dchain>[a-z0-9]{{2,20}})/(?P<daddr>0x[0-9a-fA-F]{{40}}|{_B58}{{32,44}}){_EDGE_AFTER}"
    rf"|{_EDGE_BEFORE}(?P<evm>0x[0-9a-fA-F]{{40}}){_EDGE_AFTER}"
    rf"|{_EDGE_BEFORE}(?P<sol>{_B58}{{32,44}}){_EDGE_AFTER}"
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A token address found in a message. ``key`` identifies the token (EVM: lower case)."""

    address: str
    chain: str  # "solana", "evm" (chain unknown) or a DexScreener chain id
    kind: str   # one of metrics.CANDIDATE_KINDS

    @property
    def key(self) -> str:
        return self.address.lower() if self.address.startswith("0x") else self.address

    @property
    def is_solana(self) -> bool:
        return self.chain == "solana"


@lru_cache(maxsize=65536)
def is_solana_address(text: str) -> bool:
    """True when ``text`` is base58 and decodes to exactly 32 bytes."""
    if not 32 <= len(text) <= 44:
        return False
    value = 0
    index = _B58_INDEX
    try:
        for char in text:
            value = value * 58 + index[char]
    except KeyError:
        return False
    leading_zero_bytes = len(text) - len(text.lstrip("1"))
    return leading_zero_bytes + (value.bit_length() + 7) // 8 == SOLANA_KEY_BYTES


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def to_checksum_address(address: str) -> str:
    """EIP-55 form of a ``0x`` + 40 hex address."""
    body = address[2:].lower()
    digest = keccak256(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(h, 16) >= 8 else c for c, h in zip(body, digest, strict=False))  # 40 hex digits of 64


@lru_cache(maxsize=65536)
def is_evm_address(text: str) -> bool:
    """``0x`` + 40 hex; mixed case must match its EIP-55 checksum; the zero address is not a token."""
    if len(text) != 42 or not text.startswith("0x"):
        return False
    body = text[2:]
    try:
        int(body, 16)
    except ValueError:
        return False
    if text.lower() == ZERO_ADDRESS:
        return False
    if body == body.lower() or body == body.upper():
        return True
    return to_checksum_address(text) == text


def extract(text: str) -> list[Candidate]:
    """Every valid, distinct token candidate in ``text``, in order of appearance."""
    return extract_capped(text, None)[0]


def extract_capped(text: str, cap: int | None) -> tuple[list[Candidate], int]:
    """The first ``cap`` valid, distinct candidates in ``text`` and how many address-shaped strings followed.

    Once ``cap`` candidates are found the rest of the message is only scanned,
    not validated (validating a base58 mint costs a big-integer decode: a
    message packed with 1,400 of them would cost the event loop ~16 ms). The
    second value counts the distinct address-shaped strings after the cap that
    are not one already taken; ``None`` means no cap.
    """
    found: dict[str, Candidate] = {}
    skipped: set[str] = set()  # bounded by the message size (max_message_bytes)
    for match in _PATTERN.finditer(text):
        groups = match.groupdict()
        if cap is not None and len(found) >= cap:
            raw = groups["pump"] or groups["daddr"] or groups["evm"] or groups["sol"] or ""
            key = raw.lower() if raw.startswith("0x") else raw
            if key not in found:
                skipped.add(key)
            continue
        candidate: Candidate | None = None
        if groups["pump"] is not None:
            if is_solana_address(groups["pump"]):
                candidate = Candidate(groups["pump"], "solana", "pumpfun_link")
        elif groups["daddr"] is not None:
            chain, address = groups["dchain"], groups["daddr"]
            if chain in SOLANA_CHAINS and is_solana_address(address):
                candidate = Candidate(address, "solana", "dexscreener_link")
            elif chain in EVM_CHAINS and is_evm_address(address):
                candidate = Candidate(address, chain, "dexscreener_link")
        elif groups["evm"] is not None:
            if is_evm_address(groups["evm"]):
                candidate = Candidate(groups["evm"], "evm", "evm")
        elif groups["sol"] is not None and is_solana_address(groups["sol"]):
            candidate = Candidate(groups["sol"], "solana", "solana")
        if candidate is None:
            continue
        seen = found.get(candidate.key)
        if seen is None or (seen.kind in ("solana", "evm") and candidate.kind.endswith("_link")):
            found[candidate.key] = candidate
    return list(found.values()), len(skipped)
