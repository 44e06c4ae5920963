"""A local anvil node: start, control and stop it from Python (sync or async).

This is the project's thin "foundry-py" layer. It finds the anvil binary that ``./scripts/setup``
installed from npm, starts it on a free loopback port, waits until it answers JSON-RPC, exposes the
``anvil_*`` / ``evm_*`` controls the tests and stress runs script, and makes sure the process dies
with us: on ``stop()``, at interpreter exit, and (Linux) even when the Python process is killed.

Example
-------
>>> with Anvil(AnvilConfig(block_time_s=1.0)) as node:  # doctest: +SKIP
...     node.mine(3)
...     snap = node.snapshot()
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from web3 import Web3

from agent.errors import ChainError, RpcUnavailable, ToolchainError

__all__ = ["Anvil", "AnvilConfig", "find_anvil"]

_REPO_ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


def find_anvil() -> Path:
    """Locate the anvil binary: ``$ANVIL_BIN``, then contracts/node_modules, then ``PATH``.

    Raises
    ------
    ToolchainError
        When no binary is found; the message says how to install one.
    """
    env = os.environ.get("ANVIL_BIN")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise ToolchainError(f"ANVIL_BIN={env!r} is not an executable file: fix or unset it")
    modules = _REPO_ROOT / "contracts" / "node_modules"
    if (modules / ".bin" / "anvil").exists():
        # .bin/anvil is a Node launcher that spawns the platform binary. Run that binary directly:
        # signals then reach anvil itself and no Node process sits between us and it.
        for native in sorted((modules / "@foundry-rs").glob("anvil-*/bin/anvil")):
            if os.access(native, os.X_OK):
                return native
        return modules / ".bin" / "anvil"
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ToolchainError(
        "anvil not found (looked at $ANVIL_BIN, contracts/node_modules, PATH): run ./scripts/setup"
    )


@dataclass(frozen=True, slots=True)
class AnvilConfig:
    """How to start a node. Every field maps to one anvil flag; None means anvil's default."""

    chain_id: int = 31337
    accounts: int = 10
    balance_eth: int = 10_000
    mnemonic: str | None = None
    block_time_s: float | None = None
    """Interval mining; None = automine (a block per transaction)."""
    no_mining: bool = False
    """Start with automine and interval mining off: transactions wait until ``mine()``."""
    base_fee_wei: int | None = None
    gas_limit: int | None = None
    order: Literal["fees", "fifo"] | None = None
    fork_url: str | None = None
    fork_block: int | None = None
    load_state: Path | None = None
    dump_state: Path | None = None
    hardfork: str | None = None
    cache_path: Path | None = None
    """Where anvil persists old block states once they overflow memory. None: a private
    temporary directory, removed when the node stops. (anvil's own default is
    ``~/.foundry/anvil/tmp``, which it does not clean: a day of tests and stress runs left
    75 GB there.)"""
    prune_history: int | None = None
    """Keep at most this many block states, in memory only (``--prune-history N``): nothing is
    written to disk, and calls against older blocks fail."""
    port: int = 0
    """0 picks a free port; a restarted node keeps the port it first got."""
    startup_timeout_s: float = 20.0
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, binary: Path) -> list[str]:
        """Build the command line."""
        a = [str(binary), "--host", "127.0.0.1", "--port", str(self.port)]
        a += ["--chain-id", str(self.chain_id), "--accounts", str(self.accounts)]
        a += ["--balance", str(self.balance_eth)]
        if self.mnemonic is not None:
            a += ["--mnemonic", self.mnemonic]
        if self.block_time_s is not None:
            a += ["--block-time", _num(self.block_time_s)]
        if self.no_mining:
            a += ["--no-mining"]
        if self.base_fee_wei is not None:
            a += ["--block-base-fee-per-gas", str(self.base_fee_wei)]
        if self.gas_limit is not None:
            a += ["--gas-limit", str(self.gas_limit)]
        if self.order is not None:
            a += ["--order", self.order]
        if self.fork_url is not None:
            a += ["--fork-url", self.fork_url]
            if self.fork_block is not None:
                a += ["--fork-block-number", str(self.fork_block)]
        if self.load_state is not None:
            a += ["--load-state", str(self.load_state)]
        if self.dump_state is not None:
            a += ["--dump-state", str(self.dump_state)]
        if self.hardfork is not None:
            a += ["--hardfork", self.hardfork]
        if self.cache_path is not None:
            a += ["--cache-path", str(self.cache_path)]
        if self.prune_history is not None:
            a += ["--prune-history", str(self.prune_history)]
        return a + list(self.extra_args)


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive connection has something to read: the peer closed it."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to anvil when our process dies, even by SIGKILL.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


_live: weakref.WeakSet[Anvil] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for node in list(_live):
        node.stop()


