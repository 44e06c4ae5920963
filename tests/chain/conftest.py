"""Chain-test fixtures: a freshly deployed market on the session anvil, with funding helpers, and
the exchange simulator, environment and process list of the tests that run ``mm-agent``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from agent.chain.abi import AbiCodec, ErrorDecoder
from agent.chain.contracts import error_decoder, load_artifact, market_abi
from agent.chain.deploy import Deployment, MarketConfig, deploy_market, send_transaction
from agent.chain.rpc import AsyncRpc
from agent.chain.signer import DevKey, load_signer
from agent.chain.txpipe import TxPipeline
from agent.store import Journal
from agent.venue.dex import DexVenue
from sims.anvil import Anvil
from tests.chain.procs import ENV

TICK_USD = 0.01
LOT_BASE = 0.01


@dataclass
class Dex:
    """A deployed market plus the calls tests make on it (all signed locally, automine)."""

    w3: Web3
    dep: Deployment
    record: Path
    market: Contract
    token: Contract
    feed: Contract
    decoder: ErrorDecoder

    def send(self, who: LocalAccount, c: Contract, fn: str, *args: Any) -> Any:
        data = c.encode_abi(fn, args=list(args))
        return send_transaction(
            self.w3, who, {"to": c.address, "data": HexBytes(data)}, decoder=self.decoder
        )

    def fund(self, who: LocalAccount, usd: float) -> None:
        raw = int(usd * 10**6)
        self.send(who, self.token, "drip", who.address, raw)
        self.send(who, self.token, "approve", self.market.address, raw)
        self.send(who, self.market, "deposit", raw)

    def place(
        self, who: LocalAccount, side: int, price: float, size: float, flags: int = 1, cid: int = 1
    ) -> Any:
        tick, lots = round(price / TICK_USD), round(size / LOT_BASE)
        return self.send(who, self.market, "place", (side, flags, tick, lots, cid, 0))

    def push_price(self, price: float) -> None:
        self.send(self.deployer, self.feed, "push", int(price * 10**8))

    def open_orders(self, who: str) -> list[Any]:
        return list(self.market.functions.openOrders(who).call())

    def position_lots(self, who: str) -> int:
        return int(self.market.functions.accountState(who).call()[1])

    deployer: LocalAccount = None  # type: ignore[assignment]


@pytest.fixture
def dex(anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path) -> Dex:
    """A market with $0.01 ticks and 0.01-unit lots at $3000, maker rebate 1 bp, taker 5 bp."""
    w3 = anvil.w3
    record = tmp_path / "deployment.json"
    config = MarketConfig(lot_size=10**16, tick_size=10_000, maker_fee_bps=-1, taker_fee_bps=5)
    dep = deploy_market(w3, accounts["deployer"], config, record_path=record)
    d = Dex(
        w3=w3,
        dep=dep,
        record=record,
        market=w3.eth.contract(address=Web3.to_checksum_address(dep.market), abi=market_abi()),
        token=w3.eth.contract(
            address=Web3.to_checksum_address(dep.token), abi=list(load_artifact("FaucetUSD").abi)
        ),
        feed=w3.eth.contract(
            address=Web3.to_checksum_address(dep.oracle),
            abi=list(load_artifact("ManualPriceFeed").abi),
        ),
        decoder=error_decoder(),
    )
    d.deployer = accounts["deployer"]
    return d


@contextlib.asynccontextmanager
async def maker_venue(dex: Dex, rpc: AsyncRpc, tmp_path: Path) -> AsyncIterator[DexVenue]:
    """A connected `DexVenue` on `dex`'s market, signing as the maker (dev key 1) over `rpc`.

    Its journal lives in ``tmp_path``; the RPC client and the journal are closed on exit.
    """
    journal = Journal(tmp_path / "j.sqlite", fsync=False)
    pipe = TxPipeline(rpc, load_signer(DevKey(1), 31337), journal, error_abis=[market_abi()])
    venue = DexVenue(
        rpc=rpc,
        pipe=pipe,
        codec=AbiCodec(market_abi()),
        market=dex.dep.market,
        start_block=dex.dep.block_number,
        session=uuid.uuid4().hex[:6],
    )
    try:
        await venue.connect(31337)
        yield venue
    finally:
        await rpc.aclose()
        journal.close()


@contextlib.contextmanager
def cex_sim() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The exchange simulator as its own process (`python -m sims.cex`): (URL, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sims.cex", "--port", "0", "--mid", "3000", "--latency-ms", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert m, f"cex-sim did not start: {line}"
        yield m.group(1), proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # a test may have stopped it: it could not terminate
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def cex_process() -> Iterator[str]:
    """The exchange simulator as its own process; yields its URL."""
    with cex_sim() as (url, _proc):
        yield url


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    """The agent's environment, with a private directory for the per-key lock files (the
    user's own lock directory is no business of a test)."""
    return {**ENV, "MM_AGENT_LOCK_DIR": str(tmp_path / "locks")}


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by a test; any still alive at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
