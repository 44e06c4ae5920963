"""Fault harness: ``kill -9`` while a quote batch waits in the mempool, then a restart.

The previous run's batch is signed, journaled and broadcast, but not yet mined when the process
dies (a block takes seconds; a kill can land any time inside it). The restarted agent reloads it
from the journal, and the node will mine it: the new run must count it as in flight, not decide
from a book that does not show it yet and place a second ladder beside it. The chain is held
(automine off) so the batch stays pending for as long as the test needs, then one block mines
whatever both runs sent: never more than ``levels`` orders of ours may rest on a side.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import BID, fund_book, start_agent, wait, write_config

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

LEVELS = 3  # the model's default ladder depth (write_config leaves it)
Procs = list[subprocess.Popen[bytes]]


def test_restart_with_the_last_batch_still_in_the_mempool_places_one_ladder(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    w3 = anvil.w3
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        cex_process,
        **{"poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600"},
    )
    log = tmp_path / "agent.log"
    anvil.set_automine(False)  # nothing is mined until the test says so

    def pool() -> int:
        return int(w3.eth.get_transaction_count(maker, "pending")) - int(
            w3.eth.get_transaction_count(maker, "latest")
        )

    first = start_agent(cfg, log, agent_env)
    procs.append(first)
    wait(
        lambda: pool() >= 1, 60.0, f"the first run's batch in the pool ({log.read_text()[-1500:]})"
    )
    first.kill()
    first.wait()
    assert dex.open_orders(maker) == [], "nothing was mined yet"
    status = tmp_path / "data" / "status.json"
    status.unlink(missing_ok=True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    wait(status.exists, 60.0, f"the second run cycling ({log.read_text()[-1500:]})")
    # The second run has decided and sent its own batch while the first run's is still pending
    # (with or without a cancel-all taking the old batch's nonce, that is two nonces in the pool).
    wait(lambda: pool() >= 2, 30.0, f"the second run's batch ({log.read_text()[-1500:]})")
    anvil.mine(1)
    for _ in range(30):  # and keep watching while both runs' transactions settle
        orders = dex.open_orders(maker)
        bids = sum(1 for o in orders if o[2] == BID)
        assert max(bids, len(orders) - bids) <= LEVELS, (
            f"{bids} bids and {len(orders) - bids} asks rest (levels {LEVELS}): "
            f"{log.read_text()[-2500:]}"
        )
        anvil.mine(1)
        time.sleep(0.2)
    assert second.poll() is None
    second.send_signal(signal.SIGTERM)
    anvil.set_interval_mining(1)  # the shutdown's cancel must be mined
    assert second.wait(20) == 0, log.read_text()[-2000:]
