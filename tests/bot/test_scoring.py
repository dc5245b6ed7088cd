"""The documented score formula (docs/scoring.md)."""

from __future__ import annotations

import pytest

from hux.bot.scoring import WEIGHTS, ScoreInput, age_factor, liquidity_factor, momentum_factor, score, velocity_factor

STRONG = ScoreInput(liquidity_usd=2_000_000, volume_h24=10_000_000, price_change_h1=150.0, pair_age_seconds=6 * 3600,
                    risk_level="good", rugged=False, groups_mentioning=8)
WEAK = ScoreInput(liquidity_usd=500, volume_h24=200, price_change_h1=-80.0, pair_age_seconds=60,
                  risk_level="danger", rugged=False, groups_mentioning=1)


def test_weights_sum_to_100() -> None:
    assert sum(WEIGHTS.values()) == 100


def test_best_case_is_100_and_worst_is_low() -> None:
    assert score(STRONG).value == 100.0
    weak = score(WEAK)
    assert weak.value == pytest.approx(10 * 0.3 + 10 * velocity_factor(1), abs=0.1)


def test_rugged_scores_zero() -> None:
    data = ScoreInput(STRONG.liquidity_usd, STRONG.volume_h24, STRONG.price_change_h1, STRONG.pair_age_seconds, "good", True, 8)
    result = score(data)
    assert result.value == 0.0 and result.reasons == ("RugCheck marks it rugged",)


def test_components_are_bounded_and_monotonic_where_documented() -> None:
    values = [liquidity_factor(x) for x in (0, 1_000, 10_000, 100_000, 1_000_000, 10**9)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0
    assert liquidity_factor(31_622.78) == pytest.approx(0.5, abs=1e-3)  # log-scale midpoint of $1k..$1M
    assert momentum_factor(-50) == 0.0 and momentum_factor(0) == 0.5 and momentum_factor(100) == 1.0
    assert momentum_factor(1000) == 0.5  # a +1000 % hour looks like a pump: fades back
    assert age_factor(None) == 0.5 and age_factor(600) == 0.3 and age_factor(7200) == 1.0 and age_factor(90 * 86400) == 0.3
    assert [velocity_factor(n) for n in (0, 1, 5, 50)] == [0.0, pytest.approx(0.387, abs=1e-3), 1.0, 1.0]


def test_risk_and_velocity_move_the_score() -> None:
    base = dict(liquidity_usd=50_000, volume_h24=200_000, price_change_h1=10.0, pair_age_seconds=3 * 3600, rugged=False)
    good = score(ScoreInput(**base, risk_level="good", groups_mentioning=1)).value
    danger = score(ScoreInput(**base, risk_level="danger", groups_mentioning=1)).value
    unknown = score(ScoreInput(**base, risk_level=None, groups_mentioning=1)).value
    assert good - danger == pytest.approx(20.0, abs=0.1) and danger < unknown < good
    many = score(ScoreInput(**base, risk_level="good", groups_mentioning=5)).value
    assert many > good


def test_reasons_are_readable() -> None:
    reasons = score(STRONG).reasons
    assert "liquidity $2,000,000" in reasons and "risk good" in reasons and "mentioned in 8 groups" in reasons
