"""Token score, 0-100: how interesting a freshly mentioned token looks.

The formula is documented in ``docs/scoring.md``; keep the two in step. Six
components, each in 0..1, weighted to sum to 100:

=================  ======  ====================================================
component          weight  0 ... 1
=================  ======  ====================================================
liquidity          25      log-scale, $1k -> 0, $1M -> 1
volume (24 h)      20      log-scale, $1k -> 0, $5M -> 1
momentum (1 h)     15      price change -50 % -> 0, 0 % -> 0.5, +100 % -> 1;
                           above +300 % fades (likely a pump) to 0.5 at +1000 %
pair age           10      <15 min 0.3, <1 h 0.7, 1 h-3 d 1.0, <30 d 0.6, older 0.3
risk               20      good 1.0, warn 0.5, danger 0.0, no report 0.5
                           (RugCheck for Solana, GoPlus for EVM chains)
mention velocity   10      distinct groups in the window: log2(1+n)/log2(6), capped at 1
=================  ======  ====================================================

A token RugCheck flags as rugged, or GoPlus as a honeypot, scores 0. Missing market data is not scored
(the pipeline records ``no_market_data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WEIGHTS = {
    "liquidity": 25.0,
    "volume": 20.0,
    "momentum": 15.0,
    "age": 10.0,
    "risk": 20.0,
    "velocity": 10.0,
}
RISK_LEVEL_FACTOR = {"good": 1.0, "warn": 0.5, "danger": 0.0}
NO_RISK_REPORT_FACTOR = 0.5


@dataclass(frozen=True, slots=True)
class ScoreInput:
    liquidity_usd: float
    volume_h24: float
    price_change_h1: float          # percent
    pair_age_seconds: float | None  # None: the API gave no creation time
    risk_level: str | None          # None: no risk report (provider down, unknown token, chain not covered)
    rugged: bool
    groups_mentioning: int          # distinct groups within the mention window
    honeypot: bool = False          # GoPlus: buyers cannot sell
    risk_notes: tuple[str, ...] = ()  # the findings behind the risk level, shown in the reasons (GoPlus)


@dataclass(frozen=True, slots=True)
class Score:
    value: float                    # 0..100, rounded to 0.1
    components: dict[str, float]    # each 0..1
    reasons: tuple[str, ...]        # short, human-readable, for the alert text


def _log_scale(value: float, low: float, high: float) -> float:
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return math.log10(value / low) / math.log10(high / low)


def liquidity_factor(usd: float) -> float:
    return _log_scale(usd, 1_000.0, 1_000_000.0)


def volume_factor(usd: float) -> float:
    return _log_scale(usd, 1_000.0, 5_000_000.0)


def momentum_factor(change_pct: float) -> float:
    if change_pct <= -50.0:
        return 0.0
    if change_pct <= 0.0:
        return 0.5 * (change_pct + 50.0) / 50.0
    if change_pct <= 100.0:
        return 0.5 + 0.5 * change_pct / 100.0
    if change_pct <= 300.0:
        return 1.0
    return max(0.5, 1.0 - 0.5 * (change_pct - 300.0) / 700.0)


def age_factor(age_seconds: float | None) -> float:
    if age_seconds is None:
        return 0.5
    hours = age_seconds / 3600.0
    if hours < 0.25:
        return 0.3
    if hours < 1.0:
        return 0.7
    if hours <= 72.0:
        return 1.0
    if hours <= 720.0:
        return 0.6
    return 0.3


def risk_factor(level: str | None) -> float:
    if level is None:
        return NO_RISK_REPORT_FACTOR
    return RISK_LEVEL_FACTOR.get(level, NO_RISK_REPORT_FACTOR)


def velocity_factor(groups: int) -> float:
    if groups <= 0:
        return 0.0
    return min(1.0, math.log2(1 + groups) / math.log2(6))


def score(data: ScoreInput) -> Score:
    """Weighted sum of the six components; 0 for a rugged token."""
    components = {
        "liquidity": liquidity_factor(max(0.0, data.liquidity_usd)),
        "volume": volume_factor(max(0.0, data.volume_h24)),
        "momentum": momentum_factor(data.price_change_h1),
        "age": age_factor(data.pair_age_seconds),
        "risk": risk_factor(data.risk_level),
        "velocity": velocity_factor(data.groups_mentioning),
    }
    if data.rugged:
        return Score(0.0, components, ("RugCheck marks it rugged",))
    if data.honeypot:
        return Score(0.0, components, ("GoPlus marks it a honeypot: it cannot be sold",))
    value = sum(WEIGHTS[name] * factor for name, factor in components.items())
    value = round(min(100.0, max(0.0, value)), 1)
    return Score(value, components, _reasons(data))


def _reasons(data: ScoreInput) -> tuple[str, ...]:
    reasons = [f"liquidity ${data.liquidity_usd:,.0f}", f"24h volume ${data.volume_h24:,.0f}"]
    reasons.append(f"1h change {data.price_change_h1:+.1f}%")
    if data.pair_age_seconds is not None:
        hours = data.pair_age_seconds / 3600.0
        reasons.append(f"pair age {hours:.1f} h" if hours < 48 else f"pair age {hours / 24:.0f} d")
    if not data.risk_level:
        reasons.append("no risk report")
    elif data.risk_notes:
        reasons.append(f"risk {data.risk_level} ({', '.join(data.risk_notes[:3])})")
    else:
        reasons.append(f"risk {data.risk_level}")
    reasons.append(f"mentioned in {data.groups_mentioning} group{'s' if data.groups_mentioning != 1 else ''}")
    return tuple(reasons)
