"""The cost gate's choice between a full refresh and a touch (re-pricing only the tops), pure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import (
    DecisionInputs,
    GateReason,
    LiveQuotes,
    ModelEstimates,
    ModelParams,
    decide,
)
from agent.model.costs import BatchPricing
from agent.model.quoting import RefreshAction, _diff_counts, _touch_ladder
from agent.orders import diff_orders
from agent.types import Lots, Order, Quote, Side, Tick

# An L2-like chain: 0.02 gwei base fee + 0.01 tip, 8 gwei of L1 data fee per calldata byte.
EST = ModelEstimates(
    sigma_per_sqrt_s=0.24,
    fill_a_per_s=0.05,
    fill_k_per_price=1.0 / 6.0,
    base_fee_wei=2e7,
    base_fee_p99_wei=2e7,
    tip_wei=1e7,
    inclusion_delay_s=1.0,
    funding_rate=0.0,
    funding_flip_prob=0.0,
    l1_fee_per_byte_wei=8e9,
)
PARAMS = ModelParams(
    base_size_base=0.5, inventory_cap_base=5.0, quote_life_s=10.0, max_centre_drift_bps=0.0
)


def inputs(fair: float = 2000.0, **kw: object) -> DecisionInputs:
    base: dict[str, object] = {
        "time_s": 0.0,
        "mid": fair,
        "index": fair,
        "mark": fair,
        "best_bid": None,
        "best_ask": None,
        "bid_depth_base": 50.0,
        "ask_depth_base": 50.0,
        "inventory_base": 0.0,
        "estimates": EST,
        "seconds_to_funding": 20_000.0,
        "fair_value": fair,
    }
    base.update(kw)
    return DecisionInputs(**base)  # type: ignore[arg-type]


def pricing(p: ModelParams = PARAMS) -> BatchPricing:
    return BatchPricing(
        gas_price_wei=3e7,
        native_price_quote=p.native_price_quote,
        gas_units_per_batch=p.gas_units_per_batch,
        gas_units_per_cancel=p.gas_units_per_cancel,
        gas_units_per_place=p.gas_units_per_place,
        calldata_bytes_per_batch=p.calldata_bytes_per_batch,
        calldata_bytes_per_cancel=p.calldata_bytes_per_cancel,
        calldata_bytes_per_place=p.calldata_bytes_per_place,
        l1_fee_per_byte_wei=8e9,
    )


def best_first(quotes: tuple[Quote, ...], side: Side) -> list[Quote]:
    return sorted((q for q in quotes if q.side is side), key=lambda q: -side.sign * q.price_ticks)


LADDER = decide(inputs(), PARAMS, LiveQuotes()).quotes


def test_a_full_refresh_costs_what_the_params_say_and_a_touch_well_under_half() -> None:
    p = PARAMS
    n = 2 * p.levels
    assert pricing().gas_units(n, n) == pytest.approx(p.gas_units_per_refresh)
    assert pricing().gas_units(0, 0) == 0.0 and pricing().quote(0, 0) == 0.0  # nothing to send
    full, touch = pricing().quote(n, n), pricing().quote(2, 2)
    assert touch < 0.5 * full
    # The data fee is the batch's calldata at the L1 fee per byte.
    data = p.calldata_bytes_per_batch + 2 * p.calldata_bytes_per_cancel
    data += 2 * p.calldata_bytes_per_place
    assert pricing().data_fee_quote(2, 2) == pytest.approx(data * 8e9 / 1e18 * 2000.0)


def test_a_small_move_re_prices_only_the_tops_at_a_touchs_cost() -> None:
    d = decide(inputs(2001.5), PARAMS, LiveQuotes(LADDER))
    assert d.send and d.reason is GateReason.GAIN_EXCEEDS_COST
    assert d.action is RefreshAction.TOUCH
    for side in (Side.BID, Side.ASK):
        live, sent, target = (best_first(x, side) for x in (LADDER, d.quotes, d.target_quotes))
        assert sent[0] == target[0] != live[0]  # the top moves to the target's
        assert sent[1:] == live[1:]  # the deeper levels stay: never more orders on a side
    assert d.cost.gas_quote == pytest.approx(pricing().quote(2, 2))
    # The full refresh was the worse deal: it gains more and costs more, and nets less.
    full = decide(inputs(2001.5), replace(PARAMS, touch_refresh=False), LiveQuotes(LADDER))
    assert full.action is RefreshAction.FULL and full.quotes == full.target_quotes
    assert full.cost.gas_quote == pytest.approx(pricing().quote(6, 6))
    assert full.value.gain_quote > d.value.gain_quote
    assert d.value.gain_quote - d.cost.total_quote > full.value.gain_quote - full.cost.total_quote
    assert not full.send  # without the touch, this move was not worth a refresh at all


def test_a_tiny_move_sends_nothing_and_a_large_one_replaces_the_whole_ladder() -> None:
    tiny = decide(inputs(2000.1), PARAMS, LiveQuotes(LADDER))
    assert not tiny.send and tiny.reason is GateReason.COST_EXCEEDS_GAIN
    large = decide(inputs(2005.0), PARAMS, LiveQuotes(LADDER))
    assert large.send and large.action is RefreshAction.FULL
    assert large.quotes == large.target_quotes


def test_no_touch_when_the_kept_orders_are_past_half_their_life() -> None:
    p = replace(PARAMS, quote_expiry_s=60.0)
    fresh = decide(inputs(2002.0), p, LiveQuotes(LADDER, expires_at_s=50.0))
    assert fresh.action is RefreshAction.TOUCH
    old = decide(inputs(2002.0), p, LiveQuotes(LADDER, expires_at_s=20.0))
    assert old.action is RefreshAction.FULL
    # The runtime replaces every order then, and the gate prices exactly that.
    assert old.cost.gas_quote == pytest.approx(pricing(p).quote(6, 6))


def test_a_pending_batch_is_priced_by_what_changes_on_chain() -> None:
    # The ladder is still in flight (nothing rests yet): a touch of it would place all six
    # orders on chain, so it is no cheaper than the full target and the full target wins.
    d = decide(inputs(2002.0), PARAMS, LiveQuotes(LADDER, resting=()))
    assert d.action is RefreshAction.FULL
    assert d.cost.gas_quote == pytest.approx(pricing().quote(0, 6))


def test_a_swept_side_is_quoted_whole() -> None:
    asks_only = tuple(q for q in LADDER if q.side is Side.ASK)
    d = decide(inputs(2002.0), PARAMS, LiveQuotes(asks_only))
    assert d.send and d.action is RefreshAction.FULL
    assert len(best_first(d.quotes, Side.BID)) == PARAMS.levels


def q(side: Side, ticks: int, lots: int) -> Quote:
    return Quote(side, Tick(ticks), Lots(lots))


LIVE = (q(Side.BID, 100, 10), q(Side.BID, 98, 15), q(Side.ASK, 104, 10), q(Side.ASK, 106, 15))
ROOM = {Side.BID: 1.0, Side.ASK: 1.0}


ASK_AT_TARGET = q(Side.ASK, 104, 10)
"""The target's ask top where the live one rests: a bid touch leaves the asks as they are."""


