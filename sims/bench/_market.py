"""A freshly deployed market with two funded traders and a two-sided book, for the benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["two_sided_market"]


def two_sided_market(
    w3: Any, record_path: Path, **market_config: Any
) -> tuple[Any, Any, Callable[..., None]]:
    """Deploy a market (``MarketConfig(lot_size=10**16, **market_config)``) by dev account 0;
    fund and deposit for dev accounts 1 and 2; dev 2 rests a bid at 299,000 and an ask at
    301,000 (50 lots each, client ids 1 and 2).

    Returns the deployment record, the market contract and ``send(who, contract, fn, *args)``.
    """
    from hexbytes import HexBytes
    from web3 import Web3

    from agent.chain.contracts import load_artifact, market_abi
    from agent.chain.deploy import MarketConfig, deploy_market, send_transaction
    from agent.chain.signer import dev_account

    dep = deploy_market(
        w3,
        dev_account(0),
        MarketConfig(lot_size=10**16, **market_config),
        record_path=record_path,
    )
    market = w3.eth.contract(address=Web3.to_checksum_address(dep.market), abi=market_abi())
    token = w3.eth.contract(
        address=Web3.to_checksum_address(dep.token), abi=list(load_artifact("FaucetUSD").abi)
    )

    def send(who: Any, c: Any, fn: str, *args: Any) -> None:
        data = HexBytes(c.encode_abi(fn, args=list(args)))
        send_transaction(w3, who, {"to": c.address, "data": data})

    for who in (dev_account(1), dev_account(2)):
        send(who, token, "drip", who.address, 10**12)
        send(who, token, "approve", market.address, 10**12)
        send(who, market, "deposit", 10**12)
    send(dev_account(2), market, "place", (0, 1, 299_000, 50, 1, 0))
    send(dev_account(2), market, "place", (1, 1, 301_000, 50, 2, 0))
    return dep, market, send
