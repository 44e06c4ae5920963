"""Runs last (by name): after the suite, no anvil started by this test process is still alive."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.chain
def test_no_anvil_left_from_this_session() -> None:
    import os

    import sims.anvil as mod

    # Nodes still tracked as live are the session fixture's (torn down after this test); any other
    # live anvil whose parent is us is an orphan in the making.
    tracked = {n.pid for n in mod._live}
    me = os.getpid()
    leaked = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ppid, state = int(fields[1]), fields[0]
        if cmd.endswith(b"anvil") and ppid == me and state != "Z" and int(proc.name) not in tracked:
            leaked.append(int(proc.name))
    assert leaked == [], f"anvil processes left running: {leaked}"
