"""Fault harness: bad hedge settings are refused before anything starts, naming the key.

A config that loads but cannot work (an exchange URL that is no HTTP URL, a symbol no exchange
lists in that form, an empty name for the credential variables) must be refused by
``mm-agent run --check --offline`` and by ``mm-agent run`` alike, in one line that names the key
and the fix, and ``run`` must not have sent anything to the chain.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex
from tests.chain.procs import cli, fund_book, write_config

pytestmark = [pytest.mark.chain]

__all__ = ["agent_env", "cex_process", "dex"]  # fixtures, re-used from the chain tests

BAD = {
    "base_url": ('base_url = "{url}"', 'base_url = "ftp://127.0.0.1:9800"', "hedge.base_url"),
    "symbol": ('symbol = "ETHUSDT"', 'symbol = "eth usdt"', "hedge.symbol"),
    "api_key_env": ("[hedge.policy]", 'api_key_env = ""\n[hedge.policy]', "hedge.api_key_env"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_hedge_setting_is_refused_naming_the_key(
    case: str,
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
) -> None:
    old, new, key = BAD[case]
    fund_book(dex, accounts)
    cfg = write_config(tmp_path, anvil, dex, cex_process, **{old.format(url=cex_process): new})
    assert new in cfg.read_text(), "write_config changed shape: update this test"
    maker = accounts["maker"].address
    nonce = anvil.w3.eth.get_transaction_count(maker)
    for args in (("--check", "--offline"), ()):
        out: subprocess.CompletedProcess[str] = cli(
            agent_env, "run", "--config", str(cfg), *args, timeout_s=60
        )
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0], (args, out.stderr)
        assert "Traceback" not in out.stderr
    # Nothing started half-way: not a transaction from the maker's key.
    assert anvil.w3.eth.get_transaction_count(maker) == nonce
    assert dex.open_orders(maker) == []
