"""Market event → signed quote batch handed to the RPC, measured in-process on a local anvil.

The "event" is a fresh market snapshot whose mid has moved enough that a refresh is worth its gas.
The clock starts when the runtime receives the snapshot (``Agent.on_snapshot``) and stops when the
transaction pipeline calls ``eth_sendRawTransaction`` with the signed bytes: estimators, risk
engine, model and cost gate, order diff, calldata encoding, nonce and fees, signing and the
journal write all happen inside that window. The RPC round trip itself is outside it.

Measured twice: with the journal's fsync before broadcast (the default: durable against power
loss) and without (durable against ``kill -9`` only), because on ordinary disks the fsync dominates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sims.bench import BenchResult

__all__ = ["run"]

_N = 200


async def _measure(fsync: bool) -> list[float]:
    from agent.app import build_agent
    from agent.config import AgentConfig
    from agent.venue.dex import DexVenue
    from sims.anvil import Anvil
    from sims.bench._market import two_sided_market

    with tempfile.TemporaryDirectory() as tmp, Anvil() as node:
        w3 = node.w3
        two_sided_market(w3, Path(tmp) / "dep.json", maker_fee_bps=-1)
        cfg = AgentConfig.model_validate(
            {
                "chain": {"rpc_url": node.url, "deployment_file": str(Path(tmp) / "dep.json")},
                "signer": {"dev_index": 1},
                "hedge": {"enabled": False},
                "storage": {"data_dir": tmp, "journal_fsync": fsync},
                # Gas priced near zero so that every event is worth a refresh: this measures the
                # latency of a send, not the cost gate's (correct) reluctance to send.
                "quoting": {
                    "base_size_base": 0.1,
                    "ref_depth_base": 0.5,
                    "levels": 2,
                    "native_price_quote": 0.001,
                },
                # The benchmark moves the mid ±$2 every second on purpose; keep risk quiet so
                # every event is a refresh (the cost of risk evaluation is still measured).
                "risk": {
                    "orders_per_min": {"warn": 1e9, "breach": 2e9},
                    "realized_vol_annual": {"warn": 1e9, "breach": 2e9},
                    "index_jump_bps": {"warn": 1e9, "breach": 2e9},
                    "quote_collar_ratio": {"warn": 1e9, "breach": 2e9},
                },
            }
        )
        sim_now = [time.time()]  # one clock for the agent and its pipeline: simulated seconds
        agent, closers = await build_agent(cfg, clock=lambda: sim_now[0])
        await agent.start()
        await agent.step()
        sent_at: list[float] = []
        assert isinstance(agent.venue, DexVenue)
        rpc = agent.venue.pipe._rpc  # the benchmark's probe point: where signed bytes leave us
        original = rpc.call

        async def probe(method: str, params: list[Any] | None = None, **kw: Any) -> Any:
            if method == "eth_sendRawTransaction":
                sent_at.append(time.perf_counter())
            return await original(method, params, **kw)

        rpc.call = probe  # type: ignore[method-assign]
        samples: list[float] = []
        try:
            base = await agent.venue.snapshot()
            for i in range(_N):
                sim_now[0] += 1.0  # one event per simulated second, like one block per second
                t_sim = sim_now[0]
                await agent.absorb_outcomes()  # let the previous quote tx resolve (untimed)
                shift = 200 if i % 2 == 0 else -200  # ±$2 moves: always worth a refresh
                bids = tuple((t + shift, n) for t, n in base.book.bids)
                asks = tuple((t + shift, n) for t, n in base.book.asks)
                # The chain's current head and our orders on it; the book and index are moved.
                head = await agent.venue.snapshot()
                snap = dataclasses.replace(
                    base,
                    block_number=head.block_number,
                    block_hash=head.block_hash,
                    book=dataclasses.replace(base.book, bids=bids, asks=asks),
                    index=(base.index or 3000.0) + shift * 0.01,
                    open_orders=head.open_orders,
                )
                agent._block_seen_s = t_sim  # each event stands for a new block
                n0 = len(sent_at)
                t0 = time.perf_counter()
                await agent.on_snapshot(snap, t_sim)
                if len(sent_at) > n0:
                    samples.append(sent_at[n0] - t0)

        finally:
            rpc.call = original  # type: ignore[method-assign]
            for close in closers:
                res = close()
                if asyncio.iscoroutine(res):
                    await res
        return samples


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run() -> list[BenchResult]:
    """Return p50/p99 event → signed batch on the wire, with and without fsync."""
    out: list[BenchResult] = []
    for fsync in (False, True):
        s = asyncio.run(_measure(fsync))
        if not s:
            raise RuntimeError("no quote transaction was sent: the benchmark set-up is wrong")
        label = "fsync journal" if fsync else "WAL journal, no fsync"
        p50, p99 = statistics.median(s) * 1e3, _pct(s, 0.99) * 1e3
        out.append(
            BenchResult(
                f"event → signed batch on the wire, p50 ({label}, n={len(s)})",
                f"{p50:.2f} ms",
                "≤ 1 ms",
                p50 <= 1.0,
            )
        )
        out.append(
            BenchResult(
                f"event → signed batch on the wire, p99 ({label})",
                f"{p99:.2f} ms",
                "≤ 3 ms",
                p99 <= 3.0,
            )
        )
    return out


if __name__ == "__main__":
    for r in run():
        print(f"{r.name}: {r.value} (target {r.target})")
