"""The oracle keeper's feed side on anvil: only the deployer's key may push, and a push lands."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from agent.errors import ConfigError
from agent.oracle_keeper import FeedPusher
from sims.anvil import Anvil

pytestmark = pytest.mark.chain


def test_only_the_feed_deployer_can_keep_it(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    with pytest.raises(ConfigError, match="accepts pushes only from its deployer"):
        FeedPusher(anvil.w3, accounts["maker"], dex.dep.market)
    pusher = FeedPusher(anvil.w3, accounts["deployer"], dex.dep.market)
    pusher.push(Decimal("3123.45"))
    price, updated = pusher.answer()
    assert price == Decimal("3123.45")
    assert updated == anvil.w3.eth.get_block("latest")["timestamp"]
