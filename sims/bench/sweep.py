"""Sweep throughput on Ray: cells per hour with one and with two local workers.

The same 4 cells (``calm`` shortened to 60 simulated seconds, seeds 0-3) run once on a one-CPU
Ray and once on a two-CPU Ray, in one process, side by side. Each cell is a full stress run with
its own forked anvil, so the ratio shows how well cells scale across cores here; the README turns
it into a projection for a larger cluster.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sims.bench import BenchResult

if TYPE_CHECKING:
    from sims.sweep import ForkState

_CELLS = 4
_DURATION_S = 60.0


def _rate(workers: int, spec_path: Path, fork: ForkState) -> float:
    from sims.sweep import load_sweep, ray_session, run_sweep

    spec = load_sweep(spec_path)
    # Ray starts before the clock does: the figure is the cells' throughput, not Ray's start-up.
    with ray_session(None, workers), tempfile.TemporaryDirectory(prefix="mm-bench-sweep-") as d:
        t0 = time.perf_counter()
        rows = run_sweep(spec, Path(d), workers=workers, progress=False, fork=fork)
        wall = time.perf_counter() - t0
    bad = [r for r in rows if r["status"] == "error"]
    if bad:
        raise RuntimeError(f"{len(bad)} cells failed: {bad[0]['error']}")
    return len(rows) / wall * 3600.0


def run() -> list[BenchResult]:
    """Measure cells/hour at 1 and 2 workers (needs the optional 'sweep' extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return [BenchResult("sweep: skipped (pip install -e '.[sweep]')", "-")]
    from sims.sweep import ForkState

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="mm-bench-grid-") as d:
        grid = Path(d) / "grid.toml"
        grid.write_text(
            f'[sweep]\nscenarios = ["calm"]\nseeds = "0-{_CELLS - 1}"\nduration_s = {_DURATION_S}\n'
        )
        fork = ForkState.build(None)
        one = _rate(1, grid, fork)
        two = _rate(2, grid, fork)
    return [
        BenchResult(
            f"sweep: cells/hour, 1 Ray worker ({_CELLS} cells of {_DURATION_S:g} s)", f"{one:,.0f}"
        ),
        BenchResult("sweep: cells/hour, 2 Ray workers (same cells)", f"{two:,.0f}"),
        BenchResult(
            "sweep: speed-up, 2 workers / 1", f"{two / one:.2f}x", ">= 1.6x", two / one >= 1.6
        ),
    ]
