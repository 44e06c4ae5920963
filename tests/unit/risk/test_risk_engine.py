"""Behaviour of the graded risk engine: triggers, escalation, cooldowns, hysteresis, unload."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.risk import (
    Band,
    HedgeUrgency,
    Level,
    RiskDirective,
    RiskEngine,
    RiskInputs,
    RiskLimits,
    RiskState,
    Transition,
)
from agent.types import Side

S = RiskState
LIMITS = RiskLimits()


def calm(now_s: float, **overrides: Any) -> RiskInputs:
    """Return a snapshot in which no trigger fires, with ``overrides`` applied."""
    base = RiskInputs(
        now_s=now_s,
        index_price=100.0,
        realized_vol_annual=0.5,
        inventory_base=0.0,
        inventory_cap_base=10.0,
        funding_rate_predicted=0.0001,
        funding_flip_prob=0.0,
        funding_snapshot_in_s=3600.0,
        base_fee_gwei=1.0,
        base_fee_budget_gwei=50.0,
        oldest_pending_tx_age_s=0.0,
        inclusion_delay_s=1.0,
        oracle_age_s=1.0,
        block_age_s=1.0,
        cex_feed_age_s=0.2,
        rpc_error_rate=0.0,
        equity_quote=10_000.0,
        margin_ratio=0.1,
        liq_distance_bps=5000.0,
        cex_reachable=True,
        cex_banned=False,
        cex_rate_limited=False,
        orders_per_min=10.0,
    )
    index = overrides.get("index_price", base.index_price)
    # Quotes follow the index (±10 bps) unless a test places them itself.
    overrides.setdefault("quote_prices", (index * 0.999, index * 1.001))
    return replace(base, **overrides)


@dataclass(frozen=True)
class Case:
    """How to push one trigger to warn and to breach, and the states that should follow."""

    name: str
    warn: dict[str, Any] | None
    breach: dict[str, Any]
    warn_state: RiskState | None
    breach_state: RiskState
    calm_after: dict[str, Any] = field(default_factory=dict)


# Funding: long half the cap of a $4,000 perp, longs pay +5 bps ($10 on the position) at a
# snapshot 5 min away.
_FUNDING = {
    "inventory_base": 5.0,
    "funding_rate_predicted": 0.0005,
    "funding_snapshot_in_s": 300.0,
    "index_price": 4000.0,
}

CASES = [
    Case("realized_vol_annual", {"realized_vol_annual": 1.2}, {"realized_vol_annual": 2.5},
         S.REDUCED, S.WIDENED),
    # From 100: +2 % is a 200 bps range (warn 150), +5 % is 500 bps (breach 400).
    Case("index_jump_bps", {"index_price": 102.0}, {"index_price": 105.0}, S.WIDENED, S.WITHDRAWN),
    # Collar at vol 0.5: max(25 bps, 6 σ over 60 s ≈ 41 bps); 60 bps ≈ 1.45x, 120 bps ≈ 2.9x.
    Case("quote_collar_ratio", {"quote_prices": (99.4, 100.1)}, {"quote_prices": (98.8, 100.1)},
         S.REDUCED, S.WITHDRAWN),
    Case("funding_adverse_prob", {**_FUNDING, "funding_flip_prob": 0.4},
         {**_FUNDING, "funding_flip_prob": 0.1}, S.WIDENED, S.HEDGING,
         calm_after={"inventory_base": 5.0, "index_price": 4000.0}),
    Case("base_fee_budget_ratio", {"base_fee_gwei": 60.0}, {"base_fee_gwei": 150.0},
         S.WIDENED, S.WITHDRAWN),
    Case("pending_tx_age_s", {"oldest_pending_tx_age_s": 20.0}, {"oldest_pending_tx_age_s": 90.0},
         S.WIDENED, S.WITHDRAWN),
    Case("inclusion_delay_s", {"inclusion_delay_s": 8.0}, {"inclusion_delay_s": 25.0},
         S.REDUCED, S.WIDENED),
    Case("oracle_age_s", {"oracle_age_s": 12.0}, {"oracle_age_s": math.inf},
         S.WIDENED, S.WITHDRAWN),
    Case("block_age_s", {"block_age_s": 20.0}, {"block_age_s": 50.0}, S.WIDENED, S.WITHDRAWN),
    Case("cex_feed_age_s", {"cex_feed_age_s": 4.0}, {"cex_feed_age_s": 12.0},
         S.WIDENED, S.WITHDRAWN),
    Case("rpc_error_rate", {"rpc_error_rate": 0.1}, {"rpc_error_rate": 0.5},
         S.REDUCED, S.WITHDRAWN),
    Case("margin_ratio", {"margin_ratio": 0.6}, {"margin_ratio": 0.9}, S.HEDGING, S.WITHDRAWN),
    Case("liq_distance_bps", {"liq_distance_bps": 1000.0}, {"liq_distance_bps": 300.0},
         S.HEDGING, S.WITHDRAWN),
    Case("inventory_cap_ratio", {"inventory_base": 11.0}, {"inventory_base": -16.0},
         S.REDUCED, S.HEDGING),
    Case("orders_per_min", {"orders_per_min": 150.0}, {"orders_per_min": 300.0},
         S.WIDENED, S.WITHDRAWN),
    Case("fair_value_divergence_bps", {"fair_value_divergence_bps": 150.0},
         {"fair_value_divergence_bps": 400.0}, S.WIDENED, S.WITHDRAWN),
    Case("gas_refreshes_left", {"gas_refreshes_left": 150.0}, {"gas_refreshes_left": 20.0},
         S.WIDENED, S.WITHDRAWN),
    Case("cex_unreachable", None, {"cex_reachable": False}, None, S.WIDENED),
    Case("cex_banned", None, {"cex_banned": True}, None, S.REDUCED),
    Case("cex_rate_limited", None, {"cex_rate_limited": True}, None, S.REDUCED),
]  # fmt: skip


def run_until_calm(
    engine: RiskEngine, start_s: float, calm_after: dict[str, Any], limit_s: float = 1000.0
) -> list[Transition]:
    """Feed calm snapshots every second until NORMAL (or ``limit_s``); return the transitions."""
    t = start_s
    while engine.state is not S.NORMAL and t < start_s + limit_s:
        t += 1.0
        engine.evaluate(calm(t, **calm_after))
    return list(engine.drain_transitions())


def assert_stepped_down(transitions: list[Transition], from_state: RiskState) -> None:
    """Assert one-level steps from ``from_state`` to NORMAL, each after its state's cooldown."""
    assert [(t.from_state, t.to_state) for t in transitions] == [
        (S(level), S(level - 1)) for level in range(from_state, 0, -1)
    ]
    for prev, nxt in itertools.pairwise(transitions):
        assert nxt.at_s - prev.at_s >= LIMITS.cooldown_s(nxt.from_state)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_trigger_escalates_as_specified_and_recovers_after_cooldowns(case: Case) -> None:
    engine = RiskEngine()
    assert engine.evaluate(calm(0.0, **case.calm_after)).state is S.NORMAL
    if case.warn is not None:
        d = engine.evaluate(calm(1.0, **case.warn))
        assert d.state is case.warn_state
        assert [(r.name, r.level) for r in d.readings] == [(case.name, Level.WARN)]
    d = engine.evaluate(calm(2.0, **case.breach))
    assert d.state is case.breach_state
    assert (case.name, Level.BREACH) in [(r.name, r.level) for r in d.readings]
    escalations = engine.drain_transitions()
    assert escalations[-1].to_state is case.breach_state
    assert case.name in escalations[-1].reason

    transitions = run_until_calm(engine, 2.0, case.calm_after)
    assert engine.state is S.NORMAL
    assert_stepped_down(transitions, case.breach_state)


