"""`mm-agent run --check`: the live preflight on real anvil, a deployed market and the exchange sim.

Each fault an operator can make produces its own named line, every check still runs, and the exit
status is 1 when any failed.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from agent.chain.signer import dev_account
from agent.config import AgentConfig, load_config
from agent.preflight import Check, CheckStatus, format_report, run_preflight
from sims.anvil import Anvil
from sims.cex import SimConfig, SimServer

from ..hedge.cex_simkit import FAST, SYMBOL
from .conftest import Dex

pytestmark = pytest.mark.chain

KEY_ENV, SECRET_ENV = "MM_TEST_CEX_KEY", "MM_TEST_CEX_SECRET"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(), faults=FAST) as server:
        yield server


@pytest.fixture
def funded_maker(dex: Dex, accounts: dict[str, LocalAccount]) -> LocalAccount:
    dex.fund(accounts["maker"], 10_000)
    return accounts["maker"]


@pytest.fixture
def cex_env(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, sim.config.api_key)
    monkeypatch.setenv(SECRET_ENV, sim.config.api_secret)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def listening() -> Iterator[int]:
    """A port another process (here: this one) is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _config(
    tmp_path: Path, anvil: Anvil, dex: Dex, sim: SimServer, port: int, **sections: dict[str, Any]
) -> AgentConfig:
    """A good config (maker dev key, the deployed market, the sim), with sections overridden."""
    tables: dict[str, dict[str, Any]] = {
        "chain": {"rpc_url": anvil.url, "chain_id": 31337, "deployment_file": str(dex.record)},
        "signer": {"source": "dev", "dev_index": 1},  # the "maker" account
        "hedge": {
            "base_url": sim.url,
            "symbol": SYMBOL,
            "api_key_env": KEY_ENV,
            "api_secret_env": SECRET_ENV,
        },
        "telemetry": {"port": port},
        "storage": {"data_dir": str(tmp_path / "data")},
        "preflight": {"timeout_s": 2.0},
    }
    for name, table in sections.items():
        tables[name] = {**tables.get(name, {}), **table}
    path = tmp_path / "mm.toml"
    path.write_text(_toml(tables))
    return load_config(path, env={})


def _toml(tables: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, table in tables.items():
        out.append(f"[{name}]")
        # None removes a key of the good config (TOML has no null).
        out += [f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None]
    return "\n".join(out) + "\n"


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _failed(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if c.status is CheckStatus.FAIL}


def _keystore(tmp_path: Path, acct: LocalAccount, password: str) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(acct.key, password, iterations=2)))
    (tmp_path / "pw").write_text(password + "\n")
    return path


@pytest.mark.asyncio
async def test_a_good_setup_passes_every_check(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    funded_maker: LocalAccount,
    cex_env: None,
    free_port: int,
) -> None:
    checks = await run_preflight(_config(tmp_path, anvil, dex, sim, free_port))
    assert [c.name for c in checks] == [
        "key", "rpc", "market", "collateral", "gas", "exchange", "exchange-auth", "telemetry"
    ]  # fmt: skip
    assert _failed(checks) == {}
    assert all(c.status is CheckStatus.OK for c in checks), [c.line for c in checks]
    report, status = format_report(checks, "mm.toml")
    assert status == 0 and report.endswith("mm.toml: OK (live preflight passed)")
    assert funded_maker.address in _by_name(checks)["collateral"].detail


@pytest.mark.asyncio
async def test_keystore_missing_and_wrong_password_are_named(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    funded_maker: LocalAccount,
    cex_env: None,
    free_port: int,
) -> None:
    signer = {
        "source": "keystore",
        "keystore_path": str(tmp_path / "missing.json"),
        "password_file": str(tmp_path / "pw"),
    }
    checks = await run_preflight(_config(tmp_path, anvil, dex, sim, free_port, signer=signer))
    assert _failed(checks).keys() == {"key"}
    assert _failed(checks)["key"].startswith("cannot read keystore")
    assert (
        "missing.json" in _failed(checks)["key"] and "mm-agent keys new" in _failed(checks)["key"]
    )
    # What needs the key is reported as not checked, not as a second failure.
    assert _by_name(checks)["collateral"].status is CheckStatus.SKIP
    assert _by_name(checks)["gas"].status is CheckStatus.SKIP

    signer["keystore_path"] = str(_keystore(tmp_path, funded_maker, password="right"))
    (tmp_path / "pw").write_text("wrong\n")
    checks = await run_preflight(_config(tmp_path, anvil, dex, sim, free_port, signer=signer))
    assert "wrong password" in _failed(checks)["key"]

    (tmp_path / "pw").write_text("right\n")
    checks = await run_preflight(_config(tmp_path, anvil, dex, sim, free_port, signer=signer))
    assert _failed(checks) == {}, "the same keystore with the right password passes"


