"""The P&L ledger's drawdown on a real stress run: the hedge venue goes down half-way through a
fall, and the reported drawdown must still be the one at the world's prices.

The scenario (``scenarios/exchange_down_in_a_fall.toml``, test-only) has the takers sell to the
agent as the fall starts, so it holds a hedged long when the exchange stops answering; the index
falls another 5% during the minute the exchange is down. A ledger that marks the hedge at the
exchange's last mid (main before this test) reported a $908 drawdown against a world-priced $27
on seed 0, all of it given back when the exchange answered again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sims.report import DRAWDOWN_TOLERANCE_FRAC, DRAWDOWN_TOLERANCE_USD
from sims.scenario import Step, load_scenario
from sims.stress import StressOptions, Upstream, run_scenario

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_SCENARIO = Path(__file__).parent / "scenarios" / "exchange_down_in_a_fall.toml"


def test_an_exchange_outage_in_a_fall_reports_the_world_priced_drawdown(
    upstream: Upstream, tmp_path: Path
) -> None:
    outage: list[tuple[float, float]] = []  # (index, hedge position) at each outage step

    def watch(agent: Agent, _world: ChainWorld, step: Step) -> None:
        if step.cex.outage:
            outage.append((step.index_usd, agent.ledger.hedge_position))

    opts = StressOptions(seed=0, chain_profile="l2")
    res = asyncio.run(
        run_scenario(load_scenario(_SCENARIO), upstream, tmp_path / "run", opts, on_step=watch)
    )
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    report = res.report

    # The premise: a hedge was open while the exchange was down, and the index moved under it
    # by far more than the tolerance (what a frozen hedge mark would have put in the drawdown).
    assert outage, "the scenario's outage never happened"
    start = outage[0][0]
    frozen_error = max(abs(h) * abs(start - index) for index, h in outage)
    assert frozen_error > 100.0, frozen_error

    ledger_dd = report["max_drawdown"]["usd"]
    world_dd = report["drawdown_limit"]["max_usd"]
    assert report["drawdown_limit"]["equity"].startswith("both legs")
    assert world_dd > 5.0  # the fall did cost something: the comparison is not of two zeros
    tolerance = max(DRAWDOWN_TOLERANCE_USD, DRAWDOWN_TOLERANCE_FRAC * world_dd)
    assert abs(ledger_dd - world_dd) <= tolerance, (ledger_dd, world_dd)

    check = report["drawdown_check"]
    assert check["agree"] is True, check
    assert (check["ledger_usd"], check["world_usd"]) == (ledger_dd, world_dd)
    # The whole path, not only its worst point: nowhere did the ledger part from the world by
    # a frozen leg's error, and it ends at the world's net.
    assert check["tracking_gap_usd"] < min(tolerance, frozen_error / 10), check
    assert abs(check["final_gap_usd"]) < 2.0, check
