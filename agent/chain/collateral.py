"""Move collateral between a wallet and a market: approve + deposit, withdraw, and the checks
that turn a bare revert into one line a user can act on.

Collateral moves are rare, operator-driven and never on the quoting path, so they take the small
direct path (:func:`~agent.chain.deploy.send_transaction`: sign locally, send raw, wait for the
receipt) rather than the agent's transaction pipeline. Each function checks what the contract
would refuse before sending, so a user sees ``wallet holds 0.00 fUSD, the deposit needs 5,000.00``
instead of a revert, and no gas is spent on a transaction that cannot succeed.

Example
-------
>>> acct = SignerAccount(load_signer(source, chain_id))  # doctest: +SKIP
>>> deposit(w3, acct, market, 5_000 * 10**6)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from agent.chain.contracts import error_decoder, load_artifact, market_abi
from agent.chain.deploy import TxSigner, send_transaction
from agent.errors import TxError

__all__ = [
    "CollateralError",
    "CollateralView",
    "deposit",
    "drip",
    "read_collateral",
    "withdraw",
]

_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": n, "type": "address"} for n in args],
        "outputs": [{"name": "", "type": out}],
    }
    for name, args, out in (
        ("balanceOf", ("owner",), "uint256"),
        ("allowance", ("owner", "spender"), "uint256"),
        ("decimals", (), "uint8"),
        ("symbol", (), "string"),
    )
] + [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "spender", "type": "address"},
            {"name": "amount", "type": "uint256"},
        ],
        "outputs": [{"name": "", "type": "bool"}],
    }
]


class CollateralError(TxError):
    """A deposit or withdrawal that the chain would refuse; nothing was sent."""


@dataclass(frozen=True, slots=True)
class CollateralView:
    """One account's collateral as the chain sees it, in raw token units."""

    token: str
    symbol: str
    decimals: int
    wallet_raw: int
    """Token balance of the wallet (not yet deposited)."""
    allowance_raw: int
    """What the market may pull from the wallet."""
    gas_wei: int
    """Native balance that pays for transactions."""
    collateral_raw: int
    """Deposited collateral (before unrealized P&L and funding)."""
    equity_raw: int
    initial_margin_raw: int
    """Initial margin of the position plus resting orders."""

    @property
    def free_raw(self) -> int:
        """What a withdrawal may take: equity above the initial margin (never more than
        deposited)."""
        return max(0, min(self.collateral_raw, self.equity_raw - self.initial_margin_raw))

    def units(self, raw: int) -> str:
        """`raw` token units as ``1,234.50 fUSD``."""
        return f"{raw / 10**self.decimals:,.2f} {self.symbol}"


def _market(w3: Web3, market: str) -> Contract:
    return w3.eth.contract(address=to_checksum_address(market), abi=market_abi())


def _token(w3: Web3, token: str) -> Contract:
    return w3.eth.contract(address=to_checksum_address(token), abi=_ERC20_ABI)


def read_collateral(w3: Web3, market: str, owner: str) -> CollateralView:
    """Read `owner`'s wallet balance, allowance, gas and margin account on `market`."""
    m = _market(w3, market)
    token_addr = str(m.functions.collateral().call())
    t = _token(w3, token_addr)
    who = to_checksum_address(owner)
    st = m.functions.accountState(who).call()
    return CollateralView(
        token=to_checksum_address(token_addr),
        symbol=str(t.functions.symbol().call()),
        decimals=int(t.functions.decimals().call()),
        wallet_raw=int(t.functions.balanceOf(who).call()),
        allowance_raw=int(t.functions.allowance(who, m.address).call()),
        gas_wei=int(w3.eth.get_balance(who)),
        collateral_raw=int(st[0]),
        equity_raw=int(st[5]),
        initial_margin_raw=int(st[6]),
    )


def _send(w3: Web3, account: TxSigner, c: Contract, fn: str, *args: Any) -> str:
    data = c.encode_abi(fn, args=list(args))
    receipt = send_transaction(
        w3, account, {"to": c.address, "data": HexBytes(data)}, decoder=error_decoder()
    )
    return str(receipt["transactionHash"].to_0x_hex())


def _need_gas(view: CollateralView, address: str) -> None:
    if view.gas_wei == 0:
        raise CollateralError(
            f"no gas: {address} holds 0 of the chain's native token; fund it first "
            "(a faucet on a testnet, `cast send --value` from a funded account on anvil)"
        )


def drip(w3: Web3, account: TxSigner, market: str, amount_raw: int) -> str:
    """Mint `amount_raw` test tokens from a ``FaucetUSD`` collateral token to `account`.

    Test deployments only (``mm-agent deploy`` without ``--token``); a real token has no
    ``drip`` and the call is refused before anything is sent.
    """
    m = _market(w3, market)
    token = w3.eth.contract(
        address=to_checksum_address(m.functions.collateral().call()),
        abi=list(load_artifact("FaucetUSD").abi),
    )
    try:
        token.functions.drip(account.address, amount_raw).estimate_gas({"from": account.address})
    except Exception as exc:
        raise CollateralError(
            f"the collateral token {token.address} is not a faucet token (drip failed: {exc}); "
            "buy or bridge the token instead"
        ) from exc
    return _send(w3, account, token, "drip", to_checksum_address(account.address), amount_raw)


def deposit(
    w3: Web3, account: TxSigner, market: str, amount_raw: int, *, approve: bool = True
) -> list[str]:
    """Approve (when the allowance is short and `approve`) and deposit `amount_raw`.

    Returns the hashes of the transactions sent, approval first.

    Raises
    ------
    CollateralError
        No gas, a wallet balance below `amount_raw`, or a short allowance with ``approve=False``;
        nothing is sent.
    """
    if amount_raw <= 0:
        raise CollateralError("deposit amount must be positive")
    view = read_collateral(w3, market, account.address)
    _need_gas(view, account.address)
    if view.wallet_raw < amount_raw:
        raise CollateralError(
            f"no balance: {account.address} holds {view.units(view.wallet_raw)}, the deposit "
            f"needs {view.units(amount_raw)} (token {view.token}; on a test deployment add "
            "--faucet to mint it)"
        )
    sent: list[str] = []
    if view.allowance_raw < amount_raw:
        if not approve:
            raise CollateralError(
                f"no allowance: the market may pull {view.units(view.allowance_raw)}, the "
                f"deposit needs {view.units(amount_raw)}; approve {market} on {view.token} "
                "or drop --no-approve"
            )
        # Approve exactly the deposit: an unlimited allowance would outlive this command.
        sent.append(_send(w3, account, _token(w3, view.token), "approve", market, amount_raw))
    sent.append(_send(w3, account, _market(w3, market), "deposit", amount_raw))
    return sent


def withdraw(w3: Web3, account: TxSigner, market: str, amount_raw: int) -> str:
    """Withdraw `amount_raw` of free collateral to the wallet; return the transaction hash.

    Raises
    ------
    CollateralError
        No gas, or more than the free collateral (equity above the initial margin of the
        position and resting orders); nothing is sent.
    """
    if amount_raw <= 0:
        raise CollateralError("withdraw amount must be positive")
    view = read_collateral(w3, market, account.address)
    _need_gas(view, account.address)
    if amount_raw > view.free_raw:
        raise CollateralError(
            f"withdraw more than free collateral: asked {view.units(amount_raw)}, free "
            f"{view.units(view.free_raw)} (deposited {view.units(view.collateral_raw)}, "
            f"initial margin {view.units(view.initial_margin_raw)}; cancel orders or close the "
            "position to free more)"
        )
    return _send(w3, account, _market(w3, market), "withdraw", amount_raw)
