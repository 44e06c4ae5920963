"""Benchmarks of the pure model: the A-S table backtest and full decisions per second."""

from __future__ import annotations

import time

import numpy as np

from agent.model import (
    BaseFeeForecaster,
    DecisionInputs,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    LiveQuotes,
    ModelParams,
    decide,
)
from sims.backtest import PAPER_GAMMAS, run_as_table
from sims.bench import BenchResult

__all__ = ["run"]


def _as_table_seconds(repeats: int = 5) -> float:
    run_as_table(PAPER_GAMMAS, 1000, seed=0)  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_as_table(PAPER_GAMMAS, 1000, seed=0)
        best = min(best, time.perf_counter() - t0)
    return best


def _decisions_per_second(n: int = 20_000) -> float:
    """Time the full per-event path: feed estimators, snapshot them, quote, gate."""
    rng = np.random.default_rng(0)
    mids = 2000.0 * np.exp(np.cumsum(2e-4 * rng.standard_normal(n)))
    reach = rng.exponential(0.5, n)
    premium = 1e-4 + 1e-5 * rng.standard_normal(n)
    est = Estimators(
        EwmaVolatility(),
        FillIntensity(bin_width=0.1),
        BaseFeeForecaster(),
        InclusionDelay(),
        FundingPredictor(),
    )
    params = ModelParams()
    live = LiveQuotes()
    t0 = time.perf_counter()
    for i in range(n):
        t = float(i)
        mid = float(mids[i])
        est.vol.update_price(t, mid)
        est.fills.update_trade(t, float(reach[i]))
        est.base_fee.update_block(t, 2e9, 15_000_000, 30_000_000)
        est.funding.update_premium(t, float(premium[i]))
        inputs = DecisionInputs(
            time_s=t,
            mid=mid,
            index=mid,
            mark=mid,
            best_bid=mid - 0.05,
            best_ask=mid + 0.05,
            bid_depth_base=50.0,
            ask_depth_base=50.0,
            inventory_base=1.0,
            estimates=est.snapshot(t),
            seconds_to_funding=28_800.0 - t % 28_800.0,
        )
        decision = decide(inputs, params, live)
        if decision.send:
            live = LiveQuotes(decision.quotes)
    return n / (time.perf_counter() - t0)


def run() -> list[BenchResult]:
    """Measure the A-S table (6 runs of 1000 paths x 200 steps) and decisions per second."""
    secs = _as_table_seconds()
    rate = _decisions_per_second()
    return [
        BenchResult(
            "A-S table, 1000 paths x 200 steps x 6 runs", f"{secs:.3f} s", "<= 0.5 s", secs <= 0.5
        ),
        BenchResult(
            "model decisions (estimators + quotes + gate)",
            f"{rate:,.0f} /s",
            ">= 10,000 /s",
            rate >= 10_000,
        ),
    ]
