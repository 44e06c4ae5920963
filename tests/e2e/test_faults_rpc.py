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

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
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
    BackgroundLoop,
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
        self.bg = BackgroundLoop()
        self.proxy = RpcProxy(RpcProxyConfig(upstream_url=upstream, delay_ms=(0.0, 0.0)))
        self.url = self.bg.call(self.proxy.start())

    def set_mode(self, mode: Any) -> None:
        self.bg.soon(self.proxy.set_mode, mode)

    def close(self) -> None:
        self.bg.call(self.proxy.stop())
        self.bg.close()


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


def _garbage_nonce(garbage: object, times: int) -> Callable[[bytes, bytes], bytes]:
    """A rewrite for :attr:`RpcProxy.rewrite`: the next `times` answers to a pending-nonce
    query (alone or in a batch) say `garbage`; every other answer is the node's."""
    left = [times]

    def rewrite(body: bytes, answer: bytes) -> bytes:
        if left[0] <= 0:
            return answer
        try:
            request, reply = json.loads(body), json.loads(answer)
        except ValueError:
            return answer
        ids = {
            r.get("id")
            for r in (request if isinstance(request, list) else [request])
            if r.get("method") == "eth_getTransactionCount" and "pending" in r.get("params", [])
        }
        if not ids:
            return answer
        left[0] -= 1
        for r in reply if isinstance(reply, list) else [reply]:
            if r.get("id") in ids:
                r["result"] = garbage
        return json.dumps(reply).encode()

    return rewrite


# A number far ahead of the mined count (the dangerous one: it looks like a nonce) and a
# non-hex string (null and other shapes take the same path).
@pytest.mark.parametrize("garbage", ["0x3b9aca00", "0xzz"], ids=["huge", "not_hex"])
def test_garbage_nonce_at_restart_sends_nothing_at_a_made_up_nonce(
    garbage: object,
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    rpc_proxy: ThreadedRpcProxy,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    """A node (or the load balancer in front of it) answers the start's pending-nonce query
    with garbage a few times, then with the truth. The restarted agent must not sign anything
    at a nonce it made up (one billion would leave its transactions queued behind a gap the
    pipeline then fills, one self-transfer per missing nonce), must clear the killed run's
    quotes and quote again, one ladder, with no nonce stuck."""
    fund_book(dex, accounts)
    maker = accounts["maker"].address
    w3 = anvil.w3
    edits = {"poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600"}
    cfg = write_config(tmp_path, anvil, dex, cex_process, **edits)
    log = tmp_path / "agent.log"
    first = start_agent(cfg, log, agent_env)
    procs.append(first)
    wait_for_quotes(dex, maker, log)
    first.kill()
    first.wait()
    nonce0 = w3.eth.get_transaction_count(maker)
    rpc_proxy.proxy.rewrite = _garbage_nonce(garbage, times=3)
    cfg.write_text(
        cfg.read_text().replace(f'rpc_url = "{anvil.url}"', f'rpc_url = "{rpc_proxy.url}"')
    )
    status = tmp_path / "data" / "status.json"
    status.unlink(missing_ok=True)
    second = start_agent(cfg, log, agent_env)
    procs.append(second)
    samples: list[tuple[int, int]] = []

    def sides() -> tuple[int, int]:
        orders = dex.open_orders(maker)
        bids = sum(1 for o in orders if o[2] == BID)
        samples.append((bids, len(orders) - bids))
        return samples[-1]

    deadline = time.monotonic() + 25.0
    while time.monotonic() < deadline and not (status.exists() and min(sides()) >= 1):
        assert w3.eth.get_transaction_count(maker) < nonce0 + 20, "a burst of transactions"
        time.sleep(0.2)
    assert status.exists() and min(sides()) >= 1, f"not quoting again: {log.read_text()[-2500:]}"
    for _ in range(20):
        sides()
        time.sleep(0.1)
    over = [s for s in samples if max(s) > LEVELS]
    assert not over, f"{len(over)} of {len(samples)} samples over {LEVELS} a side: {over[:5]}"
    assert w3.eth.get_transaction_count(maker) < nonce0 + 20
    queued = anvil.txpool_status()
    assert queued.get("queued", 0) == 0, f"transactions queued behind a nonce gap: {queued}"
    wait(
        lambda: (
            w3.eth.get_transaction_count(maker, "pending")
            == w3.eth.get_transaction_count(maker, "latest")
        ),
        20.0,
        "no nonce stuck in the pool",
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, log.read_text()[-2000:]
