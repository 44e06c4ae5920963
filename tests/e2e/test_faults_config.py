"""Fault harness: bad settings and bad data dirs are refused before anything starts, by name.

A config that loads but cannot work (an exchange URL that is no HTTP URL, a symbol no exchange
lists in that form, an empty name for the credential variables) must be refused by
``mm-agent run --check --offline`` and by ``mm-agent run`` alike, in one line that names the key
and the fix, and ``run`` must not have sent anything to the chain. So must a data dir whose
journal is no journal, or belongs to another account: refused by ``run`` and ``cancel-all``,
left as it was, and nothing (not even a HALT file) written that would change the next start.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from agent.status import HALT_FILE
from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import cli, fund_book, start_quoting, write_config

pytestmark = [pytest.mark.chain]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures, re-used from the chain tests

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


def _refused(env: dict[str, str], cfg: Path, *words: str) -> None:
    """`run` and `cancel-all` each refuse `cfg` in one stderr line holding every word."""
    for cmd in ("run", "cancel-all"):
        out = cli(env, cmd, "--config", str(cfg), timeout_s=60)
        assert out.returncode == 1, (cmd, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and all(w in lines[0] for w in words), (cmd, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout


def test_a_file_that_is_no_journal_is_refused_and_left_alone(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
) -> None:
    fund_book(dex, accounts)
    cfg = write_config(tmp_path, anvil, dex, cex_process)
    journal = tmp_path / "data" / "journal.sqlite"
    journal.parent.mkdir()
    journal.write_bytes(b"\x00not a database" * 512)
    maker = accounts["maker"].address
    nonce = anvil.w3.eth.get_transaction_count(maker)
    # Was "start-up failed: DatabaseError: file is not a database", and a traceback at cancel-all.
    _refused(agent_env, cfg, f"journal {journal} is not a journal", "move it aside")
    assert journal.read_bytes() == b"\x00not a database" * 512
    assert not (journal.parent / HALT_FILE).exists()
    assert anvil.w3.eth.get_transaction_count(maker) == nonce


def test_another_account_on_a_journal_is_refused_and_sends_nothing(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
) -> None:
    # The maker quotes, and stops with its journal in tmp_path/data.
    cfg, log, proc = start_quoting(dex, anvil, accounts, tmp_path, cex_process, agent_env, procs)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    # Another key on the same data dir adopted the maker's open intents and nonces: it filled
    # the gap up to them with self-transfers, then hit max_in_flight. Now it is refused.
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().replace("dev_index = 1", "dev_index = 3"))
    keeper = accounts["keeper"].address
    nonce = anvil.w3.eth.get_transaction_count(keeper)
    _refused(agent_env, other, "storage.data_dir", "belongs to", keeper.lower())
    assert anvil.w3.eth.get_transaction_count(keeper) == nonce
    assert not (tmp_path / "data" / HALT_FILE).exists()  # the maker's next start is unchanged
