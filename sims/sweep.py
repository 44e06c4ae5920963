"""Parameter sweeps and calibration on Ray: ``mm-agent sweep --grid sweep.toml``.

A sweep runs full stress runs (:func:`sims.stress.run_scenario`, each on its own forked anvil) for
every *cell* of a grid::

    parameter sets  x  scenarios  x  seeds  x  strategies

A parameter set is a handful of overrides of the agent's ``[quoting]``, ``[risk]``, ``[tx]`` and
``[hedge.policy]`` tables, applied to an optional base ``mm.toml`` and written as that cell's own
config file, so every value goes through the same validation as ``mm-agent run`` (a misspelt key
is refused before the first cell starts, naming the key).

Where it runs
    On Ray. ``ray.init()`` on this machine by default (one cell per core, ``--workers`` to change);
    ``--address`` joins an existing cluster. The fork state every cell starts from is built once by
    the driver and shipped through Ray's object store, so a remote worker needs nothing from the
    driver's disk.
Failures and resuming
    A cell that raises is recorded with its error and the sweep goes on. Each finished cell is
    written to ``OUT/cells/<cell id>.json`` as it arrives; a second run with the same ``--out``
    skips the cells already there (cells that ended in an error are run again).
Search instead of a grid
    A ``[search]`` table hands the parameter sets to Ray Tune: ``algorithm = "random"`` samples the
    space, ``"optuna"`` is model-based (TPE). Each trial evaluates one parameter set on every
    scenario x seed x strategy and reports the objective below.
The objective
    Mean net P&L (``objective.metric``, default ``pnl_usd``) over a parameter set's cells, subject
    to every cell having run, held every invariant and not breached the drawdown limit (the risk
    engine's drawdown trigger halting it, or ``objective.max_drawdown_usd`` when set). ``--best``
    writes the winning overrides as an ``mm.toml`` fragment that states this objective.
Results
    ``results.parquet`` and ``results.csv`` (one row a cell), ``summary.html`` with net P&L against
    each parameter, the P&L-drawdown Pareto front of the parameter sets and a scenario x parameter
    set heat map.

Ray, Optuna, pyarrow and tomli-w are the optional ``sweep`` extra (``pip install -e '.[sweep]'``,
which ``./scripts/setup`` does): nothing else in the product imports this module.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.config import load_config
from agent.errors import ConfigError

__all__ = [
    "CellResult",
    "CellSpec",
    "SweepSpec",
    "best_parameter_set",
    "cli_main",
    "load_sweep",
    "run_sweep",
]

log = logging.getLogger("sims.sweep")

SECTIONS = ("quoting", "risk", "tx", "hedge.policy")
"""Config tables a sweep may vary (``section.key``, nested risk bands as ``risk.band.field``)."""

STRATEGIES = ("shipped",)
"""Strategies the stress runner knows; a grid naming another is refused."""

_INFEASIBLE_PENALTY = 1e9
"""Subtracted from an infeasible parameter set's objective in a Tune search (the searchers need
a number; a constraint violation must rank below every feasible set)."""


# -- the grid file -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RangeSpec(_Strict):
    """A continuous or integer range for a Tune search."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @field_validator("high")
    @classmethod
    def _ordered(cls, v: float, info: Any) -> float:
        low = info.data.get("low")
        if low is not None and not v > low:
            raise ValueError("must be greater than low")
        return v


class SearchSpec(_Strict):
    """``[search]``: let Ray Tune choose the parameter sets."""

    algorithm: Literal["random", "optuna"] = "random"
    samples: int = Field(8, ge=1, le=100_000)
    """Parameter sets to evaluate."""
    seed: int = 0
    space: dict[str, RangeSpec] = Field(default_factory=dict)
    """Ranges by ``section.key``; the grid's lists join the space as categorical choices."""


class ObjectiveSpec(_Strict):
    """``[objective]``: what "best" means."""

    metric: Literal["pnl_usd"] = "pnl_usd"
    max_drawdown_usd: float | None = Field(None, gt=0)
    """A cell whose maximum drawdown exceeds this breaches the drawdown constraint."""


