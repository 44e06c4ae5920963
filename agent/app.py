"""Assembly: every part of the agent built from a validated config.

:func:`build_agent` is the one place that knows how a config becomes an :class:`~agent.runtime.
Agent` on a :class:`~agent.venue.dex.DexVenue`; the command line (:mod:`agent.commands`), the
stress runner and the benchmarks call it. The config arrives typed (:mod:`agent.config` validates
``[quoting]``, ``[risk]``, ``[tx]`` and ``[hedge.policy]`` into the parts' own dataclasses at load).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.chain.signer import load_signer
from agent.chain.txpipe import TxPipeline
from agent.config import AgentConfig, key_source, read_deployment
from agent.hedge.binance import BinanceFuturesClient, ClientConfig, Credentials
from agent.hedge.hedger import Hedger
from agent.hedging import HedgeLeg
from agent.keeper.duties import KeeperPolicy
from agent.risk.engine import RiskEngine, RiskLimits, RiskState
from agent.runtime import Agent
from agent.store import Journal
from agent.telemetry import Health
from agent.venue.dex import DexVenue

__all__ = ["Closer", "build_agent", "risk_limits"]

Closer = Callable[[], Awaitable[None] | None]
"""What :func:`build_agent` returns to be called after :meth:`Agent.run` (sync or async)."""


async def build_agent(
    cfg: AgentConfig, *, clock: Callable[[], float] = time.time, with_hedge: bool | None = None
) -> tuple[Agent, list[Closer]]:
    """Construct every part from a validated config.

    Returns the agent and the closers (sync or async) to call after :meth:`Agent.run` returns.
    """
    market, block = read_deployment(cfg)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    signer = load_signer(key_source(cfg), cfg.chain.chain_id)
    journal = Journal(cfg.journal_path, fsync=cfg.storage.journal_fsync)
    rpc = AsyncRpc(RpcConfig(url=cfg.chain.rpc_url, timeout_s=cfg.chain.rpc_timeout_s), clock=clock)
    abi = market_abi()
    pipe = TxPipeline(rpc, signer, journal, cfg.tx, error_abis=[abi], clock=clock)
    venue = DexVenue(
        rpc=rpc,
        pipe=pipe,
        codec=AbiCodec(abi),
        market=market,
        start_block=block,
        session=uuid.uuid4().hex[:6],
        cancel_max_fee_gwei=cfg.chain.cancel_max_fee_gwei or 5 * cfg.tx.max_fee_gwei,
    )
    closers: list[Closer] = [rpc.aclose]
    hedge: HedgeLeg | None = None
    if cfg.hedge.enabled if with_hedge is None else with_hedge:
        client = BinanceFuturesClient(
            ClientConfig(
                base_url=cfg.hedge.base_url,
                recv_window_ms=cfg.hedge.recv_window_ms,
                timeout_s=cfg.hedge.request_timeout_s,
            ),
            Credentials.from_env(cfg.hedge.api_key_env, cfg.hedge.api_secret_env),
            # Request timestamps come from the injected clock too (simulated time in sims,
            # time.time live), so a driven exchange never sees them drift.
            wall_ms=lambda: int(clock() * 1000),
        )
        await client.connect([cfg.hedge.symbol])
        hedger = Hedger(client, journal, cfg.hedge.policy)
        await hedger.resume(clock())
        hedge = HedgeLeg(hedger, client, cfg.hedge.symbol, clock)
    agent = Agent(
        venue=venue,
        journal=journal,
        model_params=cfg.quoting,
        risk=RiskEngine(
            risk_limits(cfg),
            start_s=clock(),
            initial_state=_restored_state(journal),
        ),
        keeper=KeeperPolicy(
            settle_funding=cfg.keeper.settle_funding,
            liquidate=cfg.keeper.liquidate,
            min_profit_usd=cfg.keeper.min_profit_usd,
        ),
        hedger=hedge,
        clock=clock,
        data_dir=cfg.storage.data_dir,
        health=Health(max_heartbeat_age_s=cfg.telemetry.stale_heartbeat_s, clock=clock),
        expected_chain_id=cfg.chain.chain_id,
        max_fee_gwei=cfg.tx.max_fee_gwei,
        execution=cfg.execution,
    )

    def close_journal() -> None:
        journal.close()

    closers.append(close_journal)
    return agent, closers


def risk_limits(cfg: AgentConfig) -> RiskLimits:
    """``[risk]`` with the feed's heartbeat from ``[chain] oracle_heartbeat_s``.

    The heartbeat is a fact about the deployment, so it lives in ``[chain]``; the risk engine
    derives its oracle-age band from it (1.5 and 3 heartbeats). A ``[risk]`` that sets
    ``oracle_heartbeat_s`` or its own ``oracle_age_s`` band wins.
    """
    risk, heartbeat_s = cfg.risk, cfg.chain.oracle_heartbeat_s
    explicit = risk.oracle_heartbeat_s is not None or risk.oracle_age_s != RiskLimits().oracle_age_s
    if heartbeat_s is None or explicit:
        return risk
    return dataclasses.replace(risk, oracle_heartbeat_s=heartbeat_s)


def _restored_state(journal: Journal) -> RiskState:
    # A HALT survives a restart: only an operator resumes.
    last = journal.risk_transitions()
    if last and last[-1][2] == RiskState.HALTED.name:
        return RiskState.HALTED
    return RiskState.NORMAL
