"""Keeper duty rules: act only when due and profitable after gas."""

from __future__ import annotations

from agent.keeper.duties import (
    AccountHealth,
    KeeperPolicy,
    liquidation_candidates,
    should_liquidate,
    should_settle_funding,
)

GWEI = 10**9


def test_settle_waits_for_the_boundary() -> None:
    d = should_settle_funding(KeeperPolicy(), 3_599, 3_600, 5.0, 60_000, GWEI, 3_000.0)
    assert not d.act and "boundary in 1 s" in d.reason


def test_settle_when_reward_beats_gas() -> None:
    d = should_settle_funding(KeeperPolicy(), 3_600, 3_600, 5.0, 60_000, GWEI, 3_000.0)
    assert d.act
    assert abs(d.gas_cost_usd - 0.18) < 1e-9  # 60k gas × 1 gwei × 3000 USD


def test_settle_skipped_when_gas_spike_eats_the_reward() -> None:
    d = should_settle_funding(KeeperPolicy(), 4_000, 3_600, 5.0, 60_000, 100 * GWEI, 3_000.0)
    assert not d.act and d.profit_usd < 0 and "unprofitable" in d.reason


def test_settle_disabled() -> None:
    d = should_settle_funding(KeeperPolicy(settle_funding=False), 9e9, 0, 1e6, 1, 1, 1.0)
    assert not d.act and d.reason == "disabled"


def test_liquidate_only_under_maintenance_and_profitable() -> None:
    sick = AccountHealth("0xa", equity=40.0, maintenance_margin=50.0, position_lots=10)
    fine = AccountHealth("0xb", equity=60.0, maintenance_margin=50.0, position_lots=10)
    p = KeeperPolicy(min_profit_usd=1.0)
    assert should_liquidate(p, sick, 10.0, 300_000, GWEI, 3_000.0).act
    assert not should_liquidate(p, fine, 10.0, 300_000, GWEI, 3_000.0).act
    assert not should_liquidate(p, sick, 1.5, 300_000, GWEI, 3_000.0).act  # 1.5 − 0.9 < 1


def test_candidates_sorted_by_margin_ratio_and_exclude_self() -> None:
    hs = [
        AccountHealth("0xa", 70.0, 50.0, 1),
        AccountHealth("0xb", 55.0, 50.0, -3),
        AccountHealth("0xc", 500.0, 50.0, 1),
        AccountHealth("0xd", 10.0, 50.0, 0),
        AccountHealth("0xme", 51.0, 50.0, 1),
    ]
    assert liquidation_candidates(hs, KeeperPolicy(), exclude="0xme") == ["0xb", "0xa"]
