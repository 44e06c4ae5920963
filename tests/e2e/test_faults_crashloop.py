"""Fault harness: a keeper killed while its quotes are pulled for a jump comes back still out.

``mm-agent run`` quotes against the session anvil and the exchange simulator. The exchange jumps
1% (the oracle follows, so only the jump detector has a reason to stay out): the agent pulls its
quotes (``JumpState.PULLED``). It is killed with SIGKILL at once and restarted, as a supervisor
restarts a crash-looping process. The restarted agent must keep the pull and ask for a stable
market seen *after* the restart before it quotes again (``stable_s − window_s`` = 10 s by
default), not re-enter at its first cycle. Before the detector's state was persisted with the
risk memory, the restart forgot the pull and quoted within its first second: each crash of a
crash loop re-entered the market at once.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import fund_book, start_agent, wait, wait_for_quotes, write_config

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

Procs = list[subprocess.Popen[bytes]]


def _jump_state(journal: Path) -> str | None:
    """The jump detector's state as the running agent last saved it (its risk memory row)."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT payload FROM risk_memory WHERE id = 1").fetchone()
    return None if row is None else json.loads(row[0]).get("jump_detector", {}).get("state")


HOLD_S = 6.0
"""How long the restarted agent must stay out after its first cycle (the detector asks 10 s)."""


def test_restart_during_a_jump_pull_keeps_the_pull_until_the_market_is_stable_again(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    fund_book(dex, accounts)
    anvil.set_interval_mining(1)  # a chain on its own clock: the head's age stays fresh
    maker = accounts["maker"].address
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        cex_process,
        **{"poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600"},
    )
    log = tmp_path / "agent.log"
    first = start_agent(cfg, log, agent_env)
    procs.append(first)
    wait_for_quotes(dex, maker, log)
    time.sleep(1.0)  # a few exchange mids at the old level: the jump is measured against them
    httpx.post(
        f"{cex_process}/_sim/price", json={"symbol": "ETHUSDT", "mid": 3030.0}, timeout=5
    ).raise_for_status()
    dex.push_price(3030.0)  # the chain catches up at once: no divergence to withdraw for
    wait(
        lambda: dex.open_orders(maker) == [],
        20.0,
        f"the quotes pulled on the exchange jump ({log.read_text()[-2000:]})",
    )
    first.kill()
    first.wait()
    status = tmp_path / "data" / "status.json"
    status.unlink(missing_ok=True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    wait(status.exists, 60.0, f"the restarted run cycling ({log.read_text()[-1500:]})")
    # Still out: the market has been stable only since the restart.
    deadline = time.monotonic() + HOLD_S
    while time.monotonic() < deadline:
        assert second.poll() is None, log.read_text()[-2000:]
        assert dex.open_orders(maker) == [], (
            f"re-entered at once after the restart: {json.loads(status.read_text())}"
        )
        time.sleep(0.1)
    # And it does re-enter once the market has been stable long enough since the restart (the
    # cost gate then decides when the smaller, wider re-entry quotes are worth their gas).
    journal = tmp_path / "data" / "journal.sqlite"
    wait(
        lambda: _jump_state(journal) == "reentry",
        30.0,
        f"re-entry after the restart ({_jump_state(journal)}; {log.read_text()[-1500:]})",
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, log.read_text()[-2000:]
