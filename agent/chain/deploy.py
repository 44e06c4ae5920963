"""Deploy a perp market (collateral token, price feed, market) to any RPC and record it.

A deployment is three or four contracts: the collateral token (a ``FaucetUSD`` unless an existing
ERC20 is given), the price feed (a ``ManualPriceFeed`` unless an existing Chainlink feed is
given), the market's cold half ``PerpMarketExtension`` and the market ``PerpMarket`` itself. Every
transaction is signed locally by the given account and sent raw, so any plain JSON-RPC node works.

The record written by :meth:`Deployment.save` is what the agent's config points at:

.. code-block:: json

    {"chain_id": 31337, "block_number": 5, "deployer": "0x...", "token": "0x...",
     "oracle": "0x...", "market": "0x...", "extension": "0x...", "params": {...}}

Example
-------
>>> dep = deploy_market(w3, deployer, MarketConfig())  # doctest: +SKIP
>>> dep.save(Path("deployments/local.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams, TxReceipt

from agent.chain.abi import ErrorDecoder
from agent.chain.contracts import ContractArtifact, error_decoder, load_artifact
from agent.chain.signer import Signer
from agent.errors import ConfigError, TxError, TxReverted

__all__ = [
    "Deployment",
    "MarketConfig",
    "SignerAccount",
    "TxSigner",
    "deploy_market",
    "send_transaction",
]


class SignedRaw(Protocol):
    """What signing returns: the raw transaction bytes."""

    @property
    def raw_transaction(self) -> bytes: ...


class TxSigner(Protocol):
    """Anything that can sign a transaction dict for one address (an eth-account LocalAccount,
    or :class:`SignerAccount` wrapping the agent's :class:`~agent.chain.signer.Signer`)."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, tx: dict[str, Any]) -> SignedRaw: ...


@dataclass(frozen=True, slots=True)
class _Raw:
    raw_transaction: bytes


class SignerAccount:
    """Adapts :class:`~agent.chain.signer.Signer` to :class:`TxSigner` (the key stays inside)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    @property
    def address(self) -> str:
        """The signing address."""
        return self._signer.address

    def sign_transaction(self, tx: dict[str, Any]) -> SignedRaw:
        """Sign with the wrapped signer (which stamps its own chain id)."""
        fields = {k: v for k, v in tx.items() if k not in ("from", "chainId")}
        fields.setdefault("type", 2)
        fields.setdefault("value", 0)
        data = fields.get("data", b"")
        fields["data"] = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        return _Raw(self._signer.sign(fields).raw)


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Market parameters, in the contract's units (see ``IPerpMarket``).

    The defaults describe an ETH-like market quoted in a 6-decimal USD token: ticks of $0.01,
    lots of 0.001 ETH, 10% / 5% margin, maker 0 bp, taker 5 bp, hourly funding.
    """

    tick_size: int = 10_000
    """Collateral units per whole base unit per tick ($0.01 with 6 decimals)."""
    lot_size: int = 10**15
    """Base wei per lot (0.001 of the base asset)."""
    min_notional: int = 1_000_000
    """Smallest order notional, collateral units ($1)."""
    initial_margin_bps: int = 1000
    maintenance_margin_bps: int = 500
    maker_fee_bps: int = 0
    """Negative for a rebate, never larger than the taker fee."""
    taker_fee_bps: int = 5
    max_fills: int = 64
    funding_interval_s: int = 3600
    oracle_max_age_s: int = 3600
    interest_rate_8h: int = 10**14
    """0.01% per 8 h, 1e18-scaled."""
    premium_clamp: int = 5 * 10**14
    """+-0.05%, 1e18-scaled."""
    funding_cap: int = 4 * 10**16
    """4% per interval, 1e18-scaled."""
    liquidation_fee_bps: int = 100
    liquidation_band_bps: int = 500
    keeper_reward: int = 1_000_000
    """Collateral units paid to keepers ($1)."""
    mark_band_bps: int = 200
    """The mark and every book price it uses stay within this band around the index."""
    fee_recipient: str | None = None
    """Defaults to the deployer."""
    feed_decimals: int = 8
    """Decimals of a ManualPriceFeed deployed here (Chainlink USD feeds use 8)."""
    initial_price: int = 3000 * 10**8
    """First answer of a ManualPriceFeed deployed here, in feed units."""

    def params_tuple(self, token: str, oracle: str, fee_recipient: str) -> tuple[Any, ...]:
        """Return the ``MarketParams`` struct in ABI order."""
        return (
            to_checksum_address(token),
            to_checksum_address(oracle),
            to_checksum_address(fee_recipient),
            self.tick_size,
            self.lot_size,
            self.min_notional,
            self.initial_margin_bps,
            self.maintenance_margin_bps,
            self.maker_fee_bps,
            self.taker_fee_bps,
            self.max_fills,
            self.funding_interval_s,
            self.oracle_max_age_s,
            self.interest_rate_8h,
            self.premium_clamp,
            self.funding_cap,
            self.liquidation_fee_bps,
            self.liquidation_band_bps,
            self.keeper_reward,
            self.mark_band_bps,
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where a market lives: the record the agent loads."""

    chain_id: int
    block_number: int
    deployer: str
    token: str
    oracle: str
    market: str
    extension: str
    params: dict[str, Any] = field(default_factory=dict)
    tx_hashes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialize to pretty JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, path: Path) -> None:
        """Write the record to `path` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a record written by :meth:`save`."""
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"deployment record {path} is unreadable: {exc}") from exc


def send_transaction(
    w3: Web3,
    account: TxSigner,
    tx: TxParams,
    *,
    decoder: ErrorDecoder | None = None,
    timeout_s: float = 60.0,
) -> TxReceipt:
    """Sign `tx` locally, send it raw and wait for its receipt.

    Fills nonce, chain id, EIP-1559 fees and gas (estimate + 20%) when absent. A revert raises
    :class:`TxReverted` carrying the decoded custom error when the estimate or the receipt fails.
    """
    full: dict[str, Any] = dict(tx)
    full.setdefault("from", account.address)
    full.setdefault("chainId", w3.eth.chain_id)
    full.setdefault(
        "nonce", w3.eth.get_transaction_count(to_checksum_address(account.address), "pending")
    )
    if "gasPrice" not in full:
        base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tip = int(full.get("maxPriorityFeePerGas", 10**9))
        full.setdefault("maxPriorityFeePerGas", tip)
        full.setdefault("maxFeePerGas", 2 * base + tip)
    if "gas" not in full:
        try:
            full["gas"] = int(w3.eth.estimate_gas(full)) * 6 // 5  # type: ignore[arg-type]
        except Exception as exc:
            raise _reverted(exc, decoder) from exc
    signed = account.sign_transaction(full)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s)
    if receipt["status"] != 1:
        raise TxReverted(f"transaction {tx_hash.to_0x_hex()} reverted", tx_hash=tx_hash.to_0x_hex())
    return receipt


def _reverted(exc: Exception, decoder: ErrorDecoder | None) -> TxError:
    data = _revert_data(exc)
    decoded = decoder.decode(data) if (decoder and data) else None
    if decoded is not None and decoded.name is not None:
        return TxReverted(f"call {decoded.message}", error_name=decoded.name)
    return TxReverted(f"call reverted: {exc}")


def _revert_data(exc: Exception) -> bytes | None:
    """Dig the revert bytes out of web3's exception (``ContractCustomError`` and friends)."""
    for arg in (getattr(exc, "data", None), *exc.args):
        if isinstance(arg, (bytes, HexBytes)):
            return bytes(arg)
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            try:
                return bytes.fromhex(arg[2:])
            except ValueError:
                continue
        if isinstance(arg, dict) and isinstance(arg.get("data"), str):
            return bytes.fromhex(arg["data"].removeprefix("0x"))
    return None


def _deploy(
    w3: Web3,
    account: TxSigner,
    artifact: ContractArtifact,
    args: tuple[Any, ...],
    decoder: ErrorDecoder,
) -> tuple[str, str]:
    factory = w3.eth.contract(abi=list(artifact.abi), bytecode=HexBytes(artifact.bytecode))
    data = factory.constructor(*args).data_in_transaction
    receipt = send_transaction(w3, account, {"data": HexBytes(data)}, decoder=decoder)
    address = receipt.get("contractAddress")
    if not address:
        raise TxError(f"{artifact.name} deployment produced no contract address")
    return str(address), receipt["transactionHash"].to_0x_hex()


def deploy_market(
    w3: Web3,
    account: TxSigner,
    config: MarketConfig,
    *,
    token: str | None = None,
    oracle: str | None = None,
    out_dir: Path | None = None,
    record_path: Path | None = None,
) -> Deployment:
    """Deploy a market with `config` from `account` and return (and optionally save) its record.

    Parameters
    ----------
    w3
        Connected Web3 (any chain).
    account
        Deployer; signs every transaction locally.
    config
        Market parameters; validated again on chain (the constructor reverts with
        ``InvalidParam(name)``, reported here as a :class:`TxReverted`).
    token, oracle
        Existing collateral token / Chainlink feed; when absent a ``FaucetUSD`` and a
        ``ManualPriceFeed`` (updater = `account`) are deployed, which suits local chains only.
    out_dir
        Forge build output (defaults to ``contracts/out``).
    record_path
        Where to write the deployment record as JSON.
    """
    decoder = error_decoder(out_dir)
    hashes: dict[str, str] = {}
    if token is None:
        token, hashes["token"] = _deploy(
            w3, account, load_artifact("FaucetUSD", out_dir=out_dir), (), decoder
        )
    if oracle is None:
        oracle, hashes["oracle"] = _deploy(
            w3,
            account,
            load_artifact("ManualPriceFeed", out_dir=out_dir),
            (config.feed_decimals, config.initial_price),
            decoder,
        )
    params = config.params_tuple(token, oracle, config.fee_recipient or account.address)
    extension, hashes["extension"] = _deploy(
        w3, account, load_artifact("PerpMarketExtension", out_dir=out_dir), (params,), decoder
    )
    market, hashes["market"] = _deploy(
        w3,
        account,
        load_artifact("PerpMarket", out_dir=out_dir),
        (params, to_checksum_address(extension)),
        decoder,
    )
    receipt = w3.eth.get_transaction_receipt(HexBytes(hashes["market"]))
    recorded = asdict(config)
    recorded["fee_recipient"] = params[2]
    dep = Deployment(
        chain_id=int(w3.eth.chain_id),
        block_number=int(receipt["blockNumber"]),
        deployer=account.address,
        token=to_checksum_address(token),
        oracle=to_checksum_address(oracle),
        market=to_checksum_address(market),
        extension=to_checksum_address(extension),
        params=recorded,
        tx_hashes=hashes,
    )
    if record_path is not None:
        dep.save(record_path)
    return dep
