"""The vectorized A-S backtest reproduces the published tables within sampling error.

Two references: the 2008 article (the default; only its γ = 0.1 table is on file) and the 2006
preprint, each with its own reading of the procedure (see sims/backtest.py).
"""

from __future__ import annotations

import math

import pytest

from agent.model.quoting import as_quotes
from sims.backtest import (
    ARTICLE_GAMMAS,
    ARTICLE_TABLE,
    PREPRINT_GAMMAS,
    UNREPRODUCED,
    AsRow,
    AsSettings,
    cli_main,
    profit_z,
    run_as_table,
)
from sims.backtest import PREPRINT_TABLE as PAPER_TABLE

PREPRINT = AsSettings.for_reference("preprint")
ARTICLE = AsSettings.for_reference("article")
PAPER_GAMMAS = PREPRINT_GAMMAS


@pytest.fixture(scope="module")
def rows() -> dict[tuple[float, str], AsRow]:
    """The preprint's reading, at its γ values and 1."""
    runs = run_as_table((*PREPRINT_GAMMAS, 1.0), 1000, seed=0, settings=PREPRINT)
    return {(r.gamma, r.strategy): r for r in runs}


def test_the_article_table_is_reproduced_by_default() -> None:
    """The article's γ = 0.1 rows: profit, dispersion and final inventory within sampling error,
    with the symmetric strategy quoting the inventory strategy's average spread."""
    ours = {(r.gamma, r.strategy): r for r in run_as_table(ARTICLE_GAMMAS, 4000, seed=0)}
    assert set(ours) >= set(ARTICLE_TABLE)
    for key, paper in ARTICLE_TABLE.items():
        o = ours[key]
        _, se_std, se_q, se_q_std = _se(o, paper)
        assert abs(profit_z(o, paper)) < 3.0, key
        assert abs(o.final_q_mean - paper.final_q_mean) <= 3 * se_q + 0.005, key
        assert abs(o.profit_std - paper.profit_std) <= 4 * se_std + 0.05, key
        assert abs(o.final_q_std - paper.final_q_std) <= 4 * se_q_std + 0.05, key
    inv, sym = ours[(0.1, "inventory")], ours[(0.1, "symmetric")]
    assert sym.avg_quoted == pytest.approx(inv.avg_quoted)  # the article's symmetric strategy


def test_the_article_needs_fills_judged_against_the_old_mid() -> None:
    """With the preprint's reading (new mid) the article's inventory profit is missed low."""
    paper = ARTICLE_TABLE[(0.1, "inventory")]
    settings = AsSettings(fills_see_new_mid=True, symmetric_quotes_inventory_average=True)
    (inv, _sym) = run_as_table((0.1,), 10_000, seed=0, settings=settings)
    assert profit_z(inv, paper) < -5.0
    (inv, _sym) = run_as_table((0.1,), 10_000, seed=0, settings=ARTICLE)
    assert abs(profit_z(inv, paper)) < 3.0


def _se(ours: AsRow, paper: AsRow) -> tuple[float, float, float, float]:
    """Standard errors of the difference of two independent estimates (profit mean and std,
    final-q mean and std)."""
    n, m = ours.paths, paper.paths
    return (
        math.sqrt(ours.profit_std**2 / n + paper.profit_std**2 / m),
        ours.profit_std * math.sqrt(1 / (2 * n) + 1 / (2 * m)),
        math.sqrt(ours.final_q_std**2 / n + paper.final_q_std**2 / m),
        ours.final_q_std * math.sqrt(1 / (2 * n) + 1 / (2 * m)),
    )


def test_published_rows_are_reproduced_within_sampling_error(
    rows: dict[tuple[float, str], AsRow],
) -> None:
    """Every published row but the one listed in UNREPRODUCED: means within 3 standard errors
    (+ the paper's rounding). The inventory strategy's dispersions run about 10% above the paper
    at γ = 0.1 and 0.01 across seeds (3 to 4 standard errors), so they get 4."""
    checked = [k for k in PAPER_TABLE if k not in UNREPRODUCED]
    assert len(checked) == 5
    for key in checked:
        paper, ours = PAPER_TABLE[key], rows[key]
        se_mean, se_std, se_q, se_q_std = _se(ours, paper)
        assert ours.spread == pytest.approx(paper.spread, abs=0.005), key
        assert abs(ours.profit_mean - paper.profit_mean) <= 3 * se_mean + 0.005, key
        assert abs(ours.final_q_mean - paper.final_q_mean) <= 3 * se_q + 0.005, key
        assert abs(ours.profit_std - paper.profit_std) <= 4 * se_std + 0.005, key
        assert abs(ours.final_q_std - paper.final_q_std) <= 4 * se_q_std + 0.005, key