@pytest.mark.asyncio
async def test_chain_id_mismatch_and_no_code_at_the_market(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    funded_maker: LocalAccount,
    cex_env: None,
    free_port: int,
) -> None:
    own = Account.create()
    env_signer = {"source": "env", "key_env": "MM_TEST_OWN_KEY"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MM_TEST_OWN_KEY", own.key.hex())
        cfg = _config(
            tmp_path, anvil, dex, sim, free_port, chain={"chain_id": 5}, signer=env_signer
        )
        failed = _failed(await run_preflight(cfg))
    assert failed["rpc"] == (
        f"{anvil.url} is chain id 31337, config says chain.chain_id = 5: point chain.rpc_url "
        "at the right network or fix chain.chain_id"
    )
    assert "is for chain 31337" in failed["market"]  # the deployment record disagrees too
    assert "key" not in failed

    nowhere = "0x" + "ab" * 20
    market = {"market_address": nowhere, "deployment_file": None}
    cfg = _config(tmp_path, anvil, dex, sim, free_port, chain=market)
    checks = await run_preflight(cfg)
    assert _failed(checks).keys() == {"market"}
    assert _failed(checks)["market"].startswith(f"no contract code at {nowhere} on chain id 31337")
    assert _by_name(checks)["collateral"].status is CheckStatus.SKIP


@pytest.mark.asyncio
async def test_exchange_credentials_and_symbol(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    funded_maker: LocalAccount,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    checks = await run_preflight(_config(tmp_path, anvil, dex, sim, free_port))
    assert _failed(checks) == {
        "exchange-auth": f"CEX API credentials missing: set {KEY_ENV} and {SECRET_ENV} in the "
        "environment"
    }
    assert _by_name(checks)["exchange"].status is CheckStatus.OK  # the symbol is still checked

    monkeypatch.setenv(KEY_ENV, sim.config.api_key)
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    failed = _failed(await run_preflight(_config(tmp_path, anvil, dex, sim, free_port)))
    assert failed.keys() == {"exchange-auth"}
    assert failed["exchange-auth"].startswith(f"{sim.url} refused the credentials in {KEY_ENV}")

    monkeypatch.setenv(SECRET_ENV, sim.config.api_secret)
    cfg = _config(tmp_path, anvil, dex, sim, free_port, hedge={"symbol": "DOGEUSDT"})
    failed = _failed(await run_preflight(cfg))
    assert failed == {
        "exchange": f"DOGEUSDT is not listed on {sim.url}: fix hedge.symbol (or hedge.base_url)"
    }


@pytest.mark.asyncio
async def test_a_dev_key_through_env_is_refused_off_the_dev_chain(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    cex_env: None,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MM_TEST_KEY", dev_account(1).key.hex())
    signer = {"source": "env", "key_env": "MM_TEST_KEY"}
    chain = {"chain_id": 8453, "market_address": dex.dep.market, "deployment_file": None}
    cfg = _config(tmp_path, anvil, dex, sim, free_port, signer=signer, chain=chain)
    failed = _failed(await run_preflight(cfg))
    assert failed["key"].startswith(
        f"$MM_TEST_KEY holds anvil's public dev key {dev_account(1).address}: refused on chain "
        "id 8453"
    )
    # `run` refuses it as well, before anything is sent: one line, exit 1.
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agent.cli", "run", "--config", str(tmp_path / "mm.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "holds anvil's public dev key" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.asyncio
async def test_port_in_use_no_collateral_and_no_gas(
    tmp_path: Path,
    anvil: Anvil,
    dex: Dex,
    sim: SimServer,
    funded_maker: LocalAccount,
    accounts: dict[str, LocalAccount],
    cex_env: None,
    listening: int,
) -> None:
    failed = _failed(await run_preflight(_config(tmp_path, anvil, dex, sim, listening)))
    assert failed == {
        "telemetry": f"127.0.0.1:{listening} is in use by another process: stop it (another "
        "agent?) or set telemetry.port to a free port"
    }

    # The keeper account (dev index 3) has gas but never deposited.
    cfg = _config(tmp_path, anvil, dex, sim, 0, signer={"dev_index": 3})
    failed = _failed(await run_preflight(cfg))
    keeper = accounts["keeper"].address
    assert failed.keys() == {"collateral"}
    assert failed["collateral"].startswith(f"{keeper} has no collateral in market")

    # A fresh key: no native balance at all, so not even one refresh can be paid.
    own = Account.create()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MM_TEST_OWN_KEY", own.key.hex())
        signer = {"source": "env", "key_env": "MM_TEST_OWN_KEY"}
        failed = _failed(await run_preflight(_config(tmp_path, anvil, dex, sim, 0, signer=signer)))
    assert failed["gas"].startswith(f"{own.address} holds 0 native, 500 refreshes and cancels at")
    assert failed["gas"].endswith("fund the key (or lower preflight.min_gas_refreshes)")

    # Gas is priced at the node's current fees: the maker's 10,000 ETH pays 500 refreshes and
    # cancels at today's base fee, not once it spikes to 100,000 gwei.
    assert _failed(await run_preflight(_config(tmp_path, anvil, dex, sim, 0))) == {}
    anvil.set_next_base_fee(100_000 * 10**9)
    failed = _failed(await run_preflight(_config(tmp_path, anvil, dex, sim, 0)))
    assert failed.keys() == {"gas"}
    assert failed["gas"].startswith(f"{funded_maker.address} holds ")
    # 500 × (a refresh + a cancel, the configured gas units) at the 100,000 gwei base fee (the
    # tip adds the rest); a refresh is priced at the model's per-refresh gas, whatever its default.
    cfg = _config(tmp_path, anvil, dex, sim, 0)
    units = 500 * (cfg.quoting.gas_units_per_refresh + cfg.preflight.cancel_gas_units)
    match = re.search(r"500 refreshes and cancels at 1e\+05 gwei need ([0-9.]+):", failed["gas"])
    assert match is not None, failed["gas"]
    assert float(match.group(1)) == pytest.approx(units * 100_000e9 / 1e18, rel=1e-4)


@pytest.mark.asyncio
async def test_cli_prints_every_line_and_exits_1_offline_keeps_the_format_check(
    tmp_path: Path, anvil: Anvil, dex: Dex, sim: SimServer, listening: int
) -> None:
    # No credentials, a port in use and an account without collateral: three named lines.
    _config(tmp_path, anvil, dex, sim, listening, signer={"dev_index": 3})
    cmd = [sys.executable, "-m", "agent.cli", "run", "--config", str(tmp_path / "mm.toml")]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cmd, *extra], capture_output=True, text=True, timeout=120, check=False
        )

    out = await asyncio.to_thread(run, "--check")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split(":")[0].split()[-1] for ln in lines[:-1]] == [
        "key", "rpc", "market", "collateral", "gas", "exchange", "exchange-auth", "telemetry"
    ]  # fmt: skip
    assert sum(ln.startswith("FAIL") for ln in lines) == 3
    assert lines[-1].endswith("3 of 8 checks FAILED: fix the lines above")

    out = await asyncio.to_thread(run, "--check", "--offline")
    assert (out.returncode, out.stdout.strip()) == (0, f"{tmp_path / 'mm.toml'}: OK")


