"""Live stress mode: the agent's real ``run`` loop against a chain that mines on its own clock.

``mm-agent stress --mode live --scenario NAME [--speed N] [--rpc-delay-ms 300-800]``

Lock-step mode (:func:`sims.stress.run_scenario`) steps the world and the agent one block at a
time, so the agent always sees block ``i`` before block ``i + 1`` exists and every RPC answer is
instant: it is exactly reproducible, and it cannot show a race. Here nothing waits for the agent:

===================  ===========================================================================
block producer       a thread that mines block ``i`` at simulated time ``start + t_i`` (explicit
                     timestamp), skips the slots a stall scripts, sets the scripted base fee
world driver         a task that plays each step's oracle push, makers, takers, funding fallback
                     and mempool faults (the existing :class:`~sims.world.ChainWorld` methods,
                     in a worker thread) half a slot before its block, and counts the agent's
                     resting orders per side directly on chain (never through the agent)
exchange             the CEX simulator follows the index as a price path on the shared clock and
                     answers after the scenario's latency (scaled), with its partial fills, 429
                     storms and outages switched per step
agent                :meth:`agent.runtime.Agent.run`: new-head subscription (through the RPC
                     proxy when one is set) with its poll fallback, the hedging task, the keeper
sampler              records the report's per-step sample half a slot after each block
===================  ===========================================================================

Time
    One :class:`ScaledClock` is shared by the agent (and so its RPC client, pipeline and hedger
    requests), the exchange simulator and the block producer: simulated seconds are
    ``start + speed × wall seconds since go()``. Block timestamps are *set* from the timeline
    (``evm_mine`` with a timestamp) rather than left to anvil, because anvil stamps blocks with
    its own wall clock and its interval miner only takes whole seconds over RPC and cannot be
    paused for a stall and resumed at a fractional interval; with ``--speed 15`` and 1 s blocks a
    block comes every 67 ms of wall time, which no whole-second interval expresses. The producer
    is still independent of the agent: it mines on deadlines of the shared clock, whether or not
    the agent has read the previous block. So block timestamps, the agent's ``clock()``, the
    exchange's server time and funding boundaries agree to within the producer's scheduling lag
    (reported as ``live.max_mine_lag_s``). Wall-time knobs are divided by the speed: the
    exchange's latency, jitter and Retry-After, the hedge client's back-off and the agent's poll
    interval, so at any speed they last as long in simulated time as they would live. The RPC
    proxy's delay is *not* scaled: it models a slow node, in wall time, as the agent meets it.
What compression distorts
    The agent's own work is not scaled and cannot be: every wall millisecond its event loop
    spends (a runtime cycle, an HTTP round trip through the loop, a busy machine's scheduling)
    is ``speed`` simulated milliseconds. At speed 15 on the shared 2-core machine one exchange
    request took 0.2–3.6 simulated seconds (10–240 wall ms), so a hedge that needs a book read,
    an order and the bookkeeping around them lags the market by seconds where it would lag by
    a tenth of one live, and an IOC priced off a read lands after the price moved. Figures of
    fast moves (crashes, 429 storms) are therefore worse at high speed than live; quote them at
    a low speed (e.g. ``--speed 4``) beside the default. Lock-step mode has no such distortion.
Not reproducible
    Thread scheduling decides what the agent sees when; two runs of one seed differ. Lock-step
    mode is the reproducible one.
Report
    The same invariants and report as lock-step, plus ``live``: speed, blocks the producer mined
    late, the most orders of ours seen resting on one side on chain, and how often that exceeded
    the configured levels.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from agent.chain.heads import HeadWatcher, ws_url_for
from agent.config import load_config
from agent.errors import ChainError
from agent.types import Side
from sims.anvil import Anvil, AnvilConfig
from sims.cex import Faults, SimServer
from sims.faults.cexproxy import CexFaultProxy
from sims.faults.rpcproxy import RpcProxy, RpcProxyConfig
from sims.scenario import Scenario, Step, Timeline, expand
from sims.stress import (
    _KEY_ENV,
    _SECRET_ENV,
    _SYMBOL,
    StressOptions,
    StressResult,
    Upstream,
    _agent_config,
    _apply_cex,
    _cex_config,
    _cex_equity,
    _finish,
    _fresh_data_dir,
    _prepare_world,
    _Recorder,
    world_epoch,
)
from sims.world import ChainWorld

if TYPE_CHECKING:
    from agent.runtime import Agent

__all__ = ["DEFAULT_SPEED", "LiveHandle", "LiveOptions", "ScaledClock", "run_live"]

log = logging.getLogger("sims.live")

DEFAULT_SPEED = 15.0
"""Simulated seconds per wall second by default: a simulated hour in four minutes."""

_TAIL_BLOCKS = 3
_GWEI = 10**9


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How a live run differs from lock-step (the rest is :class:`~sims.stress.StressOptions`)."""

    speed: float = DEFAULT_SPEED
    """Simulated seconds per wall second (1.0 = real time)."""
    rpc_delay_ms: tuple[float, float] | None = None
    """Put an :class:`~sims.faults.rpcproxy.RpcProxy` between the agent and the node that delays
    every answer by a uniform draw from this range of wall milliseconds; None: no proxy."""
    subscribe_heads: bool = True
    """Run the agent with a new-head subscription (False: it polls only)."""
    poll_interval_s: float = 0.25
    """The agent's poll interval in simulated seconds (divided by `speed` for the wall)."""
    shutdown_timeout_s: float = 20.0
    """Wall seconds the agent's final cancel-all may take."""
    cex_proxy: bool = False
    """Put a :class:`~sims.faults.cexproxy.CexFaultProxy` between the agent's hedge client and
    the exchange simulator (``LiveHandle.cex_proxy``), for a test to refuse or drop requests."""


