"""DexVenue's batched account-health read (the keeper's liquidation scan) against a real market."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from agent.chain.rpc import AsyncRpc, RpcConfig
from sims.anvil import Anvil
from tests.chain.conftest import maker_venue

pytestmark = [pytest.mark.chain]


@pytest.mark.asyncio
async def test_account_health_many_equals_one_read_per_account(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    dex.fund(accounts["maker"], 50_000)
    dex.fund(accounts["taker"], 20_000)
    dex.push_price(3000.0)
    dex.place(accounts["maker"], 1, 3000.0, 0.5)
    dex.place(accounts["taker"], 0, 3000.0, 0.5, flags=2)  # IOC: both now hold a position
    rpc = AsyncRpc(RpcConfig(url=anvil.url))
    async with maker_venue(dex, rpc, tmp_path) as venue:
        who = [accounts["maker"].address, accounts["taker"].address, accounts["keeper"].address]
        calls0 = rpc.health.total_calls
        many = await venue.account_health_many(who)
        assert rpc.health.total_calls - calls0 == 1  # one round trip for the whole scan
        one = [await venue.account_health(a) for a in who]
        assert many == one
        assert many[0] is not None and many[0].position_lots == -50
        assert many[1] is not None and many[1].position_lots == 50
        assert many[2] is not None and many[2].position_lots == 0  # never traded: zeros
        assert await venue.account_health_many([]) == []