def test_touch_ladder_replaces_the_top_and_keeps_the_rest() -> None:
    target = (q(Side.BID, 101, 10), q(Side.BID, 99, 15), ASK_AT_TARGET)
    out = _touch_ladder(LIVE, target, frozenset({Side.BID}), 3, ROOM, 0.01)
    assert out == (q(Side.BID, 101, 10), q(Side.BID, 98, 15), *LIVE[2:])
    # An untouched side resting further from fair value than its target is left alone too.
    target = (q(Side.BID, 101, 10), q(Side.ASK, 103, 10))
    out = _touch_ladder(LIVE, target, frozenset({Side.BID}), 3, ROOM, 0.01)
    assert out == (q(Side.BID, 101, 10), q(Side.BID, 98, 15), *LIVE[2:])


def test_touch_ladder_never_leaves_the_other_side_stale_inside_its_target() -> None:
    # Fair value moved up a tick: the target moves both tops up. Re-pricing the bid alone would
    # leave our ask a tick under where the model wants it, in front of takers who know the move
    # (on gas_spike such touches held the resting spread 0.43 bps inside the target).
    target = (q(Side.BID, 101, 10), q(Side.BID, 99, 15), q(Side.ASK, 105, 10))
    assert _touch_ladder(LIVE, target, frozenset({Side.BID}), 3, ROOM, 0.01) is None
    both = _touch_ladder(LIVE, target, frozenset({Side.BID, Side.ASK}), 3, ROOM, 0.01)
    assert both == (q(Side.BID, 101, 10), q(Side.BID, 98, 15), q(Side.ASK, 105, 10), LIVE[3])
    # Nor leaves a swept side empty while re-pricing the other (a one-sided quote for as long
    # as the touches pay; re-quoting it is the full update's job).
    asks = frozenset({Side.ASK})
    assert (
        _touch_ladder(LIVE[2:], (q(Side.BID, 100, 10), q(Side.ASK, 103, 10)), asks, 3, ROOM, 0.01)
        is None
    )
    # Nor keeps a side the target no longer quotes at all (the full update cancels it).
    assert (
        _touch_ladder(LIVE, (q(Side.BID, 101, 10),), frozenset({Side.BID}), 3, ROOM, 0.01) is None
    )


