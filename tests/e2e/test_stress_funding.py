"""Funding on real stress runs: a frozen oracle's premium is not traded on; the carry is bounded.

Real parts throughout (a fork of the session's fork-state file on anvil, the HTTP exchange
simulator, the agent's own estimators and model); the scenarios are this directory's own
(``scenarios/``), written for these checks and not for any held-out one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.model.quoting import carry_shift
from sims.scenario import Step, load_scenario
from sims.stress import StressOptions, Upstream, run_scenario

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_SCENARIOS = Path(__file__).parent / "scenarios"


def test_a_frozen_oracle_premium_is_not_traded_on(upstream: Upstream, tmp_path: Path) -> None:
    # The oracle sticks at 60 s and the index rallies 1.5% from 70 s to 130 s: from then on the
    # contract reads a premium ~150 bps too high until the freeze ends at 210 s.
    scenario = load_scenario(_SCENARIOS / "frozen_oracle_rally.toml").with_chain_profile("l2")
    seen: list[tuple[float, float, float, float, float]] = []

    def watch(agent: Agent, world: ChainWorld, step: Step) -> None:
        d = agent.decision
        if d is None:
            return
        gap_bps = abs(step.oracle_usd / step.index_usd - 1.0) * 1e4
        share = agent.params.funding_carry_max_cap_frac * d.inventory_cap_base
        seen.append((step.t_s, gap_bps, agent.est.funding.trust, d.funding_drift, share))
        assert abs(d.carry_target_base) <= share + 1e-12, (step.t_s, d.carry_target_base)

    res = asyncio.run(
        run_scenario(scenario, upstream, tmp_path / "run", StressOptions(seed=0), on_step=watch)
    )
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    honest = [trust for t, gap, trust, _, _ in seen if t < 60.0]
    frozen = [(trust, drift) for t, gap, trust, drift, _ in seen if 60.0 < t < 210.0 and gap > 50]
    assert honest and sum(honest) / len(honest) > 0.95, honest
    # Every decision made while the stuck answer is 50+ bps off the index gives the oracle no
    # weight: funding beyond the next snapshot is dropped, the next one's unaccrued part too.
    assert len(frozen) > 60, seen
    assert all(trust == 0.0 and drift == 0.0 for trust, drift in frozen), frozen
    # Once the oracle answers again it is trusted again.
    after = [trust for t, _, trust, _, _ in seen if t > 230.0]
    assert after and after[-1] == 1.0, after


def test_a_rich_premium_is_carried_toward_a_bounded_target(
    upstream: Upstream, tmp_path: Path
) -> None:
    # Longs pay 80 bps over the index: the carry is a hedged short, aimed at no more than the
    # configured share of the cap; funding stops pushing once the position is there, and past it
    # the shift pulls back toward it, never by more than the bound's share of the carry.
    scenario = load_scenario(_SCENARIOS / "rich_premium.toml").with_chain_profile("l2")
    seen: list[tuple[float, float, float, float, float, float, float]] = []

    def watch(agent: Agent, world: ChainWorld, step: Step) -> None:
        d = agent.decision
        if d is None:
            return
        q = agent.status.inventory_base  # the DEX position the decision was made on
        share = agent.params.funding_carry_max_cap_frac * d.inventory_cap_base
        seen.append(
            (
                step.t_s,
                q,
                d.carry_target_base,
                share,
                d.funding_drift + d.snapshot_shift + d.carry_skew,
                d.funding_drift + d.snapshot_shift,
                agent.params.funding_carry_pullback_frac,
            )
        )

    opts = StressOptions(seed=0, short_s=300.0)
    res = asyncio.run(run_scenario(scenario, upstream, tmp_path / "run", opts, on_step=watch))
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    late = [row for row in seen if row[0] > 60.0]
    assert late
    for t, q, target, share, shift, carry, bound in late:
        # A short target (longs pay), never past the share of the cap.
        assert -share - 1e-12 <= target < 0.0, (t, target, share)
        assert shift == pytest.approx(carry_shift(carry, q, target, bound)), (t, q, target)
        # At or beyond the target funding no longer pushes: it pulls back (r moves up), bounded.
        if q <= target:
            assert -bound * carry - 1e-9 <= shift <= 1e-9, (t, q, target, shift, carry)
    assert any(q < 0.0 for _, q, *_ in late), "the carry was never taken"
