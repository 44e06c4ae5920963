"""Live races: the agent's real run loop against a chain that does not wait for it.

Lock-step stress runs cannot show these (every read is answered before the next block exists).
Each test runs :func:`sims.live.run_live` on a fork of the session's fork-state file and samples the
agent's resting orders *directly on chain* (its own HTTP client to the node, never through the
agent or the proxy) about ten times a second; the agent must never rest more than its configured
levels on a side, whatever the timing:

- answers delayed 300-800 ms by :class:`sims.faults.rpcproxy.RpcProxy` (a slow node);
- the node restarted mid-run on the same port, its state kept, its mempool lost;
- a block carrying the agent's quote batch landing while the agent's next snapshot is in flight
  (the proxy mines it between the node's answer and the agent receiving it).

The failure these catch: the runtime reads the book at "latest", then learns from a receipt that
its quote batch was included, and diffs the fresh decision against the stale book, so it sends
the whole ladder again at the next nonce (12 orders on 6 levels). Each test failed that way on the
runtime before its in-flight guard (no batch decided from a snapshot older than our last landed
order change).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from agent.types import Side
from sims.live import LiveHandle, LiveOptions, run_live
from sims.scenario import load_scenario
from sims.stress import StressOptions, StressResult, Upstream

pytestmark = pytest.mark.chain

_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_config(tmp_path: Path) -> Path:
    """The example config with gas priced near zero, so the agent re-quotes on every move.

    Liquidation scans are off: they read up to twenty accounts one by one, which behind a slow
    node would take most of the wall time these tests have.
    """
    text = (_REPO / "mm.example.toml").read_text()
    text, n1 = re.subn(r"(?m)^native_price_quote = .*$", "native_price_quote = 0.001", text)
    text, n2 = re.subn(r"(?m)^liquidate = .*$", "liquidate = false", text)
    assert n1 == n2 == 1, "mm.example.toml changed shape: update this fixture"
    path = tmp_path / "busy.toml"
    path.write_text(text)
    return path


class ChainSampler:
    """Count the agent's resting orders per side straight from the market, ~10 times a second."""

    def __init__(self, handle: LiveHandle) -> None:
        self.handle = handle
        self.samples: list[tuple[float, int, int, int]] = []
        """(sim time, block, bids, asks)."""
        self.errors = 0

    async def run(self, interval_s: float = 0.1) -> None:
        w = self.handle.world
        data = "0x" + w.market.encode_call("openOrders", w.agent_address).hex()
        body = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_call",
                "params": [{"to": w.dep.market, "data": data}, "latest"],
            },
        ]
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                try:
                    r = await client.post(self.handle.node.url, json=body)
                    res = {m["id"]: m.get("result") for m in r.json()}
                    orders = w.market.decode_output("openOrders", res[2])[0]
                except (httpx.HTTPError, ValueError, TypeError, KeyError):
                    self.errors += 1  # the node is restarting
                else:
                    bids = sum(1 for o in orders if int(o[2]) == int(Side.BID))
                    block = int(res[1], 16)
                    self.samples.append((self.handle.clock(), block, bids, len(orders) - bids))
                await asyncio.sleep(interval_s)

    def assert_within_levels(self, levels: int) -> None:
        assert len(self.samples) >= 20, f"only {len(self.samples)} chain samples"
        over = [s for s in self.samples if max(s[2], s[3]) > levels]
        assert not over, (
            f"{len(over)} of {len(self.samples)} chain samples rest more than {levels} orders on "
            f"a side, e.g. (block, bids, asks): {[(b, x, y) for _, b, x, y in over[:5]]}"
        )


