"""DexVenue.snapshot latency: header read then views (two round trips) against a pushed head (one).

Both paths run side by side in one process against one market on a local anvil, alternating
snapshot for snapshot so that both see the same machine load: ``snapshot()`` reads the head's
header, then every view at its hash; ``snapshot(head)`` reads the views at the hash of a head
already known (what the runtime passes when its new-heads subscription pushed one). Measured
directly against anvil, and behind the RPC fault proxy holding every answer 20 ms (a remote
node's round trip). Each figure is the median of the calmest of 3 rounds (the round whose two
medians add up to least).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sims.bench import BenchResult

__all__ = ["run"]

_ROUNDS = 3
_N_LOCAL = 300
_N_PROXY = 40
_PROXY_DELAY_MS = 20.0


async def _rounds(
    url: str, market: str, start_block: int, journal_path: Path, n: int
) -> list[tuple[float, float]]:
    """(header-path median, pushed-head median) per round, seconds."""
    from agent.chain.abi import AbiCodec
    from agent.chain.contracts import market_abi
    from agent.chain.rpc import AsyncRpc, RpcConfig
    from agent.chain.signer import DevKey, load_signer
    from agent.chain.txpipe import TxPipeline
    from agent.store import Journal
    from agent.types import HeadRef
    from agent.venue.dex import DexVenue

    rpc = AsyncRpc(RpcConfig(url=url))
    journal = Journal(journal_path, fsync=False)
    try:
        pipe = TxPipeline(rpc, load_signer(DevKey(1), 31337), journal, error_abis=[market_abi()])
        venue = DexVenue(
            rpc=rpc,
            pipe=pipe,
            codec=AbiCodec(market_abi()),
            market=market,
            start_block=start_block,
        )
        await venue.connect(31337)
        head = HeadRef.from_rpc(await rpc.call("eth_getBlockByNumber", ["latest", False]))
        for _ in range(5):  # warm up both paths (connections, encoded calls)
            await venue.snapshot()
            await venue.snapshot(head)
        out = []
        for _ in range(_ROUNDS):
            read_header: list[float] = []
            pushed: list[float] = []
            for _ in range(n):
                t0 = time.perf_counter()
                await venue.snapshot()
                t1 = time.perf_counter()
                snap = await venue.snapshot(head)
                t2 = time.perf_counter()
                if snap.block_hash != head.hash:
                    raise RuntimeError("a block was mined during the benchmark")
                read_header.append(t1 - t0)
                pushed.append(t2 - t1)
            out.append((statistics.median(read_header), statistics.median(pushed)))
        return out
    finally:
        await rpc.aclose()
        journal.close()


async def _measure() -> dict[str, tuple[float, float]]:
    from agent.chain.signer import dev_account
    from sims.anvil import Anvil
    from sims.bench._market import two_sided_market
    from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig

    with tempfile.TemporaryDirectory() as tmp, Anvil() as node:
        w3 = node.w3
        dep_path = Path(tmp) / "dep.json"
        dep, market, send = two_sided_market(w3, dep_path)
        send(dev_account(1), market, "place", (0, 1, 299_500, 10, 3, 0))

        at = (dep.market, dep.block_number)

        def calmest(rounds: list[tuple[float, float]]) -> tuple[float, float]:
            return min(rounds, key=lambda r: r[0] + r[1])

        out = {"local": calmest(await _rounds(node.url, *at, Path(tmp) / "a.db", _N_LOCAL))}
        delay = (_PROXY_DELAY_MS, _PROXY_DELAY_MS)
        async with RpcProxy(RpcProxyConfig(upstream_url=node.url, delay_ms=delay)) as proxy:
            rounds = await _rounds(proxy.url, *at, Path(tmp) / "b.db", _N_PROXY)
        out[f"proxy {_PROXY_DELAY_MS:g} ms"] = calmest(rounds)
        return out


def run() -> list[BenchResult]:
    """Return the snapshot's median latency on both paths, locally and behind a 20 ms proxy."""
    out: list[BenchResult] = []
    for where, (read_header, pushed) in asyncio.run(_measure()).items():
        n = _N_LOCAL if where == "local" else _N_PROXY
        out.append(
            BenchResult(
                f"snapshot p50, header then views ({where}, n={n})", f"{read_header * 1e3:.2f} ms"
            )
        )
        out.append(
            BenchResult(
                f"snapshot p50, at a pushed head ({where}, n={n})",
                f"{pushed * 1e3:.2f} ms",
                "< header then views",
                pushed < read_header,
            )
        )
    return out


if __name__ == "__main__":
    for r in run():
        print(f"{r.name}: {r.value} {r.target}")
