"""Shutdown with the node gone or frozen, and quotes after a crash (issue 14), as real processes.

Each test runs its own anvil (the module overrides the ``anvil`` fixture), so it can be killed
or frozen with SIGSTOP without touching the session's node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil, AnvilConfig
from tests.chain.procs import (
    ASK,
    BID,
    IOC,
    MM,
    cex_open,
    cex_trades,
    start_quoting,
    telemetry_url,
    wait,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

Procs = list[subprocess.Popen[bytes]]


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A private node this test may kill or freeze."""
    node = Anvil(AnvilConfig(chain_id=31337)).start()
    try:
        yield node
    finally:
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGCONT)
        node.stop()


def _healthz(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{telemetry_url(tmp_path)}/healthz", timeout=3.0)
    return r.status_code, dict(r.json())


@pytest.mark.parametrize("fault", ["rpc_down", "node_frozen"])
def test_sigterm_with_a_dead_or_frozen_node_exits_within_10_s_non_zero(
    fault: str,
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    _cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    assert anvil.pid is not None
    if fault == "rpc_down":
        anvil.stop()
    else:
        os.kill(anvil.pid, signal.SIGSTOP)
    # /healthz tells the truth while it happens: 503 with the chain's reason.
    deadline = time.monotonic() + 40.0
    reasons: list[str] = []
    while time.monotonic() < deadline:
        code, body = _healthz(tmp_path)
        reasons = [str(f.get("condition", "")) for f in body.get("failing", [])]
        if code == 503 and {"chain_stale", "rpc_failing", "blind_cycles"} & set(reasons):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"/healthz never said the chain is down: {reasons}")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(20)
    took = time.monotonic() - t0
    out = log.read_text()
    print(f"{fault}: SIGTERM to exit {took:.1f} s")  # the README quotes these (pytest -s)
    assert took < 10.0, f"shutdown took {took:.1f} s"
    # Orders may rest (the node never saw the cancel): non-zero, and one loud line says so.
    assert rc == 1, out[-3000:]
    loud = [ln for ln in out.splitlines() if "ORDERS MAY STILL REST" in ln]
    assert len(loud) == 1 and "expiry" in loud[0], out[-2000:]
    assert cex_open(cex_process) == []


def test_after_kill_9_no_quote_outlives_its_expiry(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    expiry_s = 6
    _cfg, _log, proc = start_quoting(
        dex,
        anvil,
        accounts,
        tmp_path,
        cex_process,
        agent_env,
        procs,
        **{"[telemetry]": f"[execution]\nquote_expiry_s = {expiry_s}\n\n[telemetry]"},
    )
    maker = accounts["maker"].address
    proc.kill()
    proc.wait()
    resting = dex.open_orders(maker)
    assert resting, "the killed agent left no quote: nothing to check"
    last_expiry = max(int(o[5]) for o in resting)
    assert 0 < last_expiry <= time.time() + expiry_s + 2
    # One block after the last expiry, a taker sweeping through the old quotes fills nothing
    # of ours.
    while int(anvil.w3.eth.get_block("latest")["timestamp"]) <= last_expiry:
        time.sleep(0.5)
        anvil.mine(1)
    before = dex.position_lots(maker)
    asks = [o for o in resting if o[2] == ASK]
    bids = [o for o in resting if o[2] == BID]
    if asks:
        dex.place(accounts["taker"], BID, max(o[3] for o in asks) * 0.01, 0.05, flags=IOC, cid=7)
    if bids:
        dex.place(accounts["taker"], ASK, min(o[3] for o in bids) * 0.01, 0.05, flags=IOC, cid=8)
    assert dex.position_lots(maker) == before


def test_sigterm_during_an_operator_cancel_all_on_a_stalled_chain_exits_in_time(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """`mm-agent cancel-all` asks the running agent, whose cancel waits for a chain that mines
    nothing; SIGTERM arrives meanwhile. The exit must not wait out the cancel-all's 30 s: the
    request is answered, the shutdown's own cancel (hard deadline) runs, the exit is 1 within
    10 s naming the DEX, and the cancel in the pool clears the book once a block comes."""
    cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    maker = accounts["maker"].address
    w3 = anvil.w3
    anvil.set_automine(False)  # the chain stalls: a cancel waits in the pool
    cancel = subprocess.Popen(
        [*MM, "cancel-all", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=agent_env,
    )
    procs.append(cancel)
    wait(
        lambda: (
            w3.eth.get_transaction_count(maker, "pending")
            > w3.eth.get_transaction_count(maker, "latest")
        ),
        30.0,
        f"the operator's cancel-all in the pool ({log.read_text()[-1500:]})",
    )
    time.sleep(0.5)  # the agent is now inside the request, waiting for the chain
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(40)
    took = time.monotonic() - t0
    out = log.read_text()
    assert took < 10.0, f"shutdown took {took:.1f} s"
    assert rc == 1, out[-3000:]
    loud = [ln for ln in out.splitlines() if "ORDERS MAY STILL REST" in ln]
    assert len(loud) == 1 and "dex:" in loud[0], out[-2000:]
    answer, _ = cancel.communicate(timeout=30)
    assert cancel.returncode == 1 and b"stopping" in answer, answer
    anvil.mine(1)  # the chain moves again: the cancel in the pool clears the book
    wait(lambda: dex.open_orders(maker) == [], 10.0, "the book clear once a block came")
    assert cex_open(cex_process) == [] and cex_trades(cex_process) == []
