"""Strategy presets behave as named: shipped gates, plain is the textbook quoter, every-block."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.errors import ConfigError
from agent.model import GateReason, LiveQuotes, ModelParams, decide, strategy
from tests.unit.model.test_quoting_market import EST, inputs

CONFIGURED = ModelParams(base_size_base=0.5, inventory_cap_base=5.0)
# Dear gas (30 gwei at $2,000): a small move is not worth a refresh to a gated quoter.
DEAR = replace(EST, base_fee_wei=30e9, base_fee_p99_wei=30e9, paid_gas_price_wei=31e9)


def _small_move(name: str) -> tuple[bool, GateReason]:
    p = strategy(name).params(CONFIGURED)
    first = decide(inputs(estimates=DEAR), p, LiveQuotes())
    live = LiveQuotes(first.quotes)
    moved = decide(inputs(estimates=DEAR, fair_value=2000.05), p, live)
    return moved.send, moved.reason


def test_shipped_is_the_configured_model_and_gates_on_cost() -> None:
    s = strategy("shipped")
    assert s.params(CONFIGURED) is CONFIGURED and not s.decide_every_block
    assert _small_move("shipped") == (False, GateReason.COST_EXCEEDS_GAIN)


@pytest.mark.parametrize("name", ["plain", "every-block"])
def test_baselines_send_every_change_and_decide_every_block(name: str) -> None:
    assert strategy(name).decide_every_block
    assert _small_move(name) == (True, GateReason.NO_GATE)


def test_plain_has_no_gas_floor_no_funding_terms_and_no_settlement_window() -> None:
    plain = strategy("plain").params(CONFIGURED)
    shipped = strategy("shipped").params(CONFIGURED)
    e = replace(DEAR, funding_rate=1e-3)
    kw = {"estimates": e, "seconds_to_funding": 60.0, "inventory_base": 2.0}
    d_plain = decide(inputs(**kw), plain, LiveQuotes())
    d_ship = decide(inputs(**kw), shipped, LiveQuotes())
    assert d_plain.snapshot_shift == d_plain.funding_drift == 0.0
    assert d_ship.snapshot_shift > 0.0
    assert d_plain.cost.gas_quote == 0.0 and d_ship.cost.gas_quote > 0.0
    assert d_plain.half_spread_floor < d_ship.half_spread_floor
    # No settlement penalty on the bid of a paying long.
    flat = decide(inputs(estimates=DEAR, inventory_base=2.0), plain, LiveQuotes())
    assert d_plain.bid_size_base == pytest.approx(flat.bid_size_base)


def test_every_block_keeps_the_shipped_model_and_only_drops_the_gate() -> None:
    eb = strategy("every-block").params(CONFIGURED)
    assert replace(eb, cost_gate=True) == CONFIGURED


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="shipped, plain, every-block"):
        strategy("fancy")
