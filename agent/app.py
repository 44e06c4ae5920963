"""Assembly: every part of the agent built from a validated config.

:func:`build_agent` is the one place that knows how a config becomes an :class:`~agent.runtime.
Agent` on a :class:`~agent.venue.dex.DexVenue`; the command line (:mod:`agent.commands`), the
stress runner and the benchmarks call it. The config arrives typed (:mod:`agent.config` validates
``[quoting]``, ``[risk]``, ``[tx]`` and ``[hedge.policy]`` into the parts' own dataclasses at load).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.chain.signer import Signer, load_signer
from agent.chain.txpipe import SpedUp, TxEvent, TxPipeline
from agent.config import AgentConfig, key_source, read_deployment
from agent.errors import ChainError, ConfigError
from agent.hedge.binance import AuthError, BinanceFuturesClient, ClientConfig, Credentials
from agent.hedge.hedger import Hedger
from agent.hedging import HedgeLeg
from agent.keeper.duties import KeeperPolicy
from agent.risk.engine import RiskEngine, RiskLimits, RiskState
from agent.runtime import Agent, AlertSink, HedgeConnect
from agent.store import Journal
from agent.telemetry import AgentMetrics, Children, Health, MetricsRegistry
from agent.venue.dex import DexVenue

__all__ = [
    "Closer",
    "RpcWallet",
    "build_agent",
    "build_hedge_leg",
    "prepare_data_dir",
    "risk_limits",
]

Closer = Callable[[], Awaitable[None] | None]
"""What :func:`build_agent` returns to be called after :meth:`Agent.run` (sync or async)."""


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data dir owner-only (0700) and make its files owner-only (0600).

    The journal holds signed transactions and positions, ``status.json`` positions and P&L:
    nothing in it is for other users. Sets the process umask to 077, so every file created
    from here on (journal WAL, status, sockets) is owner-only too.

    Raises
    ------
    ConfigError
        The path exists and is not a directory, or cannot be created.
    """
    os.umask(0o077)
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(
            f"storage.data_dir: {data_dir} is a file, not a directory: point data_dir elsewhere"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)
        for f in data_dir.iterdir():
            if f.is_file():
                f.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"storage.data_dir: cannot use {data_dir}: {exc.strerror or exc}"
        ) from None
    return data_dir


class RpcWallet:
    """The signer's gas wallet read over the agent's RPC (balance and pending nonce)."""

    def __init__(self, rpc: AsyncRpc, address: str) -> None:
        self._rpc = rpc
        self._address = address

    async def read(self) -> tuple[int, int]:
        """Return (native balance in wei, pending nonce)."""
        balance, nonce = await self._rpc.batch(
            [
                ("eth_getBalance", [self._address, "latest"]),
                ("eth_getTransactionCount", [self._address, "pending"]),
            ]
        )
        try:
            return int(str(balance), 16), int(str(nonce), 16)
        except ValueError:
            raise ChainError(
                f"malformed balance or nonce from the node: {balance!r} {nonce!r}"
            ) from None


async def build_hedge_leg(
    cfg: AgentConfig,
    journal: Journal,
    clock: Callable[[], float] = time.time,
    metrics: MetricsRegistry | None = None,
) -> HedgeLeg:
    """Connect the exchange client and resume the hedger (lookups only: it never trades here).

    The hedger stays disarmed until the runtime passes it a DEX position read from the chain.
    `metrics` receives the exchange latency and error families.

    Raises
    ------
    ConfigError
        The exchange refuses the API key pair (-2014, -2015, -1022, HTTP 401) or does not list
        ``hedge.symbol``: configuration to fix, not an outage to wait out.
    ExchangeError
        The exchange did not answer (or answered with an outage-class error).
    """
    observe = None
    if metrics is not None:
        fam = metrics.families
        # Every request reports here: label children are looked up once (``labels()`` checks
        # its arguments and takes the family lock on each call).
        latency, errors = Children(fam.exchange_latency_seconds), Children(fam.exchange_errors)

        def observe(endpoint: str, seconds: float, failure: str | None) -> None:
            latency(endpoint).observe(seconds)
            if failure is not None:
                errors(failure).inc()

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
        observer=observe,
    )
    try:
        await client.connect([cfg.hedge.symbol])
        # Time and symbol filters are public: only a signed read tells whether the exchange
        # takes our key. Found here, a refused key is a config error; found by the hedger
        # later, it was a health condition while the agent quoted fills it could not hedge.
        try:
            await client.position_risk(cfg.hedge.symbol)
        except AuthError as exc:
            raise ConfigError(
                f"hedge.api_key_env / hedge.api_secret_env: {cfg.hedge.base_url} refuses the "
                f"API key pair in ${cfg.hedge.api_key_env} / ${cfg.hedge.api_secret_env} "
                f"({exc}): check the pair and the key's futures-trading permission"
            ) from None
        hedger = Hedger(client, journal, cfg.hedge.policy)
        await hedger.resume(clock())
    except BaseException:
        await client.aclose()
        raise
    return HedgeLeg(hedger, client, cfg.hedge.symbol, clock)


