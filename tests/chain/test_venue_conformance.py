"""One conformance suite for every Venue: the on-chain adapter and the simulated one.

The runtime relies on these guarantees (see the table in ``agent/venue/base.py``); each
implementation gets the same tests through a small driver that knows how to make a block pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.types import Lots, Quote, Side, Tick
from agent.venue.base import MarketInfo, StaleSnapshot, TxIncluded, TxLost, Venue
from sims.anvil import Anvil
from sims.processes import MempoolSpec
from sims.simvenue import SimVenue
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]

BID, ASK = 0, 1


@dataclass
class Driver:
    """A venue plus the way its world moves on by one block."""

    venue: Venue
    next_block: Callable[[float], Awaitable[None]]
    """Mine / open the next block, `dt` seconds later."""
    mid_tick: int


async def _dex_driver(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> AsyncIterator[Driver]:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.place(accounts["taker"], BID, 2990.0, 0.5)
    dex.place(accounts["taker"], ASK, 3010.0, 0.5)
    dex.push_price(3000.0)
    rpc = AsyncRpc(RpcConfig(url=anvil.url))

    async def next_block(dt: float) -> None:
        ts = int(dex.w3.eth.get_block("latest")["timestamp"])
        anvil.set_next_block_timestamp(ts + max(1, round(dt)))
        anvil.mine()

    async with maker_venue(dex, rpc, tmp_path) as venue:
        anvil.set_automine(False)
        try:
            yield Driver(venue, next_block, 300_000)
        finally:
            anvil.set_automine(True)


async def _sim_driver() -> AsyncIterator[Driver]:
    info = MarketInfo(0.01, 0.01, 10.0, -1.0, 5.0, 3600, 6, market_id="sim")
    venue = SimVenue(
        info,
        mempool=MempoolSpec(drop_prob_per_block=0.0),
        tip_wei=2e9,
        fullness=np.zeros(256),
        base_fee_wei=np.full(256, 1e9),
        gas_limit=30_000_000,
        rng=np.random.default_rng(0),
        gas_units_per_tx=200_000,
        native_price_quote=2000.0,
        book_half_spread_ticks=1000,
        book_depth_base=0.5,
        queue_ahead_base=0.0,
        epoch_s=1_700_006_400,
    )
    state = {"block": 0, "t": 0.0}
    venue.begin_block(0, 0.0, 3000.0, 3000.0)

    async def next_block(dt: float) -> None:
        state["block"] += 1
        state["t"] += max(1.0, dt)
        venue.begin_block(state["block"], state["t"], 3000.0, 3000.0)

    yield Driver(venue, next_block, 300_000)


@pytest_asyncio.fixture(params=["dex", "sim"])
async def drv(
    request: pytest.FixtureRequest,
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
) -> AsyncIterator[Driver]:
    gen = _dex_driver(dex, anvil, accounts, tmp_path) if request.param == "dex" else _sim_driver()
    d = await gen.__anext__()
    try:
        yield d
    finally:
        await gen.aclose()


def _ladder(mid_tick: int, offset: int = 100) -> list[Quote]:
    return [
        Quote(Side.BID, Tick(mid_tick - offset), Lots(5)),
        Quote(Side.ASK, Tick(mid_tick + offset), Lots(5)),
    ]


@pytest.mark.asyncio
async def test_a_batch_lands_once_and_shows_in_the_next_snapshot(drv: Driver) -> None:
    v = drv.venue
    snap = await v.snapshot()
    assert snap.open_orders == ()
    handle = await v.replace_quotes([], _ladder(drv.mid_tick), based_on_block=snap.block_number)
    assert v.quote_in_flight() == handle and v.in_flight(handle)
    await drv.next_block(1.0)
    outcomes = await v.poll_outcomes()
    assert [type(o) for o in outcomes if o.handle == handle] == [TxIncluded]
    assert await v.poll_outcomes() == []  # each outcome once
    assert not v.in_flight(handle) and v.quote_in_flight() is None
    after = await v.snapshot()
    assert sorted((o.side, o.price_ticks) for o in after.open_orders) == [
        (Side.BID, drv.mid_tick - 100),
        (Side.ASK, drv.mid_tick + 100),
    ]
    assert v.snapshot_current(after) and not v.snapshot_current(snap)


@pytest.mark.asyncio
async def test_a_batch_decided_before_the_last_landed_change_is_refused(drv: Driver) -> None:
    v = drv.venue
    old = await v.snapshot()
    await v.replace_quotes([], _ladder(drv.mid_tick), based_on_block=old.block_number)
    await drv.next_block(1.0)
    await v.poll_outcomes()
    with pytest.raises(StaleSnapshot):
        await v.replace_quotes([], _ladder(drv.mid_tick), based_on_block=old.block_number)
    assert v.quote_in_flight() is None
    await drv.next_block(1.0)
    assert len((await v.snapshot()).open_orders) == 2  # never twice the ladder


@pytest.mark.asyncio
async def test_a_newer_batch_replaces_the_pending_one_and_cancel_all_outranks_both(
    drv: Driver,
) -> None:
    v = drv.venue
    snap = await v.snapshot()
    first = await v.replace_quotes([], _ladder(drv.mid_tick), based_on_block=snap.block_number)
    second = await v.replace_quotes(
        [], _ladder(drv.mid_tick, 200), based_on_block=snap.block_number
    )
    cancel = await v.cancel_all()
    assert v.io_health().cancel_pending
    await drv.next_block(1.0)
    outcomes = {o.handle: o for o in await v.poll_outcomes()}
    assert isinstance(outcomes.get(first), TxLost) and isinstance(outcomes.get(second), TxLost)
    assert isinstance(outcomes.get(cancel), TxIncluded)
    assert (await v.snapshot()).open_orders == ()


@pytest.mark.asyncio
async def test_quotes_die_at_their_expiry(drv: Driver) -> None:
    v = drv.venue
    snap = await v.snapshot()
    await v.replace_quotes([], _ladder(drv.mid_tick), snap.block_time_s + 30, snap.block_number)
    await drv.next_block(1.0)
    await v.poll_outcomes()
    assert len((await v.snapshot()).open_orders) == 2
    await drv.next_block(60.0)
    assert (await v.snapshot()).open_orders == ()
