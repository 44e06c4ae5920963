"""Assembly: every part of the agent built from a validated config.

:func:`build_agent` is the one place that knows how a config becomes an :class:`~agent.runtime.
Agent` on a :class:`~agent.venue.dex.DexVenue`; the command line (:mod:`agent.commands`), the
stress runner and the benchmarks call it. :func:`typed_settings` is the one place raw config tables
become the typed objects the parts take.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.chain.deploy import Deployment
from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.chain.signer import DevKey, EnvKey, KeySource, KeystoreKey, load_signer
from agent.chain.txpipe import TxPipeline, TxPipelineConfig
from agent.config import AgentConfig, table_to_dataclass
from agent.errors import ConfigError
from agent.hedge.binance import BinanceFuturesClient, ClientConfig, Credentials
from agent.hedge.hedger import Hedger, HedgerConfig
from agent.hedging import HedgeLeg
from agent.keeper.duties import KeeperPolicy
from agent.model.quoting import ModelParams
from agent.risk.engine import RiskEngine, RiskLimits, RiskState
from agent.runtime import Agent
from agent.store import Journal
from agent.telemetry import Health
from agent.venue.dex import DexVenue

__all__ = [
    "Closer",
    "TypedSettings",
    "build_agent",
    "key_source",
    "read_deployment",
    "risk_limits_from_table",
    "typed_settings",
]

Closer = Callable[[], Awaitable[None] | None]
"""What :func:`build_agent` returns to be called after :meth:`Agent.run` (sync or async)."""


@dataclass(frozen=True, slots=True)
class TypedSettings:
    """The config's strategy, risk, transaction and hedge tables as the parts take them."""

    model: ModelParams
    risk: RiskLimits
    tx: TxPipelineConfig
    hedge: HedgerConfig


def typed_settings(cfg: AgentConfig) -> TypedSettings:
    """Validate ``[quoting]``, ``[risk]``, ``[tx]`` and ``[hedge.policy]`` into typed objects.

    The only conversion of raw config tables in the agent (``--check`` runs it too); named-key
    errors come from :func:`~agent.config.table_to_dataclass`.
    """
    return TypedSettings(
        model=table_to_dataclass(ModelParams, cfg.quoting, "quoting"),
        risk=risk_limits_from_table(_with_oracle_heartbeat(cfg.risk, cfg.chain.oracle_heartbeat_s)),
        tx=table_to_dataclass(TxPipelineConfig, cfg.tx, "tx"),
        hedge=table_to_dataclass(
            HedgerConfig, {"symbol": cfg.hedge.symbol, **cfg.hedge.policy}, "hedge.policy"
        ),
    )


def key_source(cfg: AgentConfig) -> KeySource:
    """The signer reference the config names."""
    s = cfg.signer
    if s.source == "dev":
        return DevKey(s.dev_index)
    if s.source == "env":
        if not s.key_env:
            raise ConfigError(
                "signer.key_env: required when signer.source = 'env' (an env var name)"
            )
        return EnvKey(s.key_env)
    if s.keystore_path is None:
        raise ConfigError("signer.keystore_path: required when signer.source = 'keystore'")
    return KeystoreKey(s.keystore_path, s.password_file, s.password_env)


def read_deployment(cfg: AgentConfig) -> tuple[str, int]:
    """(market address, deployment block) from the config and its deployment record."""
    market, block = cfg.chain.market_address, 0
    if cfg.chain.deployment_file is not None:
        path = cfg.chain.deployment_file
        if not path.is_file():
            raise ConfigError(
                f"chain.deployment_file: {path} not found (deploy a market first, or set "
                "chain.market_address)"
            )
        rec = Deployment.load(path)
        if rec.chain_id != cfg.chain.chain_id:
            raise ConfigError(
                f"chain.deployment_file: {path} is for chain {rec.chain_id}, "
                f"config says chain.chain_id = {cfg.chain.chain_id}"
            )
        market = market or rec.market
        block = rec.block_number
    if market is None:
        raise ConfigError("chain.market_address or chain.deployment_file: one is required")
    return market, block


