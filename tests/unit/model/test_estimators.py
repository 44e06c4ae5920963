"""Online estimators recover known parameters from synthetic data and fall back sanely."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
)


def test_ewma_volatility_recovers_sigma_of_a_gbm() -> None:
    rng = np.random.default_rng(7)
    sigma_rel = 4e-4
    vol = EwmaVolatility(halflife_s=2_000.0, prior_sigma_rel_per_sqrt_s=1e-3)
    price = 2000.0
    for i in range(20_000):
        price *= math.exp(sigma_rel * rng.standard_normal())
        vol.update_price(float(i), price)
    snap = vol.snapshot()
    assert snap.sigma_rel_per_sqrt_s == pytest.approx(sigma_rel, rel=0.1)
    assert snap.sigma_per_sqrt_s == pytest.approx(sigma_rel * price, rel=0.1)


def test_fill_intensity_recovers_a_and_k() -> None:
    rng = np.random.default_rng(3)
    a_true, k_true = 2.0, 1.5  # per side
    est = FillIntensity(
        bin_width=0.1, n_bins=30, halflife_s=1e6, prior_a_per_s=9.0, prior_k_per_price=9.0
    )
    t = 0.0
    for _ in range(20_000):
        t += rng.exponential(1.0 / (2 * a_true))  # both sides pooled
        est.update_trade(t, rng.exponential(1.0 / k_true))
    snap = est.snapshot(t)
    assert snap.fitted
    assert snap.k_per_price == pytest.approx(k_true, rel=0.1)
    assert snap.a_per_s == pytest.approx(a_true, rel=0.15)


def test_fill_intensity_falls_back_to_priors_when_data_are_scarce() -> None:
    est = FillIntensity(bin_width=0.1, prior_a_per_s=3.0, prior_k_per_price=4.0)
    assert est.snapshot(0.0).a_per_s == 3.0
    for i in range(5):
        est.update_trade(float(i), 0.05)
    snap = est.snapshot(5.0)
    assert not snap.fitted and (snap.a_per_s, snap.k_per_price) == (3.0, 4.0)
    with pytest.raises(ConfigError):
        FillIntensity(bin_width=0.0)


def test_base_fee_follows_eip1559_and_flags_spikes() -> None:
    f = BaseFeeForecaster()
    f.update_block(0.0, 10e9, 30_000_000, 30_000_000)
    assert f.snapshot().next_base_fee_wei == pytest.approx(11.25e9)  # full block: +12.5%
    f.update_block(1.0, 10e9, 0, 30_000_000)
    assert f.snapshot().next_base_fee_wei == pytest.approx(8.75e9)  # empty block: -12.5%
    rng = np.random.default_rng(0)
    for i in range(200):
        f.update_block(float(i), 10e9 * (1 + 0.02 * rng.standard_normal()), 15_000_000, 30_000_000)
    calm = f.snapshot()
    assert not calm.spike
    assert calm.next_base_fee_wei <= calm.p95_wei <= calm.p99_wei
    f.update_block(300.0, 40e9, 15_000_000, 30_000_000)
    assert f.snapshot().spike


def test_a_fee_the_rule_explains_has_no_tail() -> None:
    # A fresh node decays from 1 gwei by 12.5% per empty block towards its floor: the EIP-1559
    # rule predicts every block, so the p99 stays at the forecast and no spike is flagged. (Measured
    # from the fees' own lagging mean, the p99 of this decay sat ~20x above the forecast.)
    f = BaseFeeForecaster()
    fee = 1e9
    for i in range(60):
        f.update_block(float(i), float(int(fee)), 0, 30_000_000)
        fee = max(fee * 0.875, 7.0)
        snap = f.snapshot()
        assert not snap.spike
    assert snap.p99_wei <= snap.next_base_fee_wei * 1.01
    # Then a jump the rule cannot explain is a spike, and its tail is priced for a while after.
    f.update_block(61.0, 50e9, 15_000_000, 30_000_000)
    snap = f.snapshot()
    assert snap.spike and snap.p99_wei > 3 * snap.next_base_fee_wei


def test_inclusion_delay_tracks_samples_and_drops() -> None:
    d = InclusionDelay(alpha=0.1, prior_delay_s=1.0)
    for i in range(200):
        d.update_inclusion(float(i), float(i) + 6.0, 3)
    snap = d.snapshot()
    assert snap.mean_s == pytest.approx(6.0, rel=1e-3)
    assert snap.mean_blocks == pytest.approx(3.0, rel=1e-3)
    assert snap.drop_rate == 0.0
    for i in range(10):
        d.update_dropped(float(i))
    assert d.snapshot().drop_rate > 0.5


def test_funding_predictor_rate_flip_probability_and_reset() -> None:
    f = FundingPredictor(interval_s=3_600.0, interest_rate=1e-4, clamp=5e-4, halflife_s=600.0)
    # Steady premium far above the clamp band: the 8-hour rate is premium - clamp, and an hourly
    # interval pays an eighth of it (the contract's FundingMath.rate).
    for i in range(0, 1800, 10):
        f.update_premium(float(i), 2e-3)
    snap = f.snapshot(1_800.0)
    assert snap.predicted_rate == pytest.approx((2e-3 - 5e-4) / 8.0)
    assert snap.flip_prob == 0.0
    assert snap.seconds_to_snapshot == pytest.approx(1_800.0)
    # A noisy premium hovering at the band's edge (−clamp when interest > 0): coin flip.
    rng = np.random.default_rng(1)
    g = FundingPredictor(interval_s=3_600.0, interest_rate=1e-4, clamp=5e-4, halflife_s=600.0)
    for i in range(0, 600, 5):
        g.update_premium(float(i), -5e-4 + 1e-4 * rng.standard_normal())
    assert 0.2 < g.snapshot(600.0).flip_prob <= 0.5
    # After the snapshot the TWAP restarts from the new premium.
    f.update_premium(3_600.0, -2e-3)
    f.update_premium(3_610.0, -2e-3)
    assert f.snapshot(3_610.0).predicted_rate < 0.0


def test_funding_predictor_scales_to_the_interval_and_caps_like_the_contract() -> None:
    # FundingMath.rate: r = clamp(r8h * interval / 8h, ±cap). 600 s intervals pay 1/48 of r8h.
    short = FundingPredictor(interval_s=600.0, interest_rate=1e-4, clamp=5e-4)
    eight = FundingPredictor(interval_s=28_800.0, interest_rate=1e-4, clamp=5e-4)
    capped = FundingPredictor(interval_s=28_800.0, interest_rate=1e-4, clamp=5e-4, cap=1e-3)
    for f in (short, eight, capped):
        f.update_premium(0.0, 4e-3)
        f.update_premium(10.0, 4e-3)
    assert eight.snapshot(20.0).predicted_rate == pytest.approx(3.5e-3)
    assert short.snapshot(20.0).predicted_rate == pytest.approx(3.5e-3 / 48.0)
    assert capped.snapshot(20.0).predicted_rate == pytest.approx(1e-3)


def test_estimators_bundle_snapshot() -> None:
    e = Estimators(
        EwmaVolatility(),
        FillIntensity(bin_width=0.1, prior_a_per_s=2.0),
        BaseFeeForecaster(),
        InclusionDelay(prior_delay_s=4.0),
        FundingPredictor(),
        tip_wei=5.0,
    )
    e.vol.update_price(0.0, 100.0)
    snap = e.snapshot(0.0, sigma_implied_per_sqrt_s=0.3)
    assert snap.fill_a_per_s == 2.0 and snap.inclusion_delay_s == 4.0 and snap.tip_wei == 5.0
    assert snap.sigma_implied_per_sqrt_s == 0.3


def test_fill_intensity_refuses_an_unidentifiable_flat_tail() -> None:
    # Bins far too narrow for the market: every trade lands in the last, open-ended bin.
    f = FillIntensity(bin_width=0.02, n_bins=20, prior_a_per_s=2.0, prior_k_per_price=0.5)
    for i in range(500):
        f.update_trade(float(i), 50.0 + (i % 7))
    snap = f.snapshot(500.0)
    assert not snap.fitted
    assert (snap.a_per_s, snap.k_per_price) == (2.0, 0.5)


def test_fill_intensity_keeps_the_last_fit_when_a_later_one_is_rejected() -> None:
    f = FillIntensity(bin_width=0.1, n_bins=20, halflife_s=60.0, prior_a_per_s=2.0)
    rng = np.random.default_rng(4)
    for i in range(600):
        f.update_trade(i * 0.5, float(rng.exponential(0.5)))
    good = f.snapshot(300.0)
    assert good.fitted
    # Then only trades far out in the open-ended last bin: a flat, unidentifiable tail.
    for i in range(3_000):
        f.update_trade(300.0 + i * 0.5, 50.0)
    snap = f.snapshot(1_800.0)
    assert not snap.fitted
    assert (snap.a_per_s, snap.k_per_price) == (good.a_per_s, good.k_per_price)


def test_quote_life_tracks_send_intervals_within_bounds() -> None:
    from agent.model.estimators import QuoteLife

    life = QuoteLife(prior_s=30.0, alpha=0.5, min_s=1.0, max_s=900.0)
    assert life.expected_s(0.0) == 30.0
    for t in range(0, 200, 2):  # a refresh every 2 s
        life.update_send(float(t))
    assert life.expected_s(198.0) == pytest.approx(2.0, rel=0.01)
    # A ladder that has already rested 100 s is expected to rest at least that long.
    assert life.expected_s(298.0) == pytest.approx(100.0)
    assert life.expected_s(1e6) == 900.0


def test_a_step_beyond_the_jump_size_moves_the_level_not_the_volatility() -> None:
    # One 3% step 0.1 s after the last price: as diffusion it reads σ ≈ 8/yr for minutes.
    jump = math.log1p(50e-4)  # the jump detector's 50 bps
    robust, naive = EwmaVolatility(), EwmaVolatility()
    for v in (robust, naive):
        for i in range(100):
            v.update_price(float(i), 3000.0 * (1.0 + 1e-4 * (-1) ** i), jump_log_return=jump)
    before = robust.snapshot().sigma_rel_per_sqrt_s
    robust.update_price(100.1, 3090.0, jump_log_return=jump)
    naive.update_price(100.1, 3090.0)
    assert robust.snapshot().sigma_rel_per_sqrt_s == before
    assert robust.snapshot().sigma_per_sqrt_s == pytest.approx(before * 3090.0)  # new level
    assert naive.snapshot().sigma_rel_per_sqrt_s > 3 * before  # ~8/yr annualised
    # Ordinary steps after it count as before, from the new level.
    robust.update_price(101.1, 3090.0 * 1.0001, jump_log_return=jump)
    assert robust.snapshot().sigma_rel_per_sqrt_s != before


def _frozen_oracle_predictor(trust_z: float = 4.0) -> FundingPredictor:
    """A 900 s interval whose first 600 s read a premium of −240 bps against a stuck oracle."""
    f = FundingPredictor(interval_s=900.0, interest_rate=1e-4, clamp=5e-4, trust_z=trust_z)
    for i in range(0, 601, 5):
        # The first 300 s are honest (premium +1 bp); then the oracle sticks 240 bps high.
        f.update_premium(float(i), 1e-4 if i < 300 else -2.4e-2)
    return f


def test_funding_predictor_trusts_an_oracle_the_exchange_agrees_with() -> None:
    f = _frozen_oracle_predictor()
    trusting = f.snapshot(600.0)
    # 3 bps apart, a 2 s old report: within what the basis (2 bps) and the index's diffusion
    # explain, so nothing changes.
    f.update_oracle(60_000.0, 60_000.0 * (1.0 - 3e-4), 2.0, 2.0, 0.8)
    assert f.trust == 1.0
    assert f.snapshot(600.0).predicted_rate == trusting.predicted_rate


def test_funding_predictor_distrusts_a_frozen_oracle_down_to_the_accrued_premium() -> None:
    f = _frozen_oracle_predictor()
    naive = f.snapshot(600.0).predicted_rate
    # The oracle reads 240 bps above the index the exchange implies, with a fresh timestamp.
    f.update_oracle(60_000.0, 60_000.0 * (1.0 - 2.4e-2), 2.0, 2.0, 0.8)
    snap = f.snapshot(600.0)
    assert f.trust == 0.0 and snap.trust == 0.0
    # What remains is what the contract has accrued: 300 s at +1 bp and 300 s at −240 bps over
    # the 900 s interval, the last 300 s counted at a zero premium.
    accrued = (300.0 * 1e-4 + 300.0 * -2.4e-2) / 900.0
    r8h = accrued + max(-5e-4, min(5e-4, 1e-4 - accrued))
    assert snap.predicted_rate == pytest.approx(r8h * 900.0 / 28_800.0)
    # The accrued part still pays longs, but less than the naive prediction, which counts the
    # last 300 s at the stuck oracle's −240 bps too.
    naive_twap = (300.0 * 1e-4 + 600.0 * -2.4e-2) / 900.0
    assert naive == pytest.approx((naive_twap + 5e-4) * 900.0 / 28_800.0)
    assert naive < snap.predicted_rate < 0.0


def test_funding_predictor_trust_ramp_and_a_late_report_widens_the_tolerance() -> None:
    f = FundingPredictor(interval_s=900.0, trust_z=4.0)
    # basis 3 bps, index 0.8 bps/√s, a 0-s report: the basis model explains 3 bps.
    for gap_bps, trust in ((12.0, 1.0), (18.0, 0.5), (24.0, 0.0), (100.0, 0.0)):
        f.update_oracle(1.0, 1.0 - gap_bps * 1e-4, 0.0, 3.0, 0.8)
        assert f.trust == pytest.approx(trust, abs=0.01), gap_bps
    # The same 18 bps from a report 100 s old: the index may have moved 8 bps since, so the
    # model explains √(3² + 8²) = 8.5 bps, and 18 bps is within 4 of those.
    f.update_oracle(1.0, 1.0 - 18e-4, 100.0, 3.0, 0.8)
    assert f.trust == 1.0
    with pytest.raises(ConfigError, match="trust_z"):
        FundingPredictor(trust_z=0.0)


def test_funding_predictor_takes_the_accrued_twap_from_the_contract() -> None:
    f = FundingPredictor(interval_s=900.0, interest_rate=1e-4, clamp=5e-4)
    f.update_premium(0.0, 0.0)
    # Our samples say 0 all along; the contract's accumulator says +20 bps accrued by 450 s.
    f.update_premium(450.0, 0.0, accrued_twap=2e-3)
    twap = 0.5 * 2e-3 + 0.5 * 0.0
    assert f.snapshot(450.0).premium_twap == pytest.approx(twap)
    # An accumulator reading from the previous interval is not used for the next one.
    assert f.snapshot(950.0).premium_twap == pytest.approx(0.0)


def test_funding_predictor_premium_variance_tracks_a_mean_reverting_premium() -> None:
    rng = np.random.default_rng(3)
    f = FundingPredictor(interval_s=900.0, halflife_s=600.0)
    for i in range(0, 6_000):
        f.update_premium(float(i), 5e-4 + 2e-4 * rng.standard_normal())
    snap = f.snapshot(6_000.0)
    # i.i.d. around 5 bps with a 2 bps spread: variance 4e-8 around the mean, increments 8e-8/s
    # (a random walk over 600 s would claim 4.8e-5, a thousand times the premium's real range).
    assert snap.premium_var == pytest.approx(4e-8, rel=0.25)
    assert snap.premium_var_per_s == pytest.approx(8e-8, rel=0.25)
