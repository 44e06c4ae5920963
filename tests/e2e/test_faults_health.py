"""Fault harness: what ``/healthz`` says while the exchange or the chain stops answering.

``mm-agent run`` runs as a process against the session anvil and its own exchange simulator
(``python -m sims.cex``, started here so the test can freeze it). A frozen exchange (SIGSTOP:
connections accepted by the kernel, never answered, as behind a stuck load balancer) and a chain
that stops producing blocks while the node still answers are the two outages a fault harness
tries first; in both the agent cannot do its job (hedge, or see the market move), so ``/healthz``
must turn 503 naming the cause, and turn 200 again once the fault is gone.
"""

from __future__ import annotations

import json
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

from sims.anvil import Anvil
from sims.faults import ProxyFault
from tests.chain.conftest import agent_env, cex_sim, dex
from tests.chain.procs import start_quoting, telemetry_url, wait
from tests.e2e.test_faults_hedge_crash import ThreadedProxy

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "dex"]  # fixtures, re-used from the chain tests

Procs = list[subprocess.Popen[bytes]]


@pytest.fixture
def cex() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The exchange simulator as a process this test may freeze: (URL, process)."""
    with cex_sim() as sim:
        yield sim


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Processes started by a test; any still alive at the end is killed."""
    started: Procs = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def _health(base: str) -> tuple[int, dict[str, str]]:
    r = httpx.get(f"{base}/healthz", timeout=3.0)
    body = r.json()
    return r.status_code, {str(f["condition"]): str(f["reason"]) for f in body["failing"]}


def test_frozen_exchange_turns_healthz_503_and_back(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: tuple[str, subprocess.Popen[str]],
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    url, sim = cex
    _cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, url, agent_env, procs)
    base = telemetry_url(tmp_path)
    wait(lambda: _health(base)[0] == 200, 30.0, f"healthy at start ({log.read_text()[-1500:]})")
    os.kill(sim.pid, signal.SIGSTOP)
    try:
        wait(
            lambda: "exchange_down" in _health(base)[1],
            30.0,
            f"/healthz naming the frozen exchange (got {_health(base)})",
        )
        code, failing = _health(base)
        assert code == 503
        assert "hedge.base_url" in failing["exchange_down"], failing
    finally:
        os.kill(sim.pid, signal.SIGCONT)
    wait(
        lambda: _health(base)[0] == 200,
        40.0,
        f"/healthz recovering after the exchange came back (got {_health(base)})",
    )
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-2000:]


def test_chain_that_stops_producing_blocks_turns_healthz_503_and_back(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: tuple[str, subprocess.Popen[str]],
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """The node keeps answering every read, but its head stops moving (a node that fell out of
    sync, a stalled sequencer): every read succeeds, so only the head's age can tell."""
    url, _sim = cex
    band = "[risk]\nblock_age_s = {warn = 3.0, breach = 6.0}\n\n[telemetry]"
    _cfg, log, proc = start_quoting(
        dex, anvil, accounts, tmp_path, url, agent_env, procs, **{"[telemetry]": band}
    )
    anvil.set_interval_mining(1)  # a chain on its own clock
    base = telemetry_url(tmp_path)
    wait(lambda: _health(base)[0] == 200, 30.0, f"healthy at start ({log.read_text()[-1500:]})")
    anvil.set_automine(False)
    anvil.set_interval_mining(0)  # the head stops; the node answers as before
    wait(
        lambda: "chain_stale" in _health(base)[1],
        30.0,
        f"/healthz naming the stalled chain (got {_health(base)})",
    )
    code, failing = _health(base)
    assert code == 503 and "no new block" in failing["chain_stale"], failing
    anvil.set_interval_mining(1)
    wait(
        lambda: _health(base)[0] == 200,
        40.0,
        f"/healthz recovering once blocks come again (got {_health(base)})",
    )
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-2000:]