# The drawdown tests size the strategy's capital at the account (10,000): the fractions below are
# of that (the capital a cap and a price imply has its own tests in test_risk_market.py).
ACCOUNT = RiskLimits(strategy_capital_quote=10_000.0)


def test_drawdown_warn_reduces_and_breach_halts_until_an_operator_resumes() -> None:
    engine = RiskEngine(ACCOUNT)
    engine.evaluate(calm(0.0, equity_quote=10_000.0))
    assert engine.evaluate(calm(1.0, equity_quote=9_750.0)).state is S.REDUCED  # 2.5 %
    d = engine.evaluate(calm(2.0, equity_quote=9_400.0))  # 6 % below the peak
    assert d.state is S.HALTED
    assert not (d.allow_bid or d.allow_ask) and d.cancel_all and d.size_mult == 0.0
    assert d.hedge_urgency is HedgeUrgency.NONE

    # Equity recovers and every trigger clears for an hour: still halted.
    for t in range(3, 3600, 10):
        assert engine.evaluate(calm(float(t), equity_quote=10_000.0)).state is S.HALTED
    engine.drain_transitions()

    resumed = engine.operator_resume(3600.0, "alice")
    assert resumed is not None and resumed.to_state is S.WITHDRAWN
    assert "alice" in resumed.reason
    assert engine.drain_transitions() == (resumed,)
    assert_stepped_down(run_until_calm(engine, 3600.0, {}), S.WITHDRAWN)


