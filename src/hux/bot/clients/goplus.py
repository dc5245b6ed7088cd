"""GoPlus Security token-security reports for EVM tokens (RugCheck covers Solana only).

Endpoint (https://docs.gopluslabs.io/reference/token-security-api):
``GET /api/v1/token_security/{chain_id}?contract_addresses={address}`` where
``chain_id`` is the numeric EVM chain id (1 Ethereum, 56 BSC, 8453 Base, ...).
The answer is ``{"code": 1, "message": "OK", "result": {address: report}}``
with the address in lower case; ``code`` 2 means "partial data" (still a
report), any other code is an error: 4029 ("request limit reached") counts
as ``rate_limited`` and 5000 ("system error") as ``server_error`` even in an
HTTP 200 answer, so both are retried and alerted on like a 429 and a 5xx. A token GoPlus has not analysed is
missing from ``result`` (an empty object): ``None``, like RugCheck's 404.

Report fields are strings: flags ``"1"``/``"0"`` (absent or ``""`` when
GoPlus could not tell), taxes as fractions (``"0.05"`` = 5 %), holders as
``[{"address", "tag", "is_contract", "balance", "percent", "is_locked"}]``
with ``percent`` a fraction of the supply. What the bot reads, and how it
grades it, is ``TokenSecurity`` below (documented in docs/scoring.md).

GoPlus publishes no fixed request limit for keyless use; the client keeps to
a conservative 30 requests per minute and caches reports for five minutes,
like RugCheck's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from hux.bot.clients.http import ProviderClient, ProviderSaid, RequestContext

API = "goplus"
DEFAULT_BASE_URL = "https://api.gopluslabs.io"
#: Not documented for keyless use: a conservative value, like RugCheck's.
RATE_LIMIT_PER_MINUTE = 30
DEFAULT_CACHE_TTL = 300.0

#: DexScreener chain id → GoPlus (EVM) chain id, for the chains the bot follows (``extract.EVM_CHAINS``).
CHAIN_IDS = {
    "ethereum": "1", "bsc": "56", "base": "8453", "arbitrum": "42161", "polygon": "137", "optimism": "10",
    "avalanche": "43114", "blast": "81457", "linea": "59144", "scroll": "534352", "zksync": "324",
    "fantom": "250", "cronos": "25", "mantle": "5000", "sonic": "146",
}
#: ``code`` values that carry a report: 1 complete, 2 partial.
REPORT_CODES = frozenset({1, 2})
#: GoPlus's "request limit reached" and "system error" codes: counted as the HTTP statuses they stand for.
RATE_LIMITED_CODE = 4029
SERVER_ERROR_CODE = 5000

# Grading (docs/scoring.md, "Risk from GoPlus"): taxes and concentrations as fractions.
DANGER_TAX = 0.30
WARN_TAX = 0.10
WARN_TOP10_SHARE = 0.70
DANGER_TOP_HOLDER_SHARE = 0.50
WARN_LP_LOCKED_BELOW = 0.50

_EVM_RE = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class TokenSecurity:
    """What GoPlus says about one EVM token. ``None``: GoPlus did not say."""

    honeypot: bool | None
    buy_tax: float | None          # fraction: 0.05 = 5 %
    sell_tax: float | None
    mintable: bool | None
    owner_change_balance: bool | None
    proxy: bool | None
    cannot_sell_all: bool | None
    top10_share: float | None      # share of the supply the listed (top 10) holders have, LP and locked ones excepted
    top_holder_share: float | None
    lp_locked_share: float | None  # share of the LP tokens locked
    risk_level: str                # "good" | "warn" | "danger"
    risks: tuple[str, ...]
    rugged: bool = False           # GoPlus has no rug flag; a honeypot is scored 0 instead (see ``honeypot``)


def _flag(value: Any) -> bool | None:
    if value in ("1", 1):
        return True
    if value in ("0", 0):
        return False
    return None  # absent, "" or anything else: GoPlus could not tell


def _fraction(value: Any) -> float | None:
    """A fraction 0..1 from GoPlus's decimal strings; ``None`` when absent or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = float(value.strip()[:64]) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return min(1.0, max(0.0, number))


