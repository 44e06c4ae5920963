"""``mm-agent status``: readable prices, and a closed pipe ends it quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.commands import _resume_line, format_status
from agent.status import AgentStatus

_STATUS = {
    **AgentStatus().__dict__,
    "events": [],
    "state": "NORMAL",
    "block": 123456,
    "index": 2998.4500000000003,
    "mid": 2998.5,
    "best_bid": None,
    "best_ask": 3001.2499999999995,
    "inventory_base": -0.05,
    "inventory_cap_base": 1.0,
    "equity": 10012.346,
    "pnl": {"spread": 12.3456, "gas": -1234.5},
    "last_decision": "sent: refresh 6 orders",
}


def test_status_formats_prices_and_missing_sides() -> None:
    lines = format_status({**_STATUS, "written_s": 100.0}, now_s=103.0)
    assert lines[0] == "state NORMAL  block 123,456  (status written 3 s ago)"
    assert lines[1] == "index 2,998.45  mid 2,998.50  bid -  ask 3,001.25"
    assert "equity 10,012.35" in lines[2]
    assert lines[3] == "pnl spread +12.35  gas -1,234.50"
    assert "None" not in "\n".join(lines)


def test_status_says_first_when_an_operator_is_needed() -> None:
    needed = "withdrawn by the drawdown level (drawdown 4.10% ...): `mm-agent resume --who NAME`"
    st = {**_STATUS, "state": "WITHDRAWN", "operator_needed": needed, "written_s": 100.0}
    lines = format_status(st, now_s=100.0)
    assert lines[0] == f"operator needed: {needed}"
    assert lines[1].startswith("state WITHDRAWN")
    # A status written before the field existed, or with nothing waiting: no such line.
    old = {k: v for k, v in _STATUS.items() if k != "operator_needed"}
    assert not format_status({**old, "written_s": 100.0}, 100.0)[0].startswith("operator")


def test_resume_says_what_it_did() -> None:
    assert _resume_line({"resumed": True, "resumed_from": "HALTED"}).endswith(
        "HALTED for WITHDRAWN"
    )
    latch = _resume_line({"resumed": True, "resumed_from": "drawdown_latch"})
    assert "drawdown withdraw level is cleared" in latch and "re-based" in latch
    nothing = _resume_line({"resumed": False, "state": "WIDENED"})
    assert nothing.startswith("nothing to resume: WIDENED is neither HALTED nor held")


def test_status_survives_a_closed_pipe(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "status.json").write_text(json.dumps({**_STATUS, "written_s": time.time()}))
    cfg = tmp_path / "mm.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{data}"\n')
    # `mm-agent status | head -1` when `head` has gone before status writes: the read end of
    # the pipe is closed before the command starts, so its first write fails (EPIPE).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "agent.cli", "status", "--config", str(cfg)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in out.stderr and b"BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == 0


def test_status_piped_to_head_prints_the_state_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "status.json").write_text(json.dumps({**_STATUS, "written_s": time.time()}))
    cfg = tmp_path / "mm.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{data}"\n')
    out = subprocess.run(  # noqa: S602 - the shell pipeline a user types
        f"{sys.executable} -m agent.cli status --config {cfg} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.startswith("state NORMAL  block 123,456"), out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_a_status_file_that_is_no_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.commands import status_cli_main

    data = tmp_path / "data"
    data.mkdir()
    (data / "status.json").write_text("{garbage")  # was a JSONDecodeError traceback
    cfg = tmp_path / "mm.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{data}"\n')
    assert status_cli_main(["--config", str(cfg)]) == 1
    assert (
        capsys.readouterr().out == f"{data / 'status.json'} is not a status file (not JSON): "
        "is storage.data_dir this agent's?\n"
    )


@pytest.mark.parametrize(
    "flag", [["--interval-s", "0"], ["--poll-s", "nan"], ["--deviation-bps", "-1"]]
)
def test_oracle_refuses_a_zero_or_non_finite_period(
    flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.oracle_keeper import oracle_cli_main

    # 0 s pushed a transaction every poll (and a 0 s poll spun): refused before anything loads.
    with pytest.raises(SystemExit) as exc:
        oracle_cli_main(["--config", "mm.toml", "--from-exchange", *flag])
    assert exc.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(f"argument {flag[0]}: {flag[1]!r}: must be a finite number > 0")
    )
