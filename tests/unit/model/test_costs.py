"""Cost of a quote update: each term, and the monotonicity the gate relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.costs import (
    QuoteLeg,
    UpdateCost,
    UpdateValue,
    effective_gas_price_wei,
    fill_probability,
    gas_cost_quote,
    ladder_value_quote,
    should_send,
    update_cost,
)

OLD: list[QuoteLeg] = [(1, 1999.0, 1.0), (-1, 2001.0, 1.0)]
NEW: list[QuoteLeg] = [(1, 1999.5, 1.0), (-1, 2001.5, 1.0)]


def cost(gas_price_wei: float, delay_s: float, funding: float = 0.0) -> UpdateCost:
    return update_cost(
        old_legs=OLD,
        new_legs=NEW,
        mid=2000.0,
        sigma=0.6,
        a_per_s=1.0,
        k_per_price=2.0,
        gas_units=180_000,
        gas_price_wei=gas_price_wei,
        native_price_quote=2000.0,
        delay_s=delay_s,
        funding_per_unit_quote=funding,
        seconds_to_snapshot=60.0,
    )


def test_terms_match_hand_computed_values() -> None:
    # 180k gas at 2 gwei = 3.6e-4 native = 0.72 quote at 2000/native.
    assert gas_cost_quote(180_000, 2e9, 2000.0) == pytest.approx(0.72)
    # Base 2 gwei, p99 6 gwei, weight 0.25, tip 0.1 gwei -> 2 + 1 + 0.1 = 3.1 gwei.
    assert effective_gas_price_wei(2e9, 6e9, 0.25, 1e8) == pytest.approx(3.1e9)
    # A quote 1 away with A=1, k=2 over 2 s: 1 - exp(-2 e^-2).
    assert fill_probability(1.0, 2.0, 1.0, 2.0) == pytest.approx(
        1.0 - math.exp(-2.0 * math.exp(-2))
    )
    c = cost(2e9, 2.0)
    p_hit = 1.0 - math.exp(-2.0 * math.exp(-2.0))
    assert c.exposure_quote == pytest.approx(2 * 1.0 * 0.6 * math.sqrt(2.0) * p_hit)
    assert c.funding_delta_quote == 0.0
    # The old quotes rest through the delay whether or not the update is sent: not its cost.
    assert c.total_quote == pytest.approx(c.gas_quote)


@settings(max_examples=200, deadline=None)
@given(g1=st.floats(0.0, 1e12), g2=st.floats(0.0, 1e12), delay=st.floats(0.0, 120.0))
def test_cost_rises_with_gas_price(g1: float, g2: float, delay: float) -> None:
    lo, hi = sorted((g1, g2))
    assert cost(lo, delay).total_quote <= cost(hi, delay).total_quote


@settings(max_examples=200, deadline=None)
@given(d1=st.floats(0.0, 120.0), d2=st.floats(0.0, 120.0), gas=st.floats(0.0, 1e12))
def test_cost_rises_with_delay(d1: float, d2: float, gas: float) -> None:
    lo, hi = sorted((d1, d2))
    assert cost(gas, lo).exposure_quote <= cost(gas, hi).exposure_quote
    assert cost(gas, lo).total_quote <= cost(gas, hi).total_quote + 1e-12


def test_funding_term_charges_quotes_that_add_to_the_paying_side() -> None:
    # New quotes with a tighter bid add expected long inventory before the snapshot: longs pay.
    tighter_bid: list[QuoteLeg] = [(1, 1999.9, 1.0), (-1, 2001.0, 1.0)]
    c = update_cost(
        old_legs=OLD,
        new_legs=tighter_bid,
        mid=2000.0,
        sigma=0.6,
        a_per_s=1.0,
        k_per_price=2.0,
        gas_units=0,
        gas_price_wei=0.0,
        native_price_quote=2000.0,
        delay_s=0.0,
        funding_per_unit_quote=1.0,
        seconds_to_snapshot=30.0,
    )
    assert c.funding_delta_quote > 0.0


@given(gain=st.floats(-1e6, 1e6), total=st.floats(0.0, 1e6))
def test_should_send_is_gain_over_cost_unless_forced(gain: float, total: float) -> None:
    value = UpdateValue(new_quote=gain, old_quote=0.0)
    c = UpdateCost(total, 0.0, 0.0, 0.0, 0.0)
    assert should_send(value, c, forced=False) is (gain > total)
    assert should_send(value, c, forced=True)


@given(
    gamma=st.floats(0.001, 5.0),
    k=st.floats(0.05, 20.0),
    size=st.floats(0.01, 5.0),
    other=st.floats(0.0, 10.0),
)
def test_leg_value_peaks_at_the_closed_form_distance(
    gamma: float, k: float, size: float, other: float
) -> None:
    # The gate values quotes by the objective the model optimises, so the closed-form distance
    # from the reservation price (here = mid) is worth at least as much as any other distance.
    best = math.log1p(gamma * size / k) / (gamma * size)
    r = 100.0

    def value(delta: float) -> float:
        return ladder_value_quote([(-1, r + delta, size)], r, r, 1.0, k, 10.0, gamma)

    assert value(best) >= value(other) - 1e-9 * (1 + abs(value(best)))
    assert ladder_value_quote([(1, r + 1.0, size)], r, r, 1.0, k, 10.0, gamma) < 0  # wrong side
