"""Stress benchmark: wall time per simulated hour of the ``calm`` scenario at 1 s blocks.

The whole stack runs (forked anvil, world, CEX simulator, the real agent and hedger). A shorter
run is measured (600 simulated seconds by default) and scaled linearly to one hour, after
subtracting the fixed set-up cost; the figure's name says so. Target (issue 12): ≤ 30 s per
simulated hour. With the one-request agent cycle, the lean HTTP clients and the hand-decoded view
answers, runs interleaved with main (f9b8ef9) on 2026-11-30 16:50–16:54 UTC, load average 12.7 to
15.6 on 2 cores, measured 80.0, 36.4 and 60.5 s (22.2, 10.1 and 16.8 ms a step) against main's
148.5, 120.9 and 114.3 s (41.3, 33.6 and 31.7 ms); main measured 63–65 s at load 3–4 earlier that
day. What is left of a step is mostly Python outside this runner's reach: the exchange client's
httpx requests (about a third of the agent's CPU) and the fill-intensity fit in the estimators.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from sims.bench import BenchResult
from sims.scenario import load_scenario
from sims.stress import StressOptions, open_upstream, run_scenario

__all__ = ["run"]

_MEASURED_S = 600.0
_TARGET_S = 30.0
_PREVIOUS = "114–149 s on main, same load"
"""Main (f9b8ef9) run interleaved with this on 2026-11-30 16:50 UTC, load average 13–16."""


async def _measure(sim_s: float) -> tuple[float, float, int]:
    """(wall seconds of the stepped part, total wall seconds, steps) of one calm run."""
    scenario = load_scenario("calm")
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp, open_upstream() as up:
        t0 = time.perf_counter()
        res = await run_scenario(
            scenario, up, Path(tmp) / "calm", StressOptions(seed=1, short_s=sim_s)
        )
        total = time.perf_counter() - t0
    return res.loop_wall_s, total, res.steps


def run(sim_s: float = _MEASURED_S) -> list[BenchResult]:
    """Measure `sim_s` simulated seconds and scale to one hour."""
    loop_s, total_s, steps = asyncio.run(_measure(sim_s))
    per_hour = loop_s * 3600.0 / sim_s
    per_step_ms = loop_s / max(steps, 1) * 1e3
    return [
        BenchResult(
            f"stress: wall per simulated hour, 1 s blocks (calm, {sim_s:.0f} s run scaled x"
            f"{3600.0 / sim_s:.0f})",
            f"{per_hour:.1f} s",
            f"≤ {_TARGET_S:.0f} s (was {_PREVIOUS})",
            per_hour <= _TARGET_S,
        ),
        BenchResult(
            "stress: wall per block step (world + agent + hedger)", f"{per_step_ms:.1f} ms"
        ),
        BenchResult(
            f"stress: whole {sim_s:.0f} s run incl. fork, set-up, report", f"{total_s:.1f} s"
        ),
    ]


if __name__ == "__main__":  # pragma: no cover
    for r in run():
        print(f"{r.name}: {r.value} {r.target}")
