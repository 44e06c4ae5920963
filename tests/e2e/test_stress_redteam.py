"""Red-team crises (tests/e2e/scenarios/, not the shipped library nor the held-out set).

Two of the six red-team scenarios, run in full (600 simulated s each, lock-step, L2 costs) on the
real stack: a fork of the session's fork-state file on anvil, the HTTP exchange simulator and the
agent's own risk engine and pipeline.

``funding_whiplash`` swings the perp's premium between +60 and −60 bps every minute. The other
makers' book on the DEX moves by several ticks a block, and the agent's batch (cancel the old
ladder, place the new one) is clamped one tick inside the opposite best *as the last block left
it*; the makers re-quote first in the next block and the batch's post-only order crosses. The
whole batch used to revert with ``PostOnlyWouldCross`` (cancels included), block after block,
while the old ladder rested. The market now skips such a place inside ``batch`` (``PlaceSkipped``)
and lands the cancels and the other places; the test holds that no batch reverts in a streak, that
the race still happens (places are skipped) and that the batches that met it landed their cancels
(see README "Red-team crises").

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
from eth_utils.crypto import keccak

from sims.scenario import Step, load_scenario
from sims.stress import StressOptions, run_scenario

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.stress import Upstream
    from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_SCENARIOS = Path(__file__).parent / "scenarios"
_POST_ONLY_WOULD_CROSS = "0xf247d5f2"  # PostOnlyWouldCross(uint24,uint24)
_PLACE_SKIPPED = "0x" + keccak(text="PlaceSkipped(address,uint64,uint8,uint24,uint48,uint24)").hex()
_ORDER_CANCELLED = "0x" + keccak(text="OrderCancelled(address,uint256,uint64,uint48,uint8)").hex()


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


def test_funding_whiplash_quote_batches_do_not_revert_in_a_streak(
    upstream: Upstream, tmp_path: Path
) -> None:
    reverts: list[tuple[float, str]] = []  # (t, revert selector) of our reverted transactions
    skips: list[tuple[float, int, int]] = []  # (t, places skipped, orders cancelled) per batch

    def watch(_agent: Agent, world: ChainWorld, step: Step) -> None:
        if not step.mined:
            return
        node = world.node
        block: dict[str, Any] = node.rpc("eth_getBlockByNumber", ["latest", False])
        for h in block["transactions"]:
            r = node.rpc("eth_getTransactionReceipt", [h])
            if r["from"].lower() != world.agent_address.lower():
                continue
            if int(r["status"], 16) == 0:
                trace = node.rpc("debug_traceTransaction", [h, {"tracer": "callTracer"}])
                reverts.append((step.t_s, str(trace.get("output") or "")[:10]))
                continue
            topics = [str(lg["topics"][0]).lower() for lg in r["logs"] if lg["topics"]]
            if _PLACE_SKIPPED in topics:
                skips.append(
                    (step.t_s, topics.count(_PLACE_SKIPPED), topics.count(_ORDER_CANCELLED))
                )

    scenario = load_scenario(_SCENARIOS / "funding_whiplash.toml")
    opts = StressOptions(seed=2, chain_profile="l2")
    run = tmp_path / "run"
    res = asyncio.run(run_scenario(scenario, upstream, run, opts, on_step=watch))

    # The run itself is sound: every invariant holds (the failure is not one the harness checks).
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    statuses = _quote_statuses(run / "agent" / "journal.sqlite")
    assert statuses, "no quote batch was sent"
    crossing = [t for t, sel in reverts if sel == _POST_ONLY_WOULD_CROSS]
    # A batch may meet a book that moved under it; it must not revert whole for it (leaving the
    # old ladder resting) block after block. Before the fix: 7 in a row at t = 544-550 s on
    # seed 2 (13 of 99 batches reverted, every one with PostOnlyWouldCross).
    assert _longest_run(statuses, "R") <= 2, (statuses, crossing)
    assert not crossing, crossing
    # The race still happens (the clamp is unchanged): those batches landed instead, the crossing
    # places skipped and the old ladder's cancels in the same transaction.
    assert skips, "no place was skipped: the scenario no longer exercises the race"
    assert sum(c for _, _, c in skips) > 0, skips


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
