"""DexVenue.snapshot reads every view at one block: the header's, by hash.

Against a real anvil and the real market, through the RPC fault proxy (it records the requests
and plays the node's faults):

* every view of a snapshot (and the head block's receipts) is asked at the header's block hash;
* a backend that answers ``"latest"`` at the block before the head (a load-balanced RPC whose
  nodes lag each other) cannot make a snapshot whose orders are one block's and header another's;
* a backend that does not have the header's block is read again once at a fresh head; still
  missing, the cycle fails with a ChainError naming the block;
* a reorg between the header read and the views: the views are read again at the new head,
  never answered from the new chain under the old block's hash.

Each snapshot is checked against the market read directly at the snapshot's block.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.errors import ChainError
from agent.venue.base import VenueSnapshot
from agent.venue.dex import DexVenue
from sims.anvil import Anvil
from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]

BID, ASK, IOC = 0, 1, 2
_UNKNOWN_HASH = "0x" + "11" * 32


class _Recorder:
    """The proxy's request hook: records every request body, optionally rewriting it first."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.rewrite: Any = None
        """(parsed body) -> parsed body the node sees instead, or None to leave it."""

    def __call__(self, body: bytes) -> bytes:
        msg = json.loads(body)
        if self.rewrite is not None:
            msg = self.rewrite(msg)
            body = json.dumps(msg).encode()
        self.requests.append(msg)
        return body

    def header_reads(self) -> list[Any]:
        return [
            r
            for r in self.requests
            if isinstance(r, dict) and r["method"] == "eth_getBlockByNumber"
        ]

    def batches(self) -> list[list[Any]]:
        return [r for r in self.requests if isinstance(r, list)]


@pytest_asyncio.fixture
async def venue(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> AsyncIterator[tuple[DexVenue, _Recorder, RpcProxy]]:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.push_price(3000.0)
    # A position of ours (the venue signs as the maker) and an order still resting.
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)
    proxy = RpcProxy(RpcProxyConfig(upstream_url=anvil.url, delay_ms=(0.0, 0.0), websocket=False))
    await proxy.start()
    recorder = _Recorder()
    proxy.rewrite_request = recorder
    rpc = AsyncRpc(RpcConfig(url=proxy.url))
    async with maker_venue(dex, rpc, tmp_path) as v:
        try:
            yield v, recorder, proxy
        finally:
            await proxy.stop()


def _assert_one_block(snap: VenueSnapshot, dex: Any, anvil: Anvil, who: str) -> None:
    """The snapshot's header is canonical and its orders and position are that block's."""
    assert anvil.rpc("eth_getBlockByNumber", [hex(snap.block_number), False])["hash"] == (
        snap.block_hash
    )
    at = snap.block_number
    orders = dex.market.functions.openOrders(who).call(block_identifier=at)
    assert [o.order_id for o in snap.open_orders] == [int(o[0]) for o in orders]
    assert snap.position is not None
    lots = int(dex.market.functions.accountState(who).call(block_identifier=at)[1])
    assert snap.position.size_lots == lots


def _pinned(req: Any) -> Any:
    """The block an eth_call or receipts read of a batch asked at."""
    return req["params"][1] if req["method"] == "eth_call" else req["params"][0]


@pytest.mark.asyncio
async def test_every_view_is_read_at_the_headers_block_hash(
    venue: tuple[DexVenue, _Recorder, RpcProxy],
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
) -> None:
    v, rec, _ = venue
    maker = accounts["maker"].address
    for cid in (31, 32, 33):
        dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=cid)  # a new block with our order
        rec.requests.clear()
        snap = await v.snapshot()
        assert rec.header_reads() == [
            {
                "jsonrpc": "2.0",
                "id": rec.header_reads()[0]["id"],
                "method": "eth_getBlockByNumber",
                "params": ["latest", False],
            }
        ]
        (batch,) = rec.batches()
        calls = [r for r in batch if r["method"] == "eth_call"]
        assert len(calls) == 8
        at = {"blockHash": snap.block_hash, "requireCanonical": True}
        assert [_pinned(r) for r in calls] == [at] * 8
        receipts = [r for r in batch if r["method"] == "eth_getBlockReceipts"]
        assert [_pinned(r) for r in receipts] == [snap.block_hash]
        assert cid in {o.client_id for o in snap.open_orders}
        _assert_one_block(snap, dex, anvil, maker)