class SweepSpec(_Strict):
    """A validated grid file."""

    scenarios: tuple[str, ...] = Field(min_length=1)
    seeds: tuple[int, ...] = Field(min_length=1)
    strategies: tuple[str, ...] = ("shipped",)
    duration_s: float | None = Field(None, gt=0, le=86_400)
    """Shorten every scenario to this many simulated seconds (None: full length)."""
    base_config: Path | None = None
    """An mm.toml the overrides apply to (relative paths are relative to the grid file)."""
    grid: dict[str, tuple[Any, ...]] = Field(default_factory=dict)
    """Values to try, by ``section.key``."""
    search: SearchSpec | None = None
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, str):
            return parse_seeds(v)
        return v

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
        return v

    @field_validator("grid", mode="before")
    @classmethod
    def _flatten(cls, v: Any) -> Any:
        # TOML gives nested tables ([grid.quoting] gamma = [...]); keys become "quoting.gamma".
        if not isinstance(v, Mapping):
            return v
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Mapping[str, Any]) -> None:
            for k, x in node.items():
                path = f"{prefix}.{k}" if prefix else str(k)
                if isinstance(x, Mapping):
                    walk(path, x)
                else:
                    out[path] = x

        walk("", v)
        for path, values in out.items():
            _check_path(path)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: a non-empty list of values to try")
        return {k: tuple(x) for k, x in out.items()}


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-9"`` → 0..9, ``"1,4,7"`` → (1, 4, 7), ``"0-2,5"`` → (0, 1, 2, 5)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"{text!r}: seeds are N, N-M or a comma-separated list") from None
        if b < a:
            raise ValueError(f"{part!r}: the range runs backwards")
        seeds.extend(range(a, b + 1))
    if not seeds:
        raise ValueError("no seeds")
    return tuple(dict.fromkeys(seeds))


def _check_path(path: str) -> None:
    if not any(path.startswith(s + ".") and len(path) > len(s) + 1 for s in SECTIONS):
        raise ValueError(
            f"{path}: a sweep varies only {', '.join(f'[{s}]' for s in SECTIONS)} keys "
            "(write them as section.key)"
        )


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a grid file; every parameter set is checked against the agent config.

    Raises
    ------
    ConfigError
        Naming the key and the fix, for a bad grid file or a parameter the agent refuses.
    """
    if not path.is_file():
        raise ConfigError(f"grid file {path} not found: pass --grid with an existing file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    body = dict(raw.pop("sweep", {}))
    unknown = sorted(set(raw) - {"grid", "search", "objective"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown table [{unknown[0]}]; a grid file has [sweep], [grid.*], "
            "[search] and [objective]"
        )
    body.update(raw)
    try:
        spec = SweepSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {loc}: {first['msg']}") from None
    if spec.base_config is not None and not spec.base_config.is_absolute():
        spec = spec.model_copy(update={"base_config": (path.parent / spec.base_config).resolve()})
    if spec.search is not None:
        for p in spec.search.space:
            try:
                _check_path(p)
            except ValueError as exc:
                raise ConfigError(f"{path}: search.space.{exc}") from None
    from sims.scenario import load_scenario

    for name in spec.scenarios:
        try:
            sc = load_scenario(name)  # validated before any cell starts
            if spec.duration_s is not None and spec.duration_s < sc.duration_s:
                sc.shortened(spec.duration_s)
        except ConfigError as exc:
            raise ConfigError(f"{path}: sweep.scenarios ({name}): {exc}") from None
    # Every parameter set the grid can produce must be a valid agent config (the extremes of a
    # search range too), so a typo fails now and not in the hundredth cell.
    probes = list(grid_parameter_sets(spec))
    if spec.search is not None:
        for p, r in spec.search.space.items():
            for v in (r.low, r.high):
                probes.append({p: int(v) if r.integer else v})
    for overrides in probes:
        validate_overrides(spec.base_config, overrides)
    return spec


# -- parameter sets and cells ----------------------------------------------------------------------


def grid_parameter_sets(spec: SweepSpec) -> list[dict[str, Any]]:
    """The Cartesian product of the grid's values (one empty set when the grid is empty)."""
    sets: list[dict[str, Any]] = [{}]
    for path, values in spec.grid.items():
        sets = [{**s, path: v} for s in sets for v in values]
    return sets