def test_resume_measures_drawdown_from_the_equity_the_operator_accepted() -> None:
    engine = RiskEngine(ACCOUNT)
    engine.evaluate(calm(0.0, equity_quote=10_000.0))
    engine.evaluate(calm(1.0, equity_quote=9_000.0))
    assert engine.state is S.HALTED
    engine.operator_resume(2.0, "bob")
    assert engine.peak_equity_quote == 9_000.0
    assert engine.evaluate(calm(3.0, equity_quote=9_000.0)).state is S.WITHDRAWN
    # A fresh 6 % loss from the new peak halts again.
    assert engine.evaluate(calm(4.0, equity_quote=8_450.0)).state is S.HALTED


def test_operator_halt_and_resume_rules() -> None:
    engine = RiskEngine()
    halt = engine.operator_halt(5.0, "manual kill")
    assert halt is not None and (halt.from_state, halt.to_state) == (S.NORMAL, S.HALTED)
    assert "manual kill" in halt.reason
    assert engine.operator_halt(6.0, "again") is None
    with pytest.raises(ValueError, match="who"):
        engine.operator_resume(7.0, "  ")
    assert engine.state is S.HALTED
    assert RiskEngine().operator_resume(0.0, "carol") is None


def test_restored_halted_state_survives_a_restart() -> None:
    engine = RiskEngine(initial_state=S.HALTED, start_s=100.0)
    for t in range(100, 1000, 50):
        assert engine.evaluate(calm(float(t))).state is S.HALTED
    assert engine.drain_transitions() == ()


def test_escalation_goes_straight_to_the_highest_demanded_state() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(0.0))
    d = engine.evaluate(
        calm(1.0, realized_vol_annual=1.2, oracle_age_s=40.0, inclusion_delay_s=8.0)
    )
    assert d.state is S.WITHDRAWN
    (t,) = engine.drain_transitions()
    assert (t.from_state, t.to_state) == (S.NORMAL, S.WITHDRAWN)
    assert t.reason == "escalate: oracle_age_s=40 (breach 30)"
    assert {r.name for r in t.readings} == {
        "realized_vol_annual",
        "oracle_age_s",
        "inclusion_delay_s",
    }


def test_deescalation_stops_at_the_state_still_demanded() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(0.0, oracle_age_s=40.0, realized_vol_annual=1.2))
    assert engine.state is S.WITHDRAWN
    for t in range(1, 600):
        d = engine.evaluate(calm(float(t), realized_vol_annual=1.2))
    assert d.state is S.REDUCED
    steps = [(t.from_state, t.to_state) for t in engine.drain_transitions()]
    assert steps == [
        (S.NORMAL, S.WITHDRAWN),
        (S.WITHDRAWN, S.HEDGING),
        (S.HEDGING, S.WIDENED),
        (S.WIDENED, S.REDUCED),
    ]


def test_a_retrigger_during_cooldown_restarts_it() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(0.0, block_age_s=20.0))
    assert engine.state is S.WIDENED
    cooldown = LIMITS.cooldown_widened_s
    engine.evaluate(calm(1.0))
    engine.evaluate(calm(cooldown - 1.0))
    engine.evaluate(calm(cooldown, block_age_s=20.0))  # back at warn just before the step
    engine.evaluate(calm(cooldown + 1.0))
    engine.evaluate(calm(2 * cooldown))  # only cooldown - 1 s clear since the re-trigger
    assert engine.state is S.WIDENED
    assert engine.evaluate(calm(2 * cooldown + 1.0)).state is S.REDUCED


