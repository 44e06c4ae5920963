"""`mm-agent deploy` deploys a market with the configured key and writes a usable record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.chain.deploy import Deployment
from sims.anvil import Anvil

pytestmark = pytest.mark.chain


def test_deploy_cli_writes_a_record_the_agent_accepts(anvil: Anvil, tmp_path: Path) -> None:
    cfg = tmp_path / "mm.toml"
    record = tmp_path / "deployments" / "local.json"
    cfg.write_text(
        f'[chain]\nrpc_url = "{anvil.url}"\ndeployment_file = "{record}"\n'
        '[signer]\nsource = "dev"\ndev_index = 0\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "deploy", "--config", str(cfg), "--out", str(record)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    dep = Deployment.load(record)
    assert dep.chain_id == 31337
    assert anvil.rpc("eth_getCode", [dep.market, "latest"]) not in ("0x", None)
    assert dep.market in out.stdout
    check = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(cfg), "--check", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_deploy_cli_refuses_dev_keys_off_anvil(anvil: Anvil, tmp_path: Path) -> None:
    cfg = tmp_path / "mm.toml"
    cfg.write_text(f'[chain]\nrpc_url = "{anvil.url}"\nchain_id = 1\n[signer]\nsource = "dev"\n')
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "deploy", "--config", str(cfg), "--out", "x.json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "chain.chain_id" in out.stderr  # the RPC is 31337, not 1: refused before any key use
