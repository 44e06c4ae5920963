"""The drawdown limit on a real stress run: a crash the agent does not hedge, against a limit sized
too small for it, must move the risk engine and fail the run's ``drawdown_within_limit``.

The run is the real thing (a fork of the session's fork-state file on anvil, the HTTP exchange
simulator, the agent's own risk engine); only the agent's config is chosen to breach: hedging off
(``hedge_ratio = 0``) and ``strategy_capital_quote = 250`` for a 1-unit cap at $60,000, so a
0.05-unit fill drawn through a −25% crash is many times the 5% limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sims.scenario import Step, load_scenario
from sims.stress import SHORT_DURATION_S, StressOptions, Upstream, run_scenario

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_UNHEDGED_UNDERSIZED = """
[quoting]
base_size_base = 0.05
inventory_cap_base = 1.0
levels = 3

[risk]
strategy_capital_quote = 250.0

[hedge.policy]
hedge_ratio = 0.0
"""


def test_an_unhedged_crash_breaches_an_undersized_limit_and_the_engine_stops(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = tmp_path / "mm.toml"
    config.write_text(_UNHEDGED_UNDERSIZED)
    opts = StressOptions(seed=0, short_s=SHORT_DURATION_S, config_path=config)
    steps: list[tuple[float, str, int]] = []  # (t, risk state, our fills so far) after each step

    def watch(agent: Agent, _world: ChainWorld, step: Step) -> None:
        steps.append((step.t_s, agent.risk.state.name, agent.status.fills))

    scenario = load_scenario("flash_crash")
    res = asyncio.run(run_scenario(scenario, upstream, tmp_path / "run", opts, on_step=watch))
    report = res.report

    # The harness sees the breach and fails the run for it, and for nothing else.
    failed = {i.name for i in res.invariants if not i.passed}
    assert failed == {"drawdown_within_limit"}, [i.detail for i in res.invariants]
    assert res.passed is False and report["passed"] is False
    dd = report["drawdown_limit"]
    assert dd["capital_quote"] == 250.0 and dd["limit_frac"] == 0.05
    assert dd["breached"] is True and dd["max_frac"] >= 0.05
    assert dd["equity"].startswith("both legs")
    # The engine judged the same money: its own reading agrees with the world-marked one.
    assert dd["engine_max_frac"] == pytest.approx(dd["max_frac"], rel=0.05)

    # The engine responded: the drawdown escalated it (REDUCED at 2%), then halted it at 5%.
    transitions = report["risk"]["transitions"]
    by_drawdown = [t for t in transitions if "drawdown_frac" in t["reason"]]
    assert by_drawdown, transitions
    assert by_drawdown[0]["to_state"] in ("REDUCED", "WITHDRAWN", "HALTED")
    halts = [t for t in by_drawdown if t["to_state"] == "HALTED"]
    assert halts, transitions
    halted_at = halts[0]["t_s"]
    assert report["risk"]["final_state"] == "HALTED"
    # ... and, halted, took on no more: no fill of ours once the halt's cancel had time to land
    # (no order of ours rested after it either: ``no_orders_after_withdrawal`` passed).
    fills_at = [n for t, _, n in steps if t <= halted_at + 3.0][-1]
    after = [n for t, _, n in steps if t > halted_at + 3.0]
    assert after and set(after) == {fills_at}, (halted_at, fills_at, sorted(set(after)))
    assert all(state == "HALTED" for t, state, _ in steps if t >= halted_at + 1.0)