class ScaledClock:
    """Simulated seconds that run `speed` times faster than the wall, from :meth:`go` on.

    Before :meth:`go` the clock stands at `start_s`, so building the agent costs no simulated
    time. Also a :class:`sims.cex.SimClock` (:meth:`now_ms`).
    """

    def __init__(self, start_s: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, not {speed}")
        self.start_s = float(start_s)
        self.speed = float(speed)
        self._t0: float | None = None

    def go(self) -> None:
        """Start the clock (idempotent)."""
        if self._t0 is None:
            self._t0 = time.monotonic()

    def __call__(self) -> float:
        if self._t0 is None:
            return self.start_s
        return self.start_s + (time.monotonic() - self._t0) * self.speed

    def now_ms(self) -> int:
        """Simulated Unix milliseconds (the exchange simulator's clock)."""
        return int(self() * 1000)

    def wall_until(self, sim_s: float) -> float:
        """Wall seconds until the clock reads `sim_s` (0 if it already has)."""
        return max(0.0, (sim_s - self()) / self.speed)

    async def sleep_until(self, sim_s: float) -> None:
        """Sleep until the clock reads `sim_s`."""
        await asyncio.sleep(self.wall_until(sim_s))


@dataclass(slots=True)
class _LiveStats:
    blocks_late: int = 0
    max_mine_lag_s: float = 0.0
    mine_errors: int = 0
    mine_rpc_s: float = 0.0
    """Wall seconds the producer spent in its mining RPCs (the node's share of any lag)."""
    world_errors: int = 0
    max_world_lag_s: float = 0.0
    chain_samples: int = 0
    max_orders_per_side: int = 0
    samples_over_levels: int = 0
    over_levels: list[str] = field(default_factory=list)


class _Producer(threading.Thread):
    """Mine the timeline's blocks on the shared clock (see the module docstring)."""

    def __init__(
        self,
        url: str,
        world: ChainWorld,
        clock: ScaledClock,
        tl: Timeline,
        start_ts: int,
        quiet_fee_gwei: float | None,
        stats: _LiveStats,
    ) -> None:
        super().__init__(name="block-producer", daemon=True)
        self._url = url
        self._world = world
        self._clock = clock
        self._tl = tl
        self._start_ts = start_ts
        self._quiet_fee = quiet_fee_gwei
        self._stats = stats
        self.stop_event = threading.Event()
        self.paused = threading.Event()
        self.lock = threading.Lock()
        """Held while a block is mined (the producer's or :meth:`LiveHandle.mine_now`'s)."""
        self.slot = -1
        """Index of the last timeline slot handled (len(tl) and above: the tail)."""

    def _rpc(self, client: httpx.Client, calls: list[tuple[str, list[Any]]]) -> None:
        # One HTTP round trip for the base fee and the block: the producer's lag is what it adds.
        body = [
            {"jsonrpc": "2.0", "id": k, "method": m, "params": p} for k, (m, p) in enumerate(calls)
        ]
        for msg in client.post(self._url, json=body).json():
            if "error" in msg:
                raise ChainError(f"{calls[int(msg['id'])][0]} failed: {msg['error']}")

    def _mine(self, client: httpx.Client, ts: int, fee_gwei: float | None) -> None:
        w = self._world
        with self.lock:
            ts = max(ts, w.last_ts + 1)
            calls: list[tuple[str, list[Any]]] = []
            if fee_gwei is not None:
                calls.append(("anvil_setNextBlockBaseFeePerGas", [hex(int(fee_gwei * _GWEI))]))
            calls.append(("evm_mine", [ts]))
            self._rpc(client, calls)
            # The world's own bookkeeping, as ChainWorld.mine keeps it.
            w.last_ts = ts
            w.block += 1
            w.stats.blocks_mined += 1

    def mine_now(self) -> None:
        """Mine one extra block at once (between the producer's slots)."""
        with httpx.Client(timeout=10.0) as client:
            self._mine(client, int(self._clock()), None)

    def run(self) -> None:
        dt_s = self._tl.scenario.block_time_s
        n = len(self._tl)
        with httpx.Client(timeout=10.0) as client:
            i = 0
            while not self.stop_event.is_set():
                t_s = (i + 1) * dt_s
                due = self._start_ts + t_s
                if self.stop_event.wait(self._clock.wall_until(due)):
                    break
                self.slot = i
                if self.paused.is_set():
                    i += 1
                    continue
                lag = self._clock() - due
                if lag > dt_s:
                    self._stats.blocks_late += 1
                self._stats.max_mine_lag_s = max(self._stats.max_mine_lag_s, lag)
                step = self._tl[min(i, n - 1)]
                t_rpc = time.perf_counter()
                try:
                    if i >= n:  # the quiet tail: a block a slot at the quiet base fee
                        self._mine(client, self._start_ts + round(t_s), self._quiet_fee)
                    elif step.mined:
                        fee = step.base_fee_override_gwei
                        self._mine(
                            client,
                            self._start_ts + round(step.t_s),
                            fee if fee is not None else self._quiet_fee,
                        )
                    else:
                        self._world.stats.stalled_steps += 1
                except (httpx.HTTPError, ChainError, ValueError) as exc:
                    # A restarting node: the slot passes without a block, as it would live.
                    self._stats.mine_errors += 1
                    log.info("block producer: slot %d not mined: %s", i, exc)
                self._stats.mine_rpc_s += time.perf_counter() - t_rpc
                i += 1


@dataclass
class LiveHandle:
    """What a test or a caller may reach during a live run (given to ``on_start``)."""

    node: Anvil
    """The forked node (direct: not through the proxy)."""
    world: ChainWorld
    clock: ScaledClock
    agent: Agent
    proxy: RpcProxy | None
    levels: int
    """The agent's configured levels per side."""
    _producer: _Producer
    _world_lock: asyncio.Lock
    cex: SimServer | None = None
    """The exchange simulator (direct: its state and admin, never through the proxy)."""
    cex_proxy: CexFaultProxy | None = None
    """The exchange fault proxy the agent's hedge client talks through (``cex_proxy``)."""

    async def mine_now(self) -> None:
        """Mine one block now, between the producer's slots (whatever is in the pool)."""
        await asyncio.to_thread(self._producer.mine_now)

    async def restart_node(self, down_s: float = 1.0) -> None:
        """Restart the node on the same port, its state kept (anvil dumps it on exit).

        The producer pauses, the world driver waits, and the world forgets its cached nonces
        (the pool is lost with the process). Takes `down_s` wall seconds of downtime.
        """
        async with self._world_lock:
            self._producer.paused.set()
            try:
                await asyncio.to_thread(self.node.stop)
                await asyncio.sleep(down_s)
                cfg = self.node.config
                if cfg.dump_state is not None:
                    self.node.config = dataclasses.replace(cfg, load_state=cfg.dump_state)
                await asyncio.to_thread(self.node.start)
                self.world._nonces.clear()
                self.world.block = self.node.block_number()
                self.world.last_ts = int(self.node.latest_block()["timestamp"], 16)
            finally:
                self._producer.paused.clear()


def _resting_per_side(world: ChainWorld) -> tuple[int, int]:
    """(bids, asks) of the agent resting on chain now, read straight from the market."""
    raw = world._call(world.dep.market, world.market.encode_call("openOrders", world.agent_address))
    orders = world.market.decode_output("openOrders", raw)[0]
    bids = sum(1 for o in orders if int(o[2]) == int(Side.BID))
    return bids, len(orders) - bids


def _play_world(
    world: ChainWorld,
    step: Step,
    start_ts: int,
    grace_s: float,
    settled: set[int],
    base_fee_gwei: float,
) -> None:
    """One step's world actions, without mining (the producer mines); as ChainWorld.play."""
    if step.oracle_update and step.mined:
        world.push_oracle(step.oracle_usd)
    world.refresh_makers(step.target_dex_mid_usd, start_ts + step.t_s)
    if step.takers:
        # Fair value, not the book's mid (as ChainWorld.play): our own quotes must not move it.
        world.send_takers(step.takers, step.target_dex_mid_usd)
    if step.mined:
        world.send_arbitrage(step.arb_reference_usd, base_fee_gwei)
    # The funding fallback: the producer's blocks do not wait for us, so instead of a 2 s
    # window (lock-step) settle once per boundary any time after the grace.
    interval = world.spec.funding_interval_s
    boundary = world.last_ts // interval * interval
    if (
        boundary > start_ts - interval
        and boundary not in settled
        and world.last_ts - boundary >= grace_s
    ):
        settled.add(boundary)
        world.settle_funding_now()
    if step.drop_txs:
        world.drop_agent_txs()
    world.hold_agent_txs(step.inclusion_delay_blocks)


async def run_live(
    scenario: Scenario,
    upstream: Upstream,
    out_dir: Path,
    opts: StressOptions | None = None,
    live: LiveOptions | None = None,
    *,
    on_step: Callable[[Agent, ChainWorld, Step], Awaitable[None] | None] | None = None,
    on_start: Callable[[LiveHandle], Coroutine[Any, Any, None]] | None = None,
    stop: asyncio.Event | None = None,
    dump_state: bool = False,
) -> StressResult:
    """Run `scenario` live on a fresh fork of `upstream`; write its report into `out_dir`.

    `on_start` runs as its own task once the clock starts (a test's sampler or fault injector);
    it is cancelled when the run ends. `dump_state` makes the node keep its state across
    :meth:`LiveHandle.restart_node`.
    """
    from agent.app import build_agent  # heavy: only when a run starts

    opts = opts or StressOptions()
    live = live or LiveOptions()
    if opts.chain_profile is not None:
        scenario = scenario.with_chain_profile(opts.chain_profile)
    if opts.short_s is not None:
        scenario = scenario.short_run(opts.short_s)
    tl: Timeline = expand(scenario, opts.seed)
    wall0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data_dir = _fresh_data_dir(out_dir)
    base_cfg = load_config(opts.config_path) if opts.config_path is not None else None
    speed = live.speed

    fork_cfg = AnvilConfig(
        fork_url=upstream.url,
        fork_block=upstream.block,
        no_mining=True,
        dump_state=out_dir / "node-state.json" if dump_state else None,
    )
    fork = await asyncio.to_thread(Anvil(fork_cfg).start)
    proxy: RpcProxy | None = None
    stats = _LiveStats()
    loop_wall = 0.0
    rec: _Recorder | None = None
    try:
        # Set-up as in lock-step mode: the same market, oracle, roles, ladders and boundary.
        world, start_ts, nonce0 = _prepare_world(fork, upstream, scenario, tl, data_dir)

        if live.rpc_delay_ms is not None:
            lo, hi = live.rpc_delay_ms
            proxy = RpcProxy(
                RpcProxyConfig(upstream_url=fork.url, delay_ms=(lo, hi), seed=opts.seed)
            )
            await proxy.start()
        rpc_url = proxy.url if proxy is not None else fork.url

        clock = ScaledClock(start_ts, speed)
        cs = scenario.cex
        sim = SimServer(
            _cex_config(scenario.price.initial_usd, opts.seed),
            clock=clock,
            faults=Faults(
                latency_ms=cs.latency_ms / speed,
                jitter_ms=cs.latency_jitter_ms / speed,
                retry_after_s=1.0 / speed,
            ),
        )
        # The exchange follows the index on the shared clock by itself, step by step.
        sim.exchange.set_price_path(
            _SYMBOL,
            [(round((start_ts + s.t_s) * 1000), round(s.cex_mid_usd, 1)) for s in tl],
        )
        os.environ[_KEY_ENV] = sim.config.api_key
        os.environ[_SECRET_ENV] = sim.config.api_secret
        async with sim, contextlib.AsyncExitStack() as cex_stack:
            cex_proxy: CexFaultProxy | None = None
            if live.cex_proxy:
                cex_proxy = await cex_stack.enter_async_context(CexFaultProxy(sim.url))
            cfg = _agent_config(
                rpc_url,
                data_dir / "deployment.json",
                data_dir,
                cex_proxy.url if cex_proxy is not None else sim.url,
                base_cfg,
                scenario,
                opts.strategy,
            )
            agent, closers = await build_agent(cfg, clock=clock)
            if agent.hedger is not None:
                client = agent.hedger.client
                # The client's waits are wall time; scaled, they last as long in simulated
                # time as they would live. Its network timeout is not: it bounds how long the
                # agent's own event loop may take to read an answer on this (shared, busy)
                # machine, and a timeout cut to 1/speed would fire on answers the exchange gave,
                # turning filled hedges into lookups.
                cc = client.config
                client.config = dataclasses.replace(
                    cc,
                    backoff_base_s=cc.backoff_base_s / speed,
                    backoff_max_s=cc.backoff_max_s / speed,
                    lookup_interval_s=cc.lookup_interval_s / speed,
                    max_rate_limit_wait_s=cc.max_rate_limit_wait_s / speed,
                    default_ban_s=cc.default_ban_s / speed,
                    weight_window_s=cc.weight_window_s / speed,
                )
            producer: _Producer | None = None
            tasks: list[asyncio.Task[Any]] = []
            try:
                breach = agent.risk.limits.inventory_cap_ratio.breach
                cap = agent.base_params.inventory_cap_base
                rec = _Recorder(
                    start_ts=start_ts,
                    hard_cap_base=cap * breach,
                    opts=opts,
                    cex_equity=lambda: _cex_equity(sim),
                )
                pos0 = world.account(world.agent_address)[1]
                epoch0 = world_epoch(world)
                levels = int(agent.base_params.levels)
                producer = _Producer(
                    fork.url, world, clock, tl, start_ts, scenario.quiet_base_fee_gwei, stats
                )
                world_lock = asyncio.Lock()
                heads = HeadWatcher(ws_url_for(rpc_url)) if live.subscribe_heads else None
                agent_stop = asyncio.Event()
                clock.go()
                producer.start()
                loop_t0 = time.perf_counter()
                agent_task = asyncio.create_task(
                    agent.run(
                        agent_stop, poll_interval_s=live.poll_interval_s / speed, heads=heads
                    ),
                    name="agent",
                )
                handle = LiveHandle(
                    fork, world, clock, agent, proxy, levels, producer, world_lock,
                    cex=sim, cex_proxy=cex_proxy,
                )  # fmt: skip
                extra = asyncio.create_task(on_start(handle)) if on_start is not None else None
                world_task = asyncio.create_task(
                    _drive_world(world, tl, clock, start_ts, opts, stats, levels, world_lock, stop)
                )
                tasks += [agent_task, world_task] + ([extra] if extra is not None else [])
                await _sample(
                    agent, world, sim, tl, clock, start_ts, opts, rec, on_step, agent_task, stop
                )
                await world_task
                loop_wall = time.perf_counter() - loop_t0
                if extra is not None:
                    extra.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await extra
                # A quiet tail: no takers, an oracle push a block; the agent sees every block,
                # so the journal holds every fill before its final cancel-all.
                sim.set_faults(outage=False, partial_fill_prob=0.0, rate_limit_next=0)
                await _tail(agent, world, tl, clock, start_ts, world_lock, agent_task)
                agent_stop.set()
                try:
                    await asyncio.wait_for(agent_task, timeout=live.shutdown_timeout_s)
                finally:
                    producer.stop_event.set()
                    await asyncio.to_thread(producer.join, 10.0)
                world.mine(max(int(clock()), world.last_ts + 1))
                result = _finish(
                    scenario, tl, opts, agent, world, sim, rec, upstream, out_dir,
                    start_ts=start_ts, pos0=pos0, epoch0=epoch0, started_at=started_at,
                    nonce0=nonce0,
                )  # fmt: skip
            finally:
                # On an error mid-run nothing may keep running: the tasks, then the producer.
                for t in tasks:
                    if not t.done():
                        t.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await t
                if producer is not None and producer.is_alive():
                    producer.stop_event.set()
                    await asyncio.to_thread(producer.join, 10.0)
                if agent.hedger is not None:
                    with contextlib.suppress(Exception):
                        await agent.hedger.client.aclose()
                for close in closers:
                    res = close()
                    if asyncio.iscoroutine(res):
                        await res
    finally:
        if proxy is not None:
            await proxy.stop()
        await asyncio.to_thread(fork.stop)
    report, paths, invariants = result
    report["live"] = {
        "speed": speed,
        "rpc_delay_ms": list(live.rpc_delay_ms) if live.rpc_delay_ms else None,
        "levels": levels,
        "chain_samples": stats.chain_samples,
        "max_orders_per_side": stats.max_orders_per_side,
        "samples_over_levels": stats.samples_over_levels,
        "over_levels": stats.over_levels[:10],
        "blocks_mined_late": stats.blocks_late,
        "max_mine_lag_s": round(stats.max_mine_lag_s, 3),
        "mine_rpc_wall_ms_per_block": round(
            1e3 * stats.mine_rpc_s / max(world.stats.blocks_mined, 1), 2
        ),
        "max_world_lag_s": round(stats.max_world_lag_s, 3),
        "slots_lost": stats.mine_errors,
        "world_errors": stats.world_errors,
        "proxy": proxy.stats.as_dict() if proxy is not None else None,
    }
    paths.json.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return StressResult(
        scenario=scenario.name,
        seed=opts.seed,
        report=report,
        paths=paths,
        invariants=invariants,
        world=world.stats,
        wall_s=time.perf_counter() - wall0,
        loop_wall_s=loop_wall,
        steps=len(rec.samples) if rec is not None else 0,
    )


async def _drive_world(
    world: ChainWorld,
    tl: Timeline,
    clock: ScaledClock,
    start_ts: int,
    opts: StressOptions,
    stats: _LiveStats,
    levels: int,
    lock: asyncio.Lock,
    stop: asyncio.Event | None,
) -> None:
    """Play each step's world actions half a slot before its block; count resting orders."""
    dt_s = tl.scenario.block_time_s
    settled: set[int] = set()
    for step in tl:
        if stop is not None and stop.is_set():
            return
        due = start_ts + step.t_s - dt_s / 2
        await clock.sleep_until(due)
        stats.max_world_lag_s = max(stats.max_world_lag_s, clock() - due)
        async with lock:
            try:
                fee = step.base_fee_override_gwei
                quiet = tl.scenario.quiet_base_fee_gwei
                await asyncio.to_thread(
                    _play_world,
                    world,
                    step,
                    start_ts,
                    opts.settle_grace_s,
                    settled,
                    fee if fee is not None else (quiet or 0.0),
                )
                bids, asks = await asyncio.to_thread(_resting_per_side, world)
            except (ChainError, httpx.HTTPError) as exc:
                stats.world_errors += 1
                log.info("world step %d: %s", step.index, exc)
                continue
        stats.chain_samples += 1
        most = max(bids, asks)
        stats.max_orders_per_side = max(stats.max_orders_per_side, most)
        if most > levels:
            stats.samples_over_levels += 1
            stats.over_levels.append(
                f"t={step.t_s:.0f}s block {world.block}: {bids} bids {asks} asks"
            )


async def _sample(
    agent: Agent,
    world: ChainWorld,
    sim: SimServer,
    tl: Timeline,
    clock: ScaledClock,
    start_ts: int,
    opts: StressOptions,
    rec: _Recorder,
    on_step: Callable[[Agent, ChainWorld, Step], Awaitable[None] | None] | None,
    agent_task: asyncio.Task[bool],
    stop: asyncio.Event | None,
) -> None:
    """Switch the exchange's faults each slot and record the report's sample after each block."""
    dt_s = tl.scenario.block_time_s
    rng = random.Random(opts.seed)
    faults: dict[str, Any] = {}
    speed = clock.speed
    for step in tl:
        if stop is not None and stop.is_set():
            return
        if agent_task.done():
            await agent_task  # the agent's loop died: raise its error here
            raise RuntimeError("the agent's run loop returned before the scenario ended")
        await clock.sleep_until(start_ts + step.t_s - dt_s)
        sim.set_faults(latency_ms=step.cex.latency_ms / speed)
        _apply_cex(sim, step, rng, faults)
        await clock.sleep_until(start_ts + step.t_s + dt_s / 2)
        cancels = (
            [
                d.included_s
                for d in agent.journal.inclusion_delays(start_ts)
                if d.purpose == "cancel_all"
            ]
            if agent.risk.state.name in ("WITHDRAWN", "HALTED")
            else []
        )
        rec.record(agent, step, world, cancels)
        if on_step is not None:
            res = on_step(agent, world, step)
            if asyncio.iscoroutine(res):
                await res


async def _tail(
    agent: Agent,
    world: ChainWorld,
    tl: Timeline,
    clock: ScaledClock,
    start_ts: int,
    lock: asyncio.Lock,
    agent_task: asyncio.Task[bool],
) -> None:
    """Mine a few quiet blocks (the producer's tail) and wait until the agent has seen them."""
    dt_s = tl.scenario.block_time_s
    last = tl[len(tl) - 1]
    target = world.block + _TAIL_BLOCKS
    deadline = time.monotonic() + max(10.0, 4 * _TAIL_BLOCKS * dt_s / clock.speed)
    pushed = 0
    while time.monotonic() < deadline and not agent_task.done():
        snap = agent.last_snapshot
        if snap is not None and snap.block_number >= target and world.block >= target:
            return
        if pushed < _TAIL_BLOCKS:
            async with lock:
                with contextlib.suppress(ChainError, httpx.HTTPError):
                    await asyncio.to_thread(world.push_oracle, last.oracle_usd)
            pushed += 1
        await asyncio.sleep(dt_s / clock.speed)
    log.warning("live tail: the agent had not seen block %d when the tail ended", target)
