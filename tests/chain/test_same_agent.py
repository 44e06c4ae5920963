"""One Agent, two venues: the stress runner's adapter and the event simulator's decide alike.

The stress runner drives :class:`~agent.runtime.Agent` on :class:`~agent.venue.dex.DexVenue`
(built by :func:`agent.app.build_agent`); the event simulator drives the same class on
:class:`~sims.simvenue.SimVenue`. Here one fixed input stream (index prices, the other makers'
book, base fees, block times) goes through both adapters, and the two agents must make the same
decisions, step by step: same gate verdicts, same ladders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from agent.app import build_agent
from agent.config import AgentConfig
from agent.keeper.duties import KeeperPolicy
from agent.risk.engine import RiskEngine, RiskLimits
from agent.runtime import Agent
from agent.store import Journal
from sims.anvil import Anvil
from sims.processes import MempoolSpec
from sims.simvenue import SimVenue

pytestmark = [pytest.mark.chain]

BID, ASK = 0, 1
INDEX_STREAM = (3000.0, 3004.0, 3008.0, 3003.0, 2996.0, 2992.0, 2998.0, 3005.0)


@pytest.mark.asyncio
async def test_the_same_stream_through_both_adapters_gives_the_same_decisions(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    dex.place(accounts["taker"], BID, 2990.0, 0.5)  # the other makers: 0.5 a side, ±$10
    dex.place(accounts["taker"], ASK, 3010.0, 0.5)
    dex.push_price(INDEX_STREAM[0])
    cfg = AgentConfig.model_validate(
        {
            "chain": {"rpc_url": anvil.url, "deployment_file": str(dex.record)},
            "signer": {"source": "dev", "dev_index": 1},
            "hedge": {"enabled": False},
            "storage": {"data_dir": str(tmp_path / "data")},
            "keeper": {"settle_funding": False, "liquidate": False},
            "execution": {"quote_expiry_s": 0},
            # Gas priced near zero: the gate's verdict is about the quotes, not the two venues'
            # different gas (receipts on anvil, a constant in the simulator).
            "quoting": {"base_size_base": 0.1, "ref_depth_base": 0.5, "native_price_quote": 1e-6},
        }
    )
    now = [float(dex.w3.eth.get_block("latest")["timestamp"])]
    chain_agent, closers = await build_agent(cfg, clock=lambda: now[0])
    params0 = chain_agent.base_params
    await chain_agent.start()
    info = chain_agent.venue.market_info()
    funding = chain_agent.last_snapshot.funding if chain_agent.last_snapshot else None
    assert funding is not None
    epoch = funding.next_boundary_s - info.funding_interval_s  # sim second 0 = last boundary

    k = len(INDEX_STREAM)
    sim = SimVenue(
        info,
        mempool=MempoolSpec(drop_prob_per_block=0.0),  # every batch lands in the next block
        tip_wei=2e9,
        fullness=np.zeros(k + 64),
        base_fee_wei=np.zeros(k + 64),
        gas_limit=30_000_000,
        rng=np.random.default_rng(0),
        gas_units_per_tx=params0.gas_units_per_refresh,
        native_price_quote=params0.native_price_quote,
        book_half_spread_ticks=round(10.0 / info.tick_size),
        book_depth_base=0.5,
        queue_ahead_base=0.0,
        epoch_s=epoch,
    )
    journal = Journal(tmp_path / "sim.sqlite", fsync=False)
    sim_agent = Agent(
        venue=sim,
        journal=journal,
        model_params=params0,
        risk=RiskEngine(RiskLimits(), start_s=now[0]),
        keeper=KeeperPolicy(settle_funding=False, liquidate=False),
        clock=lambda: sim.now_s,
        execution=cfg.execution,
        max_fee_gwei=chain_agent.max_fee_gwei,
    )
    chain_log: list[tuple[str, tuple[Any, ...]]] = []
    sim_log: list[tuple[str, tuple[Any, ...]]] = []
    try:
        for i, index in enumerate(INDEX_STREAM):
            if i:
                dex.push_price(index)
            now[0] = float(dex.w3.eth.get_block("latest")["timestamp"])
            await chain_agent.step()
            snap = chain_agent.last_snapshot
            assert snap is not None and snap.index == pytest.approx(index)
            # The simulator sees the block the chain agent saw: time, base fee, fullness, mark.
            sim.base_fee_wei[i] = snap.base_fee_wei
            sim.fullness[i] = snap.gas_used / snap.gas_limit
            sim.gas_limit = snap.gas_limit
            sim.begin_block(i, now[0] - epoch, 3000.0, index, mark=snap.mark)
            if i == 0:
                await sim_agent.start()
            await sim_agent.step()
            for agent, log in ((chain_agent, chain_log), (sim_agent, sim_log)):
                d = agent.decision
                assert d is not None, agent.status.last_decision
                log.append((str(d.reason), d.quotes))
        assert chain_log == sim_log
        # Not a trivial match: at least one verdict sent a ladder, so both venues' adapters carried
        # a quote batch through, and every verdict after it was decided on what that batch left.
        # (How many sends, and how far the target moves, depend on the block times anvil takes
        # from the wall clock and on the fair-value estimator's view of the oracle's age; both
        # agents see them alike, which is what this test is about.)
        sent = [r for r, _ in chain_log if r in ("gain_exceeds_cost", "nothing_live")]
        assert sent, chain_log
        assert chain_agent.status.quote_txs == sim_agent.status.quote_txs >= 1
    finally:
        journal.close()
        await chain_agent.shutdown(timeout_s=3.0)
        for c in closers:
            r = c()
            if r is not None:
                await r
