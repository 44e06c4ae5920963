"""Which anvil processes of this test process are still alive (the orphan checks' one scan)."""

from __future__ import annotations

import os
from pathlib import Path


def live_anvil_children(exclude: set[int] | None = None) -> list[int]:
    """Return the pids of running anvil processes whose parent is this process.

    Parameters
    ----------
    exclude
        Pids not to report (nodes a fixture still owns on purpose).
    """
    me = os.getpid()
    found = []
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
        pid = int(proc.name)
        if cmd.endswith(b"anvil") and ppid == me and state != "Z" and pid not in (exclude or ()):
            found.append(pid)
    return found
