"""The anvil wrapper against a real anvil: controls, forks, state round-trips, clean shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from agent.errors import ToolchainError
from sims.anvil import Anvil, AnvilConfig, find_anvil

pytestmark = pytest.mark.chain

# Runtime bytecode of a contract whose storage slot 0 we set directly, and a one-slot "counter":
# PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN (returns slot 0).
_RETURN_SLOT0 = "0x60005460005260206000f3"


def _send(w3: Web3, frm: LocalAccount, to: str, value: int, **kw: int) -> str:
    tx = {
        "to": to,
        "value": value,
        "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(frm.address, "pending"),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": kw.get("max_fee", 50 * 10**9),
        "maxPriorityFeePerGas": kw.get("tip", 10**9),
    }
    signed = frm.sign_transaction(tx)
    return w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()


def _send_mined(w3: Web3, frm: LocalAccount, to: str, value: int) -> None:
    """Send with automine on and wait until the block holding it is stored.

    anvil 1.7.1 answers ``eth_sendRawTransaction`` once the transaction is in its pool and mines
    the automine block on its own task, so a read sent straight after the hash can still see
    the state before it (measured: 11 of 400 immediate balance reads at load 5). Reading state
    right after `_send` was this file's order- and load-dependent flake.
    """
    tx_hash = _send(w3, frm, to, value)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1


def test_snapshot_revert_restores_balances(anvil: Anvil, accounts: dict[str, LocalAccount]) -> None:
    w3 = anvil.w3
    taker = accounts["taker"].address
    before = w3.eth.get_balance(taker)
    snap = anvil.snapshot()
    _send_mined(w3, accounts["maker"], taker, 10**18)
    assert w3.eth.get_balance(taker) == before + 10**18
    assert anvil.revert(snap)
    assert w3.eth.get_balance(taker) == before


def test_set_next_block_timestamp_lands_exactly(anvil: Anvil) -> None:
    target = int(anvil.latest_block()["timestamp"], 16) + 3_600
    anvil.set_next_block_timestamp(target)
    anvil.mine()
    assert int(anvil.latest_block()["timestamp"], 16) == target


def test_increase_time_moves_the_clock(anvil: Anvil) -> None:
    t0 = int(anvil.latest_block()["timestamp"], 16)
    anvil.increase_time(7_200)
    anvil.mine()
    assert int(anvil.latest_block()["timestamp"], 16) >= t0 + 7_200


def test_next_base_fee_is_the_blocks_base_fee(anvil: Anvil) -> None:
    spike = 123 * 10**9
    anvil.set_next_base_fee(spike)
    anvil.mine()
    assert int(anvil.latest_block()["baseFeePerGas"], 16) == spike
    anvil.mine()  # EIP-1559: an empty block lowers the base fee by 12.5%
    assert int(anvil.latest_block()["baseFeePerGas"], 16) == spike * 7 // 8


def test_automine_off_keeps_tx_in_pool_until_mined(
    anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    w3 = anvil.w3
    anvil.set_automine(False)
    height = anvil.block_number()
    tx_hash = _send(w3, accounts["maker"], accounts["taker"].address, 1)
    assert anvil.txpool_status()["pending"] == 1
    assert anvil.block_number() == height
    assert w3.eth.get_transaction(tx_hash)["blockNumber"] is None
    anvil.mine()
    assert anvil.txpool_status()["pending"] == 0
    assert w3.eth.get_transaction_receipt(tx_hash)["blockNumber"] == height + 1


def test_drop_transaction_removes_it_from_pool(
    anvil: Anvil, accounts: dict[str, LocalAccount]
) -> None:
    anvil.set_automine(False)
    tx_hash = _send(anvil.w3, accounts["maker"], accounts["taker"].address, 1)
    assert anvil.txpool_status()["pending"] == 1
    anvil.drop_transaction(tx_hash)
    assert anvil.txpool_status()["pending"] == 0


def test_set_balance_and_impersonate(anvil: Anvil) -> None:
    stranger = "0x000000000000000000000000000000000000bEEF"
    anvil.set_balance(stranger, 5 * 10**18)
    assert anvil.w3.eth.get_balance(Web3.to_checksum_address(stranger)) == 5 * 10**18
    anvil.impersonate(stranger)
    tx = anvil.rpc("eth_sendTransaction", [{"from": stranger, "to": stranger, "value": "0x1"}])
    # Automine mines the transaction, but the hash can come back before the block is stored.
    assert anvil.w3.eth.wait_for_transaction_receipt(tx, timeout=10)["status"] == 1
    anvil.stop_impersonating(stranger)


def test_fork_sees_upstream_then_diverges(anvil: Anvil, accounts: dict[str, LocalAccount]) -> None:
    # Not a dev account: anvil re-funds its own dev accounts on a fork, hiding forked balances.
    taker = Web3.to_checksum_address("0x00000000000000000000000000000000000f0a4c")
    _send_mined(anvil.w3, accounts["maker"], taker, 7 * 10**18)
    fork_block = anvil.block_number()
    at_fork = anvil.w3.eth.get_balance(taker)
    # After the fork block: the fork must not see this one.
    _send_mined(anvil.w3, accounts["maker"], taker, 10**18)
    with anvil.fork(block=fork_block) as fork:
        assert fork.block_number() == fork_block
        assert fork.w3.eth.get_balance(taker) == at_fork
        _send_mined(fork.w3, accounts["keeper"], taker, 2 * 10**18)
        assert fork.w3.eth.get_balance(taker) == at_fork + 2 * 10**18
    assert anvil.w3.eth.get_balance(taker) == at_fork + 10**18


def test_dump_load_round_trips_balance_and_storage(tmp_path: Path) -> None:
    who = "0x00000000000000000000000000000000000C0DE1"
    holder = "0x000000000000000000000000000000000000D00D"
    with Anvil() as a:
        a.set_balance(who, 42 * 10**18)
        a.rpc("anvil_setCode", [holder, _RETURN_SLOT0])
        a.rpc("anvil_setStorageAt", [holder, "0x0", "0x" + "ab".rjust(64, "0")])
        blob = a.dump_state()
        state_file = tmp_path / "state.json"
        a_dump = Anvil(AnvilConfig(dump_state=state_file))
    with Anvil() as b:
        b.load_state(blob)
        assert b.w3.eth.get_balance(Web3.to_checksum_address(who)) == 42 * 10**18
        out = b.rpc("eth_call", [{"to": holder, "data": "0x"}, "latest"])
        assert int(out, 16) == 0xAB
    # --dump-state on exit, --load-state on start
    with a_dump:
        a_dump.set_balance(who, 9 * 10**18)
    assert state_file.exists()
    with Anvil(AnvilConfig(load_state=state_file)) as c:
        assert c.w3.eth.get_balance(Web3.to_checksum_address(who)) == 9 * 10**18


def test_restart_keeps_port() -> None:
    node = Anvil().start()
    try:
        port = node.port
        node.stop()
        assert not node.running
        node.start()
        assert node.port == port
        assert node.block_number() == 0
    finally:
        node.stop()


def test_interval_mining_and_mine_with_interval(anvil: Anvil) -> None:
    t0 = int(anvil.latest_block()["timestamp"], 16)
    n0 = anvil.block_number()
    anvil.mine(5, interval_s=12)
    assert anvil.block_number() == n0 + 5
    assert int(anvil.latest_block()["timestamp"], 16) >= t0 + 5 * 12


def test_old_states_go_to_a_private_cache_that_stop_removes() -> None:
    # anvil's default (~/.foundry/anvil/tmp) is never cleaned: it grew to 75 GB here.
    node = Anvil().start()
    try:
        cache = node._cache_dir
        assert cache is not None
        node.mine(600)  # more block states than anvil keeps in memory
        assert any(files for _, _, files in os.walk(cache)), "anvil did not use the cache path"
    finally:
        node.stop()
    assert not os.path.exists(cache)


def test_prune_history_keeps_states_in_memory_only() -> None:
    with Anvil(AnvilConfig(prune_history=50)) as node:
        node.mine(600)
        cache = node._cache_dir
        assert cache is not None
        assert not any(files for _, _, files in os.walk(cache))
        assert node.w3.eth.block_number == 600


def test_missing_binary_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANVIL_BIN", str(tmp_path / "nope"))
    with pytest.raises(ToolchainError, match="ANVIL_BIN"):
        find_anvil()
    monkeypatch.delenv("ANVIL_BIN")
    monkeypatch.setattr("sims.anvil._REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"run \./scripts/setup"):
        find_anvil()


def test_bad_flag_reports_anvil_output() -> None:
    with pytest.raises(ToolchainError, match="anvil exited") as err:
        Anvil(AnvilConfig(extra_args=("--no-such-flag",))).start()
    assert "no-such-flag" in str(err.value)


def test_no_orphan_when_python_is_killed(tmp_path: Path) -> None:
    """A child Python that starts anvil and is SIGKILLed takes anvil down with it."""
    pidfile = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from sims.anvil import Anvil
        node = Anvil().start()
        open({str(pidfile)!r}, "w").write(str(node.pid))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    pid = int(pidfile.read_text())
    for _ in range(100):
        if not _alive(pid):
            break
        import time

        time.sleep(0.05)
    assert not _alive(pid), f"anvil {pid} outlived its parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split()[2] != "Z"