def test_a_reading_in_the_hysteresis_gap_holds_its_level() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(0.0, oracle_age_s=11.0))
    assert engine.state is S.WIDENED
    # Warn is 10 s; its release is 7.5 s. Sitting at 8 s for ten cooldowns changes nothing.
    for t in range(1, 300):
        d = engine.evaluate(calm(float(t), oracle_age_s=8.0))
        assert [(r.name, r.release) for r in d.readings] == [("oracle_age_s", 7.5)]
    assert engine.state is S.WIDENED
    engine.evaluate(calm(300.0, oracle_age_s=7.0))
    d = engine.evaluate(calm(300.0 + LIMITS.cooldown_widened_s, oracle_age_s=7.0))
    assert d.state is S.REDUCED


def test_lower_is_worse_band_releases_above_its_threshold() -> None:
    band = LIMITS.liq_distance_bps
    assert not band.higher_is_worse
    assert band.level(1600.0, Level.CLEAR) is Level.CLEAR
    assert band.level(1400.0, Level.CLEAR) is Level.WARN
    assert band.level(1800.0, Level.WARN) is Level.WARN  # release is 1875
    assert band.level(1900.0, Level.WARN) is Level.CLEAR
    assert band.level(600.0, Level.BREACH) is Level.BREACH  # release is 625
    assert band.level(700.0, Level.BREACH) is Level.WARN


@settings(max_examples=60, deadline=None)
@given(
    fracs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    steps_s=st.lists(st.floats(0.1, 200.0), min_size=60, max_size=60),
)
def test_a_signal_oscillating_inside_the_hysteresis_band_moves_state_at_most_once(
    fracs: list[float], steps_s: list[float]
) -> None:
    band = LIMITS.realized_vol_annual  # warn 1.0 (release 0.75), breach 2.0
    low, high = band.release(band.warn) + 1e-9, band.breach - 1e-9
    engine = RiskEngine()
    t = 0.0
    for frac, step_s in zip([1.0, *fracs], steps_s, strict=False):
        t += step_s  # steps far beyond the cooldown included: time alone must not release it
        engine.evaluate(calm(t, realized_vol_annual=low + frac * (high - low)))
    transitions = engine.drain_transitions()
    assert len(transitions) <= 1
    assert engine.state is S.REDUCED


def test_without_the_gap_the_same_signal_would_flap() -> None:
    """Guard the property above: it must be able to fail when hysteresis is off."""
    limits = replace(
        LIMITS, realized_vol_annual=replace(LIMITS.realized_vol_annual, release_frac=0)
    )
    engine = RiskEngine(limits)
    for i in range(8):
        vol = 1.1 if i % 2 == 0 else 0.9
        engine.evaluate(calm(i * 100.0, realized_vol_annual=vol))
        engine.evaluate(calm(i * 100.0 + 50.0, realized_vol_annual=vol))
    assert len(engine.drain_transitions()) > 1


def test_nan_reading_counts_as_a_breach() -> None:
    engine = RiskEngine()
    d = engine.evaluate(calm(0.0, oracle_age_s=math.nan))
    assert d.state is S.WITHDRAWN
    d = engine.evaluate(calm(1.0, index_price=math.nan))
    assert ("index_jump_bps", Level.BREACH) in [(r.name, r.level) for r in d.readings]


def test_funding_only_counts_near_the_snapshot_and_when_it_hurts() -> None:
    adverse = {**_FUNDING, "funding_flip_prob": 0.1}
    assert RiskEngine().evaluate(calm(0.0, **adverse)).state is S.HEDGING
    far = {**adverse, "funding_snapshot_in_s": 3600.0}
    assert RiskEngine().evaluate(calm(0.0, **far)).state is S.NORMAL
    short_receives = {**adverse, "inventory_base": -5.0}
    assert RiskEngine().evaluate(calm(0.0, **short_receives)).state is S.NORMAL
    likely_flip = {**short_receives, "funding_flip_prob": 0.9}
    assert RiskEngine().evaluate(calm(0.0, **likely_flip)).state is S.HEDGING
    tiny = {**adverse, "inventory_base": 0.5}  # 5 % of the cap
    assert RiskEngine().evaluate(calm(0.0, **tiny)).state is S.NORMAL


