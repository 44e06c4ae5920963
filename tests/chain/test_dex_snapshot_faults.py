"""DexVenue.snapshot when one of its views fails: the policy per view, at the header's block.

Against a real anvil and the real market; a transport in front of the node rewrites one view's
answer by selector and block tag, as a node would answer it:

* at ``"latest"`` only, with ``Panic(0x11)``: what anvil answers when a ``"latest"`` call races
  a block being mined (the call runs on the new block's state with the previous block's time,
  and the mark's ``block.timestamp - book.lastTouch`` underflows). Every view is read at the
  header's block hash, so that answer never reaches a snapshot; anvil answers the same panic at
  its head block's hash while the next block is mined: a failed view is read again once at the
  same block;
* everywhere: the account with a node error fails the cycle (ChainError naming the view); the
  account with the market's ``StaleOracle`` revert leaves the position unread and the index
  missing (the runtime then pulls quotes); the oracle round's garbage keeps the last
  ``updatedAt`` read.
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
from eth_utils.crypto import keccak

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.errors import ChainError
from agent.net import AiohttpTransport
from agent.venue.dex import DexVenue
from sims.anvil import Anvil
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]

BID, ASK, IOC = 0, 1, 2
_PANIC_11 = "0x4e487b71" + f"{0x11:064x}"
_LATEST_ROUND = "0xfeaf968c"

Fault = Callable[[str, str], dict[str, Any] | None]
"""(selector, block tag) of an eth_call -> the answer message's replacement, or None."""


class _FaultTap(httpx.AsyncBaseTransport):
    """Forwards to the node; replaces the answers of the eth_calls `fault` picks."""

    def __init__(self) -> None:
        self._inner = AiohttpTransport(10.0)
        self.fault: Fault | None = None
        self.tags: list[str] = []
        """The block tag of every faulted call asked (in order)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self._inner.handle_async_request(request)
        body = json.loads(request.content)
        if self.fault is None or not isinstance(body, list):
            return resp
        picked: dict[Any, dict[str, Any]] = {}
        for c in body:
            if c["method"] == "eth_call":
                tag = str(c["params"][1])
                out = self.fault(str(c["params"][0]["data"])[:10], tag)
                if out is not None:
                    picked[c["id"]] = out
                    self.tags.append(tag)
        msgs = json.loads(await resp.aread())
        for m in msgs:
            if m["id"] in picked:
                m.pop("result", None)
                m.update(picked[m["id"]])
        return httpx.Response(200, json=msgs, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _revert(data: str) -> dict[str, Any]:
    return {"error": {"code": 3, "message": "execution reverted", "data": data}}


@pytest_asyncio.fixture
async def venue(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> AsyncIterator[tuple[DexVenue, _FaultTap]]:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.push_price(3000.0)
    # A position of ours (the venue signs as the maker): the account's view reads the mark.
    dex.place(accounts["maker"], ASK, 3001.0, 0.2)
    dex.place(accounts["taker"], BID, 3001.0, 0.1, flags=IOC, cid=9)
    tap = _FaultTap()
    rpc = AsyncRpc(RpcConfig(url=anvil.url), transport=tap)
    async with maker_venue(dex, rpc, tmp_path) as v:
        yield v, tap


def _selector(v: DexVenue, name: str) -> str:
    args = [v.account] if name in ("accountState", "openOrders") else []
    return "0x" + v.codec.encode_call(name, *args)[:4].hex()


@pytest.mark.asyncio
async def test_no_view_is_read_at_latest_and_a_failed_view_is_read_again_at_the_block(
    venue: tuple[DexVenue, _FaultTap],
) -> None:
    v, tap = venue
    clean = await v.snapshot()
    assert clean.mark and clean.position is not None and clean.position.size_lots != 0
    racy = {_selector(v, "markPrice"), _selector(v, "accountState")}
    tap.fault = lambda sel, tag: _revert(_PANIC_11) if sel in racy and tag == "latest" else None
    snap = await v.snapshot()
    assert snap.block_number == clean.block_number
    assert snap.mark == clean.mark
    assert snap.position == clean.position
    assert tap.tags == []  # every view asked at the header's block, none at "latest"
    # Anvil's head block read while the next is mined: the panic once, then the block's answer.
    asked: list[str] = []

    def racing_once(sel: str, tag: str) -> dict[str, Any] | None:
        if sel not in racy:
            return None
        asked.append(tag)
        return _revert(_PANIC_11) if len(asked) <= 2 else None

    tap.fault = racing_once
    snap = await v.snapshot()
    assert snap.mark == clean.mark and snap.position == clean.position
    assert len(asked) == 4 and all(clean.block_hash in t for t in asked)  # re-read, same block
    # The mark reverting at that block whatever is asked: missing, asked twice.
    tap.tags.clear()
    mark = _selector(v, "markPrice")
    tap.fault = lambda sel, tag: _revert(_PANIC_11) if sel == mark else None
    snap = await v.snapshot()
    assert snap.mark is None and snap.position == clean.position
    assert len(tap.tags) == 2 and all(clean.block_hash in t for t in tap.tags)


@pytest.mark.asyncio
async def test_the_account_failing_fails_the_cycle_unless_the_oracle_reverted(
    venue: tuple[DexVenue, _FaultTap],
) -> None:
    v, tap = venue
    good = await v.snapshot()
    acct = _selector(v, "accountState")
    tap.fault = lambda sel, tag: (
        {"error": {"code": -32000, "message": "header not found"}} if sel == acct else None
    )
    with pytest.raises(ChainError, match="accountState view failed at block"):
        await v.snapshot()
    tap.fault = lambda sel, tag: {"result": "0xdeadbeef"} if sel == acct else None
    with pytest.raises(ChainError, match="accountState view answered garbage"):
        await v.snapshot()
    # The market's own oracle revert: the position is not read, the index goes with it.
    stale = "0x" + keccak(text="StaleOracle(uint256,uint256)")[:4].hex() + f"{1:064x}{99:064x}"
    tap.fault = lambda sel, tag: _revert(stale) if sel == acct else None
    snap = await v.snapshot()
    assert snap.position is None
    assert snap.index is None and snap.index_error == "StaleOracle"
    assert snap.mark == good.mark  # the mark's own read answered


@pytest.mark.asyncio
async def test_a_lost_oracle_round_keeps_the_last_updated_at_and_a_lost_mark_is_missing(
    venue: tuple[DexVenue, _FaultTap],
) -> None:
    v, tap = venue
    good = await v.snapshot()
    assert good.oracle_updated_s > 0
    mark = _selector(v, "markPrice")
    tap.fault = lambda sel, tag: {"result": "0xdeadbeef"} if sel in (_LATEST_ROUND, mark) else None
    snap = await v.snapshot()
    assert snap.oracle_updated_s == good.oracle_updated_s
    assert snap.mark is None
    assert snap.index == good.index and snap.position == good.position