def test_touch_ladder_refuses_what_is_no_ladder() -> None:
    bids = frozenset({Side.BID})
    # The new top would not be strictly better than the level it keeps.
    assert _touch_ladder(LIVE, (q(Side.BID, 98, 10), ASK_AT_TARGET), bids, 3, ROOM, 0.01) is None
    # A side the target or the live ladder has nothing on.
    assert _touch_ladder(LIVE, (q(Side.ASK, 105, 10),), bids, 3, ROOM, 0.01) is None
    assert _touch_ladder(LIVE[2:], (q(Side.BID, 101, 10),), bids, 3, ROOM, 0.01) is None
    # More than the inventory room the target respects (0.25 base of room, 0.30 resting).
    tight = {Side.BID: 0.25, Side.ASK: 1.0}
    assert _touch_ladder(LIVE, (q(Side.BID, 101, 15), ASK_AT_TARGET), bids, 3, tight, 0.01) is None
    # A side left alone holding more than its room (the touch would keep it).
    tight_ask = {Side.BID: 1.0, Side.ASK: 0.2}
    target = (q(Side.BID, 101, 10), ASK_AT_TARGET)
    assert _touch_ladder(LIVE, target, bids, 3, tight_ask, 0.01) is None
    # Our bid reaching our own ask.
    assert _touch_ladder(LIVE, (q(Side.BID, 104, 10), ASK_AT_TARGET), bids, 3, ROOM, 0.01) is None
    # More orders on a side than the configured levels.
    assert _touch_ladder(LIVE, (q(Side.BID, 101, 10), ASK_AT_TARGET), bids, 1, ROOM, 0.01) is None


_orders = st.lists(
    st.tuples(st.sampled_from(list(Side)), st.integers(95, 98), st.integers(1, 12)),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(live=_orders, target=_orders)
def test_the_gates_count_of_cancels_and_places_is_the_order_diffs(
    live: list[tuple[Side, int, int]], target: list[tuple[Side, int, int]]
) -> None:
    orders = [
        Order(i + 1, side, Tick(t), Lots(12), Lots(left)) for i, (side, t, left) in enumerate(live)
    ]
    want = tuple(q(side, t, n) for side, t, n in target)
    diff = diff_orders(orders, want)
    resting = tuple(q(o.side, o.price_ticks, o.remaining_lots) for o in orders)
    assert _diff_counts(resting, want) == (len(diff.cancel_ids), len(diff.place))
