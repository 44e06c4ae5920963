"""Helpers for the tests that run ``mm-agent`` as a real process (run, safety, health, shutdown).

The fixtures that go with them (``cex_process``, ``agent_env``, ``procs``) are in
``tests/chain/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil

BID, ASK, IOC = 0, 1, 2
LOT = 0.01
"""The test market's lot, in base units."""
ENV = {**os.environ, "MM_CEX_API_KEY": "sim-api-key", "MM_CEX_API_SECRET": "sim-api-secret"}
"""The environment the agent runs in: the exchange simulator's fixed credentials."""
MM = [sys.executable, "-m", "agent.cli"]
"""What `mm-agent` runs."""


def wait(pred: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll `pred` every 0.1 s until it is true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def write_config(tmp_path: Path, anvil: Anvil, dex: Any, cex_url: str, **edits: str) -> Path:
    """Write ``tmp_path/mm.toml`` for the maker (dev key 1); each edit replaces text in it."""
    text = f"""
[chain]
rpc_url = "{anvil.url}"
deployment_file = "{dex.record}"
poll_interval_s = 0.1

[signer]
source = "dev"
dev_index = 1

[quoting]
base_size_base = 0.1
ref_depth_base = 0.5
inventory_cap_base = 2.0
native_price_quote = 100.0

[hedge]
base_url = "{cex_url}"
symbol = "ETHUSDT"
[hedge.policy]
dead_band_base = 0.01

[telemetry]
port = 0
json_logs = true

[storage]
data_dir = "{tmp_path / "data"}"
journal_fsync = true
"""
    for old, new in edits.items():
        text = text.replace(old, new)
    cfg = tmp_path / "mm.toml"
    cfg.write_text(text)
    return cfg


def start_agent(cfg: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``mm-agent run --config cfg``, output appended to `log`."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*MM, "run", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def cli(
    env: dict[str, str], *args: str, timeout_s: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """`mm-agent ARGS` from another shell (a separate process), output captured."""
    return subprocess.run(
        [*MM, *args], capture_output=True, text=True, timeout=timeout_s, check=False, env=env
    )


def fund_book(dex: Any, accounts: dict[str, LocalAccount]) -> None:
    """Fund maker and taker, and rest one taker order on each side (the agent needs a book)."""
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.place(accounts["taker"], BID, 2990.0, 0.5)
    dex.place(accounts["taker"], ASK, 3010.0, 0.5)


def wait_for_quotes(dex: Any, maker: str, log: Path, timeout_s: float = 60.0) -> None:
    """Wait until the maker rests at least two orders; the failure shows the agent's log."""
    wait(
        lambda: len(dex.open_orders(maker)) >= 2,
        timeout_s,
        f"quotes ({log.read_text()[-2000:] if log.exists() else 'no log'})",
    )


def start_quoting(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_url: str,
    env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
    **edits: str,
) -> tuple[Path, Path, subprocess.Popen[bytes]]:
    """Fund the book, start the agent (tracked in `procs`), wait for its quotes.

    Returns (config, log, process).
    """
    fund_book(dex, accounts)
    cfg = write_config(tmp_path, anvil, dex, cex_url, **edits)
    log = tmp_path / "agent.log"
    proc = start_agent(cfg, log, env)
    procs.append(proc)
    wait_for_quotes(dex, accounts["maker"].address, log)
    return cfg, log, proc


def hit(dex: Any, taker: LocalAccount, maker: str, side: int, size: float, cid: int) -> None:
    """Take `size` from the maker's best order on `side` (IOC at a price through the book)."""
    own = [o for o in dex.open_orders(maker) if o[2] == side]
    if not own:
        return
    if side == ASK:
        price = min(o[3] for o in own) * 0.01
        dex.place(taker, BID, price, size, flags=IOC, cid=cid)
    else:
        price = max(o[3] for o in own) * 0.01
        dex.place(taker, ASK, price, size, flags=IOC, cid=cid)


def cex_state(url: str) -> dict[str, Any]:
    """The exchange simulator's whole state (orders, trades, positions, duplicate ids)."""
    return dict(httpx.get(f"{url}/_sim/state", timeout=5).json())


def cex_open(url: str) -> list[dict[str, Any]]:
    """Orders still working on the exchange simulator."""
    return [o for o in cex_state(url)["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def cex_position(url: str) -> float:
    """The ETHUSDT position on the exchange simulator, in base units."""
    pos = cex_state(url)["positions"].get("ETHUSDT")
    return float(pos["qty"]) if pos else 0.0


def cex_trades(url: str) -> list[dict[str, Any]]:
    """ETHUSDT trades on the exchange simulator, oldest first."""
    return [t for t in cex_state(url)["trades"] if t["symbol"] == "ETHUSDT"]


def telemetry_url(tmp_path: Path) -> str:
    """The running agent's /metrics and /healthz base URL (once it wrote its port file)."""
    port_file = tmp_path / "data" / "telemetry.port"

    def port() -> str:
        # The agent creates the file, then writes the number (not atomically): an existing but
        # still empty file is "not yet", not a port.
        text = port_file.read_text().strip() if port_file.exists() else ""
        return text if text.isdigit() else ""

    wait(port, 60.0, "the telemetry port file")
    return f"http://127.0.0.1:{port()}"


class BackgroundLoop:
    """An asyncio loop in a daemon thread, for a fault proxy a blocking test drives."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 60.0) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout_s)

    def soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop's thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