async def build_agent(
    cfg: AgentConfig, *, clock: Callable[[], float] = time.time, with_hedge: bool | None = None
) -> tuple[Agent, list[Closer]]:
    """Construct every part from a validated config.

    Returns the agent and the closers (sync or async) to call after :meth:`Agent.run` returns.
    """
    settings = typed_settings(cfg)
    market, block = read_deployment(cfg)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    signer = load_signer(key_source(cfg), cfg.chain.chain_id)
    journal = Journal(cfg.journal_path, fsync=cfg.storage.journal_fsync)
    rpc = AsyncRpc(RpcConfig(url=cfg.chain.rpc_url, timeout_s=cfg.chain.rpc_timeout_s), clock=clock)
    abi = market_abi()
    pipe = TxPipeline(rpc, signer, journal, settings.tx, error_abis=[abi], clock=clock)
    venue = DexVenue(
        rpc=rpc,
        pipe=pipe,
        codec=AbiCodec(abi),
        market=market,
        start_block=block,
        session=uuid.uuid4().hex[:6],
        cancel_max_fee_gwei=cfg.chain.cancel_max_fee_gwei or 5 * settings.tx.max_fee_gwei,
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
        hedger = Hedger(client, journal, settings.hedge)
        await hedger.resume(clock())
        hedge = HedgeLeg(hedger, client, cfg.hedge.symbol, clock)
    agent = Agent(
        venue=venue,
        journal=journal,
        model_params=settings.model,
        risk=RiskEngine(settings.risk, start_s=clock(), initial_state=_restored_state(journal)),
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
        max_fee_gwei=settings.tx.max_fee_gwei,
        execution=cfg.execution,
    )

    def close_journal() -> None:
        journal.close()

    closers.append(close_journal)
    return agent, closers


def risk_limits_from_table(table: dict[str, Any]) -> RiskLimits:
    """Validate ``[risk]``; states may be written by name (``warn_state = "REDUCED"``)."""

    def names(v: Any, path: str) -> Any:
        if isinstance(v, dict):
            return {k: names(x, f"{path}.{k}") for k, x in v.items()}
        if path.endswith("_state") and isinstance(v, str):
            try:
                return RiskState[v.upper()]
            except KeyError:
                valid = ", ".join(st.name for st in RiskState)
                raise ConfigError(f"{path}: {v!r} is not a state; use one of {valid}") from None
        return v

    # A band table may set only some fields (say `warn`): the rest keep the default band's.
    defaults = {f.name: f.default for f in dataclasses.fields(RiskLimits)}
    merged = {
        k: {**dataclasses.asdict(d), **v}
        if isinstance(v, dict)
        and dataclasses.is_dataclass(d := defaults.get(k))
        and not isinstance(d, type)
        else v
        for k, v in table.items()
    }
    return table_to_dataclass(RiskLimits, names(merged, "risk"), "risk")


def _with_oracle_heartbeat(risk: dict[str, Any], heartbeat_s: float | None) -> dict[str, Any]:
    """``[risk]`` with ``[chain] oracle_heartbeat_s`` passed to the risk engine.

    The feed's heartbeat is a fact about the deployment, so it lives in ``[chain]``; an explicit
    ``[risk]`` setting wins. A risk engine that takes the heartbeat itself
    (``RiskLimits.oracle_heartbeat_s``) derives its bands; one that does not gets the same
    bands, 1.5 and 3 heartbeats, as its ``oracle_age_s``.
    """
    if heartbeat_s is None or "oracle_heartbeat_s" in risk or "oracle_age_s" in risk:
        return risk
    if "oracle_heartbeat_s" in {f.name for f in dataclasses.fields(RiskLimits)}:
        return {**risk, "oracle_heartbeat_s": heartbeat_s}
    return {**risk, "oracle_age_s": {"warn": 1.5 * heartbeat_s, "breach": 3.0 * heartbeat_s}}


def _restored_state(journal: Journal) -> RiskState:
    # A HALT survives a restart: only an operator resumes.
    last = journal.risk_transitions()
    if last and last[-1][2] == RiskState.HALTED.name:
        return RiskState.HALTED
    return RiskState.NORMAL