def param_set_id(overrides: Mapping[str, Any]) -> str:
    """A short, stable id of a parameter set (the same overrides give the same id)."""
    blob = json.dumps(dict(sorted(overrides.items())), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class CellSpec:
    """One stress run of a sweep."""

    params: tuple[tuple[str, Any], ...]
    scenario: str
    seed: int
    strategy: str
    duration_s: float | None

    @property
    def overrides(self) -> dict[str, Any]:
        """The parameter set as a dict."""
        return dict(self.params)

    @property
    def param_set(self) -> str:
        """The parameter set's id."""
        return param_set_id(self.overrides)

    @property
    def cell_id(self) -> str:
        """A file-name-safe id, unique within a sweep."""
        name = Path(self.scenario).stem
        return f"{self.param_set}-{name}-s{self.seed}-{self.strategy}"


def cells_for(spec: SweepSpec, param_sets: Iterable[Mapping[str, Any]]) -> list[CellSpec]:
    """Every cell of `param_sets` x scenarios x seeds x strategies, in a stable order."""
    return [
        CellSpec(tuple(sorted(p.items())), sc, seed, st, spec.duration_s)
        for p in param_sets
        for sc in spec.scenarios
        for seed in spec.seeds
        for st in spec.strategies
    ]


def _config_tables(base: Path | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = tomllib.loads(base.read_text()) if base is not None else {}
    for path, value in overrides.items():
        keys = path.split(".")
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: {k} is a value in the base config, not a table")
        node[keys[-1]] = value
    return raw


def validate_overrides(base: Path | None, overrides: Mapping[str, Any]) -> None:
    """Validate base + overrides exactly as ``mm-agent run`` would read them.

    Raises
    ------
    ConfigError
        From the agent's own validation (names the key).
    """
    import tomli_w

    text = tomli_w.dumps(_config_tables(base, overrides))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(text)
        tmp = Path(fh.name)
    try:
        load_config(tmp, env={})  # validates [quoting], [risk], [tx], [hedge.policy] too
    except ConfigError as exc:
        shown = ", ".join(f"{k} = {v!r}" for k, v in overrides.items()) or "the base config"
        raise ConfigError(f"parameter set ({shown}): {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


# -- one cell --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellResult:
    """What one cell produced: a flat row for the results table."""

    row: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when the run finished (its invariants may still have failed)."""
        return bool(self.row["status"] != "error")


@dataclass(frozen=True, slots=True)
class ForkState:
    """The fork-state file and its sidecar, as bytes (shipped to workers by Ray)."""

    state: bytes
    sidecar: bytes

    @classmethod
    def build(cls, state_file: Path | None) -> ForkState:
        """Read `state_file` (and its sidecar), or build a fresh fork state."""
        from sims.forkstate import ForkStateMeta, build_fork_state

        with tempfile.TemporaryDirectory(prefix="mm-sweep-") as d:
            if state_file is None:
                state_file = Path(d) / "state.json"
                build_fork_state(state_file)
            return cls(state_file.read_bytes(), ForkStateMeta.sidecar(state_file).read_bytes())

    def write(self, directory: Path) -> Path:
        """Write both files into `directory`; return the state file's path."""
        from sims.forkstate import ForkStateMeta

        path = directory / "state.json"
        path.write_bytes(self.state)
        ForkStateMeta.sidecar(path).write_bytes(self.sidecar)
        return path


def _drawdown_breached(report: Mapping[str, Any], max_dd_usd: float | None) -> bool:
    for tr in report["risk"]["transitions"]:
        if tr["to_state"] == "HALTED" and "drawdown" in str(tr["reason"]):
            return True
    return max_dd_usd is not None and float(report["max_drawdown"]["usd"]) > max_dd_usd


def run_cell(
    cell: CellSpec,
    fork: ForkState,
    base_config: str | None,
    out_dir: str,
    max_drawdown_usd: float | None = None,
) -> CellResult:
    """Run one cell to completion and summarise it; never raises (errors become a row).

    Runs in a Ray worker process (or in-process for tests): its own upstream anvil serving the
    fork state, its own fork per :func:`~sims.stress.run_scenario`.
    """
    import asyncio

    import tomli_w

    from sims.report import summary_row
    from sims.scenario import load_scenario
    from sims.stress import StressOptions, open_upstream, run_scenario

    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "cell_id": cell.cell_id,
        "param_set": cell.param_set,
        **{f"p.{k}": v for k, v in cell.params},
        "scenario": Path(cell.scenario).stem,
        "seed": cell.seed,
        "strategy": cell.strategy,
        "duration_s": cell.duration_s,
        "host": os.uname().nodename,
    }
    run_dir = Path(out_dir) / "runs" / cell.cell_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = run_dir / "mm.toml"
        base = Path(base_config) if base_config is not None else None
        cfg.write_text(tomli_w.dumps(_config_tables(base, cell.overrides)))
        with tempfile.TemporaryDirectory(prefix="mm-cell-") as d:
            state_file = fork.write(Path(d))
            scenario = load_scenario(cell.scenario)
            opts = StressOptions(seed=cell.seed, short_s=cell.duration_s, config_path=cfg)
            with open_upstream(state_file=state_file) as up:
                res = asyncio.run(run_scenario(scenario, up, run_dir, opts))
        summary = summary_row(res.report)
        row.update(
            status="ok" if res.passed else "invariant_failed",
            error="",
            **{k: v for k, v in summary.items() if k not in ("scenario", "seed")},
            drawdown_breach=_drawdown_breached(res.report, max_drawdown_usd),
            quote_txs=res.report["agent"]["quote_txs"],
            cycle_errors=res.report["agent"]["cycle_errors"],
            report=str(res.paths.json),
        )
    except Exception as exc:  # a failed cell is a result, never the end of the sweep
        log.exception("cell %s failed", cell.cell_id)
        row.update(status="error", error=f"{type(exc).__name__}: {exc}", drawdown_breach=False)
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return CellResult(row)


# -- running many ----------------------------------------------------------------------------------


def _cells_dir(out: Path) -> Path:
    d = out / "cells"
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_done(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of cells already finished under `out` (errors excluded: they run again)."""
    done: dict[str, dict[str, Any]] = {}
    for f in sorted(_cells_dir(out).glob("*.json")):
        try:
            row = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a torn write from a killed driver: that cell runs again
        if row.get("status") != "error":
            done[row["cell_id"]] = row
    return done


def _save(out: Path, row: Mapping[str, Any]) -> None:
    path = _cells_dir(out) / f"{row['cell_id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, default=str, allow_nan=True))
    tmp.replace(path)


class _Progress:
    """A progress bar on stderr (tqdm), or nothing when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="cell", file=sys.stderr)

    def update(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None) -> Any:
    """Start Ray locally (`workers` CPUs, default all cores) or join `address`; stop it after."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _run_grid(
    ray: Any,
    cells: Sequence[CellSpec],
    fork_ref: Any,
    spec: SweepSpec,
    out: Path,
    progress: _Progress,
) -> list[dict[str, Any]]:
    remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    base = str(spec.base_config) if spec.base_config is not None else None
    pending = {
        remote.remote(c, fork_ref, base, str(out.resolve()), spec.objective.max_drawdown_usd): c
        for c in cells
    }
    rows: list[dict[str, Any]] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        cell = pending.pop(ref)
        try:
            row = ray.get(ref).row
        except Exception as exc:  # the worker process itself died (OOM, kill): still a result
            row = {
                "cell_id": cell.cell_id,
                "param_set": cell.param_set,
                **{f"p.{k}": v for k, v in cell.params},
                "scenario": Path(cell.scenario).stem,
                "seed": cell.seed,
                "strategy": cell.strategy,
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "drawdown_breach": False,
            }
        _save(out, row)
        rows.append(row)
        progress.update(f"{row['cell_id']} {row['status']}")
    return rows


def _search_space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    assert spec.search is not None
    space: dict[str, Any] = {p: tune.choice(list(v)) for p, v in spec.grid.items()}
    for p, r in spec.search.space.items():
        if r.integer:
            space[p] = (tune.lograndint if r.log else tune.randint)(int(r.low), int(r.high) + 1)
        else:
            space[p] = (tune.loguniform if r.log else tune.uniform)(r.low, r.high)
    return space


def _trial(
    config: dict[str, Any],
    *,
    spec: SweepSpec,
    fork: ForkState,
    out: str,
    done: dict[str, dict[str, Any]],
) -> None:
    """A Tune trial: one parameter set on every scenario x seed x strategy."""
    from ray import tune

    overrides = {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}
    base = str(spec.base_config) if spec.base_config is not None else None
    rows = []
    for cell in cells_for(spec, [overrides]):
        if cell.cell_id in done:
            rows.append(done[cell.cell_id])
            continue
        rows.append(run_cell(cell, fork, base, out, spec.objective.max_drawdown_usd).row)
    summary = summarise_param_sets(rows)[0]
    objective = summary["mean_pnl_usd"]
    if not summary["feasible"] or not math.isfinite(objective):
        objective = (objective if math.isfinite(objective) else 0.0) - _INFEASIBLE_PENALTY
    tune.report({"objective": objective, "cells_json": json.dumps(rows, default=str)})


def _run_search(
    spec: SweepSpec,
    fork: ForkState,
    out: Path,
    done: dict[str, dict[str, Any]],
    workers: int,
) -> list[dict[str, Any]]:
    from ray import tune

    assert spec.search is not None
    search_alg: Any = None
    if spec.search.algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric="objective", mode="max", seed=spec.search.seed)
    else:
        from ray.tune.search import BasicVariantGenerator

        search_alg = BasicVariantGenerator(random_state=spec.search.seed)
    trainable = tune.with_parameters(
        _trial, spec=spec, fork=fork, out=str(out.resolve()), done=done
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=_search_space(spec),
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="max",
            search_alg=search_alg,
            num_samples=spec.search.samples,
            max_concurrent_trials=workers,
        ),
        run_config=tune.RunConfig(
            name="search", storage_path=str((out / "tune").resolve()), verbose=0
        ),
    )
    grid = tuner.fit()
    rows: list[dict[str, Any]] = []
    for i in range(len(grid)):
        result = grid[i]
        if result.error is not None or not result.metrics:
            log.warning("trial failed: %s", result.error)
            continue
        for row in json.loads(result.metrics["cells_json"]):
            _save(out, row)
            rows.append(row)
    return rows


def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    state_file: Path | None = None,
    progress: bool = True,
    fork: ForkState | None = None,
) -> list[dict[str, Any]]:
    """Run every cell not already done under `out`; return all rows (old and new).

    `fork` reuses fork state already built (benchmarks); otherwise it is read from `state_file`
    or built now.
    """
    out.mkdir(parents=True, exist_ok=True)
    done = load_done(out)
    fork = fork or ForkState.build(state_file)
    with ray_session(address, workers) as ray:
        n_workers = int(ray.cluster_resources().get("CPU", 1))
        if spec.search is None:
            cells = cells_for(spec, grid_parameter_sets(spec))
            todo = [c for c in cells if c.cell_id not in done]
            log.info(
                "%d cells, %d already done, %d workers",
                len(cells),
                len(cells) - len(todo),
                n_workers,
            )
            bar = _Progress(len(cells), len(cells) - len(todo), progress)
            try:
                new = _run_grid(ray, todo, ray.put(fork), spec, out, bar)
            finally:
                bar.close()
            by_id = {**done, **{r["cell_id"]: r for r in new}}
            return [by_id[c.cell_id] for c in cells if c.cell_id in by_id]
        new = _run_search(spec, fork, out, done, n_workers)
        return list({**done, **{r["cell_id"]: r for r in new}}.values())


# -- results ---------------------------------------------------------------------------------------


def summarise_param_sets(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row a parameter set: mean and spread of net P&L, worst drawdown, feasibility."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r["param_set"]), []).append(r)
    out = []
    for pid, rs in groups.items():
        pnl = [float(r["pnl_usd"]) for r in rs if r["status"] != "error"]
        dd = [float(r["max_dd_usd"]) for r in rs if r["status"] != "error"]
        feasible = all(r["status"] == "ok" and not r["drawdown_breach"] for r in rs)
        out.append(
            {
                "param_set": pid,
                **{k: v for k, v in rs[0].items() if k.startswith("p.")},
                "cells": len(rs),
                "errors": sum(r["status"] == "error" for r in rs),
                "mean_pnl_usd": statistics.fmean(pnl) if pnl else math.nan,
                "std_pnl_usd": statistics.stdev(pnl) if len(pnl) > 1 else 0.0,
                "worst_dd_usd": max(dd) if dd else math.nan,
                "drawdown_breaches": sum(bool(r["drawdown_breach"]) for r in rs),
                "feasible": feasible,
            }
        )
    out.sort(key=lambda s: (not s["feasible"], -_finite(s["mean_pnl_usd"])))
    return out


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def best_parameter_set(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The feasible parameter set with the highest mean net P&L, or None."""
    sets = [s for s in summarise_param_sets(rows) if s["feasible"]]
    return sets[0] if sets else None


def write_tables(rows: Sequence[Mapping[str, Any]], out: Path) -> tuple[Path, Path]:
    """Write ``results.parquet`` and ``results.csv`` (one row a cell)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    norm = [{k: _cell_value(r.get(k)) for k in columns} for r in rows]
    table = pa.Table.from_pylist(norm)
    pq.write_table(table, out / "results.parquet")
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(norm)
    return out / "results.parquet", out / "results.csv"


def _cell_value(v: Any) -> Any:
    # Parameter columns can mix ints and floats across sets; one column, one type.
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return str(v)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _pareto(points: Sequence[tuple[float, float, str]]) -> set[str]:
    """Ids on the front: no other set has less drawdown and more P&L (both at least as good)."""
    front = set()
    for dd, pnl, pid in points:
        dominated = any(d2 <= dd and p2 >= pnl and (d2 < dd or p2 > pnl) for d2, p2, _ in points)
        if not dominated:
            front.add(pid)
    return front


def _mean_pnl(rows: Sequence[Mapping[str, Any]], scenario: str, param_set: str) -> float:
    v = [
        float(r["pnl_usd"])
        for r in rows
        if r["scenario"] == scenario and r["param_set"] == param_set
    ]
    return statistics.fmean(v) if v else math.nan


def _constraint_text(spec: SweepSpec) -> str:
    cap = spec.objective.max_drawdown_usd
    return "every cell running, every invariant holding and no drawdown breach" + (
        f" (max drawdown {cap:g} USD)" if cap else ""
    )


def write_html(rows: Sequence[Mapping[str, Any]], spec: SweepSpec, out: Path) -> Path:
    """``summary.html``: the parameter-set table and three plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] != "error"]
    sets = summarise_param_sets(rows)
    params = sorted({k for r in rows for k in r if k.startswith("p.")})
    images: list[tuple[str, str]] = []
    for p in params:
        xs = [r[p] for r in ok if isinstance(r.get(p), (int, float))]
        ys = [float(r["pnl_usd"]) for r in ok if isinstance(r.get(p), (int, float))]
        if not xs:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.scatter(xs, ys, s=14, alpha=0.6)
        means: dict[float, list[float]] = {}
        for x, y in zip(xs, ys, strict=True):
            means.setdefault(float(x), []).append(y)
        mx = sorted(means)
        ax.plot(mx, [statistics.fmean(means[x]) for x in mx], "k-o", ms=4, label="mean")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(p[2:])
        ax.set_ylabel("net P&L per cell (USD)")
        ax.legend(loc="best", fontsize=7)
        images.append((f"net P&L against {p[2:]}", _png(fig)))
    pts = [
        (s["worst_dd_usd"], s["mean_pnl_usd"], s["param_set"])
        for s in sets
        if math.isfinite(s["worst_dd_usd"]) and math.isfinite(s["mean_pnl_usd"])
    ]
    if pts:
        front = _pareto(pts)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter([d for d, _, _ in pts], [p for _, p, _ in pts], s=18, c="tab:grey")
        fp = sorted((d, p) for d, p, i in pts if i in front)
        ax.plot([d for d, _ in fp], [p for _, p in fp], "r-o", ms=5, label="Pareto front")
        ax.set_xlabel("worst max drawdown of the set's cells (USD)")
        ax.set_ylabel("mean net P&L (USD)")
        ax.legend(loc="best", fontsize=7)
        images.append(("Pareto front of P&L against drawdown (a point a parameter set)", _png(fig)))
    scen = sorted({r["scenario"] for r in ok})
    pids = [s["param_set"] for s in sets]
    if scen and pids:
        grid = [[_mean_pnl(ok, sc, pid) for pid in pids] for sc in scen]
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(pids) + 2), 0.5 * len(scen) + 1.5))
        im = ax.imshow(grid, aspect="auto", cmap="RdYlGn")
        ax.set_yticks(range(len(scen)), scen)
        ax.set_xticks(range(len(pids)), pids, rotation=60, fontsize=7)
        fig.colorbar(im, ax=ax, label="mean net P&L (USD)")
        images.append(("scenario x parameter set: mean net P&L", _png(fig)))
    head = ["param_set", *params, "cells", "errors", "mean_pnl_usd", "std_pnl_usd",
            "worst_dd_usd", "drawdown_breaches", "feasible"]  # fmt: skip

    def fmt(v: Any) -> str:
        return f"{v:,.2f}" if isinstance(v, float) else str(v)

    table = "".join(
        "<tr>" + "".join(f"<td>{fmt(s.get(h, ''))}</td>" for h in head) + "</tr>" for s in sets
    )
    errors = "".join(
        f"<li><code>{r['cell_id']}</code>: {r['error']}</li>"
        for r in rows
        if r["status"] == "error"
    )
    imgs = "".join(
        f"<h3>{t}</h3><img src='data:image/png;base64,{b}' alt='{t}'>" for t, b in images
    )
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>mm-agent sweep</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>Sweep: {len(sets)} parameter sets, {len(rows)} cells</h1>
<p>Scenarios {", ".join(spec.scenarios)}; seeds {", ".join(map(str, spec.seeds))}; strategies
{", ".join(spec.strategies)}; duration {spec.duration_s or "full"} s.
Objective: mean net P&amp;L over a set's cells, subject to {_constraint_text(spec)}.</p>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{table}</table>
{f"<h2>Failed cells</h2><ul>{errors}</ul>" if errors else ""}
{imgs}</body></html>"""
    path = out / "summary.html"
    path.write_text(html)
    return path


def write_best(best: Mapping[str, Any], spec: SweepSpec, rows: int, path: Path) -> Path:
    """Write the winning overrides as an ``mm.toml`` fragment that states the objective."""
    import tomli_w

    tables = _config_tables(None, {k[2:]: v for k, v in best.items() if k.startswith("p.")})
    note = (
        f"# mm-agent sweep: best of the parameter sets by mean net P&L "
        f"({best['mean_pnl_usd']:+.2f} ± {best['std_pnl_usd']:.2f} USD over "
        f"{best['cells']} cells:\n"
        f"# scenarios {', '.join(spec.scenarios)}; seeds {', '.join(map(str, spec.seeds))};"
        f" strategies {', '.join(spec.strategies)}; duration {spec.duration_s or 'full'} s),\n"
        f"# subject to {_constraint_text(spec)}.\n"
        f"# Parameter set {best['param_set']}, from {rows} cells. Merge into mm.toml.\n"
    )
    path.write_text(note + tomli_w.dumps(tables))
    return path


# -- command line ------------------------------------------------------------------------------


def cli_main(argv: list[str]) -> int:
    """Sweep strategy parameters over scenarios and seeds on Ray; exit 1 if no cell ran."""
    ap = argparse.ArgumentParser(prog="mm-agent sweep", description=cli_main.__doc__)
    ap.add_argument("--grid", required=True, type=Path, help="grid file (see sims/sweeps/)")
    ap.add_argument("--out", type=Path, default=None, help="output dir (default runs/sweep-<grid>)")
    ap.add_argument("--address", help="an existing Ray cluster (default: ray.init() locally)")
    ap.add_argument("--workers", type=int, help="local worker CPUs (default: all cores)")
    ap.add_argument("--state", type=Path, help="fork-state file (default: build one now)")
    ap.add_argument("--best", type=Path, help="write the best parameter set as an mm.toml fragment")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "mm-agent sweep needs the optional 'sweep' extra: pip install -e '.[sweep]' "
            "(./scripts/setup installs it)"
        ) from None
    spec = load_sweep(args.grid)
    out = args.out or Path("runs") / f"sweep-{args.grid.stem}"
    rows = run_sweep(
        spec, out, address=args.address, workers=args.workers, state_file=args.state,
        progress=not args.no_progress,
    )  # fmt: skip
    parquet, csv_path = write_tables(rows, out)
    html = write_html(rows, spec, out)
    from sims.report import format_table

    sets = summarise_param_sets(rows)
    print(format_table(sets))
    failed = [r for r in rows if r["status"] == "error"]
    for r in failed:
        print(f"  {r['cell_id']}: {r['error']}")
    print(f"results: {parquet}, {csv_path}, {html}")
    if args.best is not None:
        best = best_parameter_set(rows)
        if best is None:
            print("no parameter set meets the objective's constraints: nothing written")
            return 1
        written = write_best(best, spec, len(rows), args.best)
        print(f"best parameter set {best['param_set']} -> {written}")
    return 0 if len(failed) < len(rows) else 1
