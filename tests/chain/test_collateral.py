"""``mm-agent deposit`` / ``withdraw`` and the collateral module on anvil: the money moves once,
and what the market would refuse is refused first, in one line, with nothing sent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from agent.chain.collateral import CollateralError, deposit, read_collateral, withdraw
from sims.anvil import Anvil

pytestmark = pytest.mark.chain

USD = 10**6


def _config(tmp_path: Path, anvil: Anvil, dex: Any, dev_index: int) -> Path:
    cfg = tmp_path / "mm.toml"
    cfg.write_text(
        f'[chain]\nrpc_url = "{anvil.url}"\ndeployment_file = "{dex.record}"\n'
        f'[signer]\nsource = "dev"\ndev_index = {dev_index}\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    return cfg


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deposit_cli_mints_approves_exactly_and_deposits_once(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    maker = accounts["maker"]
    cfg = _config(tmp_path, anvil, dex, dev_index=1)
    out = _cli("deposit", "--config", str(cfg), "--amount", "2500.5", "--faucet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "deposited 2,500.50 fUSD" in out.stdout
    view = read_collateral(anvil.w3, dex.dep.market, maker.address)
    assert view.collateral_raw == 2_500_500_000
    assert view.allowance_raw == 0  # the approval was for exactly the deposit, and it is used
    assert view.wallet_raw == 0


def test_deposit_without_balance_is_one_line_and_sends_nothing(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    maker = accounts["maker"]
    cfg = _config(tmp_path, anvil, dex, dev_index=1)
    nonce = anvil.w3.eth.get_transaction_count(maker.address)
    out = _cli("deposit", "--config", str(cfg), "--amount", "100")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mm-agent deposit: no balance:"), out.stderr
    assert "holds 0.00 fUSD, the deposit needs 100.00 fUSD" in lines[0]
    assert anvil.w3.eth.get_transaction_count(maker.address) == nonce


def test_deposit_refuses_a_short_allowance_when_told_not_to_approve(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    maker = accounts["maker"]
    dex.send(maker, dex.token, "drip", maker.address, 50 * USD)
    with pytest.raises(CollateralError, match=r"no allowance: the market may pull 0\.00 fUSD"):
        deposit(anvil.w3, maker, dex.dep.market, 50 * USD, approve=False)
    assert read_collateral(anvil.w3, dex.dep.market, maker.address).collateral_raw == 0


def test_deposit_without_gas_says_so(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    poor = accounts["attacker"]
    anvil.rpc("anvil_setBalance", [poor.address, "0x0"])
    with pytest.raises(CollateralError, match=r"^no gas:"):
        deposit(anvil.w3, poor, dex.dep.market, 1 * USD)


def test_withdraw_more_than_free_collateral_is_refused_before_sending(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    maker = accounts["maker"]
    dex.fund(maker, 1_000)
    # A resting bid of 1 unit at 2,000 reserves 10% of 2,000 = 200 of initial margin.
    dex.place(maker, 0, 2000.0, 1.0)
    view = read_collateral(anvil.w3, dex.dep.market, maker.address)
    assert view.free_raw == 800 * USD
    cfg = _config(tmp_path, anvil, dex, dev_index=1)
    nonce = anvil.w3.eth.get_transaction_count(maker.address)
    out = _cli("withdraw", "--config", str(cfg), "--amount", "900")
    assert out.returncode == 1
    assert out.stderr.startswith(
        "mm-agent withdraw: withdraw more than free collateral: asked 900.00 fUSD, free 800.00 fUSD"
    ), out.stderr
    assert anvil.w3.eth.get_transaction_count(maker.address) == nonce
    # The free part comes back to the wallet, once.
    withdraw(anvil.w3, maker, dex.dep.market, 800 * USD)
    after = read_collateral(anvil.w3, dex.dep.market, maker.address)
    assert after.wallet_raw == 800 * USD and after.collateral_raw == 200 * USD
    assert after.free_raw == 0