def test_funding_trigger_weighs_dollars_at_stake_not_the_sign() -> None:
    # Certain to pay, but cents: a $100 perp, 5 long, 1 bp -> $0.05 at stake. No widening.
    cents = {**_FUNDING, "index_price": 100.0, "funding_rate_predicted": 1e-4}
    assert RiskEngine().evaluate(calm(0.0, **cents)).state is S.NORMAL
    # The same position on a $4,000 perp at 5 bps: $10 at stake.
    assert RiskEngine().evaluate(calm(0.0, **_FUNDING, funding_flip_prob=0.1)).state is S.HEDGING
    lower = RiskLimits(funding_min_stake_quote=0.01)
    assert RiskEngine(lower).evaluate(calm(0.0, **cents)).state is S.HEDGING


def test_funding_window_scales_with_the_interval() -> None:
    # A 600 s interval: the window is 1/32 of it (18.75 s), not 900 s.
    hourly = {**_FUNDING, "funding_flip_prob": 0.1, "funding_interval_s": 600.0}
    assert RiskEngine().evaluate(calm(0.0, **hourly)).state is S.NORMAL
    close = {**hourly, "funding_snapshot_in_s": 10.0}
    assert RiskEngine().evaluate(calm(0.0, **close)).state is S.HEDGING


@pytest.mark.parametrize(
    ("state_trigger", "state", "size", "spread", "urgency"),
    [
        ({}, S.NORMAL, 1.0, 1.0, HedgeUrgency.NORMAL),
        ({"rpc_error_rate": 0.1}, S.REDUCED, 0.5, 1.0, HedgeUrgency.NORMAL),
        ({"block_age_s": 20.0}, S.WIDENED, 0.5, 2.0, HedgeUrgency.NORMAL),
        ({"margin_ratio": 0.6}, S.HEDGING, 0.25, 3.0, HedgeUrgency.AGGRESSIVE),
        ({"block_age_s": 60.0}, S.WITHDRAWN, 0.25, 3.0, HedgeUrgency.AGGRESSIVE),
    ],
)
def test_posture_of_each_state(
    state_trigger: dict[str, Any],
    state: RiskState,
    size: float,
    spread: float,
    urgency: HedgeUrgency,
) -> None:
    d = RiskEngine().evaluate(calm(0.0, inventory_base=2.0, **state_trigger))
    assert (d.state, d.size_mult, d.spread_mult, d.hedge_urgency) == (state, size, spread, urgency)
    withdrawn = state is S.WITHDRAWN
    assert d.cancel_all is withdrawn and d.reduce_only is withdrawn
    # Long 2: bids add risk, so WITHDRAWN keeps only the ask.
    assert (d.allow_bid, d.allow_ask) == (not withdrawn, True)


def sides(d: RiskDirective) -> tuple[bool, bool]:
    return d.allow_bid, d.allow_ask


def test_side_that_adds_inventory_is_blocked_at_the_cap() -> None:
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=9.99))) == (True, True)
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=10.0))) == (False, True)
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=-10.0))) == (True, False)
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=math.nan))) == (False, False)


def test_cex_ban_halves_the_cap_and_blocks_earlier() -> None:
    d = RiskEngine().evaluate(calm(0.0, inventory_base=-5.0, cex_banned=True))
    assert d.state is S.REDUCED
    assert (d.inventory_cap_mult, d.inventory_cap_base) == (0.5, 5.0)
    assert sides(d) == (True, False)


def test_withdrawn_quotes_only_the_reducing_side() -> None:
    withdrawn = {"oracle_age_s": 60.0}
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=0.0, **withdrawn))) == (
        False,
        False,
    )
    assert sides(RiskEngine().evaluate(calm(0.0, inventory_base=-3.0, **withdrawn))) == (
        True,
        False,
    )