def _run(
    upstream: Upstream,
    out: Path,
    config: Path,
    live: LiveOptions,
    action: object,
    wall_s: float,
    *,
    dump_state: bool = False,
    enough_quotes: int = 1_000,
) -> tuple[StressResult, ChainSampler]:
    """Run vol_shock_3x live for at most `wall_s` wall seconds with a sampler and `action`."""
    holder: dict[str, ChainSampler] = {}
    stop = asyncio.Event()

    async def on_start(handle: LiveHandle) -> None:
        sampler = ChainSampler(handle)
        holder["s"] = sampler
        tasks = [asyncio.create_task(sampler.run())]
        if callable(action):
            tasks.append(asyncio.create_task(action(handle)))
        try:
            # Until the time is up, or earlier once the agent has quoted `enough_quotes` times
            # (a loaded machine quotes less per second) or the sampler has caught the race.
            deadline = asyncio.get_running_loop().time() + wall_s
            while asyncio.get_running_loop().time() < deadline:
                over = any(max(b, a) > handle.levels for _, _, b, a in sampler.samples)
                if over or handle.agent.status.quote_txs >= enough_quotes:
                    break
                await asyncio.sleep(0.25)
            stop.set()
            await asyncio.Event().wait()  # cancelled by run_live when the run winds down
        finally:
            for t in tasks:
                t.cancel()

    res = asyncio.run(
        run_live(
            load_scenario("vol_shock_3x"),
            upstream,
            out,
            StressOptions(seed=3, short_s=120.0, config_path=config),
            live,
            on_start=on_start,
            stop=stop,
            dump_state=dump_state,
        )
    )
    return res, holder["s"]


def test_slow_rpc_never_rests_more_than_levels(
    upstream: Upstream, busy_config: Path, tmp_path: Path
) -> None:
    live = LiveOptions(speed=1.0, rpc_delay_ms=(300.0, 800.0))
    # A batch often lands under the next snapshot (75 of 227 chain samples over the levels in
    # one 25 s run here): twenty batches leave the race little room to hide on a busy machine.
    res, sampler = _run(
        upstream, tmp_path / "slow", busy_config, live, None, 45.0, enough_quotes=20
    )
    # With the in-flight guard the agent re-reads instead of quoting from a snapshot that predates
    # its last landed batch, so it sends fewer batches behind a slow node (5 in 45 s here); three
    # are enough for the race: the old code doubled its ladder from the second batch on.
    assert res.report["agent"]["quote_txs"] >= 3, "the agent barely quoted: the test shows nothing"
    sampler.assert_within_levels(res.report["live"]["levels"])
    failed = [f"{i.name}: {i.detail}" for i in res.invariants if not i.passed]
    assert not failed, failed


def test_block_landing_while_snapshot_in_flight(
    upstream: Upstream, busy_config: Path, tmp_path: Path
) -> None:
    """The batch is mined between the node answering the agent's snapshot and the agent
    reading that answer: the agent must not take the stale book for the current one."""
    mined_under: list[int] = []

    async def action(handle: LiveHandle) -> None:
        proxy = handle.proxy
        assert proxy is not None
        selector = handle.world.market.encode_call("openOrders", handle.world.agent_address)
        marker = selector[:4].hex()
        agent = handle.world.agent_address.lower()

        async def before_answer(body: bytes) -> None:
            text = body.decode(errors="replace").lower()
            if marker not in text or "eth_getblockbynumber" not in text:
                return  # not a snapshot
            pool = await asyncio.to_thread(handle.node.txpool_content)
            mine = {k.lower(): v for k, v in pool.get("pending", {}).items()}.get(agent)
            if mine:
                await handle.mine_now()  # the quote batch lands now; the answer is stale
                mined_under.append(len(mine))

        proxy.before_answer = before_answer

    live = LiveOptions(speed=1.0, rpc_delay_ms=(20.0, 40.0))
    res, sampler = _run(upstream, tmp_path / "head", busy_config, live, action, 20.0)
    assert mined_under, "no block landed under a snapshot: the test shows nothing"
    sampler.assert_within_levels(res.report["live"]["levels"])


def test_node_restart_mid_run(upstream: Upstream, busy_config: Path, tmp_path: Path) -> None:
    restarted: list[tuple[int, int]] = []

    async def action(handle: LiveHandle) -> None:
        await asyncio.sleep(8.0)
        before = handle.node.block_number()
        await handle.restart_node(down_s=1.0)
        restarted.append((before, handle.node.block_number()))

    live = LiveOptions(speed=1.0, rpc_delay_ms=(100.0, 300.0))
    res, sampler = _run(
        upstream, tmp_path / "restart", busy_config, live, action, 22.0, dump_state=True
    )
    assert restarted, "the node was not restarted"
    before, after = restarted[0]
    assert after >= before, f"the node came back at block {after}, not {before}: state lost"
    assert sampler.errors > 0, "the sampler never saw the node down"
    sampler.assert_within_levels(res.report["live"]["levels"])
    failed = [f"{i.name}: {i.detail}" for i in res.invariants if not i.passed]
    assert not failed, failed
