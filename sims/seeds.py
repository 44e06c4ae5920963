"""Baselines over seeds: every strategy on the same world, one table of mean ± std over seeds.

``mm-agent stress --scenario X --seeds 0-9 --strategy NAME|all [--mode live] [--json]``

Each (strategy, seed) is one stress run (:func:`sims.stress.run_scenario` or
:func:`sims.live.run_live`), one after another; the same seed gives every strategy the same
timeline. The columns, per strategy:

==========================  ======================================================================
``pnl``                     net P&L (USD) and each part: spread, inventory, funding, fees, gas,
                            hedge, basis (the agent's ledger, as in the run's report)
``max_dd_usd``              maximum drawdown of net P&L (the agent's ledger, both legs marked from
                            its fair value: agent/pnl.py); the report's ``drawdown_check`` sets it
                            beside ``dd_usd`` and says whether the two agree
``fills``                   DEX fills of ours
``two_sided_pct``           share of the run with a bid and an ask of ours resting
``gas_native``              gas spent, in the chain's native token (every tx, reverted included)
``paying_inv_base``         mean over funding snapshots of the inventory held on the paying side
                            (longs when the rate is positive, shorts when negative), base units;
                            the rate is the agent's prediction just before the boundary
``paying_inv_max``          the largest of those, base units, against ``paying_cap_base`` (the
                            configured inventory cap); ``paying_breaches`` counts snapshots over it
``dd_usd``, ``dd_frac``     worst drawdown of both legs marked at the world's prices, less gas, in
                            USD and as a fraction of the strategy's capital (the report's
                            ``drawdown_limit.max_frac``), against ``dd_limit_frac`` (the risk
                            engine's halt level); ``dd_breach`` is 1 for a run that reached it
                            (its mean over seeds is the share of runs that did)
``flaps_per_h``             risk-state transitions per simulated hour
``edge_bps``                mean edge per DEX fill of ours against the world's fair value at the
                            fill (size-weighted, bps, positive = good for us; the report's
                            ``edge.per_fill_bps``)
``centre_bps``              mean over steps with both sides resting of |our quote centre − fair|,
                            bps (the report's ``edge.centre_abs_bps``)
==========================  ======================================================================
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from sims.strategies import get_strategy, strategy_names
from sims.stress import StressOptions, StressResult, Upstream

__all__ = [
    "METRICS",
    "SweepRun",
    "format_sweep",
    "parse_seeds",
    "run_sweep",
    "summarize",
    "sweep_json",
    "sweep_payload",
]

_PNL_PARTS = ("spread", "inventory", "funding", "fees", "gas", "hedge", "basis")
METRICS: tuple[str, ...] = (
    "pnl",
    *(f"pnl_{p}" for p in _PNL_PARTS),
    "max_dd_usd",
    "fills",
    "two_sided_pct",
    "gas_native",
    "paying_inv_base",
    "paying_inv_max",
    "paying_cap_base",
    "paying_breaches",
    "dd_usd",
    "dd_frac",
    "dd_limit_frac",
    "dd_breach",
    "flaps_per_h",
    "edge_bps",
    "centre_bps",
)
"""Column names, in table order."""


MAX_SEEDS = 1000
"""Seeds one ``--seeds`` may name: each is a whole run, so more is a typo, not a plan."""


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"3"`` or ``"1,4,7"`` (ranges inclusive) as a list of seeds.

    Raises
    ------
    ValueError
        One line saying what is wrong with `text` and the form it takes.
    """
    out: list[int] = []
    form = "use N, LO-HI or a comma list of them (seeds >= 0), e.g. 0-9 or 1,4,7"
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError(f"seed range {part!r} runs backwards: write {hi}-{lo}")
                if hi - lo >= MAX_SEEDS:
                    raise ValueError(f"seed range {part!r} is more than {MAX_SEEDS} runs")
                out += range(lo, hi + 1)
            elif part:
                out.append(int(part))
        except ValueError as exc:
            why = str(exc) if str(exc).startswith("seed range") else f"{part!r} is not a seed"
            raise ValueError(f"{why}; {form}") from None
    if not out:
        raise ValueError(f"no seeds in {text!r}; {form}")
    if len(out) > MAX_SEEDS:
        raise ValueError(f"{len(out)} seeds is more than {MAX_SEEDS} runs; {form}")
    return out


def _seeds_arg(text: str) -> str:
    try:
        parse_seeds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One (strategy, seed) run's figures."""

    strategy: str
    seed: int
    passed: bool
    metrics: dict[str, float]
    wall_s: float
    error: str = ""


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    pnl = report["pnl"]
    hours = max(float(report["meta"]["duration_s"]), 1.0) / 3600.0

    def num(v: Any) -> float:
        return float(v) if v is not None else math.nan

    m = {"pnl": num(pnl["total"])}
    m |= {f"pnl_{p}": num(pnl.get(p)) for p in _PNL_PARTS}
    m["max_dd_usd"] = num(report["max_drawdown"]["usd"])
    m["fills"] = float(report["fills"]["count"])
    m["two_sided_pct"] = 100.0 * num(report["quoting"]["uptime_frac"])
    m["gas_native"] = num(report["gas"]["native"])
    paying, dd = report["paying_side"], report["drawdown_limit"]
    m["paying_inv_base"] = num(paying["mean_base"])
    m["paying_inv_max"] = num(paying["max_base"])
    m["paying_cap_base"] = num(paying["cap_base"])
    m["paying_breaches"] = float(paying["breaches"])
    m["dd_usd"] = num(dd["max_usd"])
    m["dd_frac"] = num(dd["max_frac"])
    m["dd_limit_frac"] = num(dd["limit_frac"])
    m["dd_breach"] = math.nan if dd["breached"] is None else float(dd["breached"])
    m["flaps_per_h"] = len(report["risk"]["transitions"]) / hours
    m["edge_bps"] = num(report["edge"]["per_fill_bps"])
    m["centre_bps"] = num(report["edge"]["centre_abs_bps"])
    return m


