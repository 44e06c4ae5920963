"""Never add exposure by accident (issue 14), on real anvil and the real exchange simulator.

``mm-agent run`` as a real process: ``kill -9`` at random points, ``cancel-all`` on a hedged
position, a second agent on the same key. The shutdown-with-a-dead-node cases live in
``test_shutdown_faults.py`` (they need their own node to freeze).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.procs import (
    ASK,
    BID,
    LOT,
    cex_open,
    cex_position,
    cex_state,
    cex_trades,
    cli,
    fund_book,
    hit,
    start_agent,
    start_quoting,
    wait,
    write_config,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

Procs = list[subprocess.Popen[bytes]]


def test_cancel_all_leaves_both_positions_unchanged_running_and_stopped(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    maker = accounts["maker"].address
    cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    hit(dex, accounts["taker"], maker, ASK, 0.05, cid=9)
    dex_lots = dex.position_lots(maker)
    assert dex_lots < 0
    wait(lambda: abs(cex_position(cex_process) + dex_lots * LOT) < 1e-9, 30.0, "the hedge")
    trades_before = len(cex_trades(cex_process))

    out = cli(agent_env, "cancel-all", "--config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"running agent (pid {proc.pid})" in out.stdout
    assert "no order rests" in out.stdout and "cex: no open order" in out.stdout
    time.sleep(1.0)  # several cycles of the (now halted) agent
    assert dex.position_lots(maker) == dex_lots
    assert abs(cex_position(cex_process) + dex_lots * LOT) < 1e-9
    assert len(cex_trades(cex_process)) == trades_before
    assert dex.open_orders(maker) == [] and cex_open(cex_process) == []
    # resume goes through the same channel: HALTED → WITHDRAWN, an operator's word.
    out = cli(agent_env, "resume", "--config", str(cfg), "--who", "tester")
    assert out.returncode == 0 and "resumed" in out.stdout, out.stdout + out.stderr
    assert "state WITHDRAWN" in out.stdout

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-3000:]

    # No agent holds the lock now: the command acts itself, and still changes no position.
    out = cli(agent_env, "cancel-all", "--config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no agent was running" in out.stdout and "no order rests" in out.stdout
    assert dex.position_lots(maker) == dex_lots
    assert abs(cex_position(cex_process) + dex_lots * LOT) < 1e-9
    assert len(cex_trades(cex_process)) == trades_before


def test_second_agent_on_the_same_key_refuses_to_start(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    cfg, _log, first = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    # Same key, another data dir: the key's lock refuses it.
    (tmp_path / "b").mkdir()
    other = write_config(tmp_path / "b", anvil, dex, cex_process)
    out = cli(agent_env, "run", "--config", str(other), timeout_s=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0], out.stderr
    # Same data dir: refused by the data dir's lock (or the key's; either names the holder).
    out = cli(agent_env, "run", "--config", str(cfg), timeout_s=60)
    assert out.returncode == 1 and f"pid {first.pid}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert first.poll() is None
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0


def test_kill_9_at_random_points_adds_no_exposure(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    kills = int(os.environ.get("MM_SOAK_KILLS", "10"))
    seed = int(os.environ.get("MM_SOAK_SEED", "14"))
    figures = kill9_soak(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs, kills, seed)
    print(json.dumps(figures))


def kill9_soak(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_url: str,
    agent_env: dict[str, str],
    procs: Procs,
    kills: int,
    seed: int,
) -> dict[str, Any]:
    """Kill `mm-agent run` with SIGKILL `kills` times at random points; return the figures.

    Checks, over the whole soak: every exchange trade is explained by a DEX position change
    (exchange volume ≤ DEX volume, final hedge = −DEX position within the dead band), no client
    order id accepted twice, every quote resting at a kill dies by its expiry, no stuck nonce.
    """
    rng = random.Random(seed)
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    expiry_s = 20
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        cex_url,
        **{"[telemetry]": f"[execution]\nquote_expiry_s = {expiry_s}\n\n[telemetry]"},
    )
    log = tmp_path / "agent.log"
    dex_volume_lots = 0
    kill_orders = 0
    cid = 100
    t0 = time.monotonic()
    status = tmp_path / "data" / "status.json"
    for i in range(kills):
        # A live oracle: a stale one would (rightly) withdraw the agent, and the risk memory
        # keeps it withdrawn across these quick restarts.
        dex.push_price(3000.0)
        status.unlink(missing_ok=True)
        proc = start_agent(cfg, log, agent_env)
        procs.append(proc)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.5, 4.0))  # during start-up: imports, locks, resume, start
        else:
            # Up and cycling (status.json is written by this run's loop), then a fill or not.
            wait(status.exists, 60.0, f"run {i} up ({log.read_text()[-1500:]})")
            wait(lambda: len(dex.open_orders(maker)) >= 2, 60.0, f"run {i} quotes")
            if rng.random() < 0.6:
                before = dex.position_lots(maker)
                cid += 1
                side = rng.choice([ASK, BID])
                hit(dex, accounts["taker"], maker, side, rng.choice([0.02, 0.03]), cid)
                dex_volume_lots += abs(dex.position_lots(maker) - before)
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere in a cycle, a hedge, a quote tx...
        assert proc.poll() is None, f"run {i} exited early: {log.read_text()[-2000:]}"
        proc.kill()
        proc.wait()
        now = max(int(anvil.w3.eth.get_block("latest")["timestamp"]), int(time.time()))
        resting = dex.open_orders(maker)
        kill_orders += len(resting)
        for o in resting:  # (orderId, clientId, side, tick, lots, expiry)
            assert o[5] != 0, f"kill {i}: a quote without an expiry rests: {o}"
            assert o[5] <= now + expiry_s + 2, f"kill {i}: expiry {o[5]} beyond {now}+{expiry_s}"
    # A last, clean run: it must bring the hedge to the DEX position and exit 0.
    status.unlink(missing_ok=True)
    final = start_agent(cfg, log, agent_env)
    procs.append(final)
    wait(status.exists, 60.0, "the last run's status")
    dex_lots = dex.position_lots(maker)
    wait(
        lambda: abs(cex_position(cex_url) + dex_lots * LOT) <= 0.01 + 1e-9,
        60.0,
        f"the hedge of {dex_lots * LOT:+.2f} ({log.read_text()[-1500:]})",
    )
    final.send_signal(signal.SIGTERM)
    assert final.wait(15) == 0, log.read_text()[-3000:]
    state = cex_state(cex_url)
    cex_volume = sum(Decimal(t["qty"]) for t in state["trades"] if t["symbol"] == "ETHUSDT")
    assert state["client_ids_accepted_more_than_once"] == []
    # Every exchange trade follows a DEX position change: no sell-and-rebuild at a restart.
    assert cex_volume <= Decimal(dex_volume_lots) * Decimal("0.01") + Decimal("1e-9"), (
        cex_volume,
        dex_volume_lots,
    )
    w3 = anvil.w3
    assert w3.eth.get_transaction_count(maker, "pending") == w3.eth.get_transaction_count(
        maker, "latest"
    ), "a nonce is stuck in the pool"
    assert dex.open_orders(maker) == [] and cex_open(cex_url) == []
    return {
        "kills": kills,
        "seed": seed,
        "seconds": round(time.monotonic() - t0, 1),
        "dex_volume_base": dex_volume_lots * LOT,
        "cex_volume_base": float(cex_volume),
        "final_dex_base": dex_lots * LOT,
        "final_cex_base": cex_position(cex_url),
        "orders_resting_at_kills": kill_orders,
        "duplicate_client_ids": 0,
    }


def test_flatten_unwinds_both_legs_together_and_only_when_asked(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    maker = accounts["maker"].address
    cfg, _log, proc = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    hit(dex, accounts["taker"], maker, ASK, 0.05, cid=9)
    dex_lots = dex.position_lots(maker)
    wait(lambda: abs(cex_position(cex_process) + dex_lots * LOT) < 1e-9, 30.0, "the hedge")
    # Refused while the agent runs, and without --yes.
    out = cli(agent_env, "flatten", "--config", str(cfg), "--yes")
    assert out.returncode == 1 and f"pid {proc.pid}" in out.stderr, out.stdout + out.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    out = cli(agent_env, "flatten", "--config", str(cfg))
    assert out.returncode == 2 and dex.position_lots(maker) == dex_lots
    trades_before = len(cex_trades(cex_process))
    out = cli(agent_env, "flatten", "--config", str(cfg), "--yes", "--slice-base", "0.02")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "flat on both venues" in out.stdout
    assert dex.position_lots(maker) == 0 and cex_position(cex_process) == 0.0
    new = cex_trades(cex_process)[trades_before:]
    assert new and all(t["clientOrderId"].startswith("mmflat") for t in new)
    assert sum(Decimal(t["qty"]) for t in new) == Decimal(-dex_lots) * Decimal("0.01")


def test_start_up_faults_are_one_line_and_files_are_owner_only(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    def one_line_error(cfg: Path, needle: str) -> None:
        out = cli(agent_env, "run", "--config", str(cfg), timeout_s=60)
        lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("{")]  # JSON logs
        assert out.returncode == 1 and len(lines) == 1 and needle in lines[0], out.stderr
        assert "Traceback" not in out.stderr

    # data_dir is a file
    (tmp_path / "f").mkdir()
    cfg = write_config(tmp_path / "f", anvil, dex, cex_process)
    (tmp_path / "f" / "data").write_text("")
    one_line_error(cfg, "is a file, not a directory")
    # RPC down (nothing listens on port 9)
    (tmp_path / "r").mkdir()
    cfg = write_config(tmp_path / "r", anvil, dex, cex_process, **{anvil.url: "http://127.0.0.1:9"})
    one_line_error(cfg, "start-up failed: RPC http://127.0.0.1:9 unavailable")
    # telemetry port in use
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        (tmp_path / "t").mkdir()
        cfg = write_config(
            tmp_path / "t",
            anvil,
            dex,
            cex_process,
            **{"port = 0": f"port = {busy.getsockname()[1]}"},
        )
        one_line_error(cfg, "telemetry.port")
    # A run that worked leaves an owner-only data dir, journal and status.
    fund_book(dex, accounts)
    cfg = write_config(tmp_path, anvil, dex, cex_process)
    proc = start_agent(cfg, tmp_path / "agent.log", agent_env)
    procs.append(proc)
    status = tmp_path / "data" / "status.json"
    wait(status.exists, 60.0, "status")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700
    for f in data.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f"{f.name} is readable by others"
