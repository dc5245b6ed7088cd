"""RugCheck API double: ``GET /v1/tokens/{mint}/report/summary``.

Answers the documented summary shape ``{"tokenProgram", "tokenType",
"risks": [{"name", "value", "description", "score", "level"}], "score",
"score_normalised", "lpLockedPct"}``. The risks of a mint are chosen from a
catalogue by a hash of the mint, so each token keeps its profile; about one
mint in ten is unknown (404). Anything that is not a base58 mint is a 400.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from aiohttp import web

from hux.doubles.faults import FAULTS, FaultInjector, add_control_routes, json_error

_MINT_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"

# (name, level, score, description, probability) — the kinds of findings RugCheck reports.
RISK_CATALOGUE = (
    ("Mutable metadata", "warn", 100, "Token metadata can be changed by the owner", 0.45),
    ("Low amount of LP Providers", "warn", 500, "Only a few users are providing liquidity", 0.35),
    ("Top 10 holders high ownership", "danger", 1300, "The top 10 users hold more than 70% token supply", 0.25),
    ("Large Amount of LP Unlocked", "danger", 9900, "A large amount of LP tokens are unlocked, allowing the owner to remove liquidity", 0.15),
    ("Single holder ownership", "danger", 2000, "One user holds a large amount of the token supply", 0.12),
    ("Freeze Authority still enabled", "danger", 7500, "Tokens can be frozen and prevented from trading", 0.08),
    ("Mint Authority still enabled", "danger", 10000, "More tokens can be minted by the owner", 0.06),
    ("Low Liquidity", "danger", 1000, "Low amount of liquidity in the token pool", 0.2),
)


def summary(mint: str, *, seed: str = "hux", unknown_share: float = 0.1) -> dict[str, Any] | None:
    """The summary for ``mint``, or ``None`` when the double treats it as unknown."""
    digest = hashlib.sha256(f"{seed}|rugcheck|{mint}".encode()).digest()
    if digest[0] / 256.0 < unknown_share:
        return None
    risks: list[dict[str, Any]] = []
    for index, (name, level, score, description, probability) in enumerate(RISK_CATALOGUE):
        if digest[1 + index] / 256.0 < probability:
            value = ""
            if name == "Single holder ownership":
                value = f"{20 + digest[20] % 60:.2f}%"
            elif name == "Large Amount of LP Unlocked":
                value = f"{50 + digest[21] % 50:.2f}%"
            elif name == "Low Liquidity":
                value = f"${200 + digest[22] * 20:,}"
            risks.append({"name": name, "value": value, "description": description, "score": score, "level": level})
    score = 1 + sum(risk["score"] for risk in risks)
    # RugCheck's normalised score runs 0..100, higher is riskier.
    normalised = min(100, round(100 * (1 - math.exp(-score / 6000))))
    unlocked = any(r["name"] == "Large Amount of LP Unlocked" for r in risks)
    return {
        "tokenProgram": TOKEN_2022_PROGRAM if digest[30] % 5 == 0 else TOKEN_PROGRAM,
        "tokenType": "",
        "risks": risks,
        "score": score,
        "score_normalised": normalised,
        "lpLockedPct": round((digest[31] / 255.0) * (40 if unlocked else 100), 4),
    }


def _error_response(status: int, retry_after: float | None) -> web.Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    message = "rate limit exceeded" if status == 429 else "internal error"
    return web.json_response({"error": message}, status=status, headers=headers)


MALFORMED_BODIES: list[tuple[bytes, str]] = [
    (b"upstream connect error or disconnect/reset before headers", "text/plain"),
    (b'{"tokenProgram":"TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA","risks":[', "application/json"),
    (b'{"score":"high","score_normalised":"risky","risks":{"name":"x"}}', "application/json"),
    (b"[]", "application/json"),
]


def build_app(*, seed: int | None = None, market_seed: str = "hux") -> web.Application:
    faults = FaultInjector("rugcheck", _error_response, MALFORMED_BODIES, seed=seed)
    app = web.Application()
    app[FAULTS] = faults

    async def report_summary(request: web.Request) -> web.Response:
        mint = request.match_info["mint"]
        if not _MINT_RE.fullmatch(mint):
            return json_error(400, "invalid token mint address")
        report = summary(mint, seed=market_seed)
        if report is None:
            return json_error(404, "token not found")
        return web.json_response(report)

    app.router.add_get("/v1/tokens/{mint}/report/summary", faults.wrap("report_summary", report_summary))
    add_control_routes(app, faults)
    return app
