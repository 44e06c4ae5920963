"""Fault harness: the node's answers arrive garbled (200, half a JSON body), then recover.

``mm-agent run`` talks to the session anvil (1 s blocks) through :class:`sims.faults.RpcProxy`
(on its own event loop in a thread). In ``garble`` mode every request still reaches the node, so a
transaction the agent sends is broadcast, but no answer can be parsed: the agent is blind. It
must not crash, must say so on ``/healthz``, must pull its quotes (its cancel-all reaches the node
even though the answer is lost), must never rest more than ``levels`` orders on a side, and must
come back (200, no nonce stuck) once the answers are whole again.

On main the fail-safe cancel-all could not be sent at all while blind: signing it needed a fresh
fee read, which failed like every other read, so the quotes stayed on the book (3 a side for the
whole 40 s) while ``/healthz`` said "its quotes are pulled".
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import (
    BID,
    fund_book,
    start_agent,
    telemetry_url,
    wait,
    wait_for_quotes,
    write_config,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

LEVELS = 3  # the model's default ladder depth (write_config leaves it)
Procs = list[subprocess.Popen[bytes]]


class ThreadedRpcProxy:
    """An :class:`RpcProxy` (no added delay) serving from its own event loop in a thread."""

    def __init__(self, upstream: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = RpcProxy(RpcProxyConfig(upstream_url=upstream, delay_ms=(0.0, 0.0)))
        self.url = self._call(self.proxy.start())

    def _call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(60)

    def set_mode(self, mode: Any) -> None:
        self.loop.call_soon_threadsafe(self.proxy.set_mode, mode)

    def close(self) -> None:
        self._call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def rpc_proxy(anvil: Anvil) -> Iterator[ThreadedRpcProxy]:
    p = ThreadedRpcProxy(anvil.url)
    try:
        yield p
    finally:
        p.close()


def _health(base: str) -> tuple[int, set[str]]:
    r = httpx.get(f"{base}/healthz", timeout=3.0)
    return r.status_code, {str(f["condition"]) for f in r.json()["failing"]}


def test_garbled_rpc_answers_blind_the_agent_safely_and_it_recovers(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    rpc_proxy: ThreadedRpcProxy,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    w3 = anvil.w3
    anvil.set_interval_mining(1)
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        cex_process,
        **{
            f'rpc_url = "{anvil.url}"': f'rpc_url = "{rpc_proxy.url}"',
            "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
        },
    )
    assert rpc_proxy.url in cfg.read_text()
    log = tmp_path / "agent.log"
    proc = start_agent(cfg, log, agent_env)
    procs.append(proc)
    wait_for_quotes(dex, maker, log)
    base = telemetry_url(tmp_path)
    samples: list[tuple[int, int]] = []

    def sample() -> tuple[int, int]:
        orders = dex.open_orders(maker)  # straight from the node, not through the proxy
        bids = sum(1 for o in orders if o[2] == BID)
        samples.append((bids, len(orders) - bids))
        return samples[-1]

    rpc_proxy.set_mode("garble")
    try:
        wait(lambda: sample() == (0, 0) and _health(base)[0] == 503, 40.0, "blind")
    except AssertionError:
        raise AssertionError(
            f"quotes not pulled or /healthz not 503 while blind: health {_health(base)}, "
            f"orders {samples[-1]}; {log.read_text()[-3000:]}"
        ) from None
    assert {"rpc_failing", "blind_cycles", "chain_stale"} & _health(base)[1]
    assert proc.poll() is None, "the agent died on garbled answers"
    rpc_proxy.set_mode("forward")
    # Health comes back as soon as reads succeed; quoting comes back later, when the risk
    # engine's RPC error-rate window (60 s) and its WITHDRAWN cooldown have passed.
    wait(lambda: _health(base)[0] == 200, 60.0, "/healthz 200 once the answers are whole")
    for _ in range(20):  # a few more blocks with the agent seeing again
        sample()
        time.sleep(0.1)
    over = [s for s in samples if max(s) > LEVELS]
    assert not over, f"{len(over)} of {len(samples)} samples over {LEVELS} a side: {over[:5]}"
    wait(
        lambda: (
            w3.eth.get_transaction_count(maker, "pending")
            == w3.eth.get_transaction_count(maker, "latest")
        ),
        20.0,
        "no nonce stuck in the pool",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-2000:]