def _holders(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [h for h in value[:100] if isinstance(h, dict)]


def grade(report: TokenSecurity) -> tuple[str, tuple[str, ...]]:
    """The risk level and the findings behind it (the thresholds are documented in docs/scoring.md)."""
    danger: list[str] = []
    warn: list[str] = []
    if report.honeypot:
        danger.append("honeypot: it cannot be sold")
    if report.cannot_sell_all:
        danger.append("holders cannot sell all their tokens")
    if report.owner_change_balance:
        danger.append("the owner can change balances")
    for side, tax in (("buy", report.buy_tax), ("sell", report.sell_tax)):
        if tax is not None and tax >= DANGER_TAX:
            danger.append(f"{side} tax {tax:.0%}")
        elif tax is not None and tax >= WARN_TAX:
            warn.append(f"{side} tax {tax:.0%}")
    if report.top_holder_share is not None and report.top_holder_share >= DANGER_TOP_HOLDER_SHARE:
        danger.append(f"one holder has {report.top_holder_share:.0%} of the supply")
    if report.mintable:
        warn.append("mintable")
    if report.proxy:
        warn.append("proxy contract (code can change)")
    if report.top10_share is not None and report.top10_share >= WARN_TOP10_SHARE:
        warn.append(f"top 10 holders have {report.top10_share:.0%}")
    if report.lp_locked_share is not None and report.lp_locked_share < WARN_LP_LOCKED_BELOW:
        warn.append(f"only {report.lp_locked_share:.0%} of the liquidity is locked")
    level = "danger" if danger else "warn" if warn else "good"
    return level, tuple(danger + warn)


def parse_report(raw: Any) -> TokenSecurity:
    """One token's report object → ``TokenSecurity`` (lenient per field: a bad field is "not said")."""
    if not isinstance(raw, dict):
        raise TypeError(f"a token report should be an object, got {type(raw).__name__}")
    holders = [h for h in _holders(raw.get("holders")) if _flag(h.get("is_locked")) is not True]
    shares = [s for s in (_fraction(h.get("percent")) for h in holders) if s is not None]
    lp_holders = _holders(raw.get("lp_holders"))
    lp_locked = [s for s in (_fraction(h.get("percent")) for h in lp_holders if _flag(h.get("is_locked"))) if s is not None]
    report = TokenSecurity(
        honeypot=_flag(raw.get("is_honeypot")),
        buy_tax=_fraction(raw.get("buy_tax")),
        sell_tax=_fraction(raw.get("sell_tax")),
        mintable=_flag(raw.get("is_mintable")),
        owner_change_balance=_flag(raw.get("owner_change_balance")),
        proxy=_flag(raw.get("is_proxy")),
        cannot_sell_all=_flag(raw.get("cannot_sell_all")),
        top10_share=min(1.0, sum(sorted(shares, reverse=True)[:10])) if shares else None,
        top_holder_share=max(shares) if shares else None,
        lp_locked_share=min(1.0, sum(lp_locked)) if lp_holders else None,
        risk_level="good",
        risks=(),
    )
    level, risks = grade(report)
    return replace(report, risk_level=level, risks=risks)


def parse_token_security(address: str) -> Any:
    """A parser of the ``token_security`` body for ``address``: its report, or ``None`` when GoPlus has none."""
    key = address.lower()

    def parse(body: Any) -> TokenSecurity | None:
        if not isinstance(body, dict):
            raise TypeError(f"expected a JSON object, got {type(body).__name__}")
        code = body.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"'code' should be an integer, got {type(code).__name__}")
        if code not in REPORT_CODES:
            message = body.get("message")
            shown = f"GoPlus answered code {code}: {message[:120] if isinstance(message, str) else ''!r}"
            if code == RATE_LIMITED_CODE:
                raise ProviderSaid("rate_limited", shown)
            if code == SERVER_ERROR_CODE:
                raise ProviderSaid("server_error", shown)
            raise ValueError(shown)
        result = body.get("result")
        if result is None:
            return None
        if not isinstance(result, dict):
            raise TypeError(f"'result' should be an object keyed by address, got {type(result).__name__}")
        for found, report in result.items():
            if isinstance(found, str) and found.lower() == key:
                return parse_report(report)
        return None

    return parse


class GoPlusClient(ProviderClient):
    API = API
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    RATE_LIMIT_PER_MINUTE = RATE_LIMIT_PER_MINUTE
    CACHE_TTL = DEFAULT_CACHE_TTL
    ENDPOINTS = ("token_security",)
    BURST = 3

    @staticmethod
    def covers(chain: str) -> bool:
        """True for the EVM chains GoPlus is asked about (DexScreener chain ids)."""
        return chain in CHAIN_IDS

    async def token_security(self, chain: str, address: str, *,
                             context: RequestContext | None = None) -> TokenSecurity | None:
        """The report, or ``None`` for a chain GoPlus is not asked about, a non-EVM address or a token it does not know.

        ``context``: the chat asking (the limiter serves chats in turn). Raises ``ApiError`` when the call fails.
        """
        chain_id = CHAIN_IDS.get(chain)
        if chain_id is None or not isinstance(address, str) or not _EVM_RE.fullmatch(address):
            return None
        report: TokenSecurity | None = await self.http.get_json(
            "token_security", f"/api/v1/token_security/{chain_id}", {"contract_addresses": address.lower()},
            parse=parse_token_security(address), context=context,
        )
        return report
