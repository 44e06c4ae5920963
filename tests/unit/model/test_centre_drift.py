"""The drift bound on the quote centre and the size skew, as pure logic (``decide``)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.model import DecisionInputs, GateReason, LiveQuotes, ModelEstimates, ModelParams, decide
from agent.model.quoting import RefreshAction, centre_drift_bps, size_skew_mults
from agent.types import Lots, Quote, Side, Tick

# An L2-like chain (the touch tests' one): 0.02 gwei base fee + 0.01 tip, 8 gwei of L1 data fee
# per calldata byte, so a touch of both tops costs about $0.02 and a full refresh $0.05.
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
    base_size_base=0.5,
    inventory_cap_base=5.0,
    quote_life_s=10.0,
    max_centre_drift_bps=0.0,
    size_skew_frac=0.0,
)
BOUND = replace(PARAMS, max_centre_drift_bps=0.25)


def inputs(fair: float = 2000.0, est: ModelEstimates = EST, **kw: object) -> DecisionInputs:
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
        "estimates": est,
        "seconds_to_funding": 20_000.0,
        "fair_value": fair,
    }
    base.update(kw)
    return DecisionInputs(**base)  # type: ignore[arg-type]


LADDER = decide(inputs(), PARAMS, LiveQuotes()).quotes


def test_a_drift_the_value_gate_tolerates_is_re_centred_past_the_bound() -> None:
    # Fair value moves 0.5 bps: worth less than a touch's gas to the value model.
    held = decide(inputs(2000.1), PARAMS, LiveQuotes(LADDER))
    assert not held.send and held.reason is GateReason.COST_EXCEEDS_GAIN
    drift = centre_drift_bps(LADDER, held.target_quotes, 2000.1, PARAMS.tick_size)
    assert drift is not None and drift > BOUND.max_centre_drift_bps
    forced = decide(inputs(2000.1), BOUND, LiveQuotes(LADDER))
    assert forced.send and forced.reason is GateReason.CENTRE_DRIFT
    # The cheapest fix that suffices: a touch of both tops, its centre on the target's.
    assert forced.action is RefreshAction.TOUCH
    after = centre_drift_bps(forced.quotes, forced.target_quotes, 2000.1, PARAMS.tick_size)
    assert after is not None and after <= BOUND.max_centre_drift_bps
    # The gas it spends is reported, and it is more than the value model gains.
    assert 0.0 < forced.cost.gas_quote <= BOUND.centre_drift_max_cost_quote
    assert forced.value.gain_quote < forced.cost.total_quote


def test_a_drift_inside_the_bound_is_left_to_the_value_gate() -> None:
    loose = replace(PARAMS, max_centre_drift_bps=5.0)
    d = decide(inputs(2000.1), loose, LiveQuotes(LADDER))
    assert not d.send and d.reason is GateReason.COST_EXCEEDS_GAIN


def test_the_bound_never_spends_past_its_gas_budget() -> None:
    touch_cost = decide(inputs(2000.1), BOUND, LiveQuotes(LADDER)).cost.gas_quote
    # A budget below the cheapest fix: nothing is forced, the gate holds as without the bound.
    tight = replace(BOUND, centre_drift_max_cost_quote=0.9 * touch_cost)
    d = decide(inputs(2000.1), tight, LiveQuotes(LADDER))
    assert not d.send and d.reason is GateReason.COST_EXCEEDS_GAIN
    # A gas spike (50x the base fee) prices every fix past the default budget: the bound stands
    # aside, and the value gate alone decides.
    spike = replace(EST, base_fee_wei=1e9, base_fee_p99_wei=1e9)
    d = decide(inputs(2000.1, est=spike), BOUND, LiveQuotes(LADDER))
    assert d.cost.gas_quote > BOUND.centre_drift_max_cost_quote
    assert not d.send and d.reason is GateReason.COST_EXCEEDS_GAIN


def test_a_one_sided_book_has_no_centre_to_bound() -> None:
    asks = tuple(q for q in LADDER if q.side is Side.ASK)
    assert centre_drift_bps(asks, LADDER, 2000.0, 0.01) is None
    bid, ask = Quote(Side.BID, Tick(199_990), Lots(1)), Quote(Side.ASK, Tick(200_010), Lots(1))
    moved = (Quote(Side.BID, Tick(199_992), Lots(1)), Quote(Side.ASK, Tick(200_012), Lots(1)))
    # Centres 2000.00 and 2000.02: 0.1 bps of 2000.
    assert centre_drift_bps((bid, ask), moved, 2000.0, 0.01) == pytest.approx(0.1)


def test_size_skew_multipliers_trade_price_for_size_at_the_same_flow() -> None:
    assert size_skew_mults(0.0, 0.2, 1.5) == (1.0, 1.0)
    bid, ask = size_skew_mults(1.0, 0.2, 10.0)  # long: the price would have moved down $1
    assert bid == pytest.approx(math.exp(-0.2)) and ask == pytest.approx(math.exp(0.2))
    bid, ask = size_skew_mults(-1.0, 0.2, 10.0)  # short: the bids grow, the asks shrink
    assert bid > 1.0 > ask
    assert size_skew_mults(100.0, 0.2, 1.5) == pytest.approx((math.exp(-20.0), 1.5))
    # A huge shift against a steep k: no overflow, the adding side to nothing, the cap binds.
    assert size_skew_mults(5_000.0, 1.0, 1.5) == (0.0, 1.5)
    assert size_skew_mults(-5_000.0, 1.0, 1.5) == (1.5, 0.0)


def test_size_skew_keeps_the_centre_and_leans_the_sizes() -> None:
    long = inputs(inventory_base=2.0)
    price = decide(long, PARAMS, LiveQuotes())
    size = decide(long, replace(PARAMS, size_skew_frac=1.0), LiveQuotes())
    half = decide(long, replace(PARAMS, size_skew_frac=0.5), LiveQuotes())
    shift = 2000.0 - price.reservation_price
    assert shift > 0.0  # long: the price skew lowers the reservation price
    assert size.reservation_price == pytest.approx(2000.0)
    assert half.reservation_price == pytest.approx(2000.0 - 0.5 * shift)
    # The adding side (bids) shrinks, the reducing side (asks) grows, by the fill-rate change
    # the price shift stood for.
    k = EST.fill_k_per_price
    assert size.bid_size_base == pytest.approx(price.bid_size_base * math.exp(-k * shift))
    assert size.ask_size_base == pytest.approx(
        price.ask_size_base * min(math.exp(k * shift), PARAMS.size_skew_max_growth)
    )
    assert size.bid_size_base < price.bid_size_base <= price.ask_size_base < size.ask_size_base
    flat = decide(inputs(), replace(PARAMS, size_skew_frac=1.0), LiveQuotes())
    assert flat.bid_size_base == flat.ask_size_base == PARAMS.base_size_base


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("MAX_CENTRE_DRIFT_BPS", "-1", r"^quoting\.max_centre_drift_bps: must be in \[0, 100\]"),
        ("MAX_CENTRE_DRIFT_BPS", "500", r"^quoting\.max_centre_drift_bps: must be in \[0, 100\]"),
        (
            "CENTRE_DRIFT_MAX_COST_QUOTE",
            "-0.01",
            r"^quoting\.centre_drift_max_cost_quote: must be in \[0, 1e\+06\]",
        ),
        ("SIZE_SKEW_FRAC", "1.5", r"^quoting\.size_skew_frac: must be in \[0, 1\]"),
        ("SIZE_SKEW_MAX_GROWTH", "0.5", r"^quoting\.size_skew_max_growth: must be in \[1, 10\]"),
    ],
)
def test_the_keys_are_validated_by_name_and_range(key: str, value: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(None, env={f"MM_QUOTING__{key}": value})
    ok = load_config(None, env={"MM_QUOTING__MAX_CENTRE_DRIFT_BPS": "1.5"})
    assert ok.quoting.max_centre_drift_bps == 1.5
    with pytest.raises(ConfigError, match="max_centre_drift_bps must be >= 0"):
        ModelParams(max_centre_drift_bps=-1.0)


def test_a_full_refresh_re_centres_when_no_touch_can_within_the_budget() -> None:
    # The kept orders are past half their life: no touch is on offer, only the full ladder.
    p = replace(BOUND, quote_expiry_s=60.0)
    live = LiveQuotes(LADDER, expires_at_s=20.0)
    held = decide(inputs(2000.1), replace(p, max_centre_drift_bps=0.0), live)
    assert not held.send and held.action is RefreshAction.FULL
    forced = decide(inputs(2000.1), p, live)
    assert forced.send and forced.reason is GateReason.CENTRE_DRIFT
    assert forced.action is RefreshAction.FULL and forced.quotes == forced.target_quotes
    # A budget between a touch's price and a full refresh's: the full one is not bought.
    between = replace(p, centre_drift_max_cost_quote=0.5 * forced.cost.gas_quote)
    assert not decide(inputs(2000.1), between, live).send
