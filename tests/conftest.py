"""Shared fixtures: one anvil per test session, per-test snapshot isolation, named accounts, one
fork-state file and its upstream node per session, and the session-end orphan check.

Under pytest-xdist "session" means one worker's share of the tests: each worker has its own anvil,
fork state and upstream (all on free ports and in private temporary directories).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from agent.chain.signer import dev_account
from sims.anvil import Anvil, AnvilConfig
from tests.orphans import live_anvil_children

if TYPE_CHECKING:  # the stress machinery is imported only by a session that uses it
    from sims.forkstate import ForkStateMeta
    from sims.stress import Upstream

ACCOUNT_NAMES = ("deployer", "maker", "taker", "keeper", "attacker")


@pytest.fixture(scope="session", autouse=True)
def _no_anvil_left_at_session_end() -> Iterator[None]:
    """Fail the session (an error at the last test's teardown) if any anvil this process
    started outlives every test and fixture: on each xdist worker, not only the one that runs
    ``tests/test_zz_no_orphans.py``."""
    yield  # set up before any other session fixture, so torn down after all of them
    leaked = live_anvil_children()
    assert leaked == [], f"anvil processes left running at the end of the session: {leaked}"


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
        # evm_revert keeps the mempool: a transaction a test left pending (a killed agent's
        # batch, a shutdown's cancel) would hold a nonce gap into the next test.
        node.rpc("anvil_dropAllTransactions", [])
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


@pytest.fixture(scope="session")
def fork_state(tmp_path_factory: pytest.TempPathFactory) -> ForkStateMeta:
    """One fork-state file for the whole run's stress and live runs (about 10 s to build).

    Every market the short scenarios fund on (one per funding interval), each with 30 blocks of
    calm history. The file is only read: each run forks it on a node of its own. Under xdist
    the first worker that needs it builds it in the run's shared temporary directory, under a
    lock, and the others load it.
    """
    import fcntl
    import os

    from sims.forkstate import ForkStateMeta, build_fork_state

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory all workers' temporary directories live in
    state = root / "fork-state" / "state.json"
    state.parent.mkdir(exist_ok=True)
    with (root / "fork-state.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if ForkStateMeta.sidecar(state).is_file():
            return ForkStateMeta.load(state)
        return build_fork_state(state, history_blocks=30)


@pytest.fixture(scope="session")
def upstream(fork_state: ForkStateMeta) -> Iterator[Upstream]:
    """The node serving :func:`fork_state`; stress and live runs fork it at its last block."""
    from sims.stress import open_upstream

    with open_upstream(state_file=fork_state.state_file) as up:
        yield up
