"""``mm-agent resume`` on a running agent held out by the drawdown withdraw level.

The level (``risk.drawdown_withdraw_frac``) releases only once the drawdown is back under it,
which a flat, withdrawn agent never earns: only an operator clears it. Here the strategy capital
is set to one dollar, so the gas of the first quotes is a drawdown past the level (and far from
the halt), on real anvil, the real contracts and the exchange simulator as its own process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.procs import cli, fund_book, start_agent, telemetry_url, wait, write_config

pytestmark = [pytest.mark.chain, pytest.mark.slow]

# A dollar of capital: a few cents of gas is a drawdown of several percent. The halt is far away
# (100 times the capital), the withdraw level at 1%; the cooldowns are short so the agent comes
# back within the test once the latch is cleared. The test's anvil mines only on a transaction, and
# the oracle is pushed by no one: their age limits are out of the way (as in the e2e fault tests).
_RISK = """
[risk]
strategy_capital_quote = 1.0
drawdown_withdraw_frac = 0.01
cooldown_reduced_s = 0.5
cooldown_widened_s = 0.5
cooldown_hedging_s = 0.5
cooldown_withdrawn_s = 0.5
[risk.drawdown_frac]
warn = 0.001
breach = 100.0
[risk.block_age_s]
warn = 600.0
breach = 1200.0

[telemetry]"""


def _status(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "data" / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _healthz(tmp_path: Path) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{telemetry_url(tmp_path)}/healthz", timeout=3.0).json()
    return body


def _failing(tmp_path: Path) -> set[str]:
    return {str(f["condition"]) for f in _healthz(tmp_path)["failing"]}


def test_resume_clears_the_drawdown_latch_of_a_running_agent(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
) -> None:
    maker = accounts["maker"].address
    fund_book(dex, accounts)
    edits = {
        "\n[telemetry]": _RISK,
        "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
    }
    cfg = write_config(tmp_path, anvil, dex, cex_process, **edits)
    log = tmp_path / "agent.log"
    procs.append(start_agent(cfg, log, agent_env))
    # The quotes' gas withdraws it, and it stays out: status and /healthz say an operator must act.
    wait(lambda: "drawdown level" in _status(tmp_path).get("operator_needed", ""), 60.0, "latch")
    wait(lambda: dex.open_orders(maker) == [], 30.0, "the withdrawal's cancel")
    st = _status(tmp_path)
    assert st["state"] == "WITHDRAWN" and "mm-agent resume" in st["operator_needed"], st
    assert "drawdown_withdrawn" in _failing(tmp_path)
    out = cli(agent_env, "status", "--config", str(cfg))
    assert "operator needed: withdrawn by the drawdown level" in out.stdout, out.stdout

    out = cli(agent_env, "resume", "--config", str(cfg), "--who", "tester")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "drawdown withdraw level is cleared" in out.stdout, out.stdout

    # The audit trail: the resume is a journaled transition naming the operator and the peak,
    # and the agent steps down from it through the cooldowns (on a dollar of capital the next
    # quotes' gas soon withdraws it again: the drawdown now counts from the re-based peak).
    def transitions() -> list[tuple[str, str, str]]:
        with sqlite3.connect(tmp_path / "data" / "journal.sqlite") as db:
            rows = db.execute("SELECT from_state, to_state, reason FROM risk ORDER BY id")
            return [(r[0], r[1], r[2]) for r in rows]

    def stepped_down_after_resume() -> bool:
        rows = transitions()
        at = [i for i, r in enumerate(rows) if r[2].startswith("operator resume by tester")]
        return bool(at) and ("WITHDRAWN", "HEDGING") in [(r[0], r[1]) for r in rows[at[0] :]]

    try:
        wait(stepped_down_after_resume, 60.0, "the step down")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {_status(tmp_path)} {transitions()}") from None
    resume = next(r for r in transitions() if r[2].startswith("operator resume by tester"))
    assert resume[:2] == ("WITHDRAWN", "WITHDRAWN") and "drawdown latch cleared" in resume[2]
    assert "peak re-based" in resume[2]
