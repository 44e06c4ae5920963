"""Shared fixtures: one anvil per test session, per-test snapshot isolation, named accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from agent.chain.signer import dev_account
from sims.anvil import Anvil, AnvilConfig

ACCOUNT_NAMES = ("deployer", "maker", "taker", "keeper", "attacker")


@pytest.fixture(scope="session")
def _session_anvil() -> Iterator[Anvil]:
    with Anvil(AnvilConfig(chain_id=31337)) as node:
        yield node


@pytest.fixture
def anvil(_session_anvil: Anvil) -> Iterator[Anvil]:
    """The session's anvil, rolled back to its pre-test state after each test."""
    node = _session_anvil
    # anvil 1.7.1's evm_revert does not restore the fee market: remember the next block's base
    # fee and put it back, or a gas-spike test leaks its spike into the next test.
    next_base_fee = int(node.rpc("eth_feeHistory", [1, "latest", []])["baseFeePerGas"][-1], 16)
    snap = node.snapshot()
    try:
        yield _session_anvil
    finally:
        # A test may have turned automine off; restore it before reverting so the next test
        # starts from the same mining mode.
        node.set_interval_mining(0)
        node.set_automine(True)
        assert node.revert(snap), "evm_revert failed: test isolation is broken"
        node.set_next_base_fee(next_base_fee)


@pytest.fixture
def w3(anvil: Anvil) -> Web3:
    """A Web3 bound to the session anvil."""
    return anvil.w3


@pytest.fixture(scope="session")
def accounts() -> dict[str, LocalAccount]:
    """Named dev accounts: deployer, maker, taker, keeper, attacker (anvil accounts 0-4)."""
    return {name: dev_account(i) for i, name in enumerate(ACCOUNT_NAMES)}
