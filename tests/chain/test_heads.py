"""New-head subscription: wakes the loop on blocks, degrades to polling without an endpoint."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from agent.app import build_agent
from agent.chain.heads import HeadWatcher, ws_url_for
from agent.config import AgentConfig
from sims.anvil import Anvil

pytestmark = pytest.mark.chain


def test_ws_url_for() -> None:
    assert ws_url_for("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert ws_url_for("https://rpc.example/v1") == "wss://rpc.example/v1"
    assert ws_url_for("ws://x:1") == "ws://x:1"


@pytest.mark.asyncio
async def test_watcher_wakes_on_new_blocks(anvil: Anvil) -> None:
    watcher = HeadWatcher(ws_url_for(anvil.url))
    watcher.start()
    try:
        for _ in range(50):
            if watcher.status.connected:
                break
            await asyncio.sleep(0.05)
        assert watcher.status.connected
        watcher.wake.clear()
        anvil.mine()
        await asyncio.wait_for(watcher.wake.wait(), timeout=5)
        assert watcher.status.last_block == anvil.block_number()
    finally:
        await watcher.stop()


@pytest.mark.asyncio
async def test_no_endpoint_means_polling_not_a_crash() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    watcher = HeadWatcher(f"ws://127.0.0.1:{port}", retry_initial_s=0.05)
    watcher.start()
    await asyncio.sleep(0.3)
    assert not watcher.status.connected
    assert watcher.status.last_error and watcher.status.reconnects >= 1
    await watcher.stop()


@pytest.mark.asyncio
async def test_the_loop_reacts_to_a_block_long_before_its_poll_interval(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.place(accounts["taker"], 0, 2990.0, 0.5)
    dex.place(accounts["taker"], 1, 3010.0, 0.5)
    cfg = AgentConfig.model_validate(
        {
            "chain": {"rpc_url": anvil.url, "deployment_file": str(dex.record)},
            "signer": {"dev_index": 1},
            "hedge": {"enabled": False},
            "storage": {"data_dir": str(tmp_path / "data")},
            "quoting": {"base_size_base": 0.1, "ref_depth_base": 0.5, "native_price_quote": 100.0},
        }
    )
    agent, closers = await build_agent(cfg)
    stop = asyncio.Event()
    heads = HeadWatcher(ws_url_for(anvil.url))
    task = asyncio.ensure_future(agent.run(stop, poll_interval_s=10.0, heads=heads))
    try:
        maker = accounts["maker"].address
        deadline = time.monotonic() + 20
        while not any(o[2] == 1 for o in dex.open_orders(maker)):
            assert time.monotonic() < deadline, "the agent never quoted"
            await asyncio.sleep(0.05)
        ask = min(o[3] for o in dex.open_orders(maker) if o[2] == 1) * 0.01
        t0 = time.monotonic()
        await asyncio.to_thread(dex.place, accounts["taker"], 0, ask, 0.05, 2, 9)
        while agent.status.fills == 0:
            assert time.monotonic() - t0 < 5.0, "fill not seen: the loop waited for its poll"
            await asyncio.sleep(0.02)
        assert heads.status.heads >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        for c in closers:
            r = c()
            if asyncio.iscoroutine(r):
                await r
