"""The vectorized A-S backtest reproduces the paper's published table within sampling error."""

from __future__ import annotations

import math

import pytest

from agent.model.quoting import as_quotes
from sims.backtest import (
    PAPER_GAMMAS,
    PAPER_TABLE,
    UNREPRODUCED,
    AsRow,
    AsSettings,
    cli_main,
    run_as_table,
)


@pytest.fixture(scope="module")
def rows() -> dict[tuple[float, str], AsRow]:
    return {(r.gamma, r.strategy): r for r in run_as_table((*PAPER_GAMMAS, 1.0), 1000, seed=0)}


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
    assert abs(ours.profit_mean - paper.profit_mean) <= 3 * _se(ours, paper)[0]


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
    assert abs(_pooled_z(AsSettings())) < 3.0
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


def test_same_seed_is_bit_identical() -> None:
    assert run_as_table((0.1,), 200, seed=5) == run_as_table((0.1,), 200, seed=5)
    assert run_as_table((0.1,), 200, seed=5) != run_as_table((0.1,), 200, seed=6)


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["as", "--gamma", "0.1", "--paths", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "inventory" in out and "symmetric" in out and "(paper)" in out
    with pytest.raises(SystemExit):
        cli_main(["as", "--paths", "1"])
