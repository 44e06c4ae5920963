"""Live mode end to end: the agent's own run loop against a chain mining on a scaled clock.

One shortened scenario per test (about 10 s of wall time at speed 15): every lock-step
invariant must hold and the report must carry the live section. The CLI test drives
``mm-agent stress --mode live`` and ``--seeds`` the way a user would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sims.forkstate import ForkStateMeta
from sims.live import LiveOptions, run_live
from sims.scenario import load_scenario
from sims.stress import StressOptions, Upstream, cli_main

pytestmark = pytest.mark.chain


@pytest.fixture
def state_file(fork_state: ForkStateMeta) -> Path:
    """The session's fork-state file (``tests/conftest.py``), for the CLI's ``--state``."""
    return fork_state.state_file


@pytest.mark.parametrize("name", ["calm", "cex_outage"])
def test_live_run_holds_every_invariant(upstream: Upstream, tmp_path: Path, name: str) -> None:
    res = asyncio.run(
        run_live(
            load_scenario(name),
            upstream,
            tmp_path / name,
            StressOptions(seed=2, short_s=60.0),
            LiveOptions(speed=15.0),
        )
    )
    failed = [f"{i.name}: {i.detail}" for i in res.invariants if not i.passed]
    assert not failed, failed
    assert res.steps == 60
    live = res.report["live"]
    assert live["speed"] == 15.0 and live["chain_samples"] > 0
    assert res.report["world"]["blocks_mined"] >= 55  # the producer kept (nearly) every slot
    assert res.report["agent"]["quote_txs"] > 0
    on_disk = json.loads((tmp_path / name / "report.json").read_text())
    assert on_disk["live"] == live


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures logging for a terminal (root handler, agent loggers at ERROR): undo
    it, or later tests that read the agent's warnings see nothing."""
    root, agent = logging.getLogger(), logging.getLogger("agent")
    handlers, level, agent_level = list(root.handlers), root.level, agent.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    agent.setLevel(agent_level)


@pytest.mark.usefixtures("restore_logging")
def test_cli_live_mode_and_seeds_table(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--scenario", "calm", "--duration-s", "60", "--state", str(state_file)]
    rc = cli_main([*common, "--mode", "live", "--speed", "15", "--out", str(tmp_path / "live")])
    assert rc == 0
    assert "calm" in capsys.readouterr().out
    assert json.loads((tmp_path / "live" / "report.json").read_text())["live"]["speed"] == 15.0

    rc = cli_main([*common, "--seeds", "0-1", "--json", "--out", str(tmp_path / "sweep")])
    assert rc == 0
    table = json.loads(capsys.readouterr().out)
    (row,) = table["summary"]
    assert row["strategy"] == "shipped" and row["seeds"] == [0, 1]
    assert {r["seed"] for r in table["runs"]} == {0, 1}
    assert set(row) >= {"pnl", "pnl_gas", "max_dd_usd", "two_sided_pct", "flaps_per_h"}


@pytest.mark.usefixtures("restore_logging")
def test_cli_refuses_live_flags_in_lockstep(state_file: Path) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--scenario", "calm", "--speed", "4", "--state", str(state_file)])
