"""decide() against the market: fair value, funding weight, size floor, gas paid, depth, expiry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.model import (
    Decision,
    DecisionInputs,
    GateReason,
    LiveQuotes,
    ModelEstimates,
    ModelParams,
    decide,
)
from agent.types import Side

EST = ModelEstimates(
    sigma_per_sqrt_s=0.24,  # 1.2e-4 relative at 2000
    fill_a_per_s=0.05,
    fill_k_per_price=1.0,
    base_fee_wei=1e9,
    base_fee_p99_wei=1e9,
    tip_wei=1e8,
    inclusion_delay_s=1.0,
    funding_rate=0.0,
    funding_flip_prob=0.0,
)
# The whole inventory skew in the price, as the closed forms state it.
PARAMS = ModelParams(base_size_base=0.5, inventory_cap_base=5.0, size_skew_frac=0.0)


def inputs(**kw: object) -> DecisionInputs:
    base: dict[str, object] = {
        "time_s": 1_000.0,
        "mid": 2000.0,
        "index": 2000.0,
        "mark": 2000.0,
        "best_bid": None,
        "best_ask": None,
        "bid_depth_base": 50.0,
        "ask_depth_base": 50.0,
        "inventory_base": 0.0,
        "estimates": EST,
        "seconds_to_funding": 20_000.0,
        "fair_value": 2000.0,
    }
    base.update(kw)
    return DecisionInputs(**base)  # type: ignore[arg-type]


def sides(d: object) -> set[Side]:
    return {lv.side for lv in d.ladder}  # type: ignore[attr-defined]


def test_quotes_centre_on_fair_value_not_on_a_mid_made_of_our_own_quotes() -> None:
    # Our own asks pulled the DEX mid 2 % under fair value; the quotes must straddle fair.
    d = decide(inputs(mid=1960.0, fair_value=2000.0), PARAMS, LiveQuotes())
    bids = [lv.price for lv in d.ladder if lv.side is Side.BID]
    asks = [lv.price for lv in d.ladder if lv.side is Side.ASK]
    assert max(bids) < 2000.0 < min(asks)
    assert abs(0.5 * (max(bids) + min(asks)) - 2000.0) < 2000.0 * 1e-4  # centre within 1 bp
    assert d.fair_value == 2000.0


def test_momentum_moves_the_centre_with_the_exchange() -> None:
    flat = decide(inputs(), PARAMS, LiveQuotes())
    up = decide(inputs(momentum_per_s=0.2), PARAMS, LiveQuotes())
    assert up.reservation_price == pytest.approx(flat.reservation_price + 0.2 * 5.0)


def test_empty_or_thin_book_still_quotes_both_sides_at_least_the_minimum_order() -> None:
    d = decide(inputs(bid_depth_base=0.0, ask_depth_base=0.0), PARAMS, LiveQuotes())
    assert sides(d) == {Side.BID, Side.ASK}
    for lv in d.ladder:
        assert lv.price_ticks * PARAMS.tick_size * lv.size_lots * PARAMS.lot_size >= (
            PARAMS.min_notional
        )
    # A tiny base size (below min notional) is raised to the venue minimum, not dropped.
    tiny = replace(PARAMS, base_size_base=0.001)
    assert sides(decide(inputs(), tiny, LiveQuotes())) == {Side.BID, Side.ASK}


def test_a_swept_side_is_requoted_when_the_gate_allows() -> None:
    l2 = replace(EST, base_fee_wei=1e7, base_fee_p99_wei=1e7, paid_gas_price_wei=1.1e7)
    # Takers swept our bids; the book has no bids left at all (depth 0 used to mean size 0).
    first = decide(inputs(estimates=l2, bid_depth_base=0.0), PARAMS, LiveQuotes())
    only_asks = LiveQuotes(tuple(lv.quote() for lv in first.ladder if lv.side is Side.ASK))
    d = decide(inputs(estimates=l2, bid_depth_base=0.0), PARAMS, only_asks)
    assert d.send and d.reason is GateReason.GAIN_EXCEEDS_COST
    assert Side.BID in sides(d)
    # At dear gas the target still holds bids; the gate decides when they are worth the gas.
    assert Side.BID in sides(decide(inputs(bid_depth_base=0.0), PARAMS, only_asks))


def test_gas_is_priced_at_what_the_pipeline_pays_plus_the_l1_data_fee() -> None:
    p = PARAMS

    def batch_gas(d: Decision) -> float:
        # Nothing rests: the batch places the whole ladder and cancels nothing.
        return p.gas_units_per_batch + len(d.ladder) * p.gas_units_per_place

    fixed = decide(inputs(), p, LiveQuotes())
    assert fixed.gas_price_wei == pytest.approx(1e9 + 1e8)
    assert fixed.cost.gas_quote == pytest.approx(batch_gas(fixed) * 1.1e9 / 1e18 * 2000.0)
    paid = decide(inputs(estimates=replace(EST, paid_gas_price_wei=2e9)), p, LiveQuotes())
    assert paid.gas_price_wei == pytest.approx(2e9)
    assert paid.cost.gas_quote == pytest.approx(batch_gas(paid) * 2e9 / 1e18 * 2000.0)
    l2 = replace(EST, base_fee_wei=1e7, base_fee_p99_wei=1e7, paid_gas_price_wei=1.1e7)
    no_l1 = decide(inputs(estimates=l2), p, LiveQuotes())
    with_l1 = decide(inputs(estimates=replace(l2, l1_fee_per_byte_wei=1e9)), p, LiveQuotes())
    assert len(with_l1.ladder) == len(no_l1.ladder)
    data = p.calldata_bytes_per_batch + len(no_l1.ladder) * p.calldata_bytes_per_place
    extra = data * 1e9 / 1e18 * p.native_price_quote
    assert with_l1.cost.gas_quote == pytest.approx(no_l1.cost.gas_quote + extra)


def test_ladder_depth_follows_what_a_level_costs_on_this_chain() -> None:
    l2 = replace(EST, base_fee_wei=1e7, base_fee_p99_wei=1e7, paid_gas_price_wei=1.1e7)
    l1 = replace(EST, base_fee_wei=30e9, base_fee_p99_wei=30e9, paid_gas_price_wei=31e9)
    cheap = decide(inputs(estimates=l2), PARAMS, LiveQuotes())
    dear = decide(inputs(estimates=l1), PARAMS, LiveQuotes())
    assert len(cheap.ladder) == 2 * PARAMS.levels
    assert 2 <= len(dear.ladder) < len(cheap.ladder)  # the top of each side always stays
    assert sides(dear) == {Side.BID, Side.ASK}


def test_settlement_penalties_scale_with_the_dollars_at_stake() -> None:
    near = {"seconds_to_funding": 60.0, "inventory_base": 2.0}
    flat = decide(inputs(**near), PARAMS, LiveQuotes())
    cents = decide(inputs(estimates=replace(EST, funding_rate=1e-6), **near), PARAMS, LiveQuotes())
    dollars = decide(
        inputs(estimates=replace(EST, funding_rate=1e-3), **near), PARAMS, LiveQuotes()
    )
    # A rate worth cents barely touches sizes (the old rule halved them for any sign).
    assert cents.bid_size_base > 0.99 * flat.bid_size_base
    assert dollars.bid_size_base == pytest.approx(PARAMS.settlement_size_mult * flat.bid_size_base)


def test_settlement_window_is_scaled_to_the_interval() -> None:
    p = replace(PARAMS, funding_interval_s=600.0)  # window 18.75 s, not 900 s
    e = replace(EST, funding_rate=1e-3)
    at_300 = decide(inputs(estimates=e, seconds_to_funding=300.0), p, LiveQuotes())
    at_10 = decide(inputs(estimates=e, seconds_to_funding=10.0), p, LiveQuotes())
    assert at_300.bid_size_base == pytest.approx(PARAMS.base_size_base)
    assert at_10.bid_size_base < at_300.bid_size_base


def test_expiring_live_quotes_are_worth_less_and_new_ones_carry_an_expiry() -> None:
    p = replace(PARAMS, quote_expiry_s=60.0)
    first = decide(inputs(), p, LiveQuotes())
    assert first.expires_at_s == pytest.approx(1_060.0)
    live = tuple(lv.quote() for lv in first.ladder)
    fresh = decide(inputs(), p, LiveQuotes(live, expires_at_s=1_060.0))
    assert fresh.reason is GateReason.UNCHANGED
    # Same prices, a bit later, and a long quote life: about to expire, so the live quotes are
    # worth almost nothing and the same ladder freshly stamped is not (the gate sees a gain).
    p_long = replace(p, quote_life_s=600.0, quote_expiry_s=600.0)
    late = decide(inputs(time_s=1_059.0), p_long, LiveQuotes(live, expires_at_s=1_060.0))
    early = decide(inputs(time_s=1_000.0), p_long, LiveQuotes(live, expires_at_s=1_600.0))
    assert late.value.old_quote < 0.05 * early.value.old_quote


def test_after_a_3pct_move_the_gate_replaces_quotes_resting_through_fair_value() -> None:
    # Dear (L1) gas, yet asks left 3 % under the new fair value must go at once: a resting order
    # through fair is lifted by the first arbitrageur.
    l1 = replace(EST, base_fee_wei=2e9, base_fee_p99_wei=2e9, paid_gas_price_wei=2.2e9)
    before = decide(inputs(estimates=l1), PARAMS, LiveQuotes())
    after = decide(inputs(estimates=l1, fair_value=2060.0), PARAMS, LiveQuotes(before.quotes))
    assert after.send and after.value.old_quote < 0.0
    bids = [lv.price for lv in after.ladder if lv.side is Side.BID]
    asks = [lv.price for lv in after.ladder if lv.side is Side.ASK]
    assert max(bids) < 2060.0 < min(asks)