class Anvil:
    """A running (or startable) anvil process with typed controls.

    Parameters
    ----------
    config
        Start options; see :class:`AnvilConfig`.
    """

    def __init__(self, config: AnvilConfig | None = None) -> None:
        self.config = config or AnvilConfig()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._port: int | None = None
        self._http = threading.local()
        """Each thread's keep-alive connection (``conn``) and the URL it is for (``url``)."""
        self._conns: list[http.client.HTTPConnection] = []
        """Every connection opened (all threads'), closed by :meth:`stop`."""
        self._conns_lock = threading.Lock()
        self._w3: Web3 | None = None
        self._ids = 0
        self._cache_dir: str | None = None  # our private --cache-path, removed on stop

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the node and wait until it answers; raise with anvil's output on failure."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        binary = find_anvil()
        cfg = self.config if self._port is None else replace(self.config, port=self._port)
        if cfg.cache_path is None:
            self._cache_dir = tempfile.mkdtemp(prefix="anvil-cache-")
            cfg = replace(cfg, cache_path=Path(self._cache_dir))
        # A file, not a pipe: anvil logs every transaction and would block on a full pipe.
        self._log = tempfile.TemporaryFile(prefix="anvil-", suffix=".log")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cfg.argv(binary),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                # Its own session: a Ctrl-C at the terminal goes to the foreground process
                # group, and the node must outlive it so its owner can cancel orders and stop it
                # in order (stop(), atexit, or the parent-death signal above).
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            self._drop_cache_dir()
            raise ToolchainError(f"could not start anvil ({binary}): {exc}") from exc
        _live.add(self)
        try:
            self._wait_ready(cfg.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ToolchainError(
                    f"anvil exited with code {self._proc.returncode} during start-up:\n"
                    f"{self.output(tail_chars=4000)}"
                )
            if self._port is None:
                m = _LISTENING.search(self.output())
                if m:
                    self._port = int(m.group(2))
            if self._port is not None:
                try:
                    version = self.rpc("web3_clientVersion")
                except ChainError:
                    version = None
                if version is not None:
                    if "anvil" not in str(version).lower():
                        raise ToolchainError(f"port {self._port} answers as {version!r}, not anvil")
                    return
            time.sleep(0.02)
        raise ToolchainError(
            f"anvil did not answer within {timeout_s:.0f} s:\n{self.output(tail_chars=4000)}"
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the node: SIGTERM, wait, then SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()
        self._http = threading.local()
        self._w3 = None
        self._close_log()
        self._drop_cache_dir()
        _live.discard(self)

    def restart(self) -> Self:
        """Stop and start again on the same port (state is lost unless load/dump are set)."""
        self.stop()
        return self.start()

    def _drop_cache_dir(self) -> None:
        if self._cache_dir is not None:
            shutil.rmtree(self._cache_dir, ignore_errors=True)
            self._cache_dir = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The anvil process id, or None when stopped."""
        return self._proc.pid if self._proc is not None else None

    def output(self, tail_chars: int | None = None) -> str:
        """Return what anvil printed so far (the tail, when `tail_chars` is given)."""
        if self._log is None:
            return ""
        pos = self._log.tell()
        self._log.seek(0)
        data: str = self._log.read().decode(errors="replace")
        self._log.seek(pos)
        return data[-tail_chars:] if tail_chars else data

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    # -- connection --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port the node listens on."""
        if self._port is None:
            raise ChainError("anvil is not started")
        return self._port

    @property
    def url(self) -> str:
        """The node's HTTP JSON-RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def w3(self) -> Web3:
        """A synchronous Web3 bound to this node (created on first use)."""
        if self._w3 is None:
            self._w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        w3: Web3 = self._w3
        return w3

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call one JSON-RPC method and return its result; raise ChainError on an RPC error.

        An unreachable node raises :class:`~agent.errors.RpcUnavailable` (a ChainError).
        """
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params or []}
        msg = self._post(body, method)
        if "error" in msg:
            raise ChainError(f"{method} failed: {msg['error'].get('message', msg['error'])}")
        return msg.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Send several calls in one JSON-RPC batch (one round trip); return results in order.

        Raises ChainError naming the first call that failed. The node *starts* a batch's calls
        in order but runs them concurrently, so a call may see the effects of a later one when
        an earlier one waits inside the node: pair a state change only with calls that do not
        wait (a base-fee override before ``evm_mine``) or that read a fixed block.
        """
        if not calls:
            return []
        first = self._ids + 1
        self._ids += len(calls)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        msgs = self._post(body, f"batch of {len(calls)} calls")
        if not isinstance(msgs, list):
            raise ChainError(f"batch of {len(calls)} calls failed: {msgs}")
        by_id = {m.get("id"): m for m in msgs}
        out: list[Any] = []
        for i, (method, _) in enumerate(calls):
            msg = by_id.get(first + i)
            if msg is None:
                raise ChainError(f"{method} failed: no answer in the batch")
            if "error" in msg:
                raise ChainError(f"{method} failed: {msg['error'].get('message', msg['error'])}")
            out.append(msg.get("result"))
        return out

    def _post(self, body: Any, what: str) -> Any:
        """POST one JSON-RPC body on this thread's keep-alive connection; return the JSON.

        The standard library's client, not httpx: a stress step makes a few of these per
        simulated second, and httpx's client spent about four times the CPU per request (the
        world's share of the step). One connection per thread: live runs call from worker
        threads. A connection the node closed while idle (a restart) is opened again before
        the request is sent; one that fails mid-request is not retried (the call may have run).
        """
        local = self._http
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        url = self.url
        if conn is not None and (local.url != url or _closed_by_peer(conn)):
            conn.close()  # http.client opens it again on the next request
        if conn is None or local.url != url:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30.0)
            local.conn, local.url = conn, url
            with self._conns_lock:
                self._conns.append(conn)
        data = json.dumps(body).encode()
        try:
            conn.request("POST", "/", body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RpcUnavailable(f"{what}: anvil at {url} unreachable ({exc!r})") from exc
        if resp.status >= 400:
            raise ChainError(f"{what}: HTTP {resp.status} from anvil at {url}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ChainError(f"{what}: malformed JSON from anvil at {url}") from exc

    # -- controls ----------------------------------------------------------------------------

    def snapshot(self) -> str:
        """Take an EVM snapshot; return its id for :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        """Revert to a snapshot (which is consumed); True on success."""
        return bool(self.rpc("evm_revert", [snapshot_id]))

    def mine(self, blocks: int = 1, interval_s: int | None = None) -> None:
        """Mine `blocks` blocks now, `interval_s` seconds of timestamp apart when given."""
        params: list[Any] = [hex(blocks)]
        if interval_s is not None:
            params.append(hex(interval_s))
        self.rpc("anvil_mine", params)

    def block_number(self) -> int:
        """Return the latest block number."""
        return int(self.rpc("eth_blockNumber"), 16)

    def latest_block(self) -> dict[str, Any]:
        """Return the latest block (header fields, transaction hashes)."""
        block: dict[str, Any] = self.rpc("eth_getBlockByNumber", ["latest", False])
        return block

    def set_next_block_timestamp(self, ts: int) -> None:
        """Make the next block carry exactly this unix timestamp."""
        self.rpc("evm_setNextBlockTimestamp", [ts])

    def increase_time(self, seconds: int) -> None:
        """Move the chain's clock forward for the next block."""
        self.rpc("evm_increaseTime", [seconds])

    def set_next_base_fee(self, wei: int) -> None:
        """Set the next block's base fee (a gas spike; EIP-1559 decays it afterwards)."""
        self.rpc("anvil_setNextBlockBaseFeePerGas", [hex(wei)])

    def set_automine(self, enabled: bool) -> None:
        """Turn automine on (a block per transaction) or off (transactions wait in the pool)."""
        self.rpc("evm_setAutomine", [enabled])

    def set_interval_mining(self, seconds: float) -> None:
        """Mine a block every `seconds` (0 turns interval mining off)."""
        self.rpc("evm_setIntervalMining", [seconds])

    def txpool_status(self) -> dict[str, int]:
        """Return the number of pending and queued transactions."""
        st = self.rpc("txpool_status")
        return {k: int(v, 16) if isinstance(v, str) else int(v) for k, v in st.items()}

    def txpool_content(self) -> dict[str, Any]:
        """Return the pool's pending and queued transactions by sender and nonce."""
        content: dict[str, Any] = self.rpc("txpool_content")
        return content

    def drop_transaction(self, tx_hash: str) -> None:
        """Remove a transaction from the pool, as if the network had dropped it."""
        self.rpc("anvil_dropTransaction", [tx_hash])

    def set_balance(self, address: str, wei: int) -> None:
        """Set an account's native balance."""
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def impersonate(self, address: str) -> None:
        """Let unsigned transactions from `address` through (eth_sendTransaction)."""
        self.rpc("anvil_impersonateAccount", [address])

    def stop_impersonating(self, address: str) -> None:
        """Undo :meth:`impersonate`."""
        self.rpc("anvil_stopImpersonatingAccount", [address])

    def dump_state(self) -> str:
        """Return the whole chain state as a hex blob for :meth:`load_state` or ``--load-state``."""
        return str(self.rpc("anvil_dumpState"))

    def load_state(self, blob: str) -> None:
        """Merge a state blob from :meth:`dump_state` into this node."""
        self.rpc("anvil_loadState", [blob])

    def reorg(self, depth: int, txs: list[tuple[dict[str, Any], int]] | None = None) -> None:
        """Replace the last `depth` blocks; `txs` are (tx, block offset) pairs to include."""
        self.rpc("anvil_reorg", [depth, [[tx, off] for tx, off in (txs or [])]])

    def fork(self, block: int | None = None, **overrides: Any) -> Anvil:
        """Start a second node that forks this one at `block` (latest when None)."""
        cfg = replace(
            self.config,
            fork_url=self.url,
            fork_block=block,
            port=0,
            load_state=None,
            dump_state=None,
            **overrides,
        )
        return Anvil(cfg).start()
