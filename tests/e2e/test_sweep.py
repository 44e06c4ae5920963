"""`mm-agent sweep` on local Ray: small grids of shortened stress runs, each on its own anvil."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from sims.forkstate import ForkStateMeta
from sims.scenario import SCENARIO_DIR
from sims.sweep import (
    best_parameter_set,
    cli_main,
    load_done,
    load_sweep,
    run_sweep,
    summarise_param_sets,
    write_best,
    write_html,
    write_tables,
)

ray = pytest.importorskip("ray", reason="the optional 'sweep' extra is not installed")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def _grid(tmp: Path, scenarios: list[str], body: str = "") -> Path:
    names = ", ".join(f'"{s}"' for s in scenarios)
    p = tmp / "grid.toml"
    p.write_text(
        f"""
[sweep]
scenarios = [{names}]
seeds = "0-1"
duration_s = 60

[grid.quoting]
gamma = [0.05, 0.2]
{body}
"""
    )
    return p


def test_a_small_grid_runs_resumes_and_records_a_failed_cell(
    tmp_path: Path, fork_state: ForkStateMeta
) -> None:
    # A private copy of a shipped scenario that vanishes after validation: its cells fail inside
    # the worker (as a broken disk or a bad node would), and the sweep must go on.
    doomed = tmp_path / "doomed_calm.toml"
    shutil.copy(SCENARIO_DIR / "calm.toml", doomed)
    # vol_shock_3x shortens to 60 s; gas_spike no longer does (a short run keeps each scripted
    # move's speed, and its spike needs 160 s).
    spec = load_sweep(_grid(tmp_path, ["calm", "vol_shock_3x", str(doomed)]))
    doomed.unlink()
    out = tmp_path / "out"

    # The session's fork state (tests/conftest.py); the CLI test below has the sweep build its own.
    state = fork_state.state_file
    rows = run_sweep(spec, out, workers=2, progress=False, state_file=state)

    assert len(rows) == 2 * 3 * 2
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 4 and all(r["scenario"] == "doomed_calm" for r in failed)
    assert all("doomed_calm" in r["error"] or "not found" in r["error"] for r in failed)
    good = [r for r in rows if r["status"] != "error"]
    assert len(good) == 8
    assert {r["p.quoting.gamma"] for r in good} == {0.05, 0.2}
    assert all(r["status"] == "ok" for r in good), [r["status"] for r in good]
    # Each cell is a real stress run with its own report.
    assert all(Path(r["report"]).is_file() for r in good)

    # Resume: finished cells are skipped, failed ones run again (and fail again here).
    stamps = {f: f.stat().st_mtime_ns for f in (out / "cells").glob("*.json")}
    done_before = load_done(out)
    assert len(done_before) == 8
    rows2 = run_sweep(spec, out, workers=2, progress=False, state_file=state)
    assert len(rows2) == len(rows)
    for f, t in stamps.items():
        row_failed = any(f.stem == r["cell_id"] for r in failed)
        assert (f.stat().st_mtime_ns == t) != row_failed, f.name

    parquet, csv_path = write_tables(rows2, out)
    table = pq.read_table(parquet)
    assert table.num_rows == 12 and "pnl_usd" in table.column_names
    assert len(csv_path.read_text().splitlines()) == 13
    html = write_html(rows2, spec, out).read_text()
    assert "Pareto" in html and "doomed_calm" in html and html.count("<img") >= 3

    # The failing scenario makes both parameter sets infeasible: no "best" may be claimed.
    assert best_parameter_set(rows2) is None
    ok_only = [r for r in rows2 if r["scenario"] != "doomed_calm"]
    best = best_parameter_set(ok_only)
    assert best is not None
    sets = summarise_param_sets(ok_only)
    assert best["mean_pnl_usd"] == max(s["mean_pnl_usd"] for s in sets if s["feasible"])
    frag = write_best(best, spec, len(ok_only), tmp_path / "best.toml")
    text = frag.read_text()
    assert "subject to every cell running" in text
    assert tomllib.loads(text)["quoting"]["gamma"] == best["p.quoting.gamma"]
    # The fragment is a valid agent config on its own.
    assert load_config(frag, env={}).quoting is not None


def test_cli_search_with_tune_and_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        """
[sweep]
scenarios = ["calm"]
seeds = [0]
duration_s = 60

[search]
algorithm = "random"
samples = 2
seed = 3
[search.space."quoting.gamma"]
low = 0.02
high = 0.5
log = true
"""
    )
    out = tmp_path / "out"
    best = tmp_path / "best.toml"
    rc = cli_main(
        ["--grid", str(grid), "--out", str(out), "--workers", "2", "--best", str(best),
         "--no-progress"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rows = list(load_done(out).values())
    assert len(rows) == 2
    gammas = {r["p.quoting.gamma"] for r in rows}
    assert len(gammas) == 2 and all(0.02 <= g <= 0.5 for g in gammas)
    assert (out / "results.parquet").is_file() and (out / "summary.html").is_file()
    assert tomllib.loads(best.read_text())["quoting"]["gamma"] in gammas


def test_a_bad_grid_is_refused_before_any_cell(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quoting.gama: unknown key"):
        load_sweep(_grid(tmp_path, ["calm"], "gama = [1.0]"))
    with pytest.raises(ConfigError, match=r"quoting\.levels = -1\): .*levels"):
        load_sweep(_grid(tmp_path, ["calm"], "levels = [-1]").with_name("grid.toml"))
    g = _grid(tmp_path, ["calm"])
    g.write_text(g.read_text().replace("duration_s = 60", "duration_s = -5"))
    with pytest.raises(ConfigError, match=r"duration_s: Input should be greater than 0"):
        load_sweep(g)
    g.write_text(g.read_text().replace("duration_s = -5", "duration_s = 60"))
    g.write_text(g.read_text().replace('seeds = "0-1"', 'seeds = "0-1"\nstrategies = ["clever"]'))
    with pytest.raises(ConfigError, match=r"unknown strategy 'clever'; registered: shipped"):
        load_sweep(g)
    g.write_text(g.read_text().replace('strategies = ["clever"]', ""))
    g.write_text(g.read_text().replace("[grid.quoting]", "[grid.signer]"))
    with pytest.raises(ConfigError, match=r"varies only"):
        load_sweep(g)


@pytest.fixture(autouse=True)
def _quiet_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's own usage-stats prompt and metrics exporter have no business in a test run.
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
