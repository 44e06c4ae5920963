"""Scenario processes: seeded, and each follows the rule it documents."""

from __future__ import annotations

import numpy as np
import pytest

from sims.processes import (
    BaseFeeSpec,
    FundingSpec,
    MempoolSpec,
    MidPriceSpec,
    TakerFlowSpec,
    base_fee_path,
    funding_premium_path,
    mid_price_path,
    sample_inclusion,
    taker_trades,
)


def test_mid_price_is_seeded_with_regimes_and_scripted_shocks() -> None:
    spec = MidPriceSpec(
        sigma_rel_per_sqrt_s=(1e-4, 1e-3), regime_switch_per_s=0.01, shocks=((500.0, -0.1),)
    )
    a, ra = mid_price_path(np.random.default_rng(1), spec, 1000, 1.0)
    b, rb = mid_price_path(np.random.default_rng(1), spec, 1000, 1.0)
    assert np.array_equal(a, b) and np.array_equal(ra, rb)
    assert set(ra.tolist()) == {0, 1}
    assert a[501] / a[500] == pytest.approx(0.9, abs=0.01)


def test_base_fee_moves_by_the_eip1559_rule() -> None:
    fees, full = base_fee_path(
        np.random.default_rng(2), BaseFeeSpec(shock_rate_per_block=0.01), 500
    )
    np.testing.assert_allclose(fees[1:] / fees[:-1], 1.0 + (full[:-1] - 0.5) / 4.0)
    assert full.max() == 1.0  # demand shocks fill blocks


def test_funding_premium_mean_reverts_around_a_flipping_sign() -> None:
    spec = FundingSpec(
        mean_abs=1e-3, reversion_per_s=0.01, vol_per_sqrt_s=1e-5, flip_rate_per_s=1e-3
    )
    x = funding_premium_path(np.random.default_rng(3), spec, 20_000, 1.0)
    assert (x > 5e-4).mean() > 0.2 and (x < -5e-4).mean() > 0.2


def test_higher_tip_lands_sooner() -> None:
    spec = MempoolSpec(drop_prob_per_block=0.0)
    fullness = np.full(100, 0.9)

    def mean_delay(tip: float) -> float:
        rng = np.random.default_rng(4)
        return float(
            np.mean(
                [sample_inclusion(rng, spec, tip, fullness, 0, 0.5).delay_s for _ in range(400)]
            )
        )

    assert mean_delay(1e10) < mean_delay(1e8)
    dropped = sample_inclusion(
        np.random.default_rng(0), MempoolSpec(drop_prob_per_block=1.0), 1e9, fullness, 0, 0.0
    )
    assert not dropped.included


def test_uninformed_reach_is_exponential_and_informed_trade_toward_the_move() -> None:
    rng = np.random.default_rng(5)
    spec = TakerFlowSpec(a_per_s=5.0, k_per_price=2.0, informed_rate_per_s=1.0)
    trades = [t for _ in range(2000) for t in taker_trades(rng, spec, 1.0, 100.0, 100.5)]
    reach = np.array([t.reach for t in trades if not t.informed])
    assert reach.mean() == pytest.approx(0.5, rel=0.05)
    informed = [t for t in trades if t.informed]
    assert informed and all(t.side_sign == 1 for t in informed)
