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
