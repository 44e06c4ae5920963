"""``mm-agent deposit`` and ``mm-agent withdraw``: move the maker's collateral.

Both use the config's RPC, chain id, deployment and signer (the maker's key), check what the
market would refuse before sending (no gas, no balance, no allowance, more than the free
collateral) and print the account afterwards. See :mod:`agent.chain.collateral`.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

from web3 import Web3

from agent.chain.collateral import CollateralView, deposit, drip, read_collateral, withdraw
from agent.chain.deploy import SignerAccount
from agent.chain.signer import load_signer
from agent.config import AgentConfig, key_source, load_config, read_deployment
from agent.errors import ConfigError

__all__ = ["deposit_cli_main", "withdraw_cli_main"]


def _connect(cfg: AgentConfig) -> Web3:
    w3 = Web3(Web3.HTTPProvider(cfg.chain.rpc_url, request_kwargs={"timeout": 60}))
    if int(w3.eth.chain_id) != cfg.chain.chain_id:
        raise ConfigError(
            f"chain.chain_id: config says {cfg.chain.chain_id}, the RPC is chain {w3.eth.chain_id}"
        )
    return w3


def _parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=doc)
    ap.add_argument("--config", required=True, type=Path, help="the agent's config")
    ap.add_argument(
        "--amount", required=True, type=Decimal, help="whole collateral units, e.g. 5000 (USD)"
    )
    return ap


def _show(view: CollateralView, address: str) -> None:
    print(
        f"{address}: deposited {view.units(view.collateral_raw)}, free {view.units(view.free_raw)}"
        f", wallet {view.units(view.wallet_raw)}, gas {view.gas_wei / 1e18:.6f}"
    )


def _raw(amount: Decimal, decimals: int) -> int:
    raw = amount * 10**decimals
    if raw != raw.to_integral_value() or raw <= 0:
        raise ConfigError(f"--amount {amount}: must be positive with at most {decimals} decimals")
    return int(raw)


def deposit_cli_main(argv: list[str]) -> int:
    """``mm-agent deposit --config mm.toml --amount 5000``: approve and deposit collateral."""
    ap = _parser("mm-agent deposit", deposit_cli_main.__doc__)
    ap.add_argument(
        "--faucet",
        action="store_true",
        help="first mint the amount from the test token (deployments without --token only)",
    )
    ap.add_argument(
        "--no-approve", action="store_true", help="refuse rather than approve a short allowance"
    )
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    w3 = _connect(cfg)
    market, _ = read_deployment(cfg)
    account = SignerAccount(load_signer(key_source(cfg), cfg.chain.chain_id))
    view = read_collateral(w3, market, account.address)
    raw = _raw(args.amount, view.decimals)
    if args.faucet:
        drip(w3, account, market, raw)
    for tx in deposit(w3, account, market, raw, approve=not args.no_approve):
        print(f"sent {tx}")
    _show(read_collateral(w3, market, account.address), account.address)
    return 0


def withdraw_cli_main(argv: list[str]) -> int:
    """``mm-agent withdraw --config mm.toml --amount 1000``: withdraw free collateral.

    Stop the agent (or ``mm-agent cancel-all``) first to free the margin its orders reserve.
    """
    ap = _parser("mm-agent withdraw", withdraw_cli_main.__doc__)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    w3 = _connect(cfg)
    market, _ = read_deployment(cfg)
    account = SignerAccount(load_signer(key_source(cfg), cfg.chain.chain_id))
    view = read_collateral(w3, market, account.address)
    print(f"sent {withdraw(w3, account, market, _raw(args.amount, view.decimals))}")
    _show(read_collateral(w3, market, account.address), account.address)
    return 0
