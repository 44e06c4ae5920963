"""One agent per key and per data dir, and the local control channel to the running agent.

==================  ==========================================================================
`AgentLock`         exclusive OS locks (``fcntl.flock``) on ``<data_dir>/agent.lock`` and on a
                    lock file named after the signing key (``<lock_dir>/<chain>-<address>.lock``),
                    taken before anything is built; the kernel drops them when the process dies,
                    ``kill -9`` included, so a stale lock never blocks a restart
`lock_dir`          ``$MM_AGENT_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/mm-agent``, else
                    ``~/.local/state/mm-agent/locks``: shared by every agent of this user
`ControlServer`     a unix socket ``<data_dir>/control.sock`` (0600) the running agent serves:
                    one JSON line in (``{"cmd": ..., "args": {...}}``), one JSON line out
`ask`               the client side; None when no agent listens
==================  ==========================================================================

Why both locks: two agents on one key fight over nonces and each cancels the other's quotes as
"orphans"; two agents on one data dir share a journal. A dev chain (chain id 31337) is one anvil
process, so its key lock also names the RPC URL: two test chains on one machine are two chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

from agent.errors import AgentError, ConfigError

__all__ = [
    "CONTROL_SOCKET",
    "LOCK_FILE",
    "AgentLock",
    "AlreadyRunning",
    "ControlServer",
    "ask",
    "key_lock_path",
    "lock_dir",
]

LOCK_FILE = "agent.lock"
CONTROL_SOCKET = "control.sock"
_DEV_CHAIN_ID = 31337
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class AlreadyRunning(AgentError):
    """Another process holds the agent lock of this data dir or key."""

    def __init__(self, message: str, pid: int | None, data_dir: str | None) -> None:
        super().__init__(message)
        self.pid = pid
        self.data_dir = data_dir


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return the directory of the per-key lock files (see the module docstring)."""
    e = os.environ if env is None else env
    if e.get("MM_AGENT_LOCK_DIR"):
        return Path(e["MM_AGENT_LOCK_DIR"])
    if e.get("XDG_RUNTIME_DIR"):
        return Path(e["XDG_RUNTIME_DIR"]) / "mm-agent"
    return Path.home() / ".local" / "state" / "mm-agent" / "locks"


def key_lock_path(address: str, chain_id: int, rpc_url: str, directory: Path | None = None) -> Path:
    """Return the lock file of one signing key on one chain."""
    name = f"{chain_id}-{address.lower()}"
    if chain_id == _DEV_CHAIN_ID:
        name += "-" + hashlib.sha256(rpc_url.encode()).hexdigest()[:12]
    return (directory or lock_dir()) / f"{name}.lock"


class AgentLock:
    """Exclusive locks on a data dir and a key, held until :meth:`release` or process death.

    Parameters
    ----------
    data_dir
        The agent's data dir (must exist).
    key_lock
        The key's lock file (:func:`key_lock_path`).
    """

    def __init__(self, data_dir: Path, key_lock: Path) -> None:
        self.data_dir = data_dir
        self.paths = (data_dir / LOCK_FILE, key_lock)
        self._files: list[IO[str]] = []

    def acquire(self) -> None:
        """Take both locks or none.

        Raises
        ------
        AlreadyRunning
            Another process holds one of them; the message names its pid and data dir.
        """
        self.paths[1].parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            for path in self.paths:
                f = path.open("a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid, where = _holder(f)
                    f.close()
                    what = "data dir" if path == self.paths[0] else "signing key"
                    raise AlreadyRunning(
                        f"another agent (pid {pid or '?'}, data dir {where or '?'}) holds this "
                        f"{what} ({path}): stop it first, or use its control commands "
                        "(mm-agent status / halt / cancel-all with its config)",
                        pid,
                        where,
                    ) from None
                self._files.append(f)
                f.seek(0)
                f.truncate()
                f.write(json.dumps({"pid": os.getpid(), "data_dir": str(self.data_dir)}))
                f.flush()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Drop the locks (closing the files releases them)."""
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(f: IO[str]) -> tuple[int | None, str | None]:
    try:
        f.seek(0)
        info = json.loads(f.read() or "{}")
        return int(info["pid"]), str(info["data_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def socket_path(data_dir: Path) -> Path:
    """Return the control socket's path, refusing one too long for a unix socket."""
    path = data_dir.resolve() / CONTROL_SOCKET
    if len(str(path)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"storage.data_dir: {data_dir} is too deep for the control socket "
            f"({len(str(path))} > {_MAX_SOCKET_PATH} characters): use a shorter path"
        )
    return path


Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serve control requests on ``<data_dir>/control.sock`` (owner-only) to `handler`.

    `handler` receives the command and its arguments and returns a JSON-ready answer; an
    exception in it is answered as ``{"error": ...}``.
    """

    def __init__(self, data_dir: Path, handler: Handler) -> None:
        self.path = socket_path(data_dir)
        self._handler = handler
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (a stale socket of a dead agent is replaced: we hold the lock)."""
        self.path.unlink(missing_ok=True)
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            try:
                req = json.loads(line)
                answer = await self._handler(str(req["cmd"]), dict(req.get("args") or {}))
            except Exception as exc:  # one bad request must not take the channel down
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def ask(
    data_dir: Path, cmd: str, args: Mapping[str, Any] | None = None, timeout_s: float = 60.0
) -> dict[str, Any] | None:
    """Send one request to the agent running on `data_dir`; None when none listens.

    Raises
    ------
    AgentError
        The agent accepted the request but gave no answer within `timeout_s`.
    """
    path = socket_path(data_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    try:
        writer.write(json.dumps({"cmd": cmd, "args": dict(args or {})}).encode() + b"\n")
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
        except TimeoutError:
            raise AgentError(
                f"the running agent took {cmd!r} but did not answer within {timeout_s:.0f} s: "
                "check `mm-agent status` and its log"
            ) from None
        if not line:
            raise AgentError(f"the running agent closed the control channel during {cmd!r}")
        out = json.loads(line)
        return out if isinstance(out, dict) else {"error": f"malformed answer {out!r}"}
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