def test_unload_plan_is_time_weighted_to_a_deadline() -> None:
    engine = RiskEngine()
    assert engine.evaluate(calm(0.0, inventory_base=10.0)).unload is None  # at the cap, not over
    plan = engine.evaluate(calm(100.0, inventory_base=12.0)).unload
    # Target 0.8 x 10 = 8; excess 4 over the 300 s horizon.
    assert plan is not None and plan.side is Side.ASK
    assert (plan.excess_base, plan.target_abs_base, plan.deadline_s) == (4.0, 8.0, 400.0)
    assert plan.rate_base_per_s == pytest.approx(4.0 / 300.0)
    # Halfway through, on schedule: the same rate.
    plan = engine.evaluate(calm(250.0, inventory_base=10.0)).unload
    assert plan is not None and plan.rate_base_per_s == pytest.approx(2.0 / 150.0)
    # Behind schedule: the rate rises to finish by the deadline.
    plan = engine.evaluate(calm(300.0, inventory_base=11.0)).unload
    assert plan is not None and plan.rate_base_per_s == pytest.approx(3.0 / 100.0)
    # Past the deadline the time left is floored, so the rate stays finite.
    plan = engine.evaluate(calm(500.0, inventory_base=9.0)).unload
    assert plan is not None
    assert plan.rate_base_per_s == pytest.approx(1.0 / LIMITS.unload_min_remaining_s)
    # Back at the target: the plan ends, and below the cap no new one starts.
    assert engine.evaluate(calm(501.0, inventory_base=8.0)).unload is None
    assert engine.evaluate(calm(502.0, inventory_base=9.5)).unload is None


def test_unload_of_a_short_buys_and_hurries_when_hedging() -> None:
    engine = RiskEngine()
    plan = engine.evaluate(calm(0.0, inventory_base=-12.0)).unload
    assert plan is not None and plan.side is Side.BID and plan.deadline_s == 300.0
    plan = engine.evaluate(calm(10.0, inventory_base=-12.0, margin_ratio=0.6)).unload
    assert engine.state is S.HEDGING
    assert plan is not None and plan.deadline_s == 10.0 + LIMITS.unload_urgent_horizon_s


def test_over_the_cap_on_the_paying_side_the_unload_is_due_by_the_snapshot() -> None:
    # Longs pay at + rates; 120 s before the snapshot (inside the 900 s funding window), a long
    # swept over the cap must be back under it by the snapshot, not 300 s later.
    near = {"funding_rate_predicted": 1e-4, "funding_snapshot_in_s": 120.0}
    plan = RiskEngine().evaluate(calm(0.0, inventory_base=12.0, **near)).unload
    assert plan is not None and plan.deadline_s == 120.0
    assert plan.rate_base_per_s == pytest.approx(4.0 / 120.0)
    # A plan already running is pulled in when the window opens.
    engine = RiskEngine()
    engine.evaluate(calm(0.0, inventory_base=12.0))
    plan = engine.evaluate(calm(10.0, inventory_base=12.0, **near)).unload
    assert plan is not None and plan.deadline_s == 130.0
    # The receiving side (a short at + rates) keeps the normal horizon, as does a far snapshot.
    plan = RiskEngine().evaluate(calm(0.0, inventory_base=-12.0, **near)).unload
    assert plan is not None and plan.deadline_s == LIMITS.unload_horizon_s
    far = {**near, "funding_snapshot_in_s": 3_600.0}
    plan = RiskEngine().evaluate(calm(0.0, inventory_base=12.0, **far)).unload
    assert plan is not None and plan.deadline_s == LIMITS.unload_horizon_s


def test_transition_record_carries_the_numbers() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(3.0, base_fee_gwei=75.0))
    (t,) = engine.drain_transitions()
    assert t.as_dict() == {
        "from": "NORMAL",
        "to": "WIDENED",
        "at_s": 3.0,
        "reason": "escalate: base_fee_budget_ratio=1.5 (warn 1)",
        "readings": [
            {
                "name": "base_fee_budget_ratio",
                "value": 1.5,
                "threshold": 1.0,
                "level": "WARN",
                "state": "WIDENED",
            }
        ],
    }
    assert engine.drain_transitions() == ()
    assert engine.since_s == 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warn": 0.0, "breach": 1.0},
        {"warn": 1.0, "breach": 1.0},
        {"warn": 1.0, "breach": math.inf},
        {"warn": 1.0, "breach": 2.0, "release_frac": 1.0},
        {"warn": 1.0, "breach": 2.0, "warn_state": S.WITHDRAWN, "breach_state": S.REDUCED},
    ],
)
def test_band_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"warn_state": S.REDUCED, "breach_state": S.WIDENED, **kwargs}
    with pytest.raises(ConfigError):
        Band(**args)


