"""Seeds-table benchmark: 10 seeds × every registered strategy, one scenario shortened to 600 s.

Lock-step runs, one after another (a Ray sweep comes later). Issue 12 asks for the wall time of a
10-seed, 3-strategy table; until the model's ``plain`` and ``every-block`` presets are registered
(sims/strategies.py) the table has one strategy, and the figure's name says how many it ran.
No previous figure (the table is new).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from sims.bench import BenchResult
from sims.seeds import run_sweep
from sims.strategies import strategy_names
from sims.stress import StressOptions, open_upstream

__all__ = ["run"]


async def _measure(scenario: str, seeds: list[int], sim_s: float) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp, open_upstream() as up:
        t0 = time.perf_counter()
        runs = await run_sweep(
            scenario,
            up,
            Path(tmp),
            seeds,
            strategy_names(),
            base=StressOptions(short_s=sim_s),
            progress=False,
        )
        return time.perf_counter() - t0, len(runs), sum(r.passed for r in runs)


def run(scenario: str = "calm", n_seeds: int = 10, sim_s: float = 600.0) -> list[BenchResult]:
    """Tabulate `n_seeds` seeds of every strategy on `scenario` shortened to `sim_s`."""
    wall, n, passed = asyncio.run(_measure(scenario, list(range(n_seeds)), sim_s))
    k = len(strategy_names())
    return [
        BenchResult(
            f"stress table: {scenario} {sim_s:.0f} s, {n_seeds} seeds × {k} strateg"
            f"{'y' if k == 1 else 'ies'} (lock-step, sequential), wall",
            f"{wall:.0f} s",
            "(new)",
        ),
        BenchResult("stress table: runs that held every invariant", f"{passed}/{n}"),
    ]


if __name__ == "__main__":  # pragma: no cover
    for r in run():
        print(f"{r.name}: {r.value} {r.target}")
