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
    # The slide's last step was at t = 46 (the first flat sample is index 0, t = 47). Quotes
    # come back once the last stable_s holds less than stable_bps: the slide's final 5 bps/s
    # steps fit in 15 bps from t = 64 (index 17), not a full window_s later (index 27).
    assert first == 17
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


def test_a_single_step_jump_is_a_level_shift_for_momentum() -> None:
    d = JumpDetector()
    m = ExchangeMomentum(halflife_s=10.0)
    for i in range(20):
        m.update(float(i), 3000.0, d.threshold_bps())
    # +3% in one step: the detector's threshold says jump, the drift estimate stays flat.
    m.update(20.1, 3090.0, d.threshold_bps())
    for i in range(21, 40):
        m.update(float(i), 3090.0, d.threshold_bps())
    assert m.drift_per_s() == 0.0
    # Without the threshold the same step reads as ~6 USD/s of drift, still >1 USD/s 20 s on.
    naive = ExchangeMomentum(halflife_s=10.0)
    for t, px in [(19.0, 3000.0), (20.1, 3090.0), (40.0, 3090.0)]:
        naive.update(t, px)
    assert naive.drift_per_s() > 1.0


def test_sweep_guard_pauses_only_the_swept_side_for_pause_s() -> None:
    from agent.model import SweepGuard, SweepParams

    g = SweepGuard(SweepParams(fills=3, window_s=5.0, pause_s=30.0))
    # Informed sellers hit all three bid levels within 3 s, seconds before a crash prints.
    assert not g.on_fill(100.0, 1)
    assert not g.on_fill(101.0, 1)
    assert g.on_fill(103.0, 1)
    assert g.paused(103.0, 1) and g.paused(132.9, 1)
    assert not g.paused(133.0, 1)
    # The other side keeps quoting: the guard is symmetric, each side judged alone.
    assert not g.paused(110.0, -1)


def test_sweep_guard_ignores_two_sided_and_slow_flow() -> None:
    from agent.model import SweepGuard, SweepParams

    g = SweepGuard(SweepParams(fills=3, window_s=5.0, pause_s=30.0))
    # Two-sided flow: fills alternate, no side gets three in the window.
    for i, side in enumerate((1, -1, 1, -1)):
        assert not g.on_fill(float(i), side)
    # One-sided but slow: the window forgets the earlier fills.
    for t in (20.0, 26.0, 32.0, 38.0):
        assert not g.on_fill(t, -1)
    assert not g.paused(40.0, 1) and not g.paused(40.0, -1)
    # fills=0 switches the guard off (the plain preset).
    off = SweepGuard(SweepParams(fills=0))
    assert not any(off.on_fill(0.0, 1) for _ in range(10))
    assert not off.paused(0.0, 1)


def test_sweep_params_are_validated() -> None:
    from agent.errors import ConfigError
    from agent.model import SweepParams

    with pytest.raises(ConfigError):
        SweepParams(fills=-1)
    with pytest.raises(ConfigError):
        SweepParams(window_s=0.0)
