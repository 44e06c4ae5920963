"""Quoting model: closed forms against hand-computed values, and the behaviours a user relies on."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.model import (
    DecisionInputs,
    GateReason,
    LiveQuotes,
    ModelEstimates,
    ModelParams,
    QuoteModel,
    RiskDirective,
    decide,
)
from agent.model.quoting import as_quotes, glft_quotes
from agent.types import Lots, Quote, Side, Tick

EST = ModelEstimates(
    sigma_per_sqrt_s=0.6,
    fill_a_per_s=1.0,
    fill_k_per_price=2.0,
    base_fee_wei=2e9,
    base_fee_p99_wei=4e9,
    tip_wei=1e8,
    inclusion_delay_s=2.0,
    funding_rate=0.0,
    funding_flip_prob=0.0,
)
# The scenarios below are sized for σ = 5e-4/√s relative (about 1.0 $/√s at 2000).
# The closed forms skew the price: these tests keep the whole inventory skew there.
PARAMS = ModelParams(ref_sigma_rel_per_sqrt_s=5e-4, size_skew_frac=0.0)


def make_inputs(**kw: object) -> DecisionInputs:
    base: dict[str, object] = {
        "time_s": 0.0,
        "mid": 2000.0,
        "index": 2000.0,
        "mark": 2000.0,
        "best_bid": 1999.95,
        "best_ask": 2000.05,
        "bid_depth_base": 50.0,
        "ask_depth_base": 50.0,
        "inventory_base": 0.0,
        "estimates": EST,
        "seconds_to_funding": 20_000.0,
    }
    base.update(kw)
    return DecisionInputs(**base)  # type: ignore[arg-type]


def est(**kw: float) -> ModelEstimates:
    return replace(EST, **kw)  # type: ignore[arg-type]


# --- closed forms -------------------------------------------------------------------------------


def test_as_quotes_match_hand_computed_values() -> None:
    # r = 100 - 2 * 0.1 * 2^2 * 0.5 = 99.6
    # h = (0.1 * 4 * 0.5 + (2 / 0.1) * ln(1 + 0.1 / 1.5)) / 2 = (0.2 + 1.2907704) / 2 = 0.7453852
    r, h = as_quotes(100.0, 2.0, 0.1, 2.0, 0.5, 1.5)
    assert r == pytest.approx(99.6, abs=1e-12)
    assert h == pytest.approx(0.7453852, abs=1e-7)


def test_glft_quotes_match_hand_computed_values() -> None:
    # c1 = ln(1 + 0.1/1.5) / 0.1 = 0.6453852
    # c2 = sqrt(0.1 * 4 / (2 * 140 * 1.5) * (1 + 0.1/1.5)^(1 + 15)) = sqrt(9.5238e-4 * 2.808396)
    #    = 0.0517171
    # δb = c1 + (2q + 1)/2 * c2 = 0.7746780 ; δa = c1 - (2q - 1)/2 * c2 = 0.5678094   (q = 2)
    r, h = glft_quotes(100.0, 2.0, 0.1, 2.0, 140.0, 1.5, 1.0)
    assert 100.0 - (r - h) == pytest.approx(0.7746780, abs=1e-6)
    assert (r + h) - 100.0 == pytest.approx(0.5678094, abs=1e-6)


def test_decide_uses_the_selected_closed_form() -> None:
    for model in QuoteModel:
        p = replace(
            PARAMS,
            model=model,
            adverse_bps=0.0,
            adverse_sigma_mult=0.0,
            maker_fee_bps=0.0,
            gas_units_per_refresh=0,
        )
        d = decide(make_inputs(inventory_base=1.0), p, LiveQuotes())
        if model is QuoteModel.AS:
            expected = as_quotes(2000.0, 1.0, p.gamma, 0.6, p.horizon_s, 2.0)
        else:
            expected = glft_quotes(2000.0, 1.0, p.gamma, 0.6, 1.0, 2.0, p.base_size_base)
        assert d.reservation_price == pytest.approx(expected[0])
        assert d.half_spread_model == pytest.approx(expected[1])


def test_params_reject_nonsense() -> None:
    with pytest.raises(ConfigError, match="gamma"):
        ModelParams(gamma=0.0)
    with pytest.raises(ConfigError, match="tick_size"):
        ModelParams(tick_size=0.0)


# --- properties ---------------------------------------------------------------------------------

mids = st.floats(100.0, 10_000.0)
inventories = st.floats(-8.0, 8.0)
sigmas = st.floats(0.01, 5.0)
models = st.sampled_from(list(QuoteModel))


@settings(max_examples=150, deadline=None)
@given(
    mid=mids,
    q=inventories,
    sigma=sigmas,
    model=models,
    spread_ticks=st.integers(1, 50),
    offset=st.floats(-0.01, 0.01),
)
def test_ladder_is_post_only_and_never_crosses(
    mid: float, q: float, sigma: float, model: QuoteModel, spread_ticks: int, offset: float
) -> None:
    p = replace(PARAMS, model=model)
    best_bid = round(mid * (1 + offset) / p.tick_size) * p.tick_size
    best_ask = best_bid + spread_ticks * p.tick_size
    d = decide(
        make_inputs(
            mid=mid,
            mark=mid,
            index=mid,
            inventory_base=q,
            best_bid=best_bid,
            best_ask=best_ask,
            estimates=est(sigma_per_sqrt_s=sigma),
        ),
        p,
        LiveQuotes(),
    )
    bids = [lv for lv in d.ladder if lv.side is Side.BID]
    asks = [lv for lv in d.ladder if lv.side is Side.ASK]
    bb_ticks = round(best_bid / p.tick_size)
    ba_ticks = round(best_ask / p.tick_size)
    assert all(lv.price_ticks < ba_ticks for lv in bids)
    assert all(lv.price_ticks > bb_ticks for lv in asks)
    if bids and asks:
        assert max(lv.price_ticks for lv in bids) < min(lv.price_ticks for lv in asks)
    for lv in d.ladder:
        assert lv.size_lots >= 1 and lv.price_ticks >= 1
        assert lv.price_ticks * p.tick_size * lv.size_lots * p.lot_size >= p.min_notional
    assert d.reservation_price - d.half_spread < d.reservation_price + d.half_spread


@settings(max_examples=100, deadline=None)
@given(q=st.floats(0.1, 5.0), sigma=sigmas, model=models)
def test_long_inventory_lowers_both_quotes(q: float, sigma: float, model: QuoteModel) -> None:
    p = replace(PARAMS, model=model)
    e = est(sigma_per_sqrt_s=sigma)
    flat = decide(make_inputs(estimates=e), p, LiveQuotes())
    long = decide(make_inputs(estimates=e, inventory_base=q), p, LiveQuotes())
    assert long.reservation_price < flat.reservation_price
    assert long.half_spread == pytest.approx(flat.half_spread)
    # Rounded to ticks the top quotes move down or stay (never up).
    for side in Side:
        top_flat = [lv.price_ticks for lv in flat.ladder if lv.side is side][:1]
        top_long = [lv.price_ticks for lv in long.ladder if lv.side is side][:1]
        if top_flat and top_long:
            assert top_long[0] <= top_flat[0]


@settings(max_examples=100, deadline=None)
# Within the carry's share of the cap (a quarter of 10): beyond it funding moves nothing
# (test_funding_carry_is_a_bounded_target_not_an_unbounded_shift).
@given(
    rate=st.floats(1e-6, 1e-2),
    q=st.floats(-2.0, 2.0),
    model=models,
    t_snap=st.floats(0.0, 1_800.0),
)
def test_positive_funding_lowers_reservation_price(
    rate: float, q: float, model: QuoteModel, t_snap: float
) -> None:
    p = replace(PARAMS, model=model)
    kw = {"inventory_base": q, "seconds_to_funding": t_snap}
    base = decide(make_inputs(**kw), p, LiveQuotes())
    pos = decide(make_inputs(estimates=est(funding_rate=rate), **kw), p, LiveQuotes())
    neg = decide(make_inputs(estimates=est(funding_rate=-rate), **kw), p, LiveQuotes())
    assert pos.reservation_price < base.reservation_price < neg.reservation_price


def test_funding_is_counted_once_as_expected_payments_at_the_snapshots_a_unit_is_held_at() -> None:
    # Interval 600 s, holding 600 s, next snapshot in 300 s: a unit bought now pays at the next
    # snapshot with probability e^-0.5, at the one after with e^-1.5, ... (a geometric series).
    p = replace(PARAMS, expected_holding_s=600.0, funding_interval_s=600.0)
    pay = 1e-4 * 2000.0
    d = decide(
        make_inputs(estimates=est(funding_rate=1e-4), seconds_to_funding=300.0), p, LiveQuotes()
    )
    series = sum(pay * math.exp(-(300.0 + 600.0 * j) / 600.0) for j in range(200))
    assert d.snapshot_shift == pytest.approx(pay * math.exp(-0.5))
    assert d.snapshot_shift + d.funding_drift == pytest.approx(series)
    flat = decide(make_inputs(seconds_to_funding=300.0), p, LiveQuotes())
    assert flat.reservation_price - d.reservation_price == pytest.approx(series)
    # An 8-hour interval with the snapshot hours away: a 10-minute holding never sees it.
    far = decide(make_inputs(estimates=est(funding_rate=1e-4)), PARAMS, LiveQuotes())
    assert far.snapshot_shift + far.funding_drift < 1e-6 * pay
    # A 50% chance of a flip makes the expected rate zero.
    d = decide(
        make_inputs(estimates=est(funding_rate=1e-4, funding_flip_prob=0.5)), p, LiveQuotes()
    )
    assert d.funding_drift == 0.0


def test_funding_carry_is_a_bounded_target_not_an_unbounded_shift() -> None:
    # Longs pay 5 bps per 600-s interval, the snapshot 300 s away: worth F to a marginal unit.
    p = replace(PARAMS, expected_holding_s=600.0, funding_interval_s=600.0)
    e = est(funding_rate=5e-4)
    flat = decide(make_inputs(estimates=e, seconds_to_funding=300.0), p, LiveQuotes())
    carry = flat.funding_drift + flat.snapshot_shift
    assert carry > 0.0 and flat.carry_skew == 0.0
    # No premium variance measured: only the cap share bounds it, a short of a quarter of the cap.
    share = p.funding_carry_max_cap_frac * flat.inventory_cap_base
    assert flat.carry_target_base == pytest.approx(-share)

    def r_shift(q: float, estimates: ModelEstimates = e, params: ModelParams = p) -> float:
        d = decide(
            make_inputs(estimates=estimates, inventory_base=q, seconds_to_funding=300.0),
            params,
            LiveQuotes(),
        )
        no_funding = decide(
            make_inputs(inventory_base=q, seconds_to_funding=300.0), params, LiveQuotes()
        )
        return no_funding.reservation_price - d.reservation_price

    # Flat or long: the whole funding value; half way to the target: half; at it: none (the old
    # shift pushed on until the inventory cap); beyond it, a bounded pull back toward it.
    assert r_shift(0.0) == pytest.approx(carry)
    assert r_shift(1.0) == pytest.approx(carry)
    assert r_shift(-0.5 * share) == pytest.approx(0.5 * carry)
    assert r_shift(-share) == pytest.approx(0.0, abs=1e-9)
    b = p.funding_carry_pullback_frac
    assert r_shift(-1.5 * share) == pytest.approx(carry * b * math.tanh(-0.5 / b))
    # No funding, no carry: a hedged DEX position is not skewed for its basis.
    assert r_shift(-1.0, EST) == 0.0
    # A premium that moves (variance over the holding horizon) makes the carry riskier: the
    # mean-variance target -F/(γV) is smaller than the cap share and sets the pace.
    var = 4e-6  # (20 bps)² around its mean
    noisy = est(funding_rate=5e-4, funding_premium_var=var, funding_premium_var_per_s=1.0)
    d = decide(make_inputs(estimates=noisy, seconds_to_funding=300.0), p, LiveQuotes())
    kappa = p.gamma * 2.0 * var * 2000.0**2
    assert d.carry_target_base == pytest.approx(-carry / kappa)
    assert abs(d.carry_target_base) < share
    assert r_shift(d.carry_target_base, noisy) == pytest.approx(0.0, abs=1e-9)
    # The configured share is honoured whatever the rate: a 100x rate, the same bound.
    huge = decide(
        make_inputs(estimates=est(funding_rate=5e-2), seconds_to_funding=300.0), p, LiveQuotes()
    )
    assert huge.carry_target_base == pytest.approx(-share)
    tight = replace(p, funding_carry_max_cap_frac=0.1)
    assert decide(
        make_inputs(estimates=e, seconds_to_funding=300.0), tight, LiveQuotes()
    ).carry_target_base == pytest.approx(-0.1 * flat.inventory_cap_base)
    with pytest.raises(ConfigError, match="funding_carry_max_cap_frac"):
        replace(p, funding_carry_max_cap_frac=0.0)


def test_an_untrusted_oracle_keeps_only_the_next_snapshots_prediction() -> None:
    # The estimators weigh the next snapshot's unaccrued part by the trust; the snapshots after
    # it rest wholly on the oracle staying as read, so the model drops them.
    p = replace(PARAMS, expected_holding_s=600.0, funding_interval_s=600.0)
    trusted = decide(
        make_inputs(estimates=est(funding_rate=-1e-3), seconds_to_funding=300.0), p, LiveQuotes()
    )
    frozen = decide(
        make_inputs(estimates=est(funding_rate=-1e-3, funding_trust=0.0), seconds_to_funding=300.0),
        p,
        LiveQuotes(),
    )
    assert trusted.funding_drift < 0.0 and frozen.funding_drift == 0.0
    assert frozen.snapshot_shift == trusted.snapshot_shift
    assert frozen.reservation_price < trusted.reservation_price


def test_settlement_window_penalises_the_paying_side_then_relaxes() -> None:
    p = replace(PARAMS, settlement_window_s=900.0)
    e = est(funding_rate=5e-4)
    before = decide(
        make_inputs(estimates=e, inventory_base=2.0, seconds_to_funding=5_000.0), p, LiveQuotes()
    )
    inside = decide(
        make_inputs(estimates=e, inventory_base=2.0, seconds_to_funding=60.0), p, LiveQuotes()
    )
    after = decide(
        make_inputs(estimates=e, inventory_base=2.0, seconds_to_funding=28_700.0), p, LiveQuotes()
    )
    assert inside.reservation_price < before.reservation_price
    assert inside.snapshot_shift > 1e3 * before.snapshot_shift
    assert inside.bid_size_base < before.bid_size_base  # the side that adds to a paying long
    assert inside.ask_size_base == before.ask_size_base
    assert after.reservation_price == pytest.approx(before.reservation_price)
    assert inside.expected_snapshot_payment_quote == pytest.approx(2.0 * 5e-4 * 2000.0)


def test_sizes_and_cap_shrink_with_volatility_and_thin_depth() -> None:
    calm = decide(make_inputs(), PARAMS, LiveQuotes())
    wild = decide(make_inputs(estimates=est(sigma_per_sqrt_s=5.0)), PARAMS, LiveQuotes())
    implied = decide(make_inputs(estimates=est(sigma_implied_per_sqrt_s=5.0)), PARAMS, LiveQuotes())
    thin = decide(make_inputs(bid_depth_base=5.0), PARAMS, LiveQuotes())
    assert wild.bid_size_base < calm.bid_size_base
    assert wild.inventory_cap_base < calm.inventory_cap_base
    assert implied.bid_size_base == pytest.approx(wild.bid_size_base)
    assert thin.bid_size_base < calm.bid_size_base and thin.ask_size_base == calm.ask_size_base
    assert thin.inventory_cap_base < calm.inventory_cap_base


def test_inventory_at_cap_stops_the_adding_side() -> None:
    d = decide(make_inputs(inventory_base=PARAMS.inventory_cap_base), PARAMS, LiveQuotes())
    assert not [lv for lv in d.ladder if lv.side is Side.BID]
    assert [lv for lv in d.ladder if lv.side is Side.ASK]


def test_spread_floor_covers_fees_gas_and_adverse_selection() -> None:
    cheap = decide(make_inputs(), PARAMS, LiveQuotes())
    dear = decide(
        make_inputs(estimates=est(base_fee_wei=200e9, base_fee_p99_wei=400e9)), PARAMS, LiveQuotes()
    )
    assert dear.half_spread_floor > cheap.half_spread_floor
    assert dear.half_spread >= dear.half_spread_floor
    fee_and_premium = 2000.0 * (PARAMS.maker_fee_bps + PARAMS.adverse_bps) * 1e-4
    assert cheap.half_spread_floor > fee_and_premium


def test_risk_directive_scales_and_restricts() -> None:
    d = decide(
        make_inputs(risk=RiskDirective(size_mult=0.5, spread_mult=2.0, allow_ask=False)),
        PARAMS,
        LiveQuotes(),
    )
    # Halving the size raises the gas floor per unit, so compare spreads at equal size.
    ref = decide(make_inputs(risk=RiskDirective(size_mult=0.5)), PARAMS, LiveQuotes())
    full = decide(make_inputs(), PARAMS, LiveQuotes())
    assert d.half_spread == pytest.approx(2.0 * ref.half_spread)
    assert d.bid_size_base == pytest.approx(0.5 * full.bid_size_base)
    assert all(lv.side is Side.BID for lv in d.ladder)


def test_reduce_only_quotes_the_reducing_side_up_to_the_inventory() -> None:
    d = decide(
        make_inputs(inventory_base=1.2, risk=RiskDirective(reduce_only=True)), PARAMS, LiveQuotes()
    )
    assert d.ladder and all(lv.side is Side.ASK for lv in d.ladder)
    assert sum(lv.size_lots for lv in d.ladder) * PARAMS.lot_size <= 1.2 + 1e-9


def test_a_side_room_bounds_the_whole_ladder_of_that_side() -> None:
    # While the hedge is blocked the risk engine lets the reducing side sell the unhedged
    # exposure and no more: a sweep of the full ladder must not carry it past flat.
    d = decide(
        make_inputs(inventory_base=0.4, risk=RiskDirective(allow_bid=False, max_ask_base=0.07)),
        PARAMS,
        LiveQuotes(),
    )
    asks = [lv for lv in d.ladder if lv.side is Side.ASK]
    assert asks and not [lv for lv in d.ladder if lv.side is Side.BID]
    assert sum(lv.size_lots for lv in asks) * PARAMS.lot_size <= 0.07 + 1e-9


# --- cost gate ----------------------------------------------------------------------------------

LIVE = LiveQuotes(
    (Quote(Side.BID, Tick(199_000), Lots(1000)), Quote(Side.ASK, Tick(201_000), Lots(1000)))
)


@settings(max_examples=100, deadline=None)
@given(base_fee=st.floats(0.0, 1e15), delay=st.floats(0.0, 600.0), q=inventories)
def test_refresh_rule_never_blocks_a_cancel_demanded_by_risk(
    base_fee: float, delay: float, q: float
) -> None:
    d = decide(
        make_inputs(
            inventory_base=q,
            estimates=est(
                base_fee_wei=base_fee, base_fee_p99_wei=base_fee, inclusion_delay_s=delay
            ),
            risk=RiskDirective(force_cancel=True),
        ),
        PARAMS,
        LIVE,
    )
    assert d.send and d.reason is GateReason.RISK_CANCEL and d.ladder == ()


def test_live_quote_on_a_forbidden_side_is_cancelled_whatever_the_gas() -> None:
    d = decide(
        make_inputs(
            estimates=est(base_fee_wei=1e15, base_fee_p99_wei=1e15),
            risk=RiskDirective(allow_bid=False),
        ),
        PARAMS,
        LIVE,
    )
    assert d.send and d.reason is GateReason.RISK_SIDE
    assert all(lv.side is Side.ASK for lv in d.ladder)


def test_live_quotes_beyond_a_side_room_are_replaced_whatever_the_gas() -> None:
    # LIVE rests 1.0 on each side (1000 lots); the room left to the asks is 0.3.
    d = decide(
        make_inputs(
            inventory_base=0.3,
            estimates=est(base_fee_wei=1e15, base_fee_p99_wei=1e15),
            risk=RiskDirective(allow_bid=False, max_ask_base=0.3),
        ),
        PARAMS,
        LIVE,
    )
    assert d.send and d.reason is GateReason.RISK_SIDE
    assert sum(q.size_lots for q in d.quotes if q.side is Side.ASK) * PARAMS.lot_size <= 0.3 + 1e-9
    within = decide(
        make_inputs(
            inventory_base=0.3,
            estimates=est(base_fee_wei=1e15, base_fee_p99_wei=1e15),
            risk=RiskDirective(max_bid_base=1.0, max_ask_base=1.0),
        ),
        PARAMS,
        LIVE,
    )
    assert within.reason is not GateReason.RISK_SIDE


def test_gate_sends_when_gain_exceeds_cost_and_holds_otherwise() -> None:
    first = decide(make_inputs(), PARAMS, LiveQuotes())
    assert first.send and first.value.gain_quote > first.cost.total_quote
    same = decide(make_inputs(), PARAMS, LiveQuotes(first.quotes))
    assert not same.send and same.reason is GateReason.UNCHANGED
    # A one-tick nudge of the mid is not worth a refresh at 2 gwei.
    nudged = decide(make_inputs(mid=2000.01, mark=2000.01), PARAMS, LiveQuotes(first.quotes))
    assert not nudged.send and nudged.reason is GateReason.COST_EXCEEDS_GAIN
    # A big move leaves the old quotes on the wrong side of r: replacing them pays.
    moved = decide(
        make_inputs(mid=2010.0, mark=2010.0, best_bid=2009.95, best_ask=2010.05),
        PARAMS,
        LiveQuotes(first.quotes),
    )
    assert moved.send and moved.value.old_quote < 0.0


def test_momentum_moves_quotes_only_by_its_excess_over_noise() -> None:
    p = replace(PARAMS, momentum_horizon_s=5.0, momentum_z=2.0)
    still = decide(make_inputs(), p, LiveQuotes()).reservation_price
    noise = 0.1  # price units per second

    def r_at(m: float, n: float = noise) -> float:
        inputs = make_inputs(momentum_per_s=m, momentum_noise_per_s=n)
        return decide(inputs, p, LiveQuotes()).reservation_price

    # Within two standard errors the drift is noise: no shift, either way.
    assert r_at(0.19) == pytest.approx(still) and r_at(-0.19) == pytest.approx(still)
    # Beyond, by the excess only: 0.5 - 2 * 0.1 = 0.3 per second over 5 s.
    assert r_at(0.5) - still == pytest.approx(0.3 * 5.0)
    assert r_at(-0.5) - still == pytest.approx(-0.3 * 5.0)  # symmetric: no side favoured
    # Without a noise level the drift is taken at face value (the old behaviour).
    assert r_at(0.19, 0.0) - still == pytest.approx(0.19 * 5.0)
    with pytest.raises(ConfigError):
        replace(PARAMS, momentum_z=-1.0)


def test_gate_values_both_ladders_from_the_updates_inclusion() -> None:
    first = decide(make_inputs(), PARAMS, LiveQuotes())
    slow = est(inclusion_delay_s=5.0)
    # Live quotes that expire before the update could land are worth nothing to keep: sending
    # gains the whole value of the new ladder.
    expiring = LiveQuotes(first.quotes, expires_at_s=4.0)
    d = decide(make_inputs(estimates=slow), PARAMS, expiring)
    assert d.value.old_quote == 0.0 and d.value.gain_quote == pytest.approx(d.value.new_quote)
    # The live quotes' exposure while the update lands is reported, not charged: they rest
    # through the delay whether it is sent or not.
    assert d.cost.exposure_quote > 0.0
    assert d.cost.total_quote == pytest.approx(d.cost.gas_quote + d.cost.funding_delta_quote)
    # The same quotes with life left past the landing are worth keeping.
    lasting = decide(make_inputs(estimates=slow), PARAMS, LiveQuotes(first.quotes, 100.0))
    assert lasting.value.old_quote > 0.0


def test_a_hedged_position_is_not_skewed_away_but_plain_skews_the_dex_position() -> None:
    flat = decide(make_inputs(), PARAMS, LiveQuotes()).reservation_price
    long_dex = decide(make_inputs(inventory_base=2.0), PARAMS, LiveQuotes())
    hedged = decide(make_inputs(inventory_base=2.0, hedge_base=-2.0), PARAMS, LiveQuotes())
    half = decide(make_inputs(inventory_base=2.0, hedge_base=-1.0), PARAMS, LiveQuotes())
    assert long_dex.reservation_price < flat - 0.01  # unhedged: skewed to sell
    assert hedged.reservation_price == pytest.approx(flat)  # net delta 0: no price risk to shed
    one = decide(make_inputs(inventory_base=1.0), PARAMS, LiveQuotes()).reservation_price
    assert half.reservation_price == pytest.approx(one)  # skewed for the net delta of 1
    # The cap still binds on the DEX position (what the DEX margins and charges funding on).
    assert hedged.inventory_cap_base == long_dex.inventory_cap_base
    # The textbook preset knows no hedge: it skews the DEX position whatever is hedged.
    from agent.model.strategies import strategy

    plain = strategy("plain").params(PARAMS)
    assert not plain.skew_on_net_delta
    p_hedged = decide(make_inputs(inventory_base=2.0, hedge_base=-2.0), plain, LiveQuotes())
    p_long = decide(make_inputs(inventory_base=2.0), plain, LiveQuotes())
    assert p_hedged.reservation_price == pytest.approx(p_long.reservation_price)


def test_the_gate_values_the_live_ladder_at_the_sizes_it_would_quote_now() -> None:
    # The ladder rests at full size; the book thins and the sizing rule cuts the target's sizes.
    # The live ladder is valued as if it rested at the cut sizes: a size the rule no longer wants
    # is not value the gate may weigh against re-centring (uncapped, a live ladder sized before
    # a cut out-valued any re-centred one and off-centre ladders rested for tens of seconds).
    first = decide(make_inputs(), PARAMS, LiveQuotes())
    moved = {"mid": 2000.4, "mark": 2000.4, "best_bid": 2000.35, "best_ask": 2000.45}
    thin = decide(
        make_inputs(bid_depth_base=8.0, ask_depth_base=8.0, **moved), PARAMS, LiveQuotes()
    )
    cut = decide(
        make_inputs(bid_depth_base=8.0, ask_depth_base=8.0, **moved),
        PARAMS,
        LiveQuotes(first.quotes),
    )
    by_rank = {
        side: sorted(
            (q for q in thin.quotes if q.side is side), key=lambda q: -side.sign * q.price_ticks
        )
        for side in (Side.BID, Side.ASK)
    }
    at_cut_sizes = []
    for side in (Side.BID, Side.ASK):
        live = sorted(
            (q for q in first.quotes if q.side is side), key=lambda q: -side.sign * q.price_ticks
        )
        for rank, q in enumerate(live):
            at_cut_sizes.append(
                Quote(side, q.price_ticks, Lots(min(q.size_lots, by_rank[side][rank].size_lots)))
            )
    same = decide(
        make_inputs(bid_depth_base=8.0, ask_depth_base=8.0, **moved),
        PARAMS,
        LiveQuotes(tuple(at_cut_sizes)),
    )
    assert [q.size_lots for q in thin.quotes] < [q.size_lots for q in first.quotes]
    assert cut.value.old_quote == pytest.approx(same.value.old_quote)
    full = decide(make_inputs(**moved), PARAMS, LiveQuotes(first.quotes))
    assert full.value.old_quote > cut.value.old_quote
    # A level the target no longer has keeps its live size (dropping it is no reason to send).
    one = decide(
        make_inputs(bid_depth_base=8.0, ask_depth_base=8.0, **moved),
        replace(PARAMS, levels=1),
        LiveQuotes(first.quotes),
    )
    assert one.value.old_quote > same.value.old_quote
