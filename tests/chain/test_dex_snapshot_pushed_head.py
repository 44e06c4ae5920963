"""DexVenue.snapshot at a head the new-heads subscription pushed: one round trip, one block.

Against a real anvil and the real market, through the RPC fault proxy (it counts and records
the HTTP requests, and forwards the WebSocket subscription the head comes from):

* given a pushed head, the snapshot is one request: every view and the head block's receipts
  at the pushed hash, no header read; the block's number, time and fees are the pushed head's,
  and the event poll that follows needs no request of its own;
* without a pushed head the snapshot reads the header first, as before (two requests);
* a pushed head reorged out before the snapshot, or one the node does not have (a backend
  behind the one that pushed it): the snapshot falls back to the header read and is the new
  chain's, whole;
* the runtime's loop passes its subscription's heads to its snapshots.

Each snapshot is checked against the market read directly at the snapshot's block.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from agent.app import build_agent
from agent.chain.heads import HeadWatcher
from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.config import AgentConfig
from agent.types import HeadRef
from agent.venue.base import OrderPlaced, VenueSnapshot
from agent.venue.dex import DexVenue
from sims.anvil import Anvil
from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]

BID, ASK, IOC = 0, 1, 2
_UNKNOWN_HASH = "0x" + "11" * 32


class _Recorder:
    """The proxy's request hook: records every request body the node sees."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, body: bytes) -> bytes:
        self.requests.append(json.loads(body))
        return body

    def header_reads(self) -> list[Any]:
        return [
            r
            for r in self.requests
            if isinstance(r, dict)
            and r["method"] == "eth_getBlockByNumber"
            and r["params"][0] == "latest"
        ]

    def batches(self) -> list[list[Any]]:
        return [r for r in self.requests if isinstance(r, list)]


@dataclasses.dataclass
class _Rig:
    venue: DexVenue
    rec: _Recorder
    proxy: RpcProxy
    heads: HeadWatcher

    async def pushed(self, number: int) -> HeadRef:
        """The watcher's head once it has pushed block `number`."""
        deadline = time.monotonic() + 10
        while self.heads.latest is None or self.heads.latest.number < number:
            assert time.monotonic() < deadline, f"block {number} was never pushed"
            await asyncio.sleep(0.01)
        assert self.heads.latest.number == number
        return self.heads.latest


@pytest_asyncio.fixture
async def rig(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> AsyncIterator[_Rig]:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.push_price(3000.0)
    # A position of ours (the venue signs as the maker) and an order still resting.
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)
    proxy = RpcProxy(RpcProxyConfig(upstream_url=anvil.url, delay_ms=(0.0, 0.0)))
    await proxy.start()
    rec = _Recorder()
    proxy.rewrite_request = rec
    heads = HeadWatcher(proxy.ws_url)
    heads.start()
    rpc = AsyncRpc(RpcConfig(url=proxy.url))
    try:
        async with maker_venue(dex, rpc, tmp_path) as v:
            deadline = time.monotonic() + 10
            while not heads.status.connected:
                assert time.monotonic() < deadline, "the head subscription never connected"
                await asyncio.sleep(0.01)
            # Start at the head, the event cursor on it (a cycle's state between blocks).
            snap = await v.snapshot()
            await v.poll_events(snap.block_number, snap.block_hash)
            yield _Rig(v, rec, proxy, heads)
    finally:
        await heads.stop()
        await proxy.stop()


def _assert_one_block(snap: VenueSnapshot, dex: Any, anvil: Anvil, who: str) -> None:
    """The snapshot's block is canonical, and its header fields, orders and position are its."""
    block = anvil.rpc("eth_getBlockByNumber", [hex(snap.block_number), False])
    assert block["hash"] == snap.block_hash
    assert snap.block_time_s == int(block["timestamp"], 16)
    assert snap.base_fee_wei == int(block["baseFeePerGas"], 16)
    assert (snap.gas_used, snap.gas_limit) == (
        int(block["gasUsed"], 16),
        int(block["gasLimit"], 16),
    )
    at = snap.block_number
    orders = dex.market.functions.openOrders(who).call(block_identifier=at)
    assert [o.order_id for o in snap.open_orders] == [int(o[0]) for o in orders]
    assert snap.position is not None
    lots = int(dex.market.functions.accountState(who).call(block_identifier=at)[1])
    assert snap.position.size_lots == lots


