"""GoPlus Security double: ``GET /api/v1/token_security/{chain_id}?contract_addresses=...``.

Answers the documented shape ``{"code": 1, "message": "OK", "result":
{address: report}}`` (address in lower case; flags as ``"1"``/``"0"``
strings, taxes as fraction strings, ``holders`` and ``lp_holders`` as
``[{"address", "tag", "is_contract", "balance", "percent", "is_locked"}]``).
Each token's report is chosen by a hash of chain and address, so a token keeps
its profile: most are clean, some carry taxes, mint or proxy flags,
concentrated holders or unlocked liquidity, a few are honeypots. About one in
ten is not analysed (``result`` is empty). An unknown chain id is a 404, a
missing or malformed ``contract_addresses`` a 400.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp import web

from hux.doubles.faults import FAULTS, FaultInjector, add_control_routes, json_error

#: The EVM chain ids the double answers for (GoPlus's numbering).
CHAIN_IDS = frozenset({"1", "56", "8453", "42161", "137", "10", "43114", "81457", "59144", "534352", "324", "250", "25", "5000", "146"})
_EVM_RE = re.compile(r"0x[0-9a-f]{40}")
DEAD = "0x000000000000000000000000000000000000dead"


def _unit(digest: bytes, index: int) -> float:
    return digest[index] / 256.0


def _holder(digest: bytes, index: int, percent: float, *, locked: bool = False, tag: str = "") -> dict[str, Any]:
    return {
        "address": "0x" + hashlib.sha256(digest + bytes([index])).digest()[:20].hex(),
        "tag": tag,
        "is_contract": 1 if locked else 0,
        "balance": f"{percent * 1e9:.6f}",
        "percent": f"{percent:.6f}",
        "is_locked": 1 if locked else 0,
    }


def report(chain_id: str, address: str, *, seed: str = "hux", unknown_share: float = 0.1) -> dict[str, Any] | None:
    """The report for ``address`` on ``chain_id``, or ``None`` when the double treats it as not analysed."""
    digest = hashlib.sha256(f"{seed}|goplus|{chain_id}|{address.lower()}".encode()).digest()
    if _unit(digest, 0) < unknown_share:
        return None
    honeypot = _unit(digest, 1) < 0.08
    tax_roll = _unit(digest, 2)
    sell_tax = 0.0 if tax_roll < 0.8 else 0.10 + 0.15 * _unit(digest, 3) if tax_roll < 0.95 else 0.35 + 0.6 * _unit(digest, 3)
    buy_tax = min(sell_tax, 0.05 * _unit(digest, 4)) if sell_tax else 0.0
    top = 0.02 + (0.6 if _unit(digest, 5) < 0.08 else 0.2) * _unit(digest, 6)  # the biggest holder's share
    holders = [_holder(digest, i, top / (1 + i * (0.3 + _unit(digest, 7)))) for i in range(10)]
    locked_lp = _unit(digest, 8) < 0.7
    lp_share = 0.9 if locked_lp else 0.2 + 0.2 * _unit(digest, 9)
    lp_holders = [
        _holder(digest, 20, lp_share, locked=True, tag="UNCX Network Security : Token Vesting") if locked_lp
        else _holder(digest, 20, lp_share, tag=""),
        {**_holder(digest, 21, 1 - lp_share), "address": DEAD, "tag": "Null Address"},
    ]

    def flag(share: float, index: int) -> str:
        return "1" if _unit(digest, index) < share else "0"

    return {
        "token_name": "Token",
        "token_symbol": "TKN",
        "total_supply": "1000000000",
        "holder_count": str(50 + digest[10] * 40),
        "holders": holders,
        "lp_holder_count": str(len(lp_holders)),
        "lp_total_supply": "1000.0",
        "lp_holders": lp_holders,
        "is_open_source": flag(0.9, 11),
        "is_proxy": flag(0.15, 12),
        "is_mintable": flag(0.25, 13),
        "owner_change_balance": flag(0.05, 14),
        "hidden_owner": flag(0.05, 15),
        "can_take_back_ownership": flag(0.05, 16),
        "cannot_sell_all": flag(0.03, 17),
        "transfer_pausable": flag(0.1, 18),
        "trading_cooldown": "0",
        "is_blacklisted": flag(0.1, 19),
        "is_whitelisted": "0",
        "slippage_modifiable": flag(0.05, 20),
        "is_anti_whale": "0",
        "is_in_dex": "1",
        "is_honeypot": "1" if honeypot else "0",
        "honeypot_with_same_creator": "0",
        "buy_tax": f"{buy_tax:.4f}".rstrip("0").rstrip(".") or "0",
        "sell_tax": "1" if honeypot else f"{sell_tax:.4f}".rstrip("0").rstrip(".") or "0",
        "creator_percent": f"{_unit(digest, 21) * 0.05:.6f}",
        "owner_percent": "0.000000",
    }


def _error_response(status: int, retry_after: float | None) -> web.Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    message = "too many requests" if status == 429 else "server error"
    return web.json_response({"code": 4029 if status == 429 else 5000, "message": message, "result": None},
                             status=status, headers=headers)


MALFORMED_BODIES: list[tuple[bytes, str]] = [
    (b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html"),
    (b'{"code":1,"message":"OK","result":{"0x', "application/json"),
    (b'{"code":"1","message":"OK","result":[]}', "application/json"),
    (b'{"code":1,"message":"OK","result":"unavailable"}', "application/json"),
]


def build_app(*, seed: int | None = None, market_seed: str = "hux") -> web.Application:
    faults = FaultInjector("goplus", _error_response, MALFORMED_BODIES, seed=seed)
    app = web.Application()
    app[FAULTS] = faults

    async def token_security(request: web.Request) -> web.Response:
        chain_id = request.match_info["chain_id"]
        if chain_id not in CHAIN_IDS:
            return json_error(404, f"chain {chain_id[:20]!r} is not supported")
        raw = request.query.get("contract_addresses", "")
        addresses = [a.strip().lower() for a in raw.split(",") if a.strip()]
        if not addresses or len(addresses) > 20 or not all(_EVM_RE.fullmatch(a) for a in addresses):
            return json_error(400, "contract_addresses: 1 to 20 comma-separated 0x addresses")
        result = {a: r for a in addresses if (r := report(chain_id, a, seed=market_seed)) is not None}
        return web.json_response({"code": 1, "message": "OK", "result": result})

    app.router.add_get("/api/v1/token_security/{chain_id}", faults.wrap("token_security", token_security))
    add_control_routes(app, faults)
    return app
