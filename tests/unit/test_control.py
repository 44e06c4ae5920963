"""One agent per key and data dir (OS locks) and the control socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.control import AgentLock, AlreadyRunning, ControlServer, ask, key_lock_path

ADDR = "0x" + "ab" * 20


def test_second_lock_on_the_data_dir_or_the_key_names_the_holder(tmp_path: Path) -> None:
    key = key_lock_path(ADDR, 1, "http://node", tmp_path / "locks")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib, time; from agent.control import AgentLock; "
            "lock = AgentLock(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])); "
            "lock.acquire(); "
            "print('held', flush=True); time.sleep(60)",
            str(tmp_path / "a"),
            str(key),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # Same key, another data dir.
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}") as err:
            AgentLock(tmp_path / "b", key).acquire()
        assert err.value.data_dir == str(tmp_path / "a")
        # Same data dir, another key.
        other = key_lock_path("0x" + "cd" * 20, 1, "http://node", tmp_path / "locks")
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
            AgentLock(tmp_path / "a", other).acquire()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the locks with the process
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with AgentLock(tmp_path / "b", key):
        pass


def test_dev_chain_locks_name_the_rpc_and_other_chains_do_not() -> None:
    a = key_lock_path(ADDR, 31337, "http://127.0.0.1:1", Path("/l"))
    b = key_lock_path(ADDR, 31337, "http://127.0.0.1:2", Path("/l"))
    assert a != b
    assert key_lock_path(ADDR, 1, "http://x", Path("/l")) == key_lock_path(
        ADDR, 1, "http://y", Path("/l")
    )


@pytest.mark.asyncio
async def test_control_socket_is_owner_only_and_answers(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        seen.append((cmd, args))
        if cmd == "boom":
            raise RuntimeError("bad")
        return {"state": "HALTED"}

    assert await ask(tmp_path, "halt") is None  # nobody listens
    server = ControlServer(tmp_path, handler)
    await server.start()
    try:
        assert os.stat(server.path).st_mode & 0o777 == 0o600
        assert await ask(tmp_path, "halt", {"reason": "x"}) == {"state": "HALTED"}
        assert seen == [("halt", {"reason": "x"})]
        assert await ask(tmp_path, "boom") == {"error": "RuntimeError: bad"}
    finally:
        await server.stop()
    assert not server.path.exists()
