"""``mm-agent init`` profiles, the FILL_ME refusal, and the oracle heartbeat reaching risk."""

from __future__ import annotations

import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app import risk_limits
from agent.config import load_config
from agent.errors import ConfigError
from agent.init import render_profile, unfilled_placeholders
from agent.oracle_keeper import KeeperSettings, run_keeper


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_local_profile_passes_check_as_written(tmp_path: Path) -> None:
    # The format check: no node runs here (the live preflight is tests/chain/test_preflight.py).
    assert _cli("init", "--network", "local", cwd=tmp_path).returncode == 0
    out = _cli("run", "--config", "mm.toml", "--check", "--offline", cwd=tmp_path)
    assert out.returncode == 0 and "mm.toml: OK" in out.stdout, out.stderr
    cfg = load_config(tmp_path / "mm.toml")
    assert cfg.hedge.symbol == "ETHUSDT" and cfg.chain.chain_id == 31337
    # Written once: a second init does not overwrite the user's edits.
    again = _cli("init", "--network", "local", cwd=tmp_path)
    assert again.returncode == 1 and "pass --force" in again.stderr


def test_testnet_profile_is_refused_until_every_placeholder_is_filled(tmp_path: Path) -> None:
    assert _cli("init", "--network", "testnet", cwd=tmp_path).returncode == 0
    left = unfilled_placeholders(tmp_path / "mm.toml")
    assert left == [
        "chain.rpc_url",
        "chain.oracle_heartbeat_s",
        "signer.keystore_path",
        "signer.password_file",
    ]
    for args in (("--check",), ("--check", "--offline"), ()):
        out = _cli("run", "--config", "mm.toml", *args, cwd=tmp_path)
        assert out.returncode == 1
        assert "chain.rpc_url, chain.oracle_heartbeat_s" in out.stderr and "FILL_ME" in out.stderr
    filled = render_profile(
        "testnet",
        {
            "rpc_url": "https://rpc.example",
            "oracle_heartbeat_s": "30",
            "keystore": "keys/maker.json",
            "password_file": "keys/maker.pass",
        },
    )
    (tmp_path / "filled.toml").write_text(filled)
    assert unfilled_placeholders(tmp_path / "filled.toml") == []


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        render_profile("mainnet")


def test_oracle_heartbeat_sets_the_oracle_age_band(tmp_path: Path) -> None:
    cfg_file = tmp_path / "mm.toml"
    cfg_file.write_text("[chain]\noracle_heartbeat_s = 20.0\n")
    band = risk_limits(load_config(cfg_file)).oracle_band()
    assert (band.warn, band.breach) == (30.0, 60.0)
    # An explicit [risk] band still wins.
    cfg_file.write_text(
        "[chain]\noracle_heartbeat_s = 20.0\n[risk.oracle_age_s]\nwarn = 5.0\nbreach = 9.0\n"
    )
    band = risk_limits(load_config(cfg_file)).oracle_band()
    assert (band.warn, band.breach) == (5.0, 9.0)
    # Unset: the default band.
    band = risk_limits(load_config(None, env={})).oracle_band()
    assert (band.warn, band.breach) == (10.0, 30.0)


class _Pusher:
    """Records what the keeper pushes (the feed's side, without a chain)."""

    def __init__(self) -> None:
        self.pushed: list[Decimal] = []

    def push(self, price: Decimal) -> str:
        self.pushed.append(price)
        return f"0x{len(self.pushed):064x}"


def test_keeper_pushes_on_heartbeat_and_on_deviation_only() -> None:
    mids = iter([Decimal(p) for p in ("3000", "3001", "3001", "3004", "3004", "3004")])
    times = iter([0.0, 1.0, 2.0, 3.0, 4.0, 10.0])
    stop = threading.Event()
    pusher = _Pusher()

    def read_mid() -> Decimal:
        try:
            return next(mids)
        except StopIteration:
            stop.set()
            raise ValueError("no more prices") from None

    run_keeper(
        pusher.push,
        read_mid,
        KeeperSettings(interval_s=5.0, deviation_bps=10.0, poll_s=0.0),
        stop,
        clock=lambda: next(times),
    )
    # 3000 first; 3001 and 3001 are < 10 bp; 3004 is 13 bp; 3004 at t=4 waits; t=10 heartbeat.
    assert pusher.pushed == [Decimal("3000"), Decimal("3004"), Decimal("3004")]
