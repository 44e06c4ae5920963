"""The pure risk-inputs builder: one snapshot and the cycle's numbers in, RiskInputs out."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from agent.risk.inputs import CycleObservations, SlidingCount, build_risk_inputs
from agent.types import Side
from tests.unit.snapshots import position, snapshot

OBS = CycleObservations(
    now_s=1_002.0,
    mid=3000.0,
    inventory_base=0.5,
    inventory_cap_base=2.0,
    lot_size=0.01,
    tick_size=0.01,
    sigma_rel_per_sqrt_s=1e-4,
    funding_rate=1e-4,
    funding_flip_prob=0.1,
    inclusion_delay_s=1.5,
    block_seen_s=1_000.0,
    base_fee_budget_gwei=50.0,
    oldest_pending_sent_s=999.0,
    rpc_calls_60s=40,
    rpc_failures_60s=4,
    orders_last_min=7,
    hedge_pnl=-3.0,
)


def test_margin_liquidation_distance_ages_and_rates_come_from_the_numbers() -> None:
    snap = snapshot(position=position(size_lots=50, equity=1_000.0, maint=250.0))
    r = build_risk_inputs(snap, snap.position, OBS)
    assert r.margin_ratio == pytest.approx(0.25)
    # 0.5 base at $3000 = $1500 notional; (1000 − 250) / 1500 = 5000 bps to liquidation.
    assert r.liq_distance_bps == pytest.approx(5_000.0)
    assert r.equity_quote == pytest.approx(997.0)
    assert r.oracle_age_s == pytest.approx(5.0 + 2.0)  # block time − update, + time on the head
    assert r.block_age_s == pytest.approx(2.0)
    assert r.oldest_pending_tx_age_s == pytest.approx(3.0)
    assert r.rpc_error_rate == pytest.approx(0.1)
    assert r.orders_per_min == 7.0
    assert r.realized_vol_annual == pytest.approx(1e-4 * math.sqrt(365 * 86_400))
    assert r.funding_snapshot_in_s == pytest.approx(3_600.0)


def test_a_stale_oracle_reads_stale_and_no_position_reads_far_from_liquidation() -> None:
    snap = snapshot(index=None, oracle_updated_s=999)
    r = build_risk_inputs(snap, None, replace(OBS, rpc_calls_60s=0))
    assert r.oracle_age_s >= 1e6
    assert r.index_price == 3000.0  # falls back to the mid
    assert r.liq_distance_bps == 1e9
    assert r.rpc_error_rate == 0.0


def test_our_quotes_reach_the_collar_check_as_prices() -> None:
    snap = snapshot(own=((Side.BID, 299_500, 10), (Side.ASK, 300_500, 10)))
    assert build_risk_inputs(snap, None, OBS).quote_prices == (2995.0, 3005.0)


def test_sliding_count_forgets_after_the_window() -> None:
    w = SlidingCount(60.0)
    for t in (0.0, 10.0, 50.0):
        w.add(t)
    assert w.events(55.0) == 3
    assert w.events(65.0) == 2
    assert w.deltas(0.0, 100, 1) == (0, 0)
    assert w.deltas(30.0, 130, 4) == (30, 3)
    assert w.deltas(90.0, 200, 4) == (70, 0)  # the mark at t=0 left the window


def test_fair_value_jump_interval_and_marked_equity_reach_the_engine() -> None:
    snap = snapshot(position=position(size_lots=50, equity=1_000.0, maint=250.0))
    obs = replace(
        OBS,
        fair_value=3_003.0,
        fair_value_divergence_bps=12.0,
        cex_jump=True,
        funding_interval_s=3_600.0,
        marked_equity_quote=1_234.0,
    )
    r = build_risk_inputs(snap, snap.position, obs)
    assert (r.fair_value, r.fair_value_divergence_bps, r.cex_jump) == (3_003.0, 12.0, True)
    assert r.funding_interval_s == 3_600.0
    assert r.equity_quote == 1_234.0  # both legs marked fresh, not DEX equity + hedge P&L


def test_gas_spent_counts_in_the_drawdown_equity() -> None:
    # Gas leaves the signer's native balance, not either account: the equity still pays it.
    snap = snapshot(position=position(size_lots=50, equity=1_000.0, maint=250.0))
    spent = replace(OBS, gas_spent_quote=12.5)
    assert build_risk_inputs(snap, snap.position, spent).equity_quote == pytest.approx(984.5)
    marked = replace(spent, marked_equity_quote=1_010.0)
    assert build_risk_inputs(snap, snap.position, marked).equity_quote == pytest.approx(997.5)