def _pins(batch: list[Any]) -> set[str]:
    """The blocks the batch's views and receipts read asked at, as JSON."""
    out = set()
    for r in batch:
        if r["method"] == "eth_call":
            out.add(json.dumps(r["params"][1]))
        elif r["method"] == "eth_getBlockReceipts":
            out.add(json.dumps({"blockHash": r["params"][0], "requireCanonical": True}))
    return out


def _at(block_hash: str) -> set[str]:
    return {json.dumps({"blockHash": block_hash, "requireCanonical": True})}


@pytest.mark.asyncio
async def test_a_pushed_head_is_one_round_trip_at_its_hash(
    rig: _Rig, dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    maker = accounts["maker"].address
    for cid, listed in ((31, True), (32, False), (33, False)):
        dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=cid)  # a new block with our order
        head = await rig.pushed(anvil.block_number())
        assert head.tx_hashes is not None  # anvil's pushed header lists its transactions
        if not listed:
            # Geth's does not: the receipts' completeness is then checked by their gas.
            head = dataclasses.replace(head, tx_hashes=None)
        rig.rec.requests.clear()
        before = rig.proxy.stats.requests
        snap = await rig.venue.snapshot(head)
        assert rig.proxy.stats.requests - before == 1
        assert rig.rec.header_reads() == []
        (batch,) = rig.rec.batches()
        assert sum(r["method"] == "eth_call" for r in batch) == 8
        assert _pins(batch) == _at(head.hash)
        assert (snap.block_number, snap.block_hash) == (head.number, head.hash)
        assert cid in {o.client_id for o in snap.open_orders}
        _assert_one_block(snap, dex, anvil, maker)
        # The block's events come from its receipts, fetched with the snapshot: the cycle's
        # reads are that one request.
        events = await rig.venue.poll_events(snap.block_number, snap.block_hash)
        assert rig.proxy.stats.requests - before == 1
        placed = [e for e in events if isinstance(e, OrderPlaced)]
        assert [e.client_id for e in placed] == [cid]


@pytest.mark.asyncio
async def test_without_a_pushed_head_the_header_is_read_first(
    rig: _Rig, dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=35)
    rig.rec.requests.clear()
    before = rig.proxy.stats.requests
    snap = await rig.venue.snapshot()
    assert rig.proxy.stats.requests - before == 2
    assert len(rig.rec.header_reads()) == 1 and rig.rec.requests[0]["params"] == ["latest", False]
    (batch,) = rig.rec.batches()
    assert _pins(batch) == _at(snap.block_hash)
    assert 35 in {o.client_id for o in snap.open_orders}
    _assert_one_block(snap, dex, anvil, accounts["maker"].address)


@pytest.mark.asyncio
async def test_a_reorged_out_pushed_head_falls_back_to_the_new_chain(
    rig: _Rig, dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    maker = accounts["maker"].address
    dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=51)  # our order, in the head block
    old = await rig.pushed(anvil.block_number())
    # The head block is replaced by one without our order after it was pushed and before the
    # snapshot reads at it.
    await asyncio.to_thread(anvil.reorg, 1)
    new = anvil.latest_block()
    assert new["hash"] != old.hash and int(new["number"], 16) == old.number
    rig.rec.requests.clear()
    snap = await rig.venue.snapshot(old)
    assert snap.block_hash == new["hash"]
    assert 51 not in {o.client_id for o in snap.open_orders}  # the new chain has no such order
    _assert_one_block(snap, dex, anvil, maker)
    # At the pushed hash (refused), then today's path: the header, the views at its hash.
    first, header, second = rig.rec.requests
    assert isinstance(first, list) and _pins(first) == _at(old.hash)
    assert header["method"] == "eth_getBlockByNumber" and header["params"] == ["latest", False]
    assert isinstance(second, list) and _pins(second) == _at(new["hash"])
    # The event poll that follows delivers nothing of the orphaned block.
    events = await rig.venue.poll_events(snap.block_number, snap.block_hash)
    assert not [e for e in events if isinstance(e, OrderPlaced)]


