"""The JSON-RPC fault proxy against a real anvil: delays, drops, a black hole, WebSocket heads."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from agent.chain.heads import HeadWatcher
from sims.anvil import Anvil, AnvilConfig
from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig

pytestmark = pytest.mark.chain

_BLOCK = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def test_answers_are_delayed_within_the_range_and_stale() -> None:
    async def go() -> None:
        with Anvil(AnvilConfig(no_mining=True)) as node:
            async with (
                RpcProxy(
                    RpcProxyConfig(upstream_url=node.url, delay_ms=(300.0, 400.0), seed=1)
                ) as proxy,
                httpx.AsyncClient() as client,
            ):
                t0 = time.perf_counter()
                req = asyncio.create_task(client.post(proxy.url, json=_BLOCK))
                await asyncio.sleep(0.15)  # the node has answered; the answer is held
                await asyncio.to_thread(node.mine, 1)
                r = await req
                took = time.perf_counter() - t0
                assert 0.3 <= took < 1.5
                assert r.json()["result"] == "0x0"  # the chain as it was when asked
                assert proxy.stats.answered == 1

    asyncio.run(go())


def test_drop_and_blackhole_answer_nothing() -> None:
    async def go() -> None:
        with Anvil(AnvilConfig(no_mining=True)) as node:
            async with (
                RpcProxy(RpcProxyConfig(upstream_url=node.url, delay_ms=(0.0, 0.0))) as proxy,
                httpx.AsyncClient(timeout=0.5) as client,
            ):
                proxy.set_mode("drop")
                with pytest.raises(httpx.HTTPError):
                    await client.post(proxy.url, json=_BLOCK)
                proxy.set_mode("blackhole")
                with pytest.raises(httpx.ReadTimeout):
                    await client.post(proxy.url, json=_BLOCK)
                proxy.set_mode("forward")
                assert (await client.post(proxy.url, json=_BLOCK)).json()["result"] == "0x0"
                assert (proxy.stats.dropped, proxy.stats.blackholed) == (1, 1)

    asyncio.run(go())


def test_websocket_heads_are_forwarded_and_refused_when_not_forwarding() -> None:
    async def go() -> None:
        with Anvil(AnvilConfig(no_mining=True)) as node:
            async with RpcProxy(RpcProxyConfig(upstream_url=node.url)) as proxy:
                watcher = HeadWatcher(proxy.ws_url)
                watcher.start()
                try:
                    for _ in range(100):
                        if watcher.status.connected:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.to_thread(node.mine, 1)
                    await asyncio.wait_for(watcher.wake.wait(), timeout=5.0)
                    assert watcher.status.last_block == 1
                finally:
                    await watcher.stop()
                proxy.set_mode("drop")
                with pytest.raises(Exception, match="503"):
                    async with connect(proxy.ws_url, open_timeout=2) as ws:
                        await ws.send(json.dumps(_BLOCK))

    asyncio.run(go())


# Init code run by eth_call without a `to`: returns block.timestamp / block.number. Their first
# four bytes differ, so they stand for two views with different selectors.
_TIMESTAMP_CODE = "0x4260005260206000f3"
_NUMBER_CODE = "0x4360005260206000f3"


def test_selected_calls_fail_inside_a_batch_and_the_rest_are_answered() -> None:
    def call(rid: int, code: str, tag: str = "latest") -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": rid, "method": "eth_call", "params": [{"data": code}, tag]}

    async def go() -> None:
        with Anvil(AnvilConfig(no_mining=True)) as node:
            async with (
                RpcProxy(RpcProxyConfig(upstream_url=node.url, delay_ms=(0.0, 0.0))) as proxy,
                httpx.AsyncClient() as client,
            ):
                batch = [call(1, _TIMESTAMP_CODE), call(2, _NUMBER_CODE), _BLOCK | {"id": 3}]

                async def ask() -> dict[object, dict[str, object]]:
                    r = await client.post(proxy.url, json=batch)
                    return {m["id"]: m for m in r.json()}

                proxy.fail_calls({_TIMESTAMP_CODE[:10]: "error"})
                by_id = await ask()
                assert "error" in by_id[1] and "result" not in by_id[1]
                assert by_id[2]["result"] == "0x" + "0" * 64  # block 0: the node's answer
                assert by_id[3]["result"] == "0x0"
                # At a block number too (the agent re-reads a failed view at its block).
                r = await client.post(proxy.url, json=call(4, _TIMESTAMP_CODE, "0x0"))
                assert "error" in r.json()
                proxy.fail_calls({_NUMBER_CODE[:10]: "garbage"})
                by_id = await ask()
                assert by_id[2]["result"] == "0xdeadbeef"
                assert len(str(by_id[1]["result"])) == 66
                proxy.fail_calls({})
                by_id = await ask()
                assert all("result" in m for m in by_id.values())
                assert proxy.stats.calls_failed == 3
                with pytest.raises(ValueError, match="selector"):
                    proxy.fail_calls({"markPrice": "error"})

    asyncio.run(go())
