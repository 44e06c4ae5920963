"""The README's "Pointing it at a testnet or a fork", step by step, as a new user runs it.

A standalone anvil with a NON-dev chain id (11155111, so anvil's dev keys are refused and the
agent signs with keystore keys), 1 s blocks like a testnet, the exchange simulator, the oracle
keeper and ``mm-agent run`` as separate processes. It passes only if two-sided quotes of the
maker rest on the market, read from the contract itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web3 import Web3

from agent.chain.contracts import load_artifact, market_abi
from agent.chain.deploy import Deployment
from sims.anvil import Anvil, AnvilConfig

pytestmark = [pytest.mark.chain, pytest.mark.slow]

CHAIN_ID = 11155111
MM = [sys.executable, "-m", "agent.cli"]  # what `.venv/bin/mm-agent` runs
_FEED_ABI = list(load_artifact("ManualPriceFeed").abi)


class Shell:
    """Runs `mm-agent` commands in one directory with one environment, like a user's terminal."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
        self.bg: list[tuple[subprocess.Popen[str], Path]] = []

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [*MM, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert out.returncode == 0, f"mm-agent {' '.join(args)}:\n{out.stdout}{out.stderr}"
        return out

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
        log = self.cwd / f"{name}.log"
        with log.open("w") as fh:
            proc = subprocess.Popen(
                [*MM, *args],
                cwd=self.cwd,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.bg.append((proc, log))
        return proc, log

    def stop_all(self) -> None:
        for proc, _ in reversed(self.bg):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.bg:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(pred: Callable[[], object], timeout_s: float, what: Callable[[], str]) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what()}")


@pytest.fixture
def node() -> Iterator[Anvil]:
    with Anvil(AnvilConfig(chain_id=CHAIN_ID, block_time_s=1.0)) as n:
        yield n


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    sh = Shell(tmp_path)
    try:
        yield sh
    finally:
        sh.stop_all()


def test_readme_testnet_steps_end_with_two_sided_quotes_on_chain(
    node: Anvil, shell: Shell, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    w3 = node.w3
    assert w3.eth.chain_id == CHAIN_ID

    # 2. Two keystore keys, passwords from files.
    (tmp_path / "keys").mkdir()
    addr: dict[str, str] = {}
    for who in ("maker", "deployer"):
        (tmp_path / f"keys/{who}.pass").write_text(f"{who}-password\n")
        out = shell.run(
            "keys", "new", "--out", f"keys/{who}.json", "--password-file", f"keys/{who}.pass"
        )
        m = re.search(r"for address (0x[0-9a-fA-F]{40})", out.stdout)
        assert m, out.stdout
        addr[who] = m.group(1)

    # 3. Gas for both, from a funded account (the testnet faucet's part).
    for a in addr.values():
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": Web3.to_checksum_address(a), "value": 10**19}
        )
    _wait(
        lambda: all(w3.eth.get_balance(Web3.to_checksum_address(a)) for a in addr.values()),
        10,
        lambda: "gas funding",
    )

    # 6 (started first: step 4 names its URL). The simulator prints its URL and credentials.
    _, cex_log = shell.start("cex", "cex-sim", "--port", "0", "--latency-ms", "20")
    banner = str(
        _wait(
            lambda: "credentials:" in cex_log.read_text() and cex_log.read_text(),
            30,
            lambda: f"cex-sim start: {cex_log.read_text()}",
        )
    )
    cex_url = re.search(r"(http://127\.0\.0\.1:\d+)", banner)
    creds = re.search(r"MM_CEX_API_KEY=(\S+) MM_CEX_API_SECRET=(\S+)", banner)
    assert cex_url and creds, banner
    assert "symbol=ETHUSDT mid=3000" in banner, "one default market across deploy and the sim"

    # 4. The config, placeholders filled by flags (tests/unit/test_init_profiles.py checks that
    # an unfilled one is refused).
    shell.run(
        "init", "--network", "testnet", "--rpc-url", node.url, "--chain-id", str(CHAIN_ID),
        "--keystore", "keys/maker.json", "--password-file", "keys/maker.pass",
        "--oracle-heartbeat-s", "5", "--cex-url", cex_url.group(1), "--metrics-port", "0",
    )  # fmt: skip

    # 5. Deploy with the deployer's key.
    shell.run(
        "deploy", "--config", "mm.toml", "--out", "deployments/testnet.json",
        "--keystore", "keys/deployer.json", "--password-file", "keys/deployer.pass",
    )  # fmt: skip
    dep = Deployment.load(tmp_path / "deployments/testnet.json")
    assert dep.deployer.lower() == addr["deployer"].lower()

    # 6. Export the credentials the simulator printed.
    shell.env["MM_CEX_API_KEY"], shell.env["MM_CEX_API_SECRET"] = creds.group(1), creds.group(2)

    # 7. Collateral.
    out = shell.run("deposit", "--config", "mm.toml", "--amount", "10000", "--faucet")
    assert "deposited 10,000.00 fUSD" in out.stdout, out.stdout

    # 8. The oracle keeper, with the deployer's key.
    oracle, oracle_log = shell.start(
        "oracle", "oracle", "--config", "mm.toml", "--from-exchange", "--interval-s", "5",
        "--keystore", "keys/deployer.json", "--password-file", "keys/deployer.pass",
    )  # fmt: skip
    _wait(
        lambda: "oracle keeper:" in oracle_log.read_text() or oracle.poll() is not None,
        30,
        lambda: oracle_log.read_text(),
    )
    assert oracle.poll() is None, oracle_log.read_text()

    # 9, 10. Check, then run.
    assert "mm.toml: OK" in shell.run("run", "--config", "mm.toml", "--check").stdout
    agent, agent_log = shell.start("agent", "run", "--config", "mm.toml")
    market = w3.eth.contract(address=Web3.to_checksum_address(dep.market), abi=market_abi())
    maker = Web3.to_checksum_address(addr["maker"])

    def two_sided() -> bool:
        sides = {int(o[2]) for o in market.functions.openOrders(maker).call()}
        return sides == {0, 1}

    def why() -> str:
        status = shell.run("status", "--config", "mm.toml").stdout
        return (
            f"no two-sided quotes after {time.monotonic() - t0:.0f} s; agent status:\n{status}\n"
            f"agent log:\n{agent_log.read_text()[-3000:]}\n"
            f"oracle log:\n{oracle_log.read_text()[-1000:]}"
        )

    _wait(lambda: two_sided() or agent.poll() is not None, 60, why)
    assert agent.poll() is None, why()
    assert two_sided(), why()
    # Past the oracle-age breach (3 heartbeats = 15 s): without the keeper the feed would be
    # stale by now and the agent withdrawn; with it the quotes still rest on both sides.
    time.sleep(16.0)
    assert two_sided(), why()
    feed = w3.eth.contract(address=Web3.to_checksum_address(dep.oracle), abi=_FEED_ABI)
    updated = feed.functions.latestRoundData().call()[3]
    assert w3.eth.get_block("latest")["timestamp"] - updated <= 2 * 5
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent_log.read_text()[-3000:]
    assert market.functions.openOrders(maker).call() == []