def test_frozen_exchange_reads_as_a_stale_feed_at_once(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: tuple[str, subprocess.Popen[str]],
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """The risk engine's CEX feed-age trigger must see a frozen exchange within a read timeout,
    not once the hedger's retries run out at its next reconciliation (10 s and more later), so
    the quotes come off the chain while the exchange cannot hedge their fills."""
    url, sim = cex
    edits = {
        "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
        "[telemetry]": "[risk]\ncex_feed_age_s = {warn = 1.0, breach = 3.0}\n\n[telemetry]",
    }
    _cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, url, agent_env, procs, **edits)
    anvil.set_interval_mining(1)
    status = tmp_path / "data" / "status.json"
    maker = accounts["maker"].address
    wait(
        lambda: json.loads(status.read_text())["state"] == "NORMAL",
        30.0,
        f"NORMAL at start ({status.read_text() if status.exists() else log.read_text()[-1500:]})",
    )
    os.kill(sim.pid, signal.SIGSTOP)
    try:
        # Read timeout 2 s + the 3 s breach + a cycle and a 1 s block for the cancel: about 7 s.
        # Before the fix nothing moved for the hedger's 4 reads x 2 s timeouts at the least.
        wait(
            lambda: (
                json.loads(status.read_text())["state"] == "WITHDRAWN"
                and not dex.open_orders(maker)
            ),
            9.0,
            f"quotes pulled on a frozen exchange ({status.read_text()[-1200:]})",
        )
        assert any(
            t.startswith("cex_feed_age_s") for t in json.loads(status.read_text())["triggers"]
        )
    finally:
        os.kill(sim.pid, signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-2000:]


def test_sigterm_with_the_exchange_frozen_exits_1_in_time_and_keeps_the_hedge(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: tuple[str, subprocess.Popen[str]],
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """SIGTERM while the exchange answers nothing: the DEX orders are cancelled, the exchange
    cancel cannot be confirmed, so the exit is 1 with one line naming the exchange and its
    dead-man switch, within the 10 s a supervisor is promised; no order was sent."""
    url, sim = cex
    _cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, url, agent_env, procs)
    maker = accounts["maker"].address
    os.kill(sim.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        took = time.monotonic() - t0
        out = log.read_text()
        assert took < 10.0, f"shutdown took {took:.1f} s"
        assert rc == 1, out[-2000:]
        loud = [ln for ln in out.splitlines() if "ORDERS MAY STILL REST" in ln]
        assert len(loud) == 1 and "cex:" in loud[0] and "dead-man" in loud[0], out[-2000:]
        assert "dex:" not in loud[0], loud[0]  # the chain was there: its orders are gone
        assert dex.open_orders(maker) == []
    finally:
        os.kill(sim.pid, signal.SIGCONT)
    state = httpx.get(f"{url}/_sim/state", timeout=5).json()
    assert [t for t in state["trades"] if t["symbol"] == "ETHUSDT"] == []


def test_key_refused_mid_run_turns_healthz_503_naming_the_key(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: tuple[str, subprocess.Popen[str]],
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """A key refused at start is a config error (``test_faults_exchange_start.py``); one the
    exchange starts refusing while the agent runs (revoked, its IP allow-list changed) is a
    health condition: ``exchange_auth``, naming the key's settings."""
    url, _sim = cex
    proxy = ThreadedProxy(url)
    try:
        _cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, proxy.url, agent_env, procs)
        base = telemetry_url(tmp_path)
        wait(lambda: _health(base)[0] == 200, 30.0, f"healthy ({log.read_text()[-1500:]})")
        # From now on every signed position read (the hedger's reconciliation) is refused.
        proxy.inject(
            ProxyFault("auth_2015", method="GET", path="/fapi/v2/positionRisk", count=10**6)
        )
        wait(
            lambda: "exchange_auth" in _health(base)[1],
            40.0,
            f"/healthz naming the refused key (got {_health(base)})",
        )
        code, failing = _health(base)
        assert code == 503 and "api_key_env" in failing["exchange_auth"], failing
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    finally:
        proxy.close()
