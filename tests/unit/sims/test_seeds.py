"""The seeds table's pure parts: seed ranges, the strategy registry, mean ± std, the live clock."""

from __future__ import annotations

import math
import re
import time

import pytest

from agent.errors import ConfigError
from sims.live import ScaledClock
from sims.seeds import METRICS, SweepRun, format_sweep, parse_seeds, resolve_strategies, summarize
from sims.strategies import Strategy, get_strategy, register, strategy_names


def test_parse_seeds_ranges_and_lists() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("7") == [7]
    assert parse_seeds("1, 4-5,9") == [1, 4, 5, 9]
    with pytest.raises(ValueError):
        parse_seeds("5-2")
    with pytest.raises(ValueError):
        parse_seeds(" , ")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        # Each was a ValueError traceback, a silent default, hours of runs or a hang.
        (["--seeds", "9-0"], r"--seeds: seed range '9-0' runs backwards: write 0-9"),
        (["--seeds", "a-b"], r"--seeds: 'a-b' is not a seed; use N, LO-HI"),
        (["--seeds=-1"], r"--seeds: '-1' is not a seed"),
        (["--seeds", "0-9-1"], r"--seeds: '0-9-1' is not a seed"),
        (["--seeds", "0-100000"], r"--seeds: seed range '0-100000' is more than 1000 runs"),
        (["--seeds="], r"--seeds: no seeds in ''"),
        (["--duration-s", "0"], r"--duration-s: '0': must be a finite number > 0"),
        (["--duration-s", "-5"], r"--duration-s: '-5': must be a finite number > 0"),
        (["--duration-s", "nan"], r"--duration-s: 'nan': must be a finite number > 0"),
        (["--mode", "live", "--speed", "0"], r"--speed: '0': must be a finite number > 0"),
        (["--mode", "live", "--speed", "-1"], r"--speed: '-1': must be a finite number > 0"),
        (["--mode", "live", "--rpc-delay-ms", "800-300"], r"--rpc-delay-ms: use LO-HI wall"),
        (["--mode", "live", "--rpc-delay-ms", "1e9-2e9"], r"--rpc-delay-ms: .*<= 60000"),
        (["--mode", "live", "--rpc-delay-ms", "abc"], r"--rpc-delay-ms: use LO-HI"),
    ],
)
def test_bad_stress_arguments_are_one_usage_error_naming_the_flag(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sims.stress import cli_main

    with pytest.raises(SystemExit) as exc:  # argparse: before any chain or world is built
        cli_main(["--scenario", "calm", *argv])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(rf"^mm-agent stress: error: argument {error}", last), last


def test_good_stress_arguments_parse() -> None:
    from sims.stress import _stress_parser, parse_delay_ms

    args = _stress_parser().parse_args(
        ["--scenario", "calm", "--seeds", "0-2,5", "--duration-s", "30", "--speed", "4"]
    )
    assert (parse_seeds(args.seeds), args.duration_s, args.speed) == ([0, 1, 2, 5], 30.0, 4.0)
    assert parse_delay_ms("300-800") == (300.0, 800.0) and parse_delay_ms("5") == (5.0, 5.0)


def test_registry_has_shipped_and_refuses_unknown_names() -> None:
    assert strategy_names()[0] == "shipped"
    assert get_strategy("shipped").apply({"gamma": 0.1}) == {"gamma": 0.1}
    assert resolve_strategies("all") == strategy_names()
    assert resolve_strategies(None) == ["shipped"]
    with pytest.raises(ConfigError, match="registered are shipped"):
        get_strategy("plain-not-yet")
    with pytest.raises(ValueError):
        register(Strategy("shipped", "again"))
    with pytest.raises(ValueError):
        register(Strategy("all", "reserved"))


def _run(strategy: str, seed: int, pnl: float) -> SweepRun:
    metrics = dict.fromkeys(METRICS, 1.0) | {"pnl": pnl, "gas_native": math.nan}
    return SweepRun(strategy, seed, True, metrics, 1.0)


def test_summarize_mean_and_sample_std_per_strategy() -> None:
    runs = [_run("a", 0, 1.0), _run("a", 1, 3.0), _run("b", 0, -2.0)]
    rows = summarize(runs)
    assert [r["strategy"] for r in rows] == ["a", "b"]
    assert rows[0]["pnl"] == {"mean": 2.0, "std": pytest.approx(math.sqrt(2.0))}
    assert rows[1]["pnl"] == {"mean": -2.0, "std": 0.0}
    assert math.isnan(rows[0]["gas_native"]["mean"])  # NaN runs are left out, not zeros
    table = format_sweep(rows, "calm")
    assert "2.00 ± 1.41" in table and "a (n=2)" in table and "b (n=1)" in table


def test_scaled_clock_stands_until_go_then_runs_at_speed() -> None:
    c = ScaledClock(1_000.0, speed=50.0)
    assert c() == 1_000.0
    assert c.now_ms() == 1_000_000
    c.go()
    time.sleep(0.1)
    assert 1_004.0 < c() < 1_010.0  # 0.1 s wall × 50, with slack for a busy machine
    assert c.wall_until(c() + 50.0) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError):
        ScaledClock(0.0, speed=0.0)