@pytest.mark.asyncio
async def test_a_backend_answering_latest_at_an_older_block_cannot_mix_blocks(
    venue: tuple[DexVenue, _Recorder, RpcProxy],
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
) -> None:
    v, rec, _ = venue
    dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=41)  # our order, in the head block only
    head = int(anvil.latest_block()["number"], 16)
    behind = hex(head - 1)

    def lagging(msg: Any) -> Any:
        # The backends answering calls are one block behind the one answering the header.
        for r in msg if isinstance(msg, list) else []:
            if r["method"] in ("eth_call", "eth_getBlockReceipts"):
                r["params"] = [behind if p == "latest" else p for p in r["params"]]
        return msg

    rec.rewrite = lagging
    snap = await v.snapshot()
    assert snap.block_number == head
    assert 41 in {o.client_id for o in snap.open_orders}  # the head block's order, not missing
    _assert_one_block(snap, dex, anvil, accounts["maker"].address)


@pytest.mark.asyncio
async def test_a_backend_without_the_block_is_read_again_then_fails_naming_it(
    venue: tuple[DexVenue, _Recorder, RpcProxy],
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
) -> None:
    v, rec, _ = venue
    misses = {"left": 1}

    def without_the_block(msg: Any) -> Any:
        # A backend that has not seen the header's block yet (anvil: "Resource not found").
        if isinstance(msg, list) and misses["left"] > 0:
            misses["left"] -= 1
            for r in msg:
                if r["method"] == "eth_call":
                    r["params"][1] = {**r["params"][1], "blockHash": _UNKNOWN_HASH}
        return msg

    rec.rewrite = without_the_block
    rec.requests.clear()
    snap = await v.snapshot()  # missed once: read again, answered
    assert len(rec.header_reads()) == 2 and len(rec.batches()) == 2
    _assert_one_block(snap, dex, anvil, accounts["maker"].address)

    rec.requests.clear()
    misses["left"] = 10**6  # never catches up
    head = anvil.latest_block()
    expected = rf"view failed at block {int(head['number'], 16)} {head['hash']}: .*canonical"
    with pytest.raises(ChainError, match=expected):
        await v.snapshot()
    assert len(rec.header_reads()) == 2 and len(rec.batches()) == 2  # once again, no more


@pytest.mark.asyncio
async def test_a_reorg_between_the_header_and_the_views_is_read_again_at_the_new_head(
    venue: tuple[DexVenue, _Recorder, RpcProxy],
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
) -> None:
    v, rec, proxy = venue
    dex.place(accounts["maker"], BID, 2990.0, 0.1, cid=51)  # our order, in the head block
    old = anvil.latest_block()
    reorged = asyncio.Event()

    async def reorg_after_the_header(body: bytes) -> None:
        msg = json.loads(body)
        header = isinstance(msg, dict) and msg["method"] == "eth_getBlockByNumber"
        if header and not reorged.is_set():
            reorged.set()
            # The head block is replaced by one without our order, after the venue's header
            # read was answered and before its views are asked.
            await asyncio.to_thread(anvil.reorg, 1)

    proxy.before_answer = reorg_after_the_header
    rec.requests.clear()
    snap = await v.snapshot()
    assert reorged.is_set()
    new = anvil.latest_block()
    assert new["hash"] != old["hash"] and int(new["number"], 16) == int(old["number"], 16)
    assert snap.block_hash == new["hash"]
    assert [r["params"][0] for r in rec.header_reads()] == ["latest", "latest"]
    first, second = rec.batches()
    assert {json.dumps(_pinned(r)) for r in first if r["method"] == "eth_call"} == {
        json.dumps({"blockHash": old["hash"], "requireCanonical": True})
    }
    assert {json.dumps(_pinned(r)) for r in second if r["method"] == "eth_call"} == {
        json.dumps({"blockHash": new["hash"], "requireCanonical": True})
    }
    assert 51 not in {o.client_id for o in snap.open_orders}  # the new chain has no such order
    _assert_one_block(snap, dex, anvil, accounts["maker"].address)
    assert re.fullmatch(r"0x[0-9a-f]{64}", snap.block_hash)
