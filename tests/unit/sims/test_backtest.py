"""The vectorized A-S backtest reproduces the paper's published table within sampling error."""

from __future__ import annotations

import math

import pytest

from agent.model.quoting import as_quotes
from sims.backtest import PAPER_TABLE, AsRow, cli_main, run_as_table


@pytest.fixture(scope="module")
def rows() -> dict[tuple[float, str], AsRow]:
    return {(r.gamma, r.strategy): r for r in run_as_table((0.1, 0.01, 1.0), 1000, seed=0)}


def _within(ours: float, paper: float, se: float, rounding: float) -> bool:
    # 3 standard errors of the difference of two independent estimates + the paper's rounding.
    return abs(ours - paper) <= 3.0 * se + rounding


def test_published_rows_are_reproduced_within_sampling_error(
    rows: dict[tuple[float, str], AsRow],
) -> None:
    assert PAPER_TABLE, "the published table must not be empty"
    for key, paper in PAPER_TABLE.items():
        ours = rows[key]
        n, m = ours.paths, paper.paths
        se_mean = math.sqrt(ours.profit_std**2 / n + paper.profit_std**2 / m)
        se_std = ours.profit_std * math.sqrt(1 / (2 * n) + 1 / (2 * m))
        se_q = math.sqrt(ours.final_q_std**2 / n + paper.final_q_std**2 / m)
        se_q_std = ours.final_q_std * math.sqrt(1 / (2 * n) + 1 / (2 * m))
        assert ours.spread == pytest.approx(paper.spread, abs=0.005), key
        assert _within(ours.profit_mean, paper.profit_mean, se_mean, 0.05), key
        assert _within(ours.profit_std, paper.profit_std, se_std, 0.05), key
        assert _within(ours.final_q_mean, paper.final_q_mean, se_q, 0.005), key
        assert _within(ours.final_q_std, paper.final_q_std, se_q_std, 0.05), key


def test_spreads_are_the_closed_form_average(rows: dict[tuple[float, str], AsRow]) -> None:
    for gamma in (0.1, 0.01, 1.0):
        avg = (
            sum(2 * as_quotes(100.0, 0.0, gamma, 2.0, 1.0 - i * 0.005, 1.5)[1] for i in range(200))
            / 200
        )
        assert rows[(gamma, "inventory")].spread == pytest.approx(avg)
        assert rows[(gamma, "symmetric")].spread == pytest.approx(avg)


def test_inventory_strategy_cuts_risk_at_every_gamma(rows: dict[tuple[float, str], AsRow]) -> None:
    for gamma in (0.1, 0.01, 1.0):
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
