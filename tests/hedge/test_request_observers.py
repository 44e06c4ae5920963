"""Both clients report every request (latency, failure kind) for the operator's metrics."""

from __future__ import annotations

import pytest

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.errors import ChainError, ExchangeError
from agent.hedge import BinanceFuturesClient, Credentials
from sims.cex import SimConfig, SimServer

from .cex_simkit import FAST, SYMBOL, client_config

Seen = list[tuple[str, float, str | None]]


@pytest.mark.asyncio
async def test_exchange_requests_and_a_refused_key_are_reported() -> None:
    seen: Seen = []
    async with SimServer(SimConfig(), faults=FAST) as sim:
        good = Credentials(sim.config.api_key, sim.config.api_secret)
        async with BinanceFuturesClient(
            client_config(sim.url), good, observer=lambda *a: seen.append(a)
        ) as client:
            await client.connect([SYMBOL])
        assert seen and all(f is None and s >= 0 for _, s, f in seen)
        assert any(path.startswith("/fapi/") for path, _, _ in seen)

        seen.clear()
        bad = Credentials(sim.config.api_key, "not-the-secret")
        async with BinanceFuturesClient(
            client_config(sim.url), bad, observer=lambda *a: seen.append(a)
        ) as client:
            with pytest.raises(ExchangeError):
                await client.position(SYMBOL)
        assert seen[-1][2] == "auth", seen


@pytest.mark.asyncio
async def test_rpc_requests_and_an_unreachable_node_are_reported() -> None:
    seen: Seen = []
    # Nothing listens on port 9 of the loopback: every request fails to connect.
    rpc = AsyncRpc(
        RpcConfig(url="http://127.0.0.1:9", timeout_s=0.5, retry_attempts=1),
        observer=lambda *a: seen.append(a),
    )
    async with rpc:
        with pytest.raises(ChainError):
            await rpc.call("eth_blockNumber", [])
    assert seen and seen[0][0] == "eth_blockNumber" and seen[0][2] == "unavailable"