@pytest.mark.xfail(strict=True, reason="the paper's γ = 0.5 inventory profit is not reproduced")
def test_the_gamma_half_inventory_row(rows: dict[tuple[float, str], AsRow]) -> None:
    # Kept strict: if a reading of the procedure ever reproduces it, this fails and the
    # UNREPRODUCED note must go.
    paper, ours = PAPER_TABLE[(0.5, "inventory")], rows[(0.5, "inventory")]
    assert abs(profit_z(ours, paper)) <= 3


def _pooled_z(settings: AsSettings) -> float:
    """(Σ ours − paper) / its standard error over the five reproduced profit means."""
    ours = {
        (r.gamma, r.strategy): r
        for r in run_as_table(PAPER_GAMMAS, 10_000, seed=0, settings=settings)
    }
    diff = var = 0.0
    for key in PAPER_TABLE.keys() - UNREPRODUCED:
        o, p = ours[key], PAPER_TABLE[key]
        diff += o.profit_mean - p.profit_mean
        var += o.profit_std**2 / o.paths + p.profit_std**2 / p.paths
    return diff / math.sqrt(var)


def test_fills_judged_against_the_new_mid_is_the_reading_that_matches() -> None:
    """Judged against the mid at t, the published profits are missed high by about 10 standard
    errors pooled over the five rows; against the mid at t + dt they are matched."""
    assert abs(_pooled_z(PREPRINT)) < 3.0
    assert _pooled_z(AsSettings(fills_see_new_mid=False)) > 6.0


def test_spreads_are_the_paper_column_and_the_closed_form_average(
    rows: dict[tuple[float, str], AsRow],
) -> None:
    for gamma in (*PAPER_GAMMAS, 1.0):
        avg = (
            sum(2 * as_quotes(100.0, 0.0, gamma, 2.0, 1.0 - i * 0.005, 1.5)[1] for i in range(200))
            / 200
        )
        paper_column = 2 / gamma * math.log1p(gamma / 1.5)
        assert rows[(gamma, "inventory")].avg_quoted == pytest.approx(avg)
        assert rows[(gamma, "inventory")].spread == pytest.approx(paper_column)
        # The symmetric strategy quotes the paper's spread ($1.29 at γ = 0.1) around the mid.
        assert rows[(gamma, "symmetric")].avg_quoted == pytest.approx(paper_column)


def test_inventory_strategy_cuts_risk_at_every_gamma(rows: dict[tuple[float, str], AsRow]) -> None:
    for gamma in (*PAPER_GAMMAS, 1.0):
        inv, sym = rows[(gamma, "inventory")], rows[(gamma, "symmetric")]
        assert inv.profit_std < sym.profit_std
        assert inv.final_q_std < sym.final_q_std


def test_article_symmetric_strategy_quotes_the_inventory_average() -> None:
    for inv, sym in zip(*[iter(run_as_table(ARTICLE_GAMMAS, 50, seed=0))] * 2, strict=True):
        assert inv.strategy == "inventory" and sym.strategy == "symmetric"
        assert sym.avg_quoted == pytest.approx(inv.avg_quoted)
        assert sym.avg_quoted > sym.spread  # the time term is in it


def test_same_seed_is_bit_identical() -> None:
    assert run_as_table((0.1,), 200, seed=5) == run_as_table((0.1,), 200, seed=5)
    assert run_as_table((0.1,), 200, seed=5) != run_as_table((0.1,), 200, seed=6)


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["as", "--paths", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "Quantitative Finance 8(3), 2008" in out
    assert "inventory" in out and "symmetric" in out and "(paper)" in out
    assert "65.00" in out and "68.40" in out  # the article's γ = 0.1 rows beside ours
    assert out.count("published numbers not available here") == 4  # γ = 0.01 and 1
    assert " z" in out.splitlines()[1]
    assert cli_main(["as", "--reference", "preprint", "--paths", "100"]) == 0
    out = capsys.readouterr().out
    assert "working paper, 2006" in out and "62.94" in out and "not reproduced" in out
    with pytest.raises(SystemExit):
        cli_main(["as", "--paths", "1"])
