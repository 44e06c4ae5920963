"""DexVenue's one-batch cycle: the snapshot carries the event poll's and the pipeline's reads.

A quiet cycle (snapshot, events, our transactions' outcomes) is two JSON-RPC requests: the head
block's header, then one batch of the views at that block and everything else; answers that are
wrong for the poll (another block's receipts, an error, a malformed element, reads taken before
one of our broadcasts) are never used: the poll reads on its own, as before.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.net import AiohttpTransport
from agent.types import Lots, Quote, Side, Tick
from agent.venue.base import MarketEvent, OwnFill, Trade, TxIncluded
from agent.venue.dex import DexVenue
from sims.anvil import Anvil
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]

BID, ASK, IOC = 0, 1, 2

Rewrite = Callable[[str, Any], Any]
"""(method, the node's answer message) -> the message the venue sees instead."""


class _Tap(httpx.AsyncBaseTransport):
    """Forwards to the node; counts requests and lets a test rewrite batch elements."""

    def __init__(self, url: str) -> None:
        self._inner = AiohttpTransport(10.0)
        self.requests: list[list[str]] = []
        self.rewrite: Rewrite | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls = body if isinstance(body, list) else [body]
        self.requests.append([c["method"] for c in calls])
        resp = await self._inner.handle_async_request(request)
        if self.rewrite is None or not isinstance(body, list):
            return resp
        by_id = {c["id"]: c["method"] for c in calls}
        msgs = [self.rewrite(by_id[m["id"]], m) for m in json.loads(resp.content)]
        return httpx.Response(200, json=msgs, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest_asyncio.fixture
async def venue(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> AsyncIterator[tuple[DexVenue, _Tap]]:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.push_price(3000.0)
    tap = _Tap(anvil.url)
    rpc = AsyncRpc(RpcConfig(url=anvil.url), transport=tap)
    async with maker_venue(dex, rpc, tmp_path) as v:
        yield v, tap


def _fill_in_the_next_block(dex: Any, accounts: dict[str, LocalAccount]) -> None:
    """Our (the maker's) ask, then a taker's IOC that fills it: Fill events of ours."""
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)


async def _cycle(v: DexVenue) -> tuple[list[MarketEvent], list[Any]]:
    """What the runtime does each cycle before deciding: snapshot, events, outcomes."""
    snap = await v.snapshot()
    events = await v.poll_events(snap.block_number, snap.block_hash)
    return events, await v.poll_outcomes()


@pytest.mark.asyncio
async def test_a_cycle_is_the_header_and_one_batch_and_its_events_match_a_log_read(
    venue: tuple[DexVenue, _Tap], dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    v, tap = venue
    await _cycle(v)  # the cursor reaches the head
    _fill_in_the_next_block(dex, accounts)  # two blocks: the ask, then the fill
    await _cycle(v)  # two new blocks: logs read by range
    dex.place(accounts["taker"], BID, 3001.0, 0.05, flags=IOC, cid=10)  # one new block
    cursor_block, cursor_hash = v._last_block, v._last_hash
    tap.requests.clear()
    events, outcomes = await _cycle(v)
    assert len(tap.requests) == 2 and tap.requests[0] == ["eth_getBlockByNumber"], tap.requests
    assert "eth_getLogs" not in tap.requests[1], tap.requests
    assert "eth_getBlockReceipts" in tap.requests[1] and "eth_feeHistory" in tap.requests[1]
    assert outcomes == []
    fills = [e for e in events if isinstance(e, OwnFill)]
    assert [f.fill.size_lots for f in fills] == [5]
    assert any(isinstance(e, Trade) for e in events)

    # The same block through eth_getLogs (a venue at the same cursor, no snapshot first).
    other = DexVenue(
        rpc=v.rpc, pipe=v.pipe, codec=v.codec, market=v.market_address, session="other"
    )
    other.params = v.params
    other._last_block, other._last_hash = cursor_block, cursor_hash
    head = anvil.latest_block()
    tap.requests.clear()
    again = await other.poll_events(int(head["number"], 16), str(head["hash"]))
    assert ["eth_getLogs"] in tap.requests
    assert again == events  # same events, same keys (block hash, log index)


def _receipts(rewrite: Callable[[Any], Any]) -> Rewrite:
    def f(method: str, msg: Any) -> Any:
        return rewrite(msg) if method == "eth_getBlockReceipts" else msg

    return f


@pytest.mark.parametrize(
    "name,rewrite",
    [
        # The node ran the receipts read at the next (empty) block: no receipts.
        ("another block, empty", _receipts(lambda m: {**m, "result": []})),
        # ...or at another block with transactions.
        (
            "another block",
            _receipts(
                lambda m: {
                    **m,
                    "result": [{**r, "blockHash": "0x" + "11" * 32} for r in m["result"]],
                }
            ),
        ),
        ("one receipt missing", _receipts(lambda m: {**m, "result": m["result"][1:]})),
        (
            "error",
            _receipts(
                lambda m: {
                    "jsonrpc": "2.0",
                    "id": m["id"],
                    "error": {"code": -32000, "message": "busy"},
                }
            ),
        ),
        ("malformed", _receipts(lambda m: {**m, "result": [{"logs": "nonsense"}]})),
        ("null", _receipts(lambda m: {**m, "result": None})),
        (
            "malformed log",
            _receipts(
                lambda m: {
                    **m,
                    "result": [
                        {**r, "logs": [{**lg, "data": "0xzz"} for lg in r["logs"]]}
                        for r in m["result"]
                    ],
                }
            ),
        ),
    ],
)
@pytest.mark.asyncio
async def test_receipts_that_are_not_the_head_blocks_are_not_used(
    venue: tuple[DexVenue, _Tap],
    dex: Any,
    accounts: dict[str, LocalAccount],
    name: str,
    rewrite: Rewrite,
) -> None:
    v, tap = venue
    await _cycle(v)
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    await _cycle(v)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)  # one block, our fill
    tap.rewrite = rewrite
    tap.requests.clear()
    events, _ = await _cycle(v)
    assert ["eth_getLogs"] in tap.requests, (name, tap.requests)
    fills = [e for e in events if isinstance(e, OwnFill)]
    assert [f.fill.size_lots for f in fills] == [10], name


@pytest.mark.asyncio
async def test_a_node_without_block_receipts_is_asked_once(
    venue: tuple[DexVenue, _Tap], dex: Any, accounts: dict[str, LocalAccount]
) -> None:
    v, tap = venue
    await _cycle(v)
    tap.rewrite = _receipts(
        lambda m: {
            "jsonrpc": "2.0",
            "id": m["id"],
            "error": {"code": -32601, "message": "the method does not exist"},
        }
    )
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    await _cycle(v)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)
    tap.requests.clear()
    events, _ = await _cycle(v)
    assert [f.fill.size_lots for f in events if isinstance(f, OwnFill)] == [10]
    assert not any("eth_getBlockReceipts" in r for r in tap.requests)
    assert ["eth_getLogs"] in tap.requests


@pytest.mark.asyncio
async def test_pipeline_reads_taken_before_our_broadcast_are_not_used(
    venue: tuple[DexVenue, _Tap], dex: Any, anvil: Anvil
) -> None:
    # The reads in the snapshot's batch say our quote's nonce is not used yet. Once the quote
    # is sent and mined, a poll that trusted them would not see it included this cycle, and a
    # decision from the next snapshot would not know its orders rest (the in-flight guard).
    v, tap = venue
    await _cycle(v)
    anvil.set_automine(False)
    try:
        snap = await v.snapshot()
        await v.replace_quotes([], [Quote(Side.ASK, Tick(300_500), Lots(10))], 0, snap.block_number)
        anvil.mine()
        await v.poll_events(snap.block_number, snap.block_hash)
        tap.requests.clear()
        outcomes = await v.poll_outcomes()
    finally:
        anvil.set_automine(True)
    assert [type(o) for o in outcomes] == [TxIncluded]
    assert any("eth_feeHistory" in r for r in tap.requests), "read again, not taken stale"
    assert not v.snapshot_current(snap)


@pytest.mark.asyncio
async def test_a_failed_pipeline_read_in_the_batch_is_read_again(
    venue: tuple[DexVenue, _Tap], dex: Any, anvil: Anvil
) -> None:
    v, tap = venue
    await _cycle(v)
    await v.replace_quotes([], [Quote(Side.ASK, Tick(300_500), Lots(10))], 0, None)  # automine

    def nonce_error(method: str, msg: Any) -> Any:
        if method == "eth_getTransactionCount":
            return {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32000, "message": "x"}}
        return msg

    tap.rewrite = nonce_error
    snap = await v.snapshot()
    tap.rewrite = None
    await v.poll_events(snap.block_number, snap.block_hash)
    tap.requests.clear()
    outcomes = await v.poll_outcomes()
    assert [type(o) for o in outcomes] == [TxIncluded]
    assert any("eth_getTransactionCount" in r for r in tap.requests)