def test_the_baselines_are_the_model_presets() -> None:
    # `plain` and `every-block` in the table are exactly agent.model.strategies' presets.
    from agent.model import ModelParams
    from agent.model.strategies import strategy

    configured = ModelParams(levels=2, base_size_base=0.05)
    for name in ("plain", "every-block"):
        assert get_strategy(name).apply(configured) == strategy(name).params(configured)
    assert get_strategy("every-block").quoting == {"cost_gate": False}


def test_seeds_metrics_carry_edge_and_centre_from_the_report() -> None:
    from sims.seeds import _metrics

    report = {
        "pnl": {"total": 1.0, **dict.fromkeys(("spread", "inventory", "funding", "fees"), 0.0)},
        "meta": {"duration_s": 600.0},
        "max_drawdown": {"usd": 0.5},
        "fills": {"count": 4},
        "quoting": {"uptime_frac": 0.9},
        "gas": {"native": 0.001},
        "risk": {"transitions": []},
        "edge": {"per_fill_bps": 3.7, "centre_abs_bps": None},
        "paying_side": {"mean_base": 0.2, "max_base": 1.2, "cap_base": 1.0, "breaches": 1},
        "drawdown_limit": {
            "max_usd": 30.0,
            "max_frac": 0.06,
            "limit_frac": 0.05,
            "breached": True,
        },
    }
    m = _metrics(report)
    assert METRICS[-2:] == ("edge_bps", "centre_bps")
    assert m["edge_bps"] == 3.7 and math.isnan(m["centre_bps"])  # no two-sided step: NaN
    assert math.isnan(m["pnl_gas"])  # a part the ledger did not report is NaN, not 0
    rows = summarize([SweepRun("s", 0, True, m, 1.0)])
    assert rows[0]["edge_bps"] == {"mean": 3.7, "std": 0.0}
    assert "edge_bps" in format_sweep(rows, "calm")
    # The limits columns: the worst snapshot and drawdown against their caps, and the breaches.
    assert (m["paying_inv_max"], m["paying_cap_base"], m["paying_breaches"]) == (1.2, 1.0, 1.0)
    assert (m["dd_frac"], m["dd_limit_frac"], m["dd_breach"]) == (0.06, 0.05, 1.0)
    unknown = {
        **report,
        "drawdown_limit": {"max_usd": 3.0, "max_frac": None, "limit_frac": 0.05, "breached": None},
    }
    assert math.isnan(_metrics(unknown)["dd_breach"])  # no capital: not judged, not a pass


def test_plain_switches_the_sweep_guard_off_and_shipped_keeps_it() -> None:
    from agent.risk import RiskLimits
    from sims.strategies import get_strategy

    assert get_strategy("plain").apply_risk({}) == {"sweep_fills": 0}
    assert get_strategy("shipped").apply_risk({}) == {}
    limits = get_strategy("plain").apply_risk(RiskLimits())
    assert isinstance(limits, RiskLimits) and limits.sweep_fills == 0
    assert RiskLimits().sweep_fills > 0
