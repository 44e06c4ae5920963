"""Fill intensity from our own quotes: prior, smooth posterior, no collapse over an hour, state."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.model import QuoteFillIntensity
from agent.model.estimators import _certified_bracket, _poisson_decay_mle

PRICE = 2000.0
TRUE_A = 0.05  # takers per second per side reaching fair value
TRUE_K = 1.0 / (PRICE * 5e-4)  # fills thin out over 5 bps ($1)


def _simulate_hour(seed: int, prior_decay_bps: float) -> tuple[QuoteFillIntensity, list[float]]:
    """Quote a 3-level ladder around a moving fair value for an hour, sized by our own estimate.

    Quotes are refreshed every 30 s at distances set from the current estimate (1/k, 1.5/k and
    2/k), so the estimate feeds back into where we quote: the loop that collapsed 1/k before.
    """
    rng = np.random.default_rng(seed)
    est = QuoteFillIntensity.for_price(PRICE, prior_decay_bps=prior_decay_bps)
    fair = PRICE
    quotes: list[tuple[int, float]] = []  # (side sign, price)
    inv_k_path: list[float] = []
    for t in range(3_600):
        fair += 0.05 * rng.standard_normal()
        if t % 30 == 0:
            inv_k = 1.0 / est.snapshot(float(t)).k_per_price
            inv_k_path.append(inv_k)
            quotes = [(s, fair - s * m * inv_k) for s in (1, -1) for m in (1.0, 1.5, 2.0)]
        distances = [max((fair - p) * s, 0.0) for s, p in quotes]
        est.update_quotes(float(t), tuple(distances))
        for d in distances:
            if rng.random() < TRUE_A * math.exp(-TRUE_K * d):
                est.update_fill(float(t) + 0.5, d)
    return est, inv_k_path


def test_prior_is_market_scaled_and_reported_before_any_fill() -> None:
    est = QuoteFillIntensity.for_price(PRICE)
    s = est.snapshot(0.0)
    assert s.a_per_s == pytest.approx(0.05, rel=1e-6)
    assert 1.0 / s.k_per_price == pytest.approx(PRICE * 5e-4, rel=1e-6)
    assert not s.fitted and s.trades == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_hour_of_flow_converges_without_collapse_of_one_over_k(seed: int) -> None:
    # The prior says 10 bps, the market 5 bps: the estimate must move to the truth and stay.
    est, path = _simulate_hour(seed, prior_decay_bps=10.0)
    s = est.snapshot(3_600.0)
    true_inv_k = 1.0 / TRUE_K
    assert s.fitted and s.trades > 50
    assert 1.0 / s.k_per_price == pytest.approx(true_inv_k, rel=0.3)
    assert s.a_per_s == pytest.approx(TRUE_A, rel=0.4)
    # No collapse at any point of the hour: 1/k never falls below 60 % of the truth (the old
    # trade-distance fit drifted from $30 to $9.5, and the half-spread with it).
    assert min(path) > 0.6 * true_inv_k
    # Smooth: no refresh-to-refresh jump larger than 25 %.
    steps = [abs(b / a - 1.0) for a, b in itertools.pairwise(path)]
    assert max(steps) < 0.25


def test_updates_are_smooth_and_never_jump_back_to_the_prior() -> None:
    est = QuoteFillIntensity.for_price(PRICE, prior_decay_bps=10.0)
    prior_k = est.snapshot(0.0).k_per_price
    # Quotes at 1 and 4 bps; only the near one fills (a steep book).
    last = prior_k
    for t in range(0, 1_800):
        est.update_quotes(float(t), (0.2, 0.8))
        if t % 20 == 0:
            est.update_fill(float(t), 0.2)
        if t % 60 == 59:
            k = est.snapshot(float(t)).k_per_price
            assert abs(k / last - 1.0) < 0.5  # each minute moves it a little
            last = k
    fitted = est.snapshot(1_800.0).k_per_price
    assert fitted > 1.1 * prior_k  # the data say steeper; quoted buckets only, prior elsewhere
    # A long quiet spell (no quotes resting) drifts back gradually, never in one step.
    est.update_quotes(1_800.0, ())
    k_1h = est.snapshot(5_400.0).k_per_price
    assert prior_k < k_1h < fitted


def test_state_round_trips_through_json_for_restarts() -> None:
    est, _ = _simulate_hour(3, prior_decay_bps=5.0)
    before = est.snapshot()
    state = json.loads(json.dumps(est.to_state()))
    again = QuoteFillIntensity.from_state(state)
    after = again.snapshot()
    assert after.k_per_price == pytest.approx(before.k_per_price, rel=1e-12)
    assert after.a_per_s == pytest.approx(before.a_per_s, rel=1e-12)
    # The restored estimator keeps learning from the next update on.
    again.update_quotes(100.0, (0.5,))
    again.update_fill(110.0, 0.5)
    assert again.snapshot(110.0).trades > after.trades * 0.99
    with pytest.raises(ConfigError):
        QuoteFillIntensity.from_state({**state, "version": 99})


def _reference_mle(xs: list[float], n: list[float], expo: list[float], k_start: float) -> float:
    """The bisection as first written (60 plain iterations): the fast one must equal it."""
    total = sum(n)
    target = sum(c * x for c, x in zip(n, xs, strict=True)) / total
    lo, hi = math.log(k_start / 100.0), math.log(k_start * 100.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        k = math.exp(mid)
        x_min = xs[0]
        w = [e * math.exp(-k * (x - x_min)) for e, x in zip(expo, xs, strict=True)]
        mean = sum(wi * x for wi, x in zip(w, xs, strict=True)) / sum(w)
        if mean > target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


@pytest.mark.parametrize("seed", range(6))
def test_fast_mle_equals_the_plain_bisection_bit_for_bit(seed: int) -> None:
    # Decisions must not move when the hot path gets faster: same k to the last bit, on fits
    # that land inside the bracket, on either edge, and on a flat likelihood.
    rng = random.Random(seed)
    for _ in range(300):
        n_bins = rng.choice((3, 12, 24))
        width = 10 ** rng.uniform(-3, 2)
        xs = [(i + 0.5) * width for i in range(n_bins)]
        k0 = 10 ** rng.uniform(-2, 2) / width
        expo = [rng.choice((0.0, rng.uniform(0, 500))) + 120.0 for _ in xs]
        fills = [rng.choice((0.0, rng.uniform(0, 20))) + 1e-3 * math.exp(-k0 * x) for x in xs]
        ref = _reference_mle(xs, fills, expo, k0)
        assert _poisson_decay_mle(xs, fills, expo, k0) == ref
        # A hint (the last cycle's k) skips comparisons it can prove: never a different bit,
        # whether the hint is the answer, close to it, or far off.
        for hint in (ref, ref * (1 + 1e-9), ref * 1.01, ref / 3.0, k0, k0 * 1e4, k0 * 1e-4):
            assert _poisson_decay_mle(xs, fills, expo, k0, hint) == ref
    est = QuoteFillIntensity.for_price(PRICE)
    for t in range(1, 400):
        est.update_quotes(float(t), tuple(rng.uniform(0, PRICE * 1e-3) for _ in range(6)))
        if rng.random() < 0.2:
            est.update_fill(float(t), rng.uniform(0, PRICE * 1e-3))
        a0, k0, w0 = est._prior
        xs = [(i + 0.5) * est._bin_width for i in range(len(est._fills))]
        expo = [e + w0 for e in est._exposure]
        fills = [f + w0 * a0 * math.exp(-k0 * x) for f, x in zip(est._fills, xs, strict=True)]
        k = _reference_mle(xs, fills, expo, k0)
        a = sum(fills) / sum(e * math.exp(-k * x) for e, x in zip(expo, xs, strict=True))
        snap = est.snapshot(float(t))
        assert (snap.a_per_s, snap.k_per_price) == (a, k)


def test_a_good_hint_certifies_both_sides_of_the_root() -> None:
    # The fast path must be taken on a typical fit (else the hint buys nothing): a hint near
    # the root certifies a bracket around it, and the bracket holds the root.
    est = QuoteFillIntensity.for_price(PRICE)
    rng = random.Random(7)
    for t in range(1, 300):
        est.update_quotes(float(t), tuple(rng.uniform(0, PRICE * 1e-3) for _ in range(6)))
        if rng.random() < 0.2:
            est.update_fill(float(t), rng.uniform(0, PRICE * 1e-3))
    a0, k0, w0 = est._prior
    xs = [(i + 0.5) * est._bin_width for i in range(len(est._fills))]
    expo = [e + w0 for e in est._exposure]
    fills = [f + w0 * a0 * math.exp(-k0 * x) for f, x in zip(est._fills, xs, strict=True)]
    k = _reference_mle(xs, fills, expo, k0)
    target = sum(c * x for c, x in zip(fills, xs, strict=True)) / sum(fills)
    offsets = [x - xs[0] for x in xs]

    def mean(kk: float) -> float:
        w = [e * math.exp(-kk * o) for e, o in zip(expo, offsets, strict=True)]
        return sum(wi * x for wi, x in zip(w, xs, strict=True)) / sum(w)

    lo, hi = math.log(k0 / 100.0), math.log(k0 * 100.0)
    k_hi, k_lo, _, _ = _certified_bracket(xs, expo, offsets, target, lo, hi, k * 1.001, mean)
    assert k_hi < k < k_lo
    assert k_lo / k_hi - 1.0 < 1e-9
