"""The funding carry past its target: the shift reverses toward the target, smoothly, bounded.

``carry_shift`` is pure; the decide-level test checks the reservation price and the ladder a user
sees when fills have carried a hedged carry past its target.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.model import DecisionInputs, LiveQuotes, ModelEstimates, ModelParams, decide
from agent.model.quoting import carry_shift

F = 3.0
"""Funding value of a marginal unit to a flat book (longs pay: the carry is short)."""
TARGET = -0.25
"""The carry's target, base units (a quarter of a cap of 1)."""

carries = st.floats(1e-6, 1e4) | st.floats(-1e4, -1e-6)
positions = st.floats(-100.0, 100.0)
targets = st.floats(1e-3, 10.0)


def test_past_the_target_the_shift_reverses_and_pulls_toward_the_target() -> None:
    # Short of the target (−0.5 against −0.25): r moves *up* (shift < 0), so the bid rises and
    # the ask with it: buying back toward the target, not merely stopping the push.
    assert carry_shift(F, -0.5, TARGET) == pytest.approx(F * math.tanh(-1.0))
    assert carry_shift(F, -0.5, TARGET) < 0.0
    # Mirror: shorts pay, the carry is long, a long past its target is pulled down.
    assert carry_shift(-F, 0.5, -TARGET) == pytest.approx(-F * math.tanh(-1.0))
    assert carry_shift(-F, 0.5, -TARGET) > 0.0
    # Flat to the target: the push fades linearly; the paying side of flat keeps all of it.
    assert carry_shift(F, 0.0, TARGET) == F
    assert carry_shift(F, 0.4, TARGET) == F
    assert carry_shift(F, -0.125, TARGET) == pytest.approx(0.5 * F)
    # No carry, no shift, wherever the position is.
    assert carry_shift(0.0, -0.5, 0.0) == 0.0


def test_continuous_and_smooth_at_the_target() -> None:
    # No jump at the target, and the same slope on both sides (no kink for the gate to chase).
    eps = 1e-6
    at = carry_shift(F, TARGET, TARGET)
    inside = carry_shift(F, TARGET + eps, TARGET)
    past = carry_shift(F, TARGET - eps, TARGET)
    assert at == 0.0
    slope = F / abs(TARGET)  # κ: the mean-variance marginal value's slope F + κq
    assert (inside - at) / eps == pytest.approx(slope, rel=1e-5)
    assert (at - past) / eps == pytest.approx(slope, rel=1e-5)


@given(carry=carries, q=positions, size=targets)
def test_bounded_by_the_carry_and_monotone_toward_the_target(
    carry: float, q: float, size: float
) -> None:
    target = -math.copysign(size, carry)
    s = carry_shift(carry, q, target)
    assert abs(s) <= abs(carry) * (1.0 + 1e-12)
    # Sign: toward the target. Inside it the push carries on toward it (same sign as the
    # carry); past it the pull (opposite sign) brings the position back.
    excess = (q - target) * math.copysign(1.0, target)  # > 0: past the target
    if excess > 1e-9 * size:
        assert s * carry <= 0.0
    elif excess < -1e-9 * size:
        assert s * carry >= 0.0
    # The further along the carry's direction, the lower the marginal unit's value.
    further = carry_shift(carry, q + 0.1 * math.copysign(size, target), target)
    assert further * math.copysign(1.0, carry) <= s * math.copysign(1.0, carry) + 1e-12 * abs(carry)


def _inputs(q: float, estimates: ModelEstimates) -> DecisionInputs:
    return DecisionInputs(
        time_s=0.0,
        mid=2000.0,
        index=2000.0,
        mark=2000.0,
        best_bid=1999.95,
        best_ask=2000.05,
        bid_depth_base=50.0,
        ask_depth_base=50.0,
        inventory_base=q,
        estimates=estimates,
        seconds_to_funding=300.0,
        hedge_base=-q,  # hedged: the ordinary inventory skew sees a flat net delta
    )


def test_a_hedged_carry_past_its_target_is_quoted_back_toward_it() -> None:
    """Fills carried a hedged short past the carry's target: the quotes lean to buy it back.

    The inventory skew is on the net delta, flat when hedged, so before the pull-back nothing
    leaned on the excess: the reservation price sat at fair value whatever the excess was.
    """
    p = ModelParams(
        ref_sigma_rel_per_sqrt_s=5e-4, expected_holding_s=600.0, funding_interval_s=600.0
    )
    e = ModelEstimates(
        sigma_per_sqrt_s=0.6,
        fill_a_per_s=1.0,
        fill_k_per_price=2.0,
        base_fee_wei=2e9,
        base_fee_p99_wei=4e9,
        tip_wei=1e8,
        inclusion_delay_s=2.0,
        funding_rate=5e-4,
        funding_flip_prob=0.0,
    )
    none = replace(e, funding_rate=0.0)

    def shift(q: float) -> tuple[float, float]:
        d = decide(_inputs(q, e), p, LiveQuotes())
        base = decide(_inputs(q, none), p, LiveQuotes())
        return base.reservation_price - d.reservation_price, d.carry_target_base

    flat, target = shift(0.0)
    assert target < 0.0 < flat  # longs pay: a short carry
    at, _ = shift(target)
    assert at == pytest.approx(0.0, abs=1e-9)
    past, _ = shift(2.0 * target)
    far, _ = shift(6.0 * target)
    # r moves up past the target (shift < 0): bids closer to fair, asks further from it.
    b = p.funding_carry_pullback_frac
    assert past == pytest.approx(flat * b * math.tanh(-1.0 / b)) and past < 0.0
    assert far < past and far >= -b * flat
    d = decide(_inputs(2.0 * target, e), p, LiveQuotes())
    assert d.carry_skew == pytest.approx(past - flat)
    # The configured bound reaches the quotes; 0 restores the old carry (no pull back).
    half = replace(p, funding_carry_pullback_frac=0.5)
    base = decide(_inputs(6.0 * target, none), half, LiveQuotes())
    d = decide(_inputs(6.0 * target, e), half, LiveQuotes())
    assert base.reservation_price - d.reservation_price == pytest.approx(
        flat * 0.5 * math.tanh(-5.0 / 0.5)
    )
    off = replace(p, funding_carry_pullback_frac=0.0)
    base = decide(_inputs(2.0 * target, none), off, LiveQuotes())
    d = decide(_inputs(2.0 * target, e), off, LiveQuotes())
    assert base.reservation_price == pytest.approx(d.reservation_price)


@pytest.mark.parametrize("bound", [1.0, 0.5, 0.25])
def test_the_bound_caps_the_pull_back_and_keeps_the_slope(bound: float) -> None:
    eps = 1e-6
    far = carry_shift(F, 100.0 * TARGET, TARGET, bound)
    assert far == pytest.approx(-bound * F, rel=1e-6)
    past = carry_shift(F, TARGET - eps, TARGET, bound)
    assert -past / eps == pytest.approx(F / abs(TARGET), rel=1e-5)  # same slope as inside
    # Inside the target the bound changes nothing.
    assert carry_shift(F, 0.5 * TARGET, TARGET, bound) == pytest.approx(0.5 * F)


def test_a_zero_bound_is_the_old_carry_and_the_param_is_checked() -> None:
    assert carry_shift(F, 3.0 * TARGET, TARGET, 0.0) == 0.0
    assert carry_shift(F, 0.5 * TARGET, TARGET, 0.0) == pytest.approx(0.5 * F)
    assert ModelParams().funding_carry_pullback_frac == 0.5
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ConfigError, match="funding_carry_pullback_frac"):
            ModelParams(funding_carry_pullback_frac=bad)