async def run_sweep(
    scenario_name: str,
    upstream: Upstream,
    out_root: Path,
    seeds: list[int],
    strategies: list[str],
    *,
    mode: str = "lockstep",
    base: StressOptions | None = None,
    live: Any = None,
    progress: bool = True,
) -> list[SweepRun]:
    """Run every strategy on every seed (sequentially) and return each run's figures."""
    from sims.live import LiveOptions, run_live
    from sims.scenario import load_scenario
    from sims.stress import run_scenario

    base = base or StressOptions()
    scenario = load_scenario(scenario_name)
    runs: list[SweepRun] = []
    for name in strategies:
        get_strategy(name)  # fail before the first run on a bad name
    for name in strategies:
        for seed in seeds:
            opts = StressOptions(
                seed=seed,
                short_s=base.short_s,
                config_path=base.config_path,
                strategy=name,
                chain_profile=base.chain_profile,
                settle_grace_s=base.settle_grace_s,
                inventory_transient_s=base.inventory_transient_s,
                withdraw_grace_blocks=base.withdraw_grace_blocks,
            )
            out = out_root / f"{scenario.name}-{name}-{seed}"
            t0 = time.perf_counter()
            try:
                res: StressResult
                if mode == "live":
                    res = await run_live(scenario, upstream, out, opts, live or LiveOptions())
                else:
                    res = await run_scenario(scenario, upstream, out, opts)
            except (AgentError, OSError) as exc:
                runs.append(SweepRun(name, seed, False, {}, time.perf_counter() - t0, str(exc)))
                if progress:
                    print(f"{name} seed {seed}: ERROR {exc}", file=sys.stderr)
                continue
            runs.append(SweepRun(name, seed, res.passed, _metrics(res.report), res.wall_s))
            if progress:
                print(
                    f"{name} seed {seed}: {'PASS' if res.passed else 'FAIL'} "
                    f"pnl {res.report['pnl']['total']:+.2f} in {res.wall_s:.1f}s wall",
                    file=sys.stderr,
                )
    return runs


def summarize(runs: list[SweepRun]) -> list[dict[str, Any]]:
    """One row per strategy: runs, passes, and (mean, std) of each metric over its seeds."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(r.strategy for r in runs):
        mine = [r for r in runs if r.strategy == name and r.metrics]
        row: dict[str, Any] = {
            "strategy": name,
            "runs": sum(r.strategy == name for r in runs),
            "passed": sum(r.passed for r in runs if r.strategy == name),
            "seeds": [r.seed for r in mine],
        }
        for key in METRICS:
            vals = [r.metrics[key] for r in mine if math.isfinite(r.metrics[key])]
            mean = statistics.fmean(vals) if vals else math.nan
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else math.nan
            row[key] = {"mean": mean, "std": std}
        rows.append(row)
    return rows


def format_sweep(rows: list[dict[str, Any]], scenario: str) -> str:
    """The table: one column per strategy, one line per metric, ``mean ± std``."""
    if not rows:
        return "(no runs)"

    def cell(ms: dict[str, float]) -> str:
        m, s = ms["mean"], ms["std"]
        if not math.isfinite(m):
            return "-"
        if 0 < max(abs(m), abs(s)) < 1:  # gas in native units, inventory in base
            return f"{m:.4g} ± {s:.2g}"
        return f"{m:,.2f} ± {s:,.2f}"

    head = ["metric", *[f"{r['strategy']} (n={len(r['seeds'])})" for r in rows]]
    body = [["passed", *[f"{r['passed']}/{r['runs']}" for r in rows]]]
    body += [[key, *[cell(r[key]) for r in rows]] for key in METRICS]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    out = [f"{scenario}: mean ± std over seeds"]
    out.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    )
    for line in body:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return "\n".join(out)


def sweep_json(rows: list[dict[str, Any]], runs: list[SweepRun], scenario: str) -> str:
    """The table and every run, as JSON (NaN as null)."""
    return json.dumps(sweep_payload(rows, runs, scenario), indent=2, allow_nan=False)


def sweep_payload(rows: list[dict[str, Any]], runs: list[SweepRun], scenario: str) -> Any:
    """The table and every run, JSON-ready (NaN as None)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    payload = {
        "scenario": scenario,
        "summary": rows,
        "runs": [
            {
                "strategy": r.strategy,
                "seed": r.seed,
                "passed": r.passed,
                "wall_s": round(r.wall_s, 2),
                "error": r.error,
                "metrics": r.metrics,
            }
            for r in runs
        ],
    }
    return clean(payload)


def resolve_strategies(arg: str | None) -> list[str]:
    """``all`` (every registered strategy), one name, or a comma-separated list."""
    if arg is None:
        return ["shipped"]
    if arg == "all":
        return strategy_names()
    return [s.strip() for s in arg.split(",") if s.strip()]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The sweep's flags on the ``mm-agent stress`` parser."""
    ap.add_argument(
        "--seeds",
        type=_seeds_arg,
        help="run each seed of a range or list (e.g. 0-9) and tabulate",
    )
    ap.add_argument(
        "--strategy",
        help=f"strategy name, a comma list, or all (registered: {', '.join(strategy_names())})",
    )
    ap.add_argument("--json", action="store_true", help="print the seeds table as JSON")
