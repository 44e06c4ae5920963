"""Fault harness: a reorg takes back a fill, the hedge it caused and the quote batch after it.

``mm-agent run`` runs as a process against the session anvil (automine) and the exchange
simulator. A taker fills one of our quotes; the agent hedges the fill on the exchange and
re-quotes. Then the chain is reverted to a snapshot from before the fill (``evm_revert``: the
blocks holding the fill and the new batch are gone, their transactions with them, the nonce goes
back). What a fault harness checks afterwards:

- the agent re-derives its orders from the chain: never more than ``levels`` orders of ours rest
  on a side, sampled directly on chain the whole time;
- its nonce follows the chain back (no transaction stuck behind a gap);
- the hedge follows the DEX position the chain now shows (the fill no longer exists, so neither
  may its hedge): the reorged amount is unwound exactly, once (one buy of the fill, one sell
  back, to the lot), and nothing trades afterwards (no oscillation between the two chains).
"""

from __future__ import annotations

import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.conftest import agent_env, cex_process, dex, procs
from tests.chain.procs import (
    ASK,
    BID,
    LOT,
    cex_position,
    cex_state,
    hit,
    start_quoting,
    wait,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

__all__ = ["agent_env", "cex_process", "dex", "procs"]  # fixtures of the chain tests

LEVELS = 3  # the model's default ladder depth (write_config leaves it)
Procs = list[subprocess.Popen[bytes]]


def _trades(url: str) -> list[dict[str, Any]]:
    return [t for t in cex_state(url)["trades"] if t["symbol"] == "ETHUSDT"]


def _sides(dex: Any, maker: str) -> tuple[int, int]:
    orders = dex.open_orders(maker)
    bids = sum(1 for o in orders if o[2] == BID)
    return bids, len(orders) - bids


def test_reorg_that_drops_a_fill_and_a_batch(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
) -> None:
    # A feed with a long heartbeat: the test's oracle is never pushed, and a stale one would
    # (rightly) withdraw the agent and hide what the reorg does to its quoting.
    # The hedge as taker, with a band (at most a quarter of the cap) under one fill, so the fill
    # is hedged at once.
    edits = {
        "poll_interval_s = 0.1": "poll_interval_s = 0.1\noracle_heartbeat_s = 600",
        "inventory_cap_base = 2.0": "inventory_cap_base = 0.2",
        "dead_band_base = 0.01": 'dead_band_base = 0.01\norder_style = "IOC"',
    }
    _cfg, log, proc = start_quoting(
        dex, anvil, accounts, tmp_path, cex_process, agent_env, procs, **edits
    )
    maker = accounts["maker"].address
    w3 = anvil.w3
    wait(lambda: min(_sides(dex, maker)) >= 1, 30.0, "a two-sided ladder")
    snap = anvil.snapshot()
    nonce_before = w3.eth.get_transaction_count(maker)
    hit(dex, accounts["taker"], maker, ASK, 0.06, cid=77)
    filled = dex.position_lots(maker)
    assert filled < 0, "the take did not fill our ask"
    # The agent hedges the fill and re-quotes the side it lost.
    wait(
        lambda: abs(cex_position(cex_process) + filled * LOT) <= 0.01 + 1e-9,
        40.0,
        f"the hedge of the fill ({log.read_text()[-1500:]})",
    )
    wait(
        lambda: w3.eth.get_transaction_count(maker) > nonce_before,
        30.0,
        "a quote batch after the fill",
    )
    assert anvil.revert(snap), "evm_revert failed"
    assert dex.position_lots(maker) == 0
    # From here the chain says: no fill, the old ladder, the old nonce.
    samples: list[tuple[int, int]] = []
    deadline = time.monotonic() + 40.0
    settled = False
    while time.monotonic() < deadline:
        samples.append(_sides(dex, maker))
        hedge = cex_position(cex_process)
        pending = w3.eth.get_transaction_count(maker, "pending")
        latest = w3.eth.get_transaction_count(maker, "latest")
        if abs(hedge) <= 0.01 + 1e-9 and pending == latest and samples[-1] != (0, 0):
            settled = True
            break
        time.sleep(0.1)
    over = [s for s in samples if max(s) > LEVELS]
    assert not over, f"{len(over)} of {len(samples)} samples over {LEVELS} a side: {over[:5]}"
    assert settled, (
        f"after the reorg: hedge {cex_position(cex_process):+.3f} (DEX 0), nonce pending "
        f"{w3.eth.get_transaction_count(maker, 'pending')} latest "
        f"{w3.eth.get_transaction_count(maker, 'latest')}, orders {samples[-1]} "
        f"({log.read_text()[-2500:]})"
    )
    # A few more seconds with the agent cycling on the new chain: still within the levels, and
    # the hedge stays where the confirmed position puts it (no trade back toward the old chain).
    settled_trades = _trades(cex_process)
    for _ in range(30):
        assert max(_sides(dex, maker)) <= LEVELS
        time.sleep(0.1)
    trades = _trades(cex_process)
    assert trades == settled_trades, f"traded after settling: {trades[len(settled_trades) :]}"
    fill = Decimal(-filled) * Decimal("0.01")
    bought = sum((Decimal(t["qty"]) for t in trades if t["side"] == "BUY"), Decimal(0))
    sold = sum((Decimal(t["qty"]) for t in trades if t["side"] == "SELL"), Decimal(0))
    assert (bought, sold) == (fill, fill), f"hedged {bought}, unwound {sold}, fill {fill}"
    assert Decimal(str(cex_position(cex_process))) == 0
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()[-2000:]