@pytest.mark.asyncio
async def test_an_unreachable_rpc_fails_once_and_skips_what_depends_on_it(
    tmp_path: Path, free_port: int
) -> None:
    path = tmp_path / "mm.toml"
    path.write_text(
        _toml(
            {
                "chain": {
                    "rpc_url": f"http://127.0.0.1:{free_port}",
                    "market_address": "0x" + "ab" * 20,
                },
                "hedge": {"enabled": False},
                "telemetry": {"port": 0},
                "preflight": {"timeout_s": 1.0},
            }
        )
    )
    checks = await run_preflight(load_config(path, env={}))
    status = {c.name: c.status for c in checks}
    assert status == {
        "key": CheckStatus.OK,
        "rpc": CheckStatus.FAIL,
        "market": CheckStatus.SKIP,
        "collateral": CheckStatus.SKIP,
        "gas": CheckStatus.SKIP,
        "exchange": CheckStatus.SKIP,
        "exchange-auth": CheckStatus.SKIP,
        "telemetry": CheckStatus.OK,
    }
    rpc = _by_name(checks)["rpc"].line
    assert rpc.startswith(f"FAIL  rpc: http://127.0.0.1:{free_port} unreachable (")
    assert rpc.endswith("start the node or fix chain.rpc_url")
    assert format_report(checks, "mm.toml")[1] == 1
