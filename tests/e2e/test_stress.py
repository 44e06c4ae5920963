"""End-to-end stress runs: the real agent on a forked chain with takers, oracle and CEX simulator.

Every shipped scenario runs shortened (``SHORT_DURATION_S`` simulated seconds, longer when a
scripted move needs it to keep its speed) on a fork of the session's fork-state file
(``tests/conftest.py``); each must hold every invariant and write a complete report. A second pair
of runs checks that the same seed reproduces the same numbers, and a crash runs on the L2 cost
profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sims.forkstate import ForkStateMeta
from sims.scenario import list_scenarios, load_scenario
from sims.stress import SHORT_DURATION_S, StressOptions, StressResult, Upstream
from sims.stress import run_scenario as _run_scenario

pytestmark = pytest.mark.chain

# Scenarios whose (shortened) stress is built to breach a risk threshold that withdraws quotes:
# stalls beyond the block-age breach, a stale oracle beyond the oracle-age breach, a CEX outage
# beyond the feed-age breach (see sims/scenario.py, `Scenario.shortened`).
_MUST_WITHDRAW = {"mempool_stall", "stale_oracle", "cex_outage", "combined_crisis"}
_REPRO_S = 60.0
_INVARIANTS = {
    "position_matches_chain",
    "no_orders_after_withdrawal",
    "no_duplicate_hedge",
    "inventory_within_hard_cap",
    "no_negative_collateral",
    "funding_settled",
    "paying_side_within_cap",
    "drawdown_within_limit",
}


def _run(
    up: Upstream,
    name: str,
    out: Path,
    seed: int = 0,
    chain_profile: Any = None,
    short_s: float = SHORT_DURATION_S,
) -> StressResult:
    opts = StressOptions(seed=seed, short_s=short_s, chain_profile=chain_profile)
    return asyncio.run(_run_scenario(load_scenario(name), up, out, opts))


def test_fork_state_sidecar_round_trips(fork_state: ForkStateMeta) -> None:
    again = ForkStateMeta.load(fork_state.state_file)
    assert again == fork_state
    assert again.market_for(60) is not None  # every short scenario funds on 60 s intervals


@pytest.mark.parametrize("name", list_scenarios())
def test_scenario_short(upstream: Upstream, tmp_path: Path, name: str) -> None:
    res = _run(upstream, name, tmp_path / name)
    failed = [f"{i.name}: {i.detail}" for i in res.invariants if not i.passed]
    assert not failed, failed
    assert {i.name for i in res.invariants} == _INVARIANTS
    short = load_scenario(name).short_run(SHORT_DURATION_S)
    assert res.steps == short.n_steps

    report: dict[str, Any] = json.loads((tmp_path / name / "report.json").read_text())
    assert report["passed"] is True
    assert report["meta"]["scenario"] == name
    assert report["meta"]["duration_s"] == short.duration_s
    assert report["samples"] == res.steps
    for key in ("pnl", "max_drawdown", "inventory", "fills", "quoting", "gas", "funding",
                "hedges", "risk", "invariants", "world", "agent"):  # fmt: skip
        assert key in report, key
    assert set(report["pnl"]) >= {"spread", "inventory", "funding", "fees", "gas", "total"}
    assert report["world"]["blocks_mined"] > 0
    assert report["gas"]["tx_count"] > 0, "the agent never got a transaction included"
    # Every signed attempt is counted (replaced, dropped and reverted ones too): the report's
    # count is the journal's, not only the included transactions'.
    from agent.store import Journal

    with Journal(tmp_path / name / "agent" / "journal.sqlite") as journal:
        assert report["gas"]["tx_count"] == journal.count_txs()
    assert sum(report["gas"]["by_status"].values()) == report["gas"]["tx_count"]
    assert [e["label"] for e in report["events"]] == [e.label for e in short.events()]
    assert (tmp_path / name / "index.html").stat().st_size > 0
    for png in report["plots"].values():
        assert (tmp_path / name / png).stat().st_size > 0, png
    if name in _MUST_WITHDRAW:
        assert report["risk"]["worst_state"] in ("WITHDRAWN", "HALTED"), report["risk"]
    if name == "calm":
        assert report["risk"]["worst_state"] not in ("WITHDRAWN", "HALTED"), report["risk"]
        assert report["quoting"]["uptime_frac"] > 0.5
        # The centre error is traced to the decisions behind the resting quotes on most steps,
        # and its terms add up to it there.
        d = report["edge"]["centre_decomposition"]
        assert d["steps"] >= 0.5 * report["edge"]["centre_steps"] > 0
        assert sum(d["signed_bps"].values()) == pytest.approx(d["centre_signed_bps"], abs=1e-6)
    if name == "mempool_stall":
        assert report["world"]["stalled_steps"] >= 60


def test_crash_on_the_l2_profile_charges_the_data_fee(upstream: Upstream, tmp_path: Path) -> None:
    res = _run(upstream, "flash_crash", tmp_path / "l2", chain_profile="l2")
    assert res.passed, [i.detail for i in res.invariants if not i.passed]
    gas = res.report["gas"]
    cfg = res.report["meta"]["agent_config"]
    assert cfg["chain_profile"] == "l2" and 0.01 <= cfg["quiet_base_fee_gwei"] <= 0.05
    assert gas["calldata_bytes"] > 0
    want = gas["calldata_bytes"] * cfg["l1_data_fee_per_byte_gwei"] * 1e-9
    assert gas["l1_data_fee_native"] == pytest.approx(want)
    assert gas["native"] == pytest.approx(gas["execution_native"] + gas["l1_data_fee_native"])
    # The data fee is part of gas in the P&L too (the agent's ledger never saw it).
    fee_usd = gas["l1_data_fee_native"] * res.report["meta"]["native_price_usd"]
    assert res.report["pnl"]["gas"] <= -fee_usd
    # L2 execution is cheap: the world's tips follow the profile, so the agent's do too.
    assert gas["execution_native"] < 0.001


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    meta = dict(out.pop("meta"))
    meta.pop("started_at")
    meta.pop("chain")  # the upstream's port
    out["meta"] = meta
    return out


@contextlib.contextmanager
def _cpu_hogs() -> Iterator[int]:
    """Busy-loop processes, one per core: the machine as loaded as CI's worst minute."""
    n = os.cpu_count() or 2
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def test_same_seed_same_numbers(upstream: Upstream, tmp_path: Path) -> None:
    """The lock-step run is a function of the seed: the whole report, not some of its fields,
    is the same on a quiet machine and on one whose cores are all busy."""
    # 60 s, the shortest vol_shock_3x allows: the short-run test above already runs its 120 s.
    a = _run(upstream, "vol_shock_3x", tmp_path / "a", seed=7, short_s=_REPRO_S)
    with _cpu_hogs():
        b = _run(upstream, "vol_shock_3x", tmp_path / "b", seed=7, short_s=_REPRO_S)
    assert _numbers(a.report) == _numbers(b.report)
    assert a.report["fills"]["count"] > 0
    assert a.report["gas"]["tx_count"] > 0
    c = _run(upstream, "vol_shock_3x", tmp_path / "c", seed=8, short_s=_REPRO_S)
    # A different seed is a different run: the comparison above can fail.
    assert _numbers(a.report) != _numbers(c.report)
