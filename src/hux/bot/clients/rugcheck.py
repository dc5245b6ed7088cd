"""RugCheck risk summaries for Solana mints.

Endpoint (https://api.rugcheck.xyz/swagger): ``GET /v1/tokens/{mint}/report/summary``
answers ``{"tokenProgram", "tokenType", "risks": [{"name", "value",
"description", "score", "level"}], "score", "score_normalised", "lpLockedPct"}``.
RugCheck covers Solana only: EVM addresses get ``None`` without a request.

RugCheck publishes no request limit for its public endpoints; the client keeps
to a conservative 60 requests per minute and caches summaries for five
minutes (a token's risk profile changes slowly).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hux.bot.clients.http import ProviderClient, RequestContext

API = "rugcheck"
DEFAULT_BASE_URL = "https://api.rugcheck.xyz"
#: Not documented by RugCheck: a conservative value that keeps one bot well clear of throttling.
RATE_LIMIT_PER_MINUTE = 60
DEFAULT_CACHE_TTL = 300.0
RISK_LEVELS = ("good", "warn", "danger")

_MINT_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


@dataclass(frozen=True)
class RiskReport:
    score_normalised: float  # 0 (clean) .. 100 (risky), as RugCheck normalises it
    risk_level: str  # "good" | "warn" | "danger": the worst level among the risks
    risks: tuple[str, ...]
    rugged: bool


def parse_summary(body: Any) -> RiskReport:
    """The summary body → ``RiskReport``. Raises ValueError/TypeError when it is not that shape."""
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    raw_score = body.get("score_normalised")
    if isinstance(raw_score, bool) or not isinstance(raw_score, (int, float)):
        raise ValueError(f"'score_normalised' should be a number, got {type(raw_score).__name__}")
    try:
        score = float(raw_score)
    except OverflowError:  # an int beyond any float
        raise ValueError("'score_normalised' is out of range") from None
    if not math.isfinite(score):
        raise ValueError("'score_normalised' should be a finite number")
    raw_risks = body.get("risks")
    if raw_risks is None:
        raw_risks = []
    if not isinstance(raw_risks, list):
        raise TypeError(f"'risks' should be a list, got {type(raw_risks).__name__}")
    names: list[str] = []
    worst = 0
    for risk in raw_risks:
        if not isinstance(risk, dict) or not isinstance(risk.get("name"), str):
            continue  # one malformed entry does not spoil the summary
        names.append(risk["name"][:80])
        level = risk.get("level")
        if level == "danger":
            worst = 2
        elif level == "warn":
            worst = max(worst, 1)
    rugged = body.get("rugged") is True
    if rugged:
        worst = 2
    return RiskReport(
        score_normalised=min(100.0, max(0.0, score)),
        risk_level=RISK_LEVELS[worst],
        risks=tuple(names[:20]),
        rugged=rugged,
    )


class RugCheckClient(ProviderClient):
    API = API
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    RATE_LIMIT_PER_MINUTE = RATE_LIMIT_PER_MINUTE
    CACHE_TTL = DEFAULT_CACHE_TTL
    ENDPOINTS = ("report_summary",)
    BURST = 3

    async def report_summary(self, mint: str, *, context: RequestContext | None = None) -> RiskReport | None:
        """The risk summary, or ``None`` when the address is not a Solana mint or RugCheck does not know it.

        ``context``: the chat asking (RugCheck's limiter serves chats in turn).
        """
        if not isinstance(mint, str) or not _MINT_RE.fullmatch(mint):
            return None
        report: RiskReport | None = await self.http.get_json(
            "report_summary", f"/v1/tokens/{mint}/report/summary", parse=parse_summary, missing_ok=True,
            context=context,
        )
        return report
