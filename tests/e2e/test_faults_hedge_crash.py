"""Fault harness: ``kill -9`` between a hedge order and its answer, then a restart.

``mm-agent run`` hedges through :class:`sims.faults.CexFaultProxy` (run on its own event loop in
a thread) in front of the exchange simulator. A taker fills our quote; the agent sends the hedge;
the proxy holds the order (its answer withheld, or the request itself still in transit) and the
agent is killed with SIGKILL while it waits. A new ``mm-agent run`` on the same data dir must find
that order by its client order id (the journal has it) and never send the same exposure again:
over the whole test the exchange trades exactly the DEX fill, no client id is accepted twice and
the hedge ends equal to minus the DEX position.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from sims.faults import CexFaultProxy, ProxyFault
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import (
    ASK,
    LOT,
    BackgroundLoop,
    cex_position,
    cex_state,
    fund_book,
    hit,
    start_agent,
    wait,
    wait_for_quotes,
    write_config,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

Procs = list[subprocess.Popen[bytes]]
ORDER = ("POST", "/fapi/v1/order")


class ThreadedProxy:
    """A :class:`CexFaultProxy` serving from its own event loop in a daemon thread."""

    def __init__(self, upstream: str) -> None:
        self.bg = BackgroundLoop()
        self.proxy = CexFaultProxy(upstream)
        self.url = self.bg.call(self.proxy.start())

    def inject(self, fault: ProxyFault) -> None:
        self.bg.soon(self.proxy.inject, fault)

    def faulted_orders(self) -> int:
        return sum(1 for m, p, k in list(self.proxy.log) if (m, p) == ORDER and k is not None)

    def close(self) -> None:
        self.bg.call(self.proxy.stop())
        self.bg.close()


def _outage(url: str, on: bool) -> None:
    """Drop (or stop dropping) every API connection at the exchange simulator."""
    httpx.post(f"{url}/_sim/faults", json={"outage": on}, timeout=5).raise_for_status()


@pytest.fixture
def proxy(cex_process: str) -> Iterator[ThreadedProxy]:
    p = ThreadedProxy(cex_process)
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize(
    ("fault", "down_at_restart"),
    [
        # The order executes at once; its answer never comes (the client gives up after 2 s).
        (ProxyFault("timeout", hold_s=30.0), False),
        # The request itself is still on its way when the agent dies: it executes 3 s later,
        # inside the restarted agent's lookups.
        (ProxyFault("delay", delay_s=3.0), False),
        # The answer is lost and the exchange is down when the agent restarts: it clears its
        # DEX quotes, waits, and once the exchange answers finds the order by its id.
        (ProxyFault("timeout", hold_s=30.0), True),
    ],
    ids=["answer_lost", "order_in_transit", "answer_lost_exchange_down_at_restart"],
)
def test_kill_9_while_a_hedge_order_is_unanswered_never_hedges_twice(
    fault: ProxyFault,
    down_at_restart: bool,
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    proxy: ThreadedProxy,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    # Taker hedging with a band under one fill (a quarter of the cap at most), so the fill is
    # hedged by one IOC at once; a long oracle heartbeat, so nothing else withdraws the agent.
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        proxy.url,
        **{
            "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
            "inventory_cap_base = 2.0": "inventory_cap_base = 0.2",
            "dead_band_base = 0.01": 'dead_band_base = 0.01\norder_style = "IOC"',
        },
    )
    log = tmp_path / "agent.log"
    first = start_agent(cfg, log, agent_env)
    procs.append(first)
    wait_for_quotes(dex, maker, log)
    proxy.inject(fault)
    hit(dex, accounts["taker"], maker, ASK, 0.06, cid=91)
    filled = dex.position_lots(maker) * LOT
    assert filled < 0, "the take did not fill our ask"
    wait(lambda: proxy.faulted_orders() >= 1, 30.0, f"the hedge order ({log.read_text()[-1500:]})")
    time.sleep(0.3)  # the agent is now waiting for an answer that does not come in time
    first.kill()
    first.wait()
    status = tmp_path / "data" / "status.json"
    status.unlink(missing_ok=True)
    if down_at_restart:
        _outage(cex_process, True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    if down_at_restart:
        wait(
            lambda: dex.open_orders(maker) == [],
            30.0,
            f"the quotes cancelled with the exchange down ({log.read_text()[-1500:]})",
        )
        time.sleep(2.0)  # a few tries to reach it
        assert second.poll() is None, log.read_text()[-2000:]
        assert dex.open_orders(maker) == []
        status.unlink(missing_ok=True)  # written while waiting: the loop's comes after
        _outage(cex_process, False)
    # Up and cycling: its hedger has resumed (lookups by client id) and been armed.
    wait(status.exists, 60.0, f"the restarted run cycling ({log.read_text()[-1500:]})")
    wait(
        lambda: abs(cex_position(cex_process) + filled) <= 0.01 + 1e-9,
        60.0,
        f"the hedge of {filled:+.2f} after the restart ({log.read_text()[-2500:]})",
    )
    # Give the restarted agent time to act on any wrong belief (a resend, a second hedge).
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        assert abs(cex_position(cex_process) + filled) <= 0.01 + 1e-9, log.read_text()[-2500:]
        time.sleep(0.2)
    state = cex_state(cex_process)
    traded = sum(Decimal(t["qty"]) for t in state["trades"] if t["symbol"] == "ETHUSDT")
    assert state["client_ids_accepted_more_than_once"] == []
    assert traded <= Decimal(str(abs(filled))) + Decimal("0.01"), (traded, filled)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, log.read_text()[-2000:]
