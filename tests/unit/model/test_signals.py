"""Exchange momentum and the jump detector: pull on a jump, re-enter once stable."""

from __future__ import annotations

import pytest

from agent.model import ExchangeMomentum, JumpDetector, JumpParams, JumpState


def test_momentum_tracks_the_drift_and_decays_when_flat() -> None:
    m = ExchangeMomentum(halflife_s=5.0)
    for t in range(0, 60):
        m.update(float(t), 2000.0 + 0.5 * t)
    assert m.drift_per_s() == pytest.approx(0.5, rel=1e-3)
    for t in range(60, 120):
        m.update(float(t), 2029.5)
    assert abs(m.drift_per_s()) < 0.01


def test_jump_pulls_quotes_and_reentry_waits_for_stability() -> None:
    p = JumpParams(window_s=10.0, jump_bps=50.0, stable_s=20.0, stable_bps=15.0, reentry_s=30.0)
    d = JumpDetector(p)
    t = 0.0
    for _ in range(30):
        assert d.update(t, 2000.0, 1e-4).state is JumpState.NORMAL
        t += 1.0
    # -3 % in two seconds: pulled at once.
    d.update(t, 1980.0, 1e-4)
    s = d.update(t + 1.0, 1940.0, 1e-4)
    assert s.state is JumpState.PULLED and s.size_mult == 0.0
    t += 1.0
    # Still sliding: stays pulled.
    for _ in range(15):
        t += 1.0
        assert d.update(t, 1940.0 - (t - 31.0), 1e-4).state is JumpState.PULLED
    # Flat at the new level: REENTRY after stable_s, with smaller and wider quotes.
    states = []
    for _ in range(40):
        t += 1.0
        states.append(d.update(t, 1925.0, 1e-4))
    reentry = [s for s in states if s.state is JumpState.REENTRY]
    assert reentry and reentry[0].size_mult == 0.5 and reentry[0].spread_mult == 1.5
    first = states.index(reentry[0])
    assert first >= 19  # not before the market held still for stable_s
    for _ in range(40):
        t += 1.0
        last = d.update(t, 1925.0, 1e-4)
    assert last.state is JumpState.NORMAL


def test_a_volatile_market_raises_the_jump_threshold() -> None:
    # 60 bps in 10 s is a jump at σ = 1e-4/√s but ordinary noise at σ = 1e-3/√s.
    for sigma, expected in ((1e-4, JumpState.PULLED), (1e-3, JumpState.NORMAL)):
        d = JumpDetector()
        d.update(0.0, 2000.0, sigma)
        assert d.update(5.0, 2012.0, sigma).state is expected
