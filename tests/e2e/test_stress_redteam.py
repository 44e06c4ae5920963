"""Red-team crises (tests/e2e/scenarios/, not the shipped library nor the held-out set).

Two of the six red-team scenarios, run in full (600 simulated s each, lock-step, L2 costs) on the
real stack: a fork of the session's fork-state file on anvil, the HTTP exchange simulator and the
agent's own risk engine and pipeline.

``funding_whiplash`` swings the perp's premium between +60 and −60 bps every minute. The other
makers' book on the DEX moves by several ticks a block, and the agent's batch (cancel the old
ladder, place the new one) is clamped one tick inside the opposite best *as the last block left
it*; the makers re-quote first in the next block, the batch's post-only order crosses, and the
whole batch reverts with ``PostOnlyWouldCross`` (cancels included), block after block, while the
old ladder rests. The test counts the streak: it is the finding, and it fails until the quoting
clamp or the batch stops reverting as a whole (see README "Red-team crises").

``ladder_gap`` gaps the index −4% inside one block and back +4.2% four minutes later: the whole
bid side, then the whole ask side, is taken before any cancel can land. The test holds what the
agent must still do: every invariant, the gap's inventory hedged once, and quoting again around
the new price before the second gap (no stuck WITHDRAWN after a one-off jump).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sims.scenario import Step, load_scenario
from sims.stress import StressOptions, run_scenario

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.stress import Upstream
    from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_SCENARIOS = Path(__file__).parent / "scenarios"
_POST_ONLY_WOULD_CROSS = "0xf247d5f2"  # PostOnlyWouldCross(uint24,uint24)


def _quote_statuses(journal: Path) -> str:
    """Return one letter per quote batch in nonce order: R reverted, . anything else."""
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT status FROM intents WHERE purpose = 'quote' ORDER BY nonce")
        return "".join("R" if s == "reverted" else "." for (s,) in rows)


def _longest_run(s: str, ch: str) -> int:
    best = cur = 0
    for c in s:
        cur = cur + 1 if c == ch else 0
        best = max(best, cur)
    return best


@pytest.mark.xfail(
    strict=True,
    reason="finding (red-team): a quote batch clamped to the last block's opposite best reverts "
    "whole with PostOnlyWouldCross while the other makers' book moves, block after block; "
    "remove this marker once the clamp or the batch is fixed",
)
def test_funding_whiplash_quote_batches_do_not_revert_in_a_streak(
    upstream: Upstream, tmp_path: Path
) -> None:
    reverts: list[tuple[float, str]] = []  # (t, revert selector) of our reverted transactions

    def watch(_agent: Agent, world: ChainWorld, step: Step) -> None:
        if not step.mined:
            return
        node = world.node
        block: dict[str, Any] = node.rpc("eth_getBlockByNumber", ["latest", False])
        for h in block["transactions"]:
            r = node.rpc("eth_getTransactionReceipt", [h])
            if int(r["status"], 16) == 0 and r["from"].lower() == world.agent_address.lower():
                trace = node.rpc("debug_traceTransaction", [h, {"tracer": "callTracer"}])
                reverts.append((step.t_s, str(trace.get("output") or "")[:10]))

    scenario = load_scenario(_SCENARIOS / "funding_whiplash.toml")
    opts = StressOptions(seed=2, chain_profile="l2")
    run = tmp_path / "run"
    res = asyncio.run(run_scenario(scenario, upstream, run, opts, on_step=watch))

    # The run itself is sound: every invariant holds (the failure is not one the harness checks).
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    statuses = _quote_statuses(run / "agent" / "journal.sqlite")
    assert statuses, "no quote batch was sent"
    crossing = [t for t, sel in reverts if sel == _POST_ONLY_WOULD_CROSS]
    # A batch may meet a book that moved under it once; it must not keep sending the same
    # crossing batch (each one reverting whole and leaving the old ladder resting) block after
    # block. Before a fix: 7 in a row at t = 544-550 s on seed 2 (13 of 99 batches reverted).
    assert _longest_run(statuses, "R") <= 2, (statuses, crossing)


def test_ladder_gap_is_hedged_once_and_quoting_resumes_before_the_next_gap(
    upstream: Upstream, tmp_path: Path
) -> None:
    states: list[tuple[float, str]] = []
    start_ts: list[float] = []  # the chain time of t = 0 (block timestamps are start + t)

    def watch(agent: Agent, world: ChainWorld, step: Step) -> None:
        states.append((step.t_s, agent.risk.state.name))
        if not start_ts and step.mined:
            start_ts.append(world.last_ts - step.t_s)

    scenario = load_scenario(_SCENARIOS / "ladder_gap.toml")
    opts = StressOptions(seed=0, chain_profile="l2")
    run = tmp_path / "run"
    res = asyncio.run(run_scenario(scenario, upstream, run, opts, on_step=watch))
    report = res.report

    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    # The gap (90 s) moved the engine to WITHDRAWN at once ...
    first = next(t for t in report["risk"]["transitions"] if t["to_state"] == "WITHDRAWN")
    assert 90.0 <= first["t_s"] <= 93.0, report["risk"]["transitions"]
    # ... the inventory the gap left was hedged by one order, within a few seconds of the gap
    # (not twice, not in pieces: the harness's no_duplicate_hedge covers client ids only) ...
    with sqlite3.connect(run / "agent" / "journal.sqlite") as db:
        rows = db.execute("SELECT created_ms, side, filled_qty FROM hedges").fetchall()
    hedges = sorted((ms / 1000.0 - start_ts[0], side, qty) for ms, side, qty in rows)
    gap_hedges = [h for h in hedges if 89.0 <= h[0] <= 150.0]
    assert len(gap_hedges) == 1 and gap_hedges[0][1] == "SELL", hedges
    assert gap_hedges[0][0] <= 94.0 and gap_hedges[0][2] > 0, hedges
    # ... and the agent quoted again around the new price before the second gap (331 s): the
    # jump is a one-off, not a state to stay in.
    back = [t for t, s in states if 150.0 < t < 330.0 and s in ("NORMAL", "REDUCED", "WIDENED")]
    assert back, sorted({s for _, s in states})
    assert report["fills"]["count"] > 0
