"""Fault harness: the exchange is down, or refuses our key, when ``mm-agent run`` restarts.

The previous run was killed (``kill -9``) with its quotes resting on the DEX. A quote resting
while no fill of it can be hedged is exposure nobody manages, so the restarted agent must:

- exchange down (every connection dropped, ``/_sim/faults {"outage": true}``): cancel the
  resting quotes, place none, say ``exchange_down`` on ``/healthz``, keep trying, and once the
  exchange answers hedge the position the chain confirms (fills taken while it was away
  included) against the exchange's own position: never a second hedge of what is hedged;
- exchange refuses the API key (-2015): cancel the resting quotes, then exit 1 with one line
  naming ``hedge.api_key_env`` (a config error: waiting will not fix it).

Before this, ``run`` exited 1 at start when the exchange did not answer, before touching the
DEX, so the killed run's quotes rested until their expiry (90 s); with a refused key it quoted
fills it could not hedge, with only a health condition saying so.
"""

from __future__ import annotations

import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import (
    ASK,
    LOT,
    cex_position,
    cex_state,
    cex_trades,
    cli,
    fund_book,
    hit,
    start_agent,
    telemetry_url,
    wait,
    wait_for_quotes,
    write_config,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

Procs = list[subprocess.Popen[bytes]]
# Taker hedging with a band under one fill (a quarter of the cap at most), so each fill is
# hedged by one IOC at once; a long oracle heartbeat, so nothing else withdraws the agent.
EDITS = {
    "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
    "inventory_cap_base = 2.0": "inventory_cap_base = 0.2",
    "dead_band_base = 0.01": 'dead_band_base = 0.01\norder_style = "IOC"',
}


def _outage(url: str, on: bool) -> None:
    httpx.post(f"{url}/_sim/faults", json={"outage": on}, timeout=5).raise_for_status()


def _healthz(base: str) -> tuple[int, dict[str, str]]:
    r = httpx.get(f"{base}/healthz", timeout=3.0)
    return r.status_code, {str(f["condition"]): str(f["reason"]) for f in r.json()["failing"]}


def _killed_with_quotes_resting(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_url: str,
    env: dict[str, str],
    procs: Procs,
) -> tuple[Path, Path]:
    """Run the agent until it quotes and has hedged one fill, then ``kill -9`` it.

    Returns (config, log); the killed run's quotes rest on the book.
    """
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    cfg = write_config(tmp_path, anvil, dex, cex_url, **EDITS)
    log = tmp_path / "agent.log"
    first = start_agent(cfg, log, env)
    procs.append(first)
    wait_for_quotes(dex, maker, log)
    hit(dex, accounts["taker"], maker, ASK, 0.06, cid=61)
    hedged = -dex.position_lots(maker) * LOT
    assert hedged > 0, "the take did not fill our ask"
    wait(
        lambda: abs(cex_position(cex_url) - hedged) <= 1e-9,
        40.0,
        f"the first run's hedge ({log.read_text()[-1500:]})",
    )
    wait_for_quotes(dex, maker, log)  # re-quoted after the fill
    first.kill()
    first.wait()
    assert dex.open_orders(maker), "the killed run left no quote: nothing to check"
    # The next run's telemetry port is not the killed run's.
    (tmp_path / "data" / "telemetry.port").unlink(missing_ok=True)
    return cfg, log


def test_exchange_down_at_restart_cancels_quotes_waits_and_hedges_the_confirmed_position(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    maker = accounts["maker"].address
    cfg, log = _killed_with_quotes_resting(
        dex, anvil, accounts, tmp_path, cex_process, agent_env, procs
    )
    # While no agent runs, a taker lifts another orphaned ask: this fill is not hedged yet.
    before = dex.position_lots(maker)
    hit(dex, accounts["taker"], maker, ASK, 0.06, cid=62)
    assert dex.position_lots(maker) < before, "the take did not fill our orphaned ask"
    fills_base = -dex.position_lots(maker) * LOT  # both fills sold: the volume to hedge
    _outage(cex_process, True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    wait(
        lambda: dex.open_orders(maker) == [],
        30.0,
        f"the orphaned quotes cancelled with the exchange down ({log.read_text()[-2500:]})",
    )
    base = telemetry_url(tmp_path)
    wait(lambda: "exchange_down" in _healthz(base)[1], 15.0, f"exchange_down ({_healthz(base)})")
    code, failing = _healthz(base)
    assert code == 503 and "hedge.base_url" in failing["exchange_down"], failing
    # Down for a while: alive, trying, and nothing of ours on the book.
    for _ in range(30):
        assert second.poll() is None, f"the agent exited: {log.read_text()[-2500:]}"
        assert dex.open_orders(maker) == [], "a quote rests while the exchange is down"
        time.sleep(0.1)
    _outage(cex_process, False)
    # Back: the hedge follows the confirmed DEX position (both fills), and quoting resumes.
    dex_base = dex.position_lots(maker) * LOT
    wait(
        lambda: abs(cex_position(cex_process) + dex_base) <= 1e-9,
        40.0,
        f"the hedge of {dex_base:+.2f} once the exchange is back ({log.read_text()[-2500:]})",
    )
    wait_for_quotes(dex, maker, log)
    wait(lambda: _healthz(base)[0] == 200, 20.0, f"/healthz 200 again ({_healthz(base)})")
    # Every exchange trade follows a DEX fill, once: nothing was hedged twice.
    state = cex_state(cex_process)
    traded = sum(Decimal(t["qty"]) for t in cex_trades(cex_process))
    assert state["client_ids_accepted_more_than_once"] == []
    assert traded == Decimal(str(round(fills_base, 9))), (traded, fills_base)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, log.read_text()[-2000:]


def test_refused_exchange_key_at_restart_cancels_quotes_and_exits_naming_the_key(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    maker = accounts["maker"].address
    cfg, _log = _killed_with_quotes_resting(
        dex, anvil, accounts, tmp_path, cex_process, agent_env, procs
    )
    trades = len(cex_trades(cex_process))
    bad = {**agent_env, "MM_CEX_API_KEY": "a-revoked-key"}
    out = cli(bad, "run", "--config", str(cfg), timeout_s=60)
    lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("{")]  # JSON logs
    assert out.returncode == 1, out.stderr[-2000:]
    assert len(lines) == 1 and "hedge.api_key_env" in lines[0], out.stderr[-2000:]
    assert "MM_CEX_API_KEY" in lines[0], lines
    # The DEX was cancelled (only the exchange, never reached, is left to its dead-man switch).
    assert "dex:" not in lines[0], lines
    assert "Traceback" not in out.stderr
    assert dex.open_orders(maker) == [], "the killed run's quotes were left resting"
    assert len(cex_trades(cex_process)) == trades


def test_sigterm_while_waiting_for_the_exchange_exits_in_time_with_the_dex_clear(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """A supervisor stops the agent while it waits for the exchange: exit within 10 s, 1 (the
    exchange never confirmed it has no open order of ours), one line naming the exchange and
    not the DEX, whose book is clear."""
    maker = accounts["maker"].address
    cfg, log = _killed_with_quotes_resting(
        dex, anvil, accounts, tmp_path, cex_process, agent_env, procs
    )
    _outage(cex_process, True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    base = telemetry_url(tmp_path)
    wait(lambda: "exchange_down" in _healthz(base)[1], 30.0, f"exchange_down ({_healthz(base)})")
    assert dex.open_orders(maker) == []
    t0 = time.monotonic()
    second.send_signal(signal.SIGTERM)
    rc = second.wait(30)
    took = time.monotonic() - t0
    out = log.read_text()
    assert took < 10.0, f"shutdown took {took:.1f} s"
    loud = [ln for ln in out.splitlines() if "ORDERS MAY STILL REST" in ln]
    assert rc == 1 and len(loud) == 1, out[-2000:]
    assert "cex:" in loud[0] and "dead-man" in loud[0] and "dex:" not in loud[0], loud[0]
    assert dex.open_orders(maker) == []
