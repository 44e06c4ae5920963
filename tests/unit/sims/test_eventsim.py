"""Event-driven sim with the real model: determinism, P&L accounting, and the gas-aware gate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agent.model import ModelParams
from sims.eventsim import EventSimConfig, EventSimResult, run_event_sim
from sims.processes import BaseFeeSpec, MempoolSpec, MidPriceSpec, TakerFlowSpec

HIGH_GAS = EventSimConfig(
    duration_s=1800.0,
    mid=MidPriceSpec(sigma_rel_per_sqrt_s=(2e-4,)),
    takers=TakerFlowSpec(a_per_s=1.0, k_per_price=2.0),
    base_fee=BaseFeeSpec(base_fee0_wei=2e9, shock_rate_per_block=0.005),
    mempool=MempoolSpec(competing_tip_wei=5e7),
    tip_wei=1e8,
)


def test_same_seed_is_bit_identical() -> None:
    cfg = replace(HIGH_GAS, duration_s=300.0)
    a, b = run_event_sim(cfg, seed=11), run_event_sim(cfg, seed=11)
    assert np.array_equal(a.inventory_path, b.inventory_path)
    assert (a.pnl_total, a.updates_sent, a.fills) == (b.pnl_total, b.updates_sent, b.fills)


def test_pnl_parts_sum_to_the_total() -> None:
    # A short funding interval so snapshots happen inside the run.
    cfg = replace(HIGH_GAS, params=ModelParams(funding_interval_s=600.0))
    r = run_event_sim(cfg, seed=3)
    parts = r.pnl_spread + r.pnl_inventory + r.pnl_funding + r.pnl_fees + r.pnl_gas
    assert r.fills > 0 and r.updates_sent > 0 and r.pnl_funding != 0.0
    assert parts == pytest.approx(r.pnl_total, abs=1e-6)
    assert r.decisions == r.inventory_path.size - 1
    assert 0 < r.gas_units_spent <= r.updates_sent * ModelParams().gas_units_per_refresh


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cost_aware_spends_less_gas_at_equal_or_better_net_pnl(seed: int) -> None:
    gated: EventSimResult = run_event_sim(HIGH_GAS, seed)
    every: EventSimResult = run_event_sim(replace(HIGH_GAS, refresh="every_tick"), seed)
    assert gated.updates_skipped > 0 and every.updates_skipped == 0
    assert gated.gas_units_spent < every.gas_units_spent
    assert gated.pnl_total >= every.pnl_total