async def build_agent(
    cfg: AgentConfig,
    *,
    clock: Callable[[], float] = time.time,
    with_hedge: bool | None = None,
    signer: Signer | None = None,
    alert: AlertSink | None = None,
    defer_hedge: bool = False,
) -> tuple[Agent, list[Closer]]:
    """Construct every part from a validated config.

    Returns the agent and the closers (sync or async) to call after :meth:`Agent.run` returns.
    `signer` skips loading the key again (the command line loads it first to take the key's
    lock); `alert` receives operator alerts. `defer_hedge` leaves the exchange to
    :meth:`Agent.start`, which connects it after cancelling the DEX's orphaned orders and
    waits out an exchange outage without quoting (the daemon); otherwise it is connected here
    and an outage fails the build (runners that reach into ``agent.hedger`` before starting).
    """
    market, block = read_deployment(cfg)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    signer = signer or load_signer(key_source(cfg), cfg.chain.chain_id)
    journal = Journal(cfg.journal_path, fsync=cfg.storage.journal_fsync)
    try:
        journal.bind(chain_id=str(cfg.chain.chain_id), account=signer.address, market=market)
    except BaseException:
        journal.close()
        raise
    closers: list[Closer] = []

    def close_journal() -> None:
        journal.close()

    # One registry for the agent; the two clients report every request into it.
    metrics = MetricsRegistry()
    fam = metrics.families

    # Every JSON-RPC request reports here: label children are looked up once per method.
    requests = Children(fam.rpc_requests)
    latency = Children(fam.rpc_latency_seconds)
    errors = Children(fam.rpc_errors)

    def observe_rpc(method: str, seconds: float, failure: str | None) -> None:
        requests(method).inc()
        latency(method).observe(seconds)
        if failure is not None:
            errors(method).inc()

    rpc = AsyncRpc(
        RpcConfig(url=cfg.chain.rpc_url, timeout_s=cfg.chain.rpc_timeout_s),
        clock=clock,
        observer=observe_rpc,
    )
    closers += [rpc.aclose, close_journal]
    try:
        abi = market_abi()
        pipe = TxPipeline(
            rpc,
            signer,
            journal,
            cfg.tx,
            error_abis=[abi],
            clock=clock,
            on_event=lambda ev: _count_speedup(fam, ev),
        )
        venue = DexVenue(
            rpc=rpc,
            pipe=pipe,
            codec=AbiCodec(abi),
            market=market,
            start_block=block,
            session=uuid.uuid4().hex[:6],
            cancel_max_fee_gwei=cfg.chain.cancel_max_fee_gwei or 5 * cfg.tx.max_fee_gwei,
        )
        hedge: HedgeLeg | None = None
        hedge_connect: HedgeConnect | None = None
        hedging = cfg.hedge.enabled if with_hedge is None else with_hedge
        if hedging and defer_hedge:
            # Missing credential variables are known now: fail before anything is sent.
            Credentials.from_env(cfg.hedge.api_key_env, cfg.hedge.api_secret_env)

            async def hedge_connect() -> HedgeLeg:
                return await build_hedge_leg(cfg, journal, clock, metrics)

        elif hedging:
            hedge = await build_hedge_leg(cfg, journal, clock, metrics)
        risk = RiskEngine(risk_limits(cfg), start_s=clock(), initial_state=_restored_state(journal))
        memory = journal.risk_memory()
        if memory is not None:
            risk.restore(memory)
        agent = Agent(
            venue=venue,
            journal=journal,
            model_params=cfg.quoting,
            risk=risk,
            keeper=KeeperPolicy(
                settle_funding=cfg.keeper.settle_funding,
                liquidate=cfg.keeper.liquidate,
                min_profit_usd=cfg.keeper.min_profit_usd,
            ),
            hedger=hedge,
            hedge_connect=hedge_connect,
            clock=clock,
            data_dir=cfg.storage.data_dir,
            health=Health(max_heartbeat_age_s=cfg.telemetry.stale_heartbeat_s, clock=clock),
            expected_chain_id=cfg.chain.chain_id,
            max_fee_gwei=cfg.tx.max_fee_gwei,
            execution=cfg.execution,
            wallet=RpcWallet(rpc, signer.address),
            metrics=metrics,
            alert=alert,
        )
    except BaseException:
        for close in closers:
            res = close()
            if res is not None:
                await res
        raise
    return agent, closers


def _count_speedup(fam: AgentMetrics, ev: TxEvent) -> None:
    # The pipeline re-signs a pending transaction at its nonce with higher fees (a speed-up);
    # a newer decision replacing a pending one is a new intent and counted as a quote tx.
    if isinstance(ev, SpedUp):
        fam.tx_replacements.labels(reason="speedup").inc()


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
    # A HALT survives a restart: only an operator resumes. (A journal written before the risk
    # memory existed has only the transitions; the memory, when present, overrides this.)
    last = journal.risk_transitions()
    if last and last[-1][2] == RiskState.HALTED.name:
        return RiskState.HALTED
    return RiskState.NORMAL
