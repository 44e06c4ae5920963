"""The perp DEX on a real node: deploy with agent.chain.deploy, trade from two accounts through
plain signed transactions, cross a funding boundary with a time warp, decode custom errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from agent.chain.abi import ErrorDecoder, order_id_side_tick
from agent.chain.contracts import error_decoder, load_artifact, market_abi
from agent.chain.deploy import Deployment, MarketConfig, deploy_market, send_transaction
from agent.errors import ToolchainError, TxReverted
from sims.anvil import Anvil

pytestmark = pytest.mark.chain

POST_ONLY, IOC = 1, 2
BID, ASK = 0, 1
PX = 300_000  # $3000.00 in $0.01 ticks
USD = 10**6


@pytest.fixture
def decoder() -> ErrorDecoder:
    return error_decoder()


@pytest.fixture
def deployed(
    w3: Web3, accounts: dict[str, LocalAccount], tmp_path: Path
) -> tuple[Deployment, Contract, Contract, Contract]:
    # Lots of 0.01 ETH make one interval of pure-interest funding an exact 375 units per lot.
    config = MarketConfig(lot_size=10**16, tick_size=10_000)
    dep = deploy_market(w3, accounts["deployer"], config, record_path=tmp_path / "dep.json")
    market = w3.eth.contract(address=Web3.to_checksum_address(dep.market), abi=market_abi())
    token = w3.eth.contract(
        address=Web3.to_checksum_address(dep.token), abi=list(load_artifact("FaucetUSD").abi)
    )
    feed = w3.eth.contract(
        address=Web3.to_checksum_address(dep.oracle),
        abi=list(load_artifact("ManualPriceFeed").abi),
    )
    return dep, market, token, feed


def _send(
    w3: Web3, who: LocalAccount, c: Contract, fn: str, *args: Any, decoder: ErrorDecoder
) -> Any:
    data = c.encode_abi(fn, args=list(args))
    return send_transaction(w3, who, {"to": c.address, "data": HexBytes(data)}, decoder=decoder)


def _fund(
    w3: Web3, who: LocalAccount, token: Contract, market: Contract, amount: int, d: ErrorDecoder
) -> None:
    _send(w3, who, token, "drip", who.address, amount, decoder=d)
    _send(w3, who, token, "approve", market.address, amount, decoder=d)
    _send(w3, who, market, "deposit", amount, decoder=d)


def _place(side: int, tick: int, lots: int, flags: int, client_id: int = 1) -> tuple[int, ...]:
    return (side, flags, tick, lots, client_id, 0)


def test_deploy_writes_record(
    deployed: tuple[Deployment, Contract, Contract, Contract], w3: Web3, tmp_path: Path
) -> None:
    dep, market, _, _ = deployed
    again = Deployment.load(tmp_path / "dep.json")
    assert again == dep
    assert dep.chain_id == w3.eth.chain_id
    assert market.functions.extension().call() == dep.extension
    assert market.functions.lotSize().call() == 10**16
    assert dep.params["taker_fee_bps"] == 5
    assert len(w3.eth.get_code(Web3.to_checksum_address(dep.market))) > 0


def test_two_accounts_trade_and_funding_crosses_boundary(
    deployed: tuple[Deployment, Contract, Contract, Contract],
    w3: Web3,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    decoder: ErrorDecoder,
) -> None:
    _, market, token, feed = deployed
    maker, taker, keeper = accounts["maker"], accounts["taker"], accounts["keeper"]
    deployer = accounts["deployer"]
    _fund(w3, maker, token, market, 100_000 * USD, decoder)
    _fund(w3, taker, token, market, 100_000 * USD, decoder)

    rc = _send(w3, maker, market, "place", _place(ASK, PX, 10, POST_ONLY, 42), decoder=decoder)
    placed = market.events.OrderPlaced().process_receipt(rc, errors=DISCARD)
    assert placed[0]["args"]["clientId"] == 42
    order_id = placed[0]["args"]["orderId"]
    assert market.functions.bestAsk().call() == PX

    rc = _send(w3, taker, market, "place", _place(BID, PX, 10, IOC), decoder=decoder)
    fills = market.events.Fill().process_receipt(rc, errors=DISCARD)
    assert len(fills) == 1
    fill = fills[0]["args"]
    assert (fill["maker"], fill["taker"]) == (maker.address, taker.address)
    assert (fill["makerOrderId"], fill["makerClientId"], fill["lots"]) == (order_id, 42, 10)
    # The fill's side and tick come from the maker order id, decoded as the contract does.
    assert order_id_side_tick(order_id) == (ASK, PX)
    assert tuple(market.functions.decodeOrderId(order_id).call()) == (ASK, PX)
    assert market.functions.accountState(taker.address).call()[1] == 10
    assert market.functions.accountState(maker.address).call()[1] == -10
    assert market.functions.openOrders(maker.address).call() == []

    # Cross the hourly boundary: warp, refresh the feed, let a keeper settle.
    epoch, boundary, _, _, cum0 = market.functions.fundingState().call()
    fees = market.functions.accruedFees().call()
    assert fees == 150_000  # 5 bp of $300; the maker fee is 0
    anvil.set_next_block_timestamp(boundary + 1)
    _send(w3, deployer, feed, "push", 3000 * 10**8, decoder=decoder)
    rc = _send(w3, keeper, market, "settleFunding", decoder=decoder)
    settled = market.events.FundingSettled().process_receipt(rc, errors=DISCARD)
    assert [e["args"]["epoch"] for e in settled] == [epoch]
    # Empty book: premium 0, so the hourly rate is the interest 0.01% / 8 = 1.25e13 (1e18 scale).
    assert settled[0]["args"]["rate"] == 12_500_000_000_000
    assert settled[0]["args"]["cumulativeIndex"] - cum0 == 375
    assert market.functions.accountState(taker.address).call()[4] == 10 * 375
    assert market.functions.accountState(maker.address).call()[4] == -10 * 375
    # The keeper reward ($1) is paid from accrued fees, capped by what is there.
    assert token.functions.balanceOf(keeper.address).call() == fees
    assert market.functions.accruedFees().call() == 0


def test_revert_is_decoded_to_custom_error(
    deployed: tuple[Deployment, Contract, Contract, Contract],
    w3: Web3,
    accounts: dict[str, LocalAccount],
    decoder: ErrorDecoder,
) -> None:
    _, market, token, _ = deployed
    maker, taker = accounts["maker"], accounts["taker"]
    _fund(w3, maker, token, market, 10_000 * USD, decoder)
    _fund(w3, taker, token, market, 10_000 * USD, decoder)
    _send(w3, maker, market, "place", _place(ASK, PX, 1, POST_ONLY), decoder=decoder)
    with pytest.raises(TxReverted) as info:
        _send(w3, taker, market, "place", _place(BID, PX, 1, POST_ONLY), decoder=decoder)
    assert info.value.error_name == "PostOnlyWouldCross"
    data = market.encode_abi("place", args=[_place(BID, PX, 1, POST_ONLY)])
    try:
        w3.eth.call({"from": taker.address, "to": market.address, "data": HexBytes(data)})
    except Exception as exc:  # web3 raises ContractCustomError carrying the revert data
        raw = exc.args[1] if len(exc.args) > 1 else exc.args[0]
        decoded = decoder.decode(raw)
        assert decoded.name == "PostOnlyWouldCross"
        assert decoded.named() == {"tick": PX, "bestOpposite": PX}
    else:
        pytest.fail("a crossing post-only order must revert")


def test_missing_build_output_says_run_setup(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match=r"run \./scripts/setup"):
        load_artifact("PerpMarket", out_dir=tmp_path)
