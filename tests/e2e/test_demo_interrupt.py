"""``./scripts/demo``: a Ctrl-C at the terminal stops it cleanly and the report is still written.

A terminal's Ctrl-C sends SIGINT to every process of the foreground process group. The test
starts the demo in a process group of its own (as a shell does) and signals the whole group, so
any child left in the group (the anvil nodes used to be) gets it too and would die under the
agent's shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chain, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_stops_the_demo_cleanly_and_writes_the_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    stdout, stderr = tmp_path / "demo.out", tmp_path / "demo.err"
    with stdout.open("w") as so, stderr.open("w") as se:
        proc = subprocess.Popen(
            [str(ROOT / "scripts/demo"), "--duration-s", "300", "--out", str(out_dir)],
            cwd=ROOT,
            stdout=so,
            stderr=se,
            start_new_session=True,  # its own process group, like a shell's foreground job
        )
    try:
        # Wait until the scenario runs: the dashboard has drawn a step after the first block.
        deadline = time.monotonic() + 180
        while " t+" not in stdout.read_text():
            assert proc.poll() is None, stdout.read_text() + stderr.read_text()
            assert time.monotonic() < deadline, "the demo did not start its scenario"
            time.sleep(0.5)
        # Progress was shown before the scenario: setup's steps, then the chain build.
        assert "[setup] forge build" in stderr.read_text()
        assert "building the local chain" in stdout.read_text()
        time.sleep(3.0)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out, err = stdout.read_text(), stderr.read_text()
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert code == 0, f"exit {code}\n{out[-2000:]}\n{err[-2000:]}"
    assert "stopping: cancelling the agent's orders" in err
    report = json.loads((out_dir / "report.json").read_text())
    assert (out_dir / "index.html").is_file()
    assert f"report: {(out_dir / 'index.html').resolve()}" in out
    # Stopped early, not run to the end: fewer blocks than the 300 s scenario has.
    blocks = int(out.split("demo stopped early (Ctrl-C): ")[1].split(" blocks")[0])
    assert 0 < blocks < 300, out[-500:]
    assert report  # a parsed, non-empty report