@pytest.mark.asyncio
async def test_a_pushed_head_the_node_does_not_have_falls_back_to_the_header(
    rig: _Rig, dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=61)
    head = await rig.pushed(anvil.block_number())
    # A backend behind the one that pushed the head: it has no block by that hash yet.
    ahead = dataclasses.replace(head, hash=_UNKNOWN_HASH)
    rig.rec.requests.clear()
    snap = await rig.venue.snapshot(ahead)
    assert (snap.block_number, snap.block_hash) == (head.number, head.hash)
    assert len(rig.rec.header_reads()) == 1 and len(rig.rec.batches()) == 2
    assert 61 in {o.client_id for o in snap.open_orders}
    _assert_one_block(snap, dex, anvil, accounts["maker"].address)


@pytest.mark.asyncio
async def test_the_loop_reads_its_snapshots_at_the_pushed_heads(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.place(accounts["taker"], BID, 2990.0, 0.5)
    dex.place(accounts["taker"], ASK, 3010.0, 0.5)
    proxy = RpcProxy(RpcProxyConfig(upstream_url=anvil.url, delay_ms=(0.0, 0.0)))
    await proxy.start()
    rec = _Recorder()
    proxy.rewrite_request = rec
    cfg = AgentConfig.model_validate(
        {
            "chain": {"rpc_url": proxy.url, "deployment_file": str(dex.record)},
            "signer": {"dev_index": 1},
            "hedge": {"enabled": False},
            "storage": {"data_dir": str(tmp_path / "data")},
            "quoting": {"base_size_base": 0.1, "ref_depth_base": 0.5, "native_price_quote": 100.0},
        }
    )
    agent, closers = await build_agent(cfg)
    stop = asyncio.Event()
    heads = HeadWatcher(proxy.ws_url)
    # A poll interval far longer than the test: every cycle after start-up is a pushed head's.
    task = asyncio.ensure_future(agent.run(stop, poll_interval_s=60.0, heads=heads))
    try:
        deadline = time.monotonic() + 20
        while not heads.status.connected or agent.last_snapshot is None:
            assert time.monotonic() < deadline, "the agent never started"
            await asyncio.sleep(0.02)
        for _ in range(3):
            await asyncio.to_thread(anvil.mine, 1)
            number = anvil.block_number()
            while agent.last_snapshot.block_number < number:
                assert time.monotonic() < deadline, f"no snapshot of block {number}"
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        for c in closers:
            r = c()
            if asyncio.iscoroutine(r):
                await r
        await proxy.stop()
    # A snapshot batch (its eth_calls at a block hash) not preceded by a header read was read
    # at a pushed head; each is a canonical block's.
    pushed = []
    for prev, req in zip(rec.requests, rec.requests[1:], strict=False):
        if not isinstance(req, list) or not any(r["method"] == "eth_call" for r in req):
            continue
        (pin,) = {json.dumps(r["params"][1]) for r in req if r["method"] == "eth_call"}
        header = isinstance(prev, dict) and prev["method"] == "eth_getBlockByNumber"
        if not header and "blockHash" in pin:
            pushed.append(json.loads(pin)["blockHash"])
    assert len(pushed) >= 3
    for h in pushed:
        assert anvil.rpc("eth_getBlockByHash", [h, False]) is not None
