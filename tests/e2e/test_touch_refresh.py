"""A touch on real anvil: only the tops are re-priced, and no side ever rests more than `levels`.

A lock-step calm run on the L2 profile (the real agent, contracts and exchange simulator). After
every block the agent's resting orders are read straight from the market. A touch is seen on
chain as a block after which a side's best order is a new one while every deeper order is still
there, unmoved (a top taken by a taker leaves the next order on top: that is no touch). The
decision log says which batches the gate sent as touches.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from agent.chain.abi import order_id_side_tick
from agent.store import Journal
from agent.types import Side
from sims.scenario import Step, load_scenario
from sims.stress import StressOptions, Upstream, run_scenario
from sims.world import ChainWorld

pytestmark = pytest.mark.chain

_DURATION_S = 180.0


def _book(world: ChainWorld) -> dict[Side, list[tuple[int, int]]]:
    """Our resting orders per side as (tick, order id), best first, read from the market."""
    out: dict[Side, list[tuple[int, int]]] = {Side.BID: [], Side.ASK: []}
    for oid in world.open_order_ids(world.agent_address):
        side, tick = order_id_side_tick(oid)
        out[Side(side)].append((tick, oid))
    out[Side.BID].sort(reverse=True)
    out[Side.ASK].sort()
    return out


def test_a_touch_replaces_only_the_top_and_never_exceeds_the_levels(
    upstream: Upstream, tmp_path: Path
) -> None:
    books: list[dict[Side, list[tuple[int, int]]]] = []
    levels: list[int] = []

    def on_step(agent: Any, world: ChainWorld, step: Step) -> None:
        books.append(_book(world))
        levels.append(agent.params.levels)

    opts = StressOptions(seed=0, short_s=_DURATION_S, chain_profile="l2")
    res = asyncio.run(
        run_scenario(load_scenario("calm"), upstream, tmp_path, opts, on_step=on_step)
    )
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    assert set(levels) == {3}  # the stress config's ladder

    # Never more than `levels` orders on a side, in any block.
    over = [(i, len(b[Side.BID]), len(b[Side.ASK])) for i, b in enumerate(books)]
    over = [o for o in over if max(o[1], o[2]) > 3]
    assert not over, f"blocks with more than 3 orders on a side: {over[:5]}"

    # The gate sent touches, and a touch on chain replaced a top and kept every deeper order.
    with Journal(tmp_path / "agent" / "journal.sqlite") as journal:
        sends = [p for _, kind, p in journal.decisions(limit=100_000) if kind == "send"]
    actions = [s.get("action") for s in sends]
    assert "touch" in actions and "full" in actions, actions
    touched = 0
    for before, after in itertools.pairwise(books):
        for side in (Side.BID, Side.ASK):
            old, new = before[side], after[side]
            if len(old) < 2 or not new or old[0] == new[0]:
                continue
            deeper = {oid for _, oid in old[1:]}
            ids = {oid for _, oid in new}
            placed = new[0][1] not in {oid for _, oid in old}  # not a deeper order left on top
            if deeper <= ids and old[0][1] not in ids and placed:
                touched += 1
                # One new order on top; the deeper ones rest where they were, no more of them.
                assert new[1:] == old[1:], (old, new)
    assert touched > 0, "no block replaced a top while keeping the deeper orders"