@pytest.mark.parametrize(
    ("name", "value"),
    [("reduced_size_mult", 0.0), ("widened_spread_mult", 0.5), ("cooldown_widened_s", -1.0)],
)
def test_limits_reject_nonsense(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        changes: dict[str, Any] = {name: value}
        replace(LIMITS, **changes)


def test_every_band_in_the_limits_is_exercised_by_a_case() -> None:
    bands = {
        f.name for f in dataclasses.fields(RiskLimits) if isinstance(getattr(LIMITS, f.name), Band)
    }
    assert bands - {"drawdown_frac"} == {c.name for c in CASES if c.warn is not None}


def test_risk_memory_survives_a_restart_peak_state_and_escalations() -> None:
    # A loss taken before a crash must still count after it, and a restart must not shorten
    # the state's cooldown.
    first = RiskEngine(ACCOUNT, start_s=0.0)
    first.evaluate(calm(1.0, equity_quote=10_000.0))
    first.evaluate(calm(2.0, equity_quote=9_850.0))  # 1.5 % down: no trigger yet
    first.evaluate(calm(3.0, block_age_s=50.0))  # WITHDRAWN
    assert first.state is RiskState.WITHDRAWN
    memory = first.memory()

    fresh = RiskEngine(ACCOUNT, start_s=100.0)
    fresh.evaluate(calm(101.0, equity_quote=9_700.0))
    assert fresh.state is RiskState.NORMAL  # no memory: 9,700 is its peak

    restored = RiskEngine(ACCOUNT, start_s=100.0)
    restored.restore(memory)
    assert restored.state is RiskState.WITHDRAWN and restored.peak_equity_quote == 10_000.0
    restored.evaluate(calm(101.0, equity_quote=9_700.0))  # 3 % below the remembered peak
    assert restored.state is RiskState.WITHDRAWN
    # The cooldown starts over after the restart: clear for less than 60 s keeps WITHDRAWN.
    restored.evaluate(calm(150.0, equity_quote=10_000.0))
    assert restored.state is RiskState.WITHDRAWN


def test_risk_memory_ignores_malformed_fields() -> None:
    engine = RiskEngine(LIMITS, start_s=0.0)
    engine.restore({"state": "NOPE", "peak_equity": "x", "escalations": "y", "since_s": None})
    assert engine.state is RiskState.NORMAL and engine.peak_equity_quote is None


@pytest.mark.parametrize("remembered", [True, False])
def test_a_trigger_back_after_a_restart_is_still_a_flap(remembered: bool) -> None:
    # Escalate, release, crash, restart, the same trigger comes back: that is a flap, and its
    # cooldown is backed off. Without the flag in the memory the restart counted the return as
    # a further step of the released episode and stepped down after the plain cooldown.
    cooldown = LIMITS.cooldown_s(S.REDUCED)
    first = RiskEngine(LIMITS, start_s=0.0)
    first.evaluate(calm(1.0, realized_vol_annual=1.1))
    assert first.state is S.REDUCED
    first.evaluate(calm(2.0))
    first.evaluate(calm(3.0 + cooldown))
    assert first.state is S.NORMAL  # released
    memory = first.memory()
    if not remembered:
        del memory["released_since_escalation"]  # what a journal of an older agent holds
    restored = RiskEngine(LIMITS, start_s=100.0)
    restored.restore(memory)
    t = 10.0 + cooldown
    restored.evaluate(calm(t, realized_vol_annual=1.1))
    assert restored.state is S.REDUCED
    restored.evaluate(calm(t + 1.0))
    restored.evaluate(calm(t + 2.0 + cooldown))  # past the plain cooldown, inside the doubled
    assert (restored.state is S.REDUCED) is remembered
