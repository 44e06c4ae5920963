"""Stress runs: the real agent against a forked chain, taker bots, an oracle and a CEX simulator.

``mm-agent stress --scenario NAME|FILE [--fork-url URL] [--seed S] [--out DIR] [--short]``
``[--mode lockstep|live] [--speed N] [--rpc-delay-ms LO-HI] [--seeds 0-9] [--strategy NAME|all]``
``[--json] [--chain-profile l1|l2]``

Modes
    ``lockstep`` (default, this module) steps the world and the agent together and is exactly
    reproducible: the same seed gives the same report to the cent. ``live``
    (:mod:`sims.live`) runs the agent's own loop against a chain that mines on its own clock,
    with the exchange's latency; it shows races and is not reproducible. ``--seeds`` and
    ``--strategy`` tabulate mean ± std over seeds per strategy (:mod:`sims.seeds`).

Where the chain comes from
    By default a fork-state file is built (:mod:`sims.forkstate`) or read (``--state FILE``) and
    served by a local *upstream* anvil; every scenario runs on a fresh ``anvil --fork-url`` of it,
    at the recorded block. ``--fork-url URL`` forks any other node instead (a testnet RPC), with
    ``--deployment FILE`` naming the market there.
Simulated time
    Nothing reads the wall clock. Step ``i`` of the timeline is one block slot: the world plays it
    (:meth:`sims.world.ChainWorld.play`), the CEX simulator's manual clock and mid follow, then
    the agent runs one :meth:`~agent.runtime.Agent.step` at exactly that simulated time and the
    runner waits for the hedger's scheduled work before the next step. Block timestamps are
    ``start + t``, ``start`` a funding boundary, so the scenario's funding snapshots fall on the
    market's own boundaries. The same seed gives the same blocks, fills and report numbers.
After the run
    The agent shuts down (cancel all) while the world keeps mining, then invariants are checked
    and ``report.json``, PNGs and ``index.html`` are written (:mod:`sims.report`).

Invariants
    ``position_matches_chain``      on-chain position = start position + every fill journaled,
                                    and = what the agent last saw
    ``no_orders_after_withdrawal``  once risk is WITHDRAWN/HALTED and that cancel is included, no
                                    order of ours rests until risk steps down; none after shutdown
    ``no_duplicate_hedge``          the exchange accepted no client order id twice
    ``inventory_within_hard_cap``   |inventory| ≤ cap × the cap-ratio breach level, except while
                                    risk has declared it (state above NORMAL) for ≤ the transient
    ``no_negative_collateral``      our settled collateral never < 0; nobody's at the end
    ``funding_settled``             every funding boundary that passed was settled on chain
    ``paying_side_within_cap``      at every funding snapshot, the DEX inventory on the paying side
                                    is at most the configured inventory cap
    ``drawdown_within_limit``       the worst drawdown of both legs marked at the world's prices,
                                    less gas, stays below the risk engine's breach level (its
                                    halt) as a fraction of the strategy's capital
                                    (:func:`sims.report.drawdown_limit`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli import positive_float
from agent.config import AgentConfig, load_config
from agent.errors import AgentError, ConfigError
from agent.status import StatusSink
from agent.types import Side
from sims.anvil import Anvil, AnvilConfig
from sims.cex import Faults, ManualClock, SimConfig, SimServer, SymbolSpec
from sims.forkstate import DEFAULT_DEPOSITS_USD, ForkStateMeta, build_fork_state, deploy_market
from sims.report import (
    CentreBasis,
    EventRecord,
    FillRecord,
    FundingSnapshotRecord,
    HedgeRecord,
    InvariantResult,
    PnlSnapshot,
    ReportPaths,
    RunMeta,
    RunRecord,
    Sample,
    TransitionRecord,
    TxRecord,
    TxStatus,
    drawdown_limit,
    format_table,
    paying_side,
    summary_row,
    write_report,
)
from sims.scenario import (
    CHAIN_PROFILES,
    ChainProfileName,
    Scenario,
    Step,
    Timeline,
    expand,
    list_scenarios,
    load_scenario,
)
from sims.strategies import get_strategy
from sims.world import ChainWorld, MarketDeployment, WorldStats

if TYPE_CHECKING:
    from agent.runtime import Agent
    from sims.live import LiveOptions

__all__ = [
    "SHORT_DURATION_S",
    "SimTime",
    "StressOptions",
    "StressResult",
    "Upstream",
    "cli_main",
    "demo_cli_main",
    "fork_state_cli_main",
    "open_upstream",
    "run_scenario",
]

log = logging.getLogger("sims.stress")

SHORT_DURATION_S = 120.0
"""Simulated length of a ``--short`` run (CI), unless a scripted move needs longer
(:meth:`~sims.scenario.Scenario.short_run` keeps every move's speed)."""

_SYMBOL = "BTCUSDT"
_KEY_ENV = "MM_SIM_CEX_API_KEY"
_SECRET_ENV = "MM_SIM_CEX_API_SECRET"  # noqa: S105 - the name of an env var
_WITHDRAWN = frozenset({"WITHDRAWN", "HALTED"})
_TAIL_BLOCKS = 3
_LOCKSTEP_RPC_TIMEOUT_S = 120.0
_STATUS_EVERY_S = 60.0
_LOCKSTEP_CEX_TIMEOUT_S = 30.0


class SimTime:
    """The simulated clock shared by the agent, its RPC client, its pipeline and its hedger."""

    def __init__(self, start_s: float) -> None:
        self.now_s = float(start_s)

    def __call__(self) -> float:
        return self.now_s

    def set(self, now_s: float) -> None:
        """Move to `now_s` (never backwards)."""
        self.now_s = max(self.now_s, float(now_s))


@dataclass(frozen=True, slots=True)
class StressOptions:
    """How to run one scenario."""

    seed: int = 0
    short_s: float | None = None
    """Shorten the scenario to this many simulated seconds (CI)."""
    pace: float | None = None
    """Wall seconds per simulated second (the demo: 1.0); None runs as fast as possible."""
    config_path: Path | None = None
    """An mm.toml whose [quoting], [risk], [tx], [keeper] and [hedge.policy] the agent uses."""
    strategy: str = "shipped"
    """A name of :mod:`sims.strategies`: its [quoting] overrides apply on top of the config."""
    settle_grace_s: float = 3.0
    """Seconds after a funding boundary before the world settles it if nobody did."""
    inventory_transient_s: float = 180.0
    """Longest run of |inventory| over the hard cap tolerated while risk has declared it."""
    withdraw_grace_blocks: int = 2
    """Blocks after its cancel is included before a withdrawal's book must be empty."""
    chain_profile: ChainProfileName | None = None
    """Run on this chain-cost profile instead of the scenario's own (``--chain-profile``)."""


@dataclass(frozen=True, slots=True)
class StressResult:
    """What one stress run produced."""

    scenario: str
    seed: int
    report: dict[str, Any]
    paths: ReportPaths
    invariants: tuple[InvariantResult, ...]
    world: WorldStats
    wall_s: float
    """Wall time of the whole run (fork, set-up, steps, shutdown, report)."""
    loop_wall_s: float
    """Wall time of the stepped part only (what the benchmark scales)."""
    steps: int

    @property
    def passed(self) -> bool:
        """True when every invariant held."""
        return all(i.passed for i in self.invariants)


@dataclass(frozen=True, slots=True)
class Upstream:
    """The node stress runs fork, and the markets on it."""

    url: str
    block: int | None
    markets: tuple[MarketDeployment, ...]
    remote: bool = False
    """True for ``--fork-url``: never deploy there; use its market whatever its interval."""

    def market_for(self, funding_interval_s: float) -> MarketDeployment | None:
        """The market with this funding interval, if the upstream has one."""
        for m in self.markets:
            if m.funding_interval_s == round(funding_interval_s):
                return m
        return None


@contextlib.contextmanager
def open_upstream(
    *,
    fork_url: str | None = None,
    fork_block: int | None = None,
    deployment_file: Path | None = None,
    state_file: Path | None = None,
) -> Iterator[Upstream]:
    """Yield the upstream to fork: a remote URL, or a local anvil serving a fork-state file.

    Without `fork_url` and `state_file`, a fork-state file is built in a temporary directory.

    Raises
    ------
    ConfigError
        For a remote URL without a deployment record.
    """
    if fork_url is not None:
        markets: tuple[MarketDeployment, ...] = ()
        if deployment_file is not None:
            raw = json.loads(Path(deployment_file).read_text())
            recs = raw.get("markets", [raw])
            markets = tuple(MarketDeployment.from_record(r) for r in recs)
        elif state_file is None:
            raise ConfigError("--fork-url needs --deployment FILE (the market's deployment record)")
        if state_file is not None:
            markets = ForkStateMeta.load(state_file).markets
        if not markets:
            raise ConfigError(f"no market in the deployment record for {fork_url}")
        yield Upstream(fork_url, fork_block, markets, remote=True)
        return
    with contextlib.ExitStack() as stack:
        if state_file is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mm-fork-")))
            meta = build_fork_state(tmp / "state.json")
        else:
            meta = ForkStateMeta.load(state_file)
        node = stack.enter_context(Anvil(AnvilConfig(load_state=meta.state_file)))
        yield Upstream(node.url, fork_block if fork_block is not None else meta.block, meta.markets)


# -- the agent's configuration -------------------------------------------------------------------


def _agent_config(
    rpc_url: str,
    deployment_file: Path,
    data_dir: Path,
    cex_url: str,
    base: AgentConfig | None,
    scenario: Scenario,
    strategy: str = "shipped",
) -> AgentConfig:
    """Return the agent's configuration for one run, as an operator would write it.

    The scenario's chain profile sets the costs the cost gate prices, and its feed's heartbeat
    (``[oracle] heartbeat_s``) goes to ``[chain] oracle_heartbeat_s``, as an operator sets their
    feed's: the agent's oracle-age limits derive from it. (Left out, the agent judged a 30 s
    feed by the 10 / 30 s defaults: WIDENED all run.)
    """
    chain = scenario.chain.resolved
    quoting: dict[str, Any] = {
        "base_size_base": 0.05,
        "inventory_cap_base": 1.0,
        "levels": 3,
        # The chain profile's costs, so the cost gate prices what this chain charges.
        "native_price_quote": chain.native_price_usd,
    }
    quoting["l1_data_fee_per_byte_gwei"] = chain.l1_data_fee_per_byte_gwei
    policy: Any = {"dead_band_base": 0.04}  # below the top quote size: a full fill is hedged
    raw: dict[str, Any] = {
        "quoting": quoting,
        "risk": {},
        "tx": {"max_fee_gwei": 200.0},
        "keeper": {"settle_funding": True, "liquidate": True},
    }
    if base is not None:
        # The base config's sections are validated objects: they replace these defaults whole.
        raw.update(quoting=base.quoting, risk=base.risk, tx=base.tx, keeper=base.keeper)
        policy = dataclasses.replace(base.hedge.policy, symbol=_SYMBOL)
    raw["quoting"] = get_strategy(strategy).apply(raw["quoting"])
    raw["risk"] = get_strategy(strategy).apply_risk(raw["risk"])
    raw |= {
        # Lock-step waits for every answer before the next block exists, so a timeout can only
        # fire because the machine is busy, and a run must not depend on that: the longest ones.
        "chain": {
            "rpc_url": rpc_url,
            "chain_id": 31337,
            "deployment_file": str(deployment_file),
            "rpc_timeout_s": _LOCKSTEP_RPC_TIMEOUT_S,
            "oracle_heartbeat_s": scenario.oracle.heartbeat_s,
        },
        "signer": {"source": "dev", "dev_index": 1},
        "hedge": {
            "enabled": True,
            "base_url": cex_url,
            "symbol": _SYMBOL,
            "api_key_env": _KEY_ENV,
            "api_secret_env": _SECRET_ENV,
            "request_timeout_s": _LOCKSTEP_CEX_TIMEOUT_S,
            "policy": policy,
        },
        "telemetry": {"json_logs": False, "log_level": "WARNING"},
        # The journal's fsync buys power-loss safety, which a simulation does not need; what is
        # journaled, and when, is the same without it.
        "storage": {"data_dir": str(data_dir), "journal_fsync": False},
    }
    return AgentConfig.model_validate(raw)


def _cex_config(initial_usd: float, seed: int) -> SimConfig:
    spec = SymbolSpec(
        symbol=_SYMBOL,
        tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        min_notional_usdt=Decimal("5"),
        initial_mid=Decimal(str(round(initial_usd, 1))),
    )
    return SimConfig(symbols=(spec,), initial_balance_usdt=Decimal("1000000"), seed=seed)


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Placed:
    """What one target quote was priced from: its decision's terms and the world then."""

    model_price: float
    reservation: float
    funding_shift: float
    momentum_shift: float
    fair_estimate: float
    fair_then: float


@dataclass(slots=True)
class _Recorder:
    """Per-step observations and invariant bookkeeping."""

    start_ts: int
    hard_cap_base: float
    opts: StressOptions
    samples: list[Sample] = field(default_factory=list)
    block_t: dict[int, float] = field(default_factory=dict)
    min_collateral: float = math.inf
    over_cap_run_s: float = 0.0
    cap_violations: list[str] = field(default_factory=list)
    withdraw_violations: list[str] = field(default_factory=list)
    withdraw_since_s: float | None = None
    withdraw_clear_block: int | None = None
    cex_equity: Callable[[], float] | None = None
    """The exchange account's equity now (wallet plus unrealized at its mid), read from the
    exchange simulator; None: the report falls back to the agent's ledger for the drawdown."""
    funding_snapshots: list[FundingSnapshotRecord] = field(default_factory=list)
    last_epoch: int | None = None
    rate_before: float = 0.0
    quote_txs_seen: int = 0
    sent_basis: dict[tuple[Side, int], _Placed] = field(default_factory=dict)
    """Each target price of the latest quote batches sent, and what it was priced from."""
    order_basis: dict[int, _Placed] = field(default_factory=dict)
    """What each resting order of ours was priced from (traced when it first rests)."""

    def record(
        self, agent: Agent, step: Step, world: ChainWorld, cancels_included: list[float]
    ) -> None:
        snap = agent.last_snapshot
        t = step.t_s
        st = agent.status
        basis = self._centre_basis(agent, step)
        bids = [o.price_ticks for o in snap.open_orders if o.side is Side.BID] if snap else []
        asks = [o.price_ticks for o in snap.open_orders if o.side is Side.ASK] if snap else []
        tick = agent.params.tick_size
        pnl = agent.ledger.snapshot()
        state = agent.risk.state.name
        if snap is not None:
            self.block_t.setdefault(snap.block_number, t)
            if snap.position is not None:
                self.min_collateral = min(self.min_collateral, snap.position.collateral)
        self.samples.append(
            Sample(
                t_s=t,
                index=step.index_usd,
                fair=step.target_dex_mid_usd,
                dex_mid=st.mid if st.mid is not None else math.nan,
                our_bid=max(bids) * tick if bids else None,
                our_ask=min(asks) * tick if asks else None,
                inventory_base=st.inventory_base,
                pnl=PnlSnapshot(
                    spread=pnl.spread,
                    inventory=pnl.inventory,
                    funding=pnl.funding,
                    fees=pnl.fees,
                    gas=pnl.gas,
                    hedge=pnl.hedge,
                    basis=pnl.basis,
                    total=pnl.total,
                ),
                base_fee_gwei=st.base_fee_gwei,
                inclusion_delay_s=st.inclusion_delay_s if st.quote_txs else None,
                risk_state=state,
                # Read after the runner drained the hedger, not the status's copy: that one is
                # taken while the hedger's task may still be talking to the exchange, so it
                # depended on how fast the machine was.
                hedge_position_base=(
                    agent.hedger.hedge_position_base() if agent.hedger is not None else 0.0
                ),
                equity_usd=self._equity(agent, step, pnl.gas),
                engine_drawdown_frac=agent.risk.drawdown_frac,
                centre_basis=basis,
            )
        )
        self._funding_snapshot(agent, world, t)
        # Hard cap: beyond it only while risk has declared the breach, and only for a while.
        dt_s = world_dt(self.samples)
        if abs(st.inventory_base) > self.hard_cap_base:
            self.over_cap_run_s += dt_s
            if state == "NORMAL" or self.over_cap_run_s > self.opts.inventory_transient_s:
                self.cap_violations.append(
                    f"t={t:.0f}s |inv| {abs(st.inventory_base):.3f} > {self.hard_cap_base:.3f} "
                    f"in {state} for {self.over_cap_run_s:.0f}s"
                )
        else:
            self.over_cap_run_s = 0.0
        # Withdrawal: once its cancel is included (and a couple of blocks later), the book is empty.
        if state in _WITHDRAWN:
            if self.withdraw_since_s is None:
                self.withdraw_since_s = t
                self.withdraw_clear_block = None
            since_abs = self.start_ts + self.withdraw_since_s
            if self.withdraw_clear_block is None and any(c >= since_abs for c in cancels_included):
                self.withdraw_clear_block = world.block + self.opts.withdraw_grace_blocks
            if (
                snap is not None
                and self.withdraw_clear_block is not None
                and snap.block_number >= self.withdraw_clear_block
                and snap.open_orders
            ):
                self.withdraw_violations.append(
                    f"t={t:.0f}s {len(snap.open_orders)} orders open in {state} after its cancel"
                )
        else:
            self.withdraw_since_s = None
            self.withdraw_clear_block = None

    def _equity(self, agent: Agent, step: Step, gas_usd: float) -> float | None:
        """Both legs at the world's prices, less gas: what the drawdown limit is judged on.

        The DEX account is the chain's (collateral, funding owed, the position at the venue's
        mark) with the position re-marked at the world's fair value; the exchange account is the
        simulator's. Neither goes through the agent's own estimates of fair value.
        """
        snap = agent.last_snapshot
        pos = snap.position if snap is not None else None
        if self.cex_equity is None or pos is None or snap is None or not snap.mark:
            return None
        base = pos.size_lots * agent.params.lot_size
        dex = pos.equity + base * (step.target_dex_mid_usd - snap.mark)
        return dex + self.cex_equity() + gas_usd

    def _centre_basis(self, agent: Agent, step: Step) -> CentreBasis | None:
        """Trace our best bid and ask to the decisions that placed them (the centre's terms).

        A batch sent since the last step maps each of its target prices to its decision; an
        order seen resting for the first time takes the latest batch's entry at its side and
        price. The best bid and ask the sample reports are then averaged over their entries.
        """
        d = agent.decision
        if agent.status.quote_txs != self.quote_txs_seen and d is not None:
            self.quote_txs_seen = agent.status.quote_txs
            # Funding moves r down by its shifts (the carry's take-back included); momentum up.
            funding = -(d.funding_drift + d.snapshot_shift + d.carry_skew)
            for lv in d.ladder:
                self.sent_basis[(lv.side, int(lv.price_ticks))] = _Placed(
                    model_price=lv.price,
                    reservation=d.reservation_price,
                    funding_shift=funding,
                    momentum_shift=d.momentum_shift,
                    fair_estimate=d.fair_value,
                    fair_then=step.target_dex_mid_usd,
                )
        snap = agent.last_snapshot
        if snap is None:
            return None
        live = {o.order_id for o in snap.open_orders}
        self.order_basis = {i: b for i, b in self.order_basis.items() if i in live}
        for o in snap.open_orders:
            if o.order_id not in self.order_basis:
                placed = self.sent_basis.get((o.side, int(o.price_ticks)))
                if placed is not None:
                    self.order_basis[o.order_id] = placed
        tops: list[_Placed] = []
        for side in (Side.BID, Side.ASK):
            orders = [o for o in snap.open_orders if o.side is side]
            if not orders:
                return None
            best = max(o.price_ticks * side.sign for o in orders) * side.sign
            traced = [
                self.order_basis[o.order_id]
                for o in orders
                if o.price_ticks == best and o.order_id in self.order_basis
            ]
            if not traced:
                return None
            tops.append(traced[0])

        def mean(f: Callable[[_Placed], float]) -> float:
            return (f(tops[0]) + f(tops[1])) / 2.0

        return CentreBasis(
            model_centre=mean(lambda b: b.model_price),
            reservation=mean(lambda b: b.reservation),
            funding_shift=mean(lambda b: b.funding_shift),
            momentum_shift=mean(lambda b: b.momentum_shift),
            fair_estimate=mean(lambda b: b.fair_estimate),
            fair_then=mean(lambda b: b.fair_then),
        )

    def _funding_snapshot(self, agent: Agent, world: ChainWorld, t: float) -> None:
        """At the first step past a funding boundary: the inventory held, and on which side."""
        interval = world.spec.funding_interval_s
        epoch = world.last_ts // interval
        if self.last_epoch is not None and epoch > self.last_epoch:
            inv = agent.status.inventory_base
            rate = self.rate_before
            paying = max(inv, 0.0) if rate > 0 else max(-inv, 0.0) if rate < 0 else 0.0
            self.funding_snapshots.append(FundingSnapshotRecord(t, rate, inv, paying))
        self.last_epoch = epoch
        self.rate_before = agent.status.funding_rate_predicted


def _cex_equity(sim: SimServer) -> float:
    """The exchange simulator's account: wallet (fees and realized P&L in) plus unrealized."""
    acct = sim.exchange.balance()[0]
    return float(acct["balance"]) + float(acct["crossUnPnl"])


def world_dt(samples: list[Sample]) -> float:
    """Seconds since the previous sample (the first counts one block)."""
    if len(samples) < 2:
        return 1.0
    return samples[-1].t_s - samples[-2].t_s


class _PacedStatusSink(StatusSink):
    """The agent's ``status.json`` once per simulated minute instead of once per second.

    Nobody watches a run that goes as fast as it can (the paced demo keeps the agent's own
    sink), and at 1 s blocks the per-second write (a file replace plus a WAL checkpoint) was a
    tenth of a lock-step. Only when the file is written changes: the agent's decisions never
    read it.
    """

    def due(self, min_interval_s: float = 1.0) -> bool:
        return super().due(max(min_interval_s, _STATUS_EVERY_S))


def _fresh_data_dir(out_dir: Path) -> Path:
    """Create `out_dir` and an empty agent data dir (journal, status) inside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / "agent"
    if data_dir.exists():
        for p in sorted(data_dir.iterdir()):
            p.unlink()
    data_dir.mkdir(exist_ok=True)
    return data_dir


async def _shutdown_mining(agent: Agent, world: ChainWorld, clock: SimTime) -> None:
    """Shut the agent down (cancel all), mining a block whenever a transaction of ours waits.

    Blocks follow the agent's transactions, not the wall clock (an earlier version mined one per
    50 ms of wall time, so a slow machine mined more blocks and the same seed's report differed),
    and each block is one simulated second later.

    A block is mined only once the pipeline has recorded the waiting transaction as sent. The
    node holds it as soon as ``eth_sendRawTransaction`` arrives, but the pipeline stamps
    ``sent_s`` (the simulated clock) only when the answer comes back: mining in between moved
    the clock under that stamp, so the inclusion delay was 1 s or 0 s depending on how busy the
    machine was (the ``gas`` sub-fields that differed between two runs of one seed).
    """
    # A quote sent in the last step lands first, so the shutdown never races it: whether the
    # cancel-all replaced it or followed it would depend on wall time.
    if _agent_txs_waiting(world):
        clock.set(clock() + 1.0)
        world.mine(int(clock()))
    task = asyncio.create_task(agent.shutdown(timeout_s=30.0))
    mined = 0
    while mined < 60:
        done, _pending = await asyncio.wait({task}, timeout=0.01)
        if done:
            break
        if not _all_sent(agent) or not _agent_txs_waiting(world):
            continue
        clock.set(clock() + 1.0)
        world.mine(int(clock()))
        mined += 1
    await task


def _all_sent(agent: Agent) -> bool:
    """True when every unconfirmed transaction of the agent's pipeline is stamped as sent."""
    from agent.venue.dex import DexVenue

    if not isinstance(agent.venue, DexVenue):
        return True
    return all(p.sent_s is not None for p in agent.venue.pipe.pending())


def _agent_txs_waiting(world: ChainWorld) -> bool:
    """True when a transaction of the agent waits in the node's pool."""
    content = world.node.txpool_content()
    me = world.agent_address.lower()
    return any(
        sender.lower() == me for group in ("pending", "queued") for sender in content.get(group, {})
    )


def _apply_cex(sim: SimServer, step: Step, rng: random.Random, current: dict[str, Any]) -> None:
    f = step.cex
    want: dict[str, Any] = {
        "outage": f.outage,
        "partial_fill_prob": f.partial_fill_prob,
        "rate_limit_next": 1 if f.reject_429_prob > 0 and rng.random() < f.reject_429_prob else 0,
    }
    changes = {k: v for k, v in want.items() if current.get(k) != v or k == "rate_limit_next"}
    if changes.get("rate_limit_next", 0) == 0 and current.get("rate_limit_next", 0) == 0:
        changes.pop("rate_limit_next", None)
    if changes:
        sim.set_faults(**changes)
        current.update(changes)


def _prepare_world(
    fork: Anvil, upstream: Upstream, scenario: Scenario, tl: Timeline, data_dir: Path
) -> tuple[ChainWorld, int, int]:
    """Set the fork up for a run (lock-step and live alike): the market, a fresh oracle, funded
    roles, the makers' ladders, the first funding boundary.

    Returns the world, the first step's timestamp (a funding boundary) and the agent's nonce
    before it starts (its start-up transactions count too). Writes the deployment record the
    agent's config names.
    """
    chain = scenario.chain.resolved
    dep = upstream.market_for(scenario.funding.interval_s)
    if dep is None and upstream.remote:
        dep = upstream.markets[0]
        log.warning(
            "the market at %s settles funding every %ds, not every %gs as %s scripts: "
            "funding snapshots follow the market",
            upstream.url,
            dep.funding_interval_s,
            scenario.funding.interval_s,
            scenario.name,
        )
    if dep is None:
        log.info(
            "no market with a %gs funding interval upstream: deploying one on the fork",
            scenario.funding.interval_s,
        )
        dep = deploy_market(fork, round(scenario.funding.interval_s), scenario.price.initial_usd)
    world = ChainWorld(
        fork,
        dep,
        arbitrage=scenario.arbitrage,
        native_price_usd=chain.native_price_usd,
        tip_gwei=chain.tip_gwei,
    )
    interval = world.spec.funding_interval_s
    start_ts = (world.last_ts // interval + 1) * interval
    if start_ts - world.last_ts < 3:
        start_ts += interval
    # Set-up blocks: a fresh oracle (views revert on a stale one), funded roles, the makers'
    # ladders, and any funding interval the time warp to the first boundary left open.
    world.push_oracle(scenario.price.initial_usd)
    world.mine(start_ts - 2)
    world.ensure_funded(DEFAULT_DEPOSITS_USD)
    world.refresh_makers(tl[0].target_dex_mid_usd, float(start_ts), force=True)
    world.mine(start_ts - 1)
    world.settle_funding_now()
    world.mine(start_ts)
    world.check_world_receipts()
    # Before the agent starts: its start-up transactions (a cancel-all) count too.
    nonce0 = int(fork.rpc("eth_getTransactionCount", [world.agent_address, "latest"]), 16)
    (data_dir / "deployment.json").write_text(json.dumps(dep.to_record()))
    return world, start_ts, nonce0


async def run_scenario(
    scenario: Scenario,
    upstream: Upstream,
    out_dir: Path,
    opts: StressOptions | None = None,
    *,
    on_step: Callable[[Agent, ChainWorld, Step], Awaitable[None] | None] | None = None,
    stop: asyncio.Event | None = None,
) -> StressResult:
    """Run `scenario` on a fresh fork of `upstream` and write its report into `out_dir`."""
    from agent.app import build_agent  # heavy: only when a run starts

    opts = opts or StressOptions()
    if opts.chain_profile is not None:
        scenario = scenario.with_chain_profile(opts.chain_profile)
    if opts.short_s is not None:
        scenario = scenario.short_run(opts.short_s)
    tl: Timeline = expand(scenario, opts.seed)
    wall0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data_dir = _fresh_data_dir(out_dir)
    base_cfg = load_config(opts.config_path) if opts.config_path is not None else None

    fork_cfg = AnvilConfig(fork_url=upstream.url, fork_block=upstream.block, no_mining=True)
    fork = await asyncio.to_thread(Anvil(fork_cfg).start)
    try:
        world, start_ts, nonce0 = _prepare_world(fork, upstream, scenario, tl, data_dir)

        clock = SimTime(start_ts)
        cex_clock = ManualClock(start_ts * 1000)
        sim = SimServer(
            _cex_config(scenario.price.initial_usd, opts.seed),
            clock=cex_clock,
            faults=Faults(latency_ms=0.0, jitter_ms=0.0, retry_after_s=0.05),
        )
        os.environ[_KEY_ENV] = sim.config.api_key
        os.environ[_SECRET_ENV] = sim.config.api_secret
        async with sim:
            cfg = _agent_config(
                fork.url,
                data_dir / "deployment.json",
                data_dir,
                sim.url,
                base_cfg,
                scenario,
                opts.strategy,
            )
            agent, closers = await build_agent(cfg, clock=clock)
            if opts.pace is None:
                agent.sink = _PacedStatusSink(agent.sink.data_dir, agent.sink.clock)
            # Lock-step is a function of the seed: a cycle waits for its exchange read however
            # long a busy machine takes to answer it (live cycles wait at most 0.25 s).
            agent.cex_mid_wait_s = None
            if agent.hedger is not None:
                # The exchange answers in simulated time, so the client's wall-clock retry waits
                # shrink to almost nothing: the retry sequence is the same, a step never stalls.
                client = agent.hedger.client
                client.config = dataclasses.replace(
                    client.config,
                    backoff_base_s=0.001,
                    backoff_max_s=0.005,
                    lookup_interval_s=0.001,
                )
            rec: _Recorder | None = None
            try:
                await agent.start()
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
                rng = random.Random(opts.seed)
                faults: dict[str, Any] = {}
                pace_t0 = time.monotonic()
                loop_t0 = time.perf_counter()
                for step in tl:
                    if stop is not None and stop.is_set():
                        break
                    if opts.pace is not None:
                        lag = pace_t0 + step.t_s * opts.pace - time.monotonic()
                        if lag > 0:
                            await asyncio.sleep(lag)
                    world.play(
                        step,
                        start_ts,
                        settle_grace_s=opts.settle_grace_s,
                        quiet_base_fee_gwei=scenario.quiet_base_fee_gwei,
                    )
                    now = start_ts + step.t_s
                    clock.set(now)
                    cex_clock.set(round(now * 1000))
                    sim.exchange.set_mid(_SYMBOL, round(step.cex_mid_usd, 1))
                    _apply_cex(sim, step, rng, faults)
                    await agent.step()
                    if agent.hedger is not None:
                        await agent.hedger.hedger.drain()
                    cancels = (
                        [
                            d.included_s
                            for d in agent.journal.inclusion_delays(start_ts)
                            if d.purpose == "cancel_all"
                        ]
                        if agent.risk.state.name in _WITHDRAWN
                        else []
                    )
                    rec.record(agent, step, world, cancels)
                    if on_step is not None:
                        res = on_step(agent, world, step)
                        if asyncio.iscoroutine(res):
                            await res
                loop_wall = time.perf_counter() - loop_t0
                if faults:
                    sim.set_faults(outage=False, partial_fill_prob=0.0, rate_limit_next=0)
                # A quiet tail: whatever waited in the pool (a stall at the end) lands and the
                # agent sees it, so the final position checks compare settled states.
                last = tl[len(tl) - 1]
                for _ in range(_TAIL_BLOCKS):
                    world.push_oracle(last.oracle_usd)
                    world.mine(int(clock()) + 1)
                    clock.set(float(world.last_ts))
                    cex_clock.set(round(clock() * 1000))
                    await agent.step()
                    if agent.hedger is not None:
                        await agent.hedger.hedger.drain()
                await _shutdown_mining(agent, world, clock)
                world.mine(int(clock()) + 1)
                result = _finish(
                    scenario, tl, opts, agent, world, sim, rec, upstream, out_dir,
                    start_ts=start_ts, pos0=pos0, epoch0=epoch0, started_at=started_at,
                    nonce0=nonce0,
                )  # fmt: skip
            finally:
                if agent.hedger is not None:
                    with contextlib.suppress(Exception):
                        await agent.hedger.client.aclose()
                for close in closers:
                    res = close()
                    if asyncio.iscoroutine(res):
                        await res
            world.close()
    finally:
        await asyncio.to_thread(fork.stop)
    wall = time.perf_counter() - wall0
    return StressResult(
        scenario=scenario.name,
        seed=opts.seed,
        report=result[0],
        paths=result[1],
        invariants=result[2],
        world=world.stats,
        wall_s=wall,
        loop_wall_s=loop_wall,
        steps=len(rec.samples) if rec is not None else 0,
    )


def _finish(
    scenario: Scenario,
    tl: Timeline,
    opts: StressOptions,
    agent: Agent,
    world: ChainWorld,
    sim: SimServer,
    rec: _Recorder,
    upstream: Upstream,
    out_dir: Path,
    *,
    start_ts: int,
    pos0: int,
    epoch0: int,
    started_at: str,
    nonce0: int,
) -> tuple[dict[str, Any], ReportPaths, tuple[InvariantResult, ...]]:
    """Check the invariants, build the run record and write the report."""
    lot = agent.params.lot_size
    unit = 10 ** agent.venue.market_info().collateral_decimals
    fills = agent.journal.fills()
    signed = sum(f.size_lots if f.side is Side.BID else -f.size_lots for f in fills)
    collateral, chain_pos, _equity = world.account(world.agent_address)
    snap = agent.last_snapshot
    seen = snap.position.size_lots if snap is not None and snap.position is not None else None
    invariants: list[InvariantResult] = [
        InvariantResult(
            "position_matches_chain",
            chain_pos == pos0 + signed and (seen is None or seen == chain_pos),
            f"chain {chain_pos} lots, start {pos0} + fills {signed}, agent saw {seen}",
        )
    ]
    open_after = world.open_order_ids(world.agent_address)
    wv = rec.withdraw_violations
    invariants.append(
        InvariantResult(
            "no_orders_after_withdrawal",
            not wv and not open_after,
            "; ".join(wv[:3]) or f"{len(open_after)} orders open after shutdown",
        )
    )
    state = sim.state()
    dup = state["client_ids_accepted_more_than_once"]
    invariants.append(InvariantResult("no_duplicate_hedge", not dup, f"duplicates: {dup}"))
    cv = rec.cap_violations
    invariants.append(
        InvariantResult(
            "inventory_within_hard_cap",
            not cv,
            "; ".join(cv[:3]) or f"hard cap {rec.hard_cap_base:g} base",
        )
    )
    negatives = []
    for index in sorted(DEFAULT_DEPOSITS_USD):
        c, _, _ = world.account(world.roles.address(index))
        if c < 0:
            negatives.append(f"account {index}: {c / unit:.2f}")
    if rec.min_collateral < 0:
        negatives.append(f"agent collateral fell to {rec.min_collateral:.2f}")
    invariants.append(
        InvariantResult(
            "no_negative_collateral",
            not negatives,
            "; ".join(negatives) or f"agent collateral {collateral / unit:,.2f}",
        )
    )
    interval = world.spec.funding_interval_s
    settled_by = world.last_ts - opts.settle_grace_s - 2
    expected = max(0, int(settled_by // interval) - start_ts // interval)
    epoch1 = world_epoch(world)
    invariants.append(
        InvariantResult(
            "funding_settled",
            epoch1 - epoch0 >= expected,
            f"{epoch1 - epoch0} intervals closed, {expected} boundaries passed "
            f"({world.stats.funding_settled_by_world} settled by the world's keeper)",
        )
    )

    chain = scenario.chain.resolved
    txs_all = _tx_records(agent, world, start_ts, nonce0, chain.l1_data_fee_per_byte_gwei)
    meta = _run_meta(scenario, opts, agent, upstream, started_at, interval)
    limits = RunRecord(
        meta=meta, samples=rec.samples, txs=txs_all, funding_snapshots=rec.funding_snapshots
    )
    paying = paying_side(limits)
    invariants.append(
        InvariantResult(
            "paying_side_within_cap",
            paying["breaches"] == 0,
            f"max {paying['max_base']:.4f} base on the paying side over "
            f"{paying['snapshots']} funding snapshots; cap {paying['cap_base']:g}, "
            f"{paying['breaches']} over it",
        )
    )
    dd = drawdown_limit(limits)
    invariants.append(
        InvariantResult(
            "drawdown_within_limit",
            dd["breached"] is False,
            _drawdown_detail(dd),
        )
    )

    def t_of(block: int) -> float:
        return rec.block_t.get(block, float("nan"))

    fill_records = [
        FillRecord(
            t_s=t_of(f.block_number),
            side="buy" if f.side is Side.BID else "sell",
            price=f.price_ticks * agent.params.tick_size,
            size_base=f.size_lots * lot,
            fee_usd=f.fee_raw / unit,
            liquidity="maker" if f.order_id else "taker",
        )
        for f in fills
    ]
    transitions = [
        TransitionRecord(t_s=ms / 1000 - start_ts, from_state=a, to_state=b, reason=why)
        for ms, a, b, why in agent.journal.risk_transitions()
    ]
    hedges = _hedge_records(state, tl, start_ts)
    record = RunRecord(
        meta=meta,
        samples=rec.samples,
        fills=fill_records,
        transitions=transitions,
        txs=txs_all,
        hedges=hedges,
        invariants=tuple(invariants),
        events=[EventRecord(e.at_s, e.end_s, e.kind, e.label) for e in scenario.events()],
        funding_snapshots=rec.funding_snapshots,
    )
    paths = write_report(record, out_dir)
    report: dict[str, Any] = json.loads(paths.json.read_text())
    report["world"] = dataclasses.asdict(world.stats)
    report["agent"] = {
        "cycle_errors": _cycle_errors(agent.metrics.render()),
        "quote_txs": agent.status.quote_txs,
        "skipped_refreshes": agent.status.skipped,
        "fills_seen": agent.status.fills,
    }
    paths.json.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report, paths, tuple(invariants)


def _run_meta(
    scenario: Scenario,
    opts: StressOptions,
    agent: Agent,
    upstream: Upstream,
    started_at: str,
    interval: int,
) -> RunMeta:
    cfg = agent.base_params
    chain = scenario.chain.resolved
    band = agent.risk.limits.drawdown_frac
    return RunMeta(
        scenario=scenario.name,
        seed=opts.seed,
        started_at=started_at,
        duration_s=scenario.duration_s,
        chain=f"{upstream.url} @ {upstream.block} ({scenario.chain.profile})",
        agent_config={
            "model": str(getattr(cfg.model, "value", cfg.model)),
            "gamma": cfg.gamma,
            "levels": cfg.levels,
            "base_size_base": cfg.base_size_base,
            "inventory_cap_base": cfg.inventory_cap_base,
            "max_fee_gwei": agent.max_fee_gwei,
            "funding_interval_s": interval,
            "chain_profile": scenario.chain.profile,
            "quiet_base_fee_gwei": scenario.quiet_base_fee_gwei,
            "l1_data_fee_per_byte_gwei": chain.l1_data_fee_per_byte_gwei,
        },
        native_price_usd=cfg.native_price_quote,
        inventory_cap_base=cfg.inventory_cap_base,
        strategy_capital_quote=agent.risk.strategy_capital_quote,
        drawdown_warn_frac=band.warn,
        drawdown_limit_frac=band.breach,
    )


def _drawdown_detail(dd: dict[str, Any]) -> str:
    if dd["max_frac"] is None:
        return f"max drawdown {dd['max_usd']:,.2f} USD; no strategy capital to judge it against"
    engine = dd["engine_max_frac"]
    seen = "-" if engine is None else f"{100 * engine:.2f}%"
    return (
        f"max drawdown {dd['max_usd']:,.2f} USD = {100 * dd['max_frac']:.2f}% of "
        f"{dd['capital_quote']:,.0f} capital (limit {100 * dd['limit_frac']:.2f}%; the engine "
        f"read at most {seen})"
    )


# Journal statuses of attempts with no inclusion record (an included one always has one).
_TX_STATUS: dict[str, TxStatus] = {
    "replaced": "replaced",
    "dropped": "dropped",
    "failed": "failed",
    "included": "success",
    "reverted": "reverted",
}


def _tx_records(
    agent: Agent, world: ChainWorld, start_ts: int, nonce0: int, l1_data_fee_per_byte_gwei: float
) -> list[TxRecord]:
    """Every transaction the agent signed in the run: included, reverted, replaced, dropped.

    The journal keeps one row per signed attempt; the receipts say how the included ones ended.
    Nonces run from the account's nonce at the start to the last one journaled. An L2's L1 data
    fee is charged here (the node does not) on each included transaction's calldata bytes.
    """
    included = {d.tx_hash: d for d in agent.journal.inclusion_delays(0.0)}
    out: list[TxRecord] = []
    nonce, empty = nonce0, 0
    while empty < 3:  # a nonce gap of three: past the last transaction the agent signed
        attempts = agent.journal.txs_at_nonce(nonce)
        nonce += 1
        empty = 0 if attempts else empty + 1
        for tx in attempts:
            d = included.get(tx.tx_hash)
            if d is None:
                out.append(
                    TxRecord(
                        t_s=(tx.sent_s or tx.created_s) - start_ts,
                        purpose=tx.purpose,
                        gas_used=0,
                        effective_gas_price_gwei=0.0,
                        status=_TX_STATUS.get(tx.status, "pending"),
                        delay_s=None,
                    )
                )
                continue
            r = world.node.rpc("eth_getTransactionReceipt", [d.tx_hash])
            ok = r is not None and r.get("status") == "0x1"
            data_bytes = 0
            if l1_data_fee_per_byte_gwei > 0:
                raw = world.node.rpc("eth_getTransactionByHash", [d.tx_hash])
                data_bytes = (len(str(raw.get("input", "0x"))) - 2) // 2 if raw else 0
            out.append(
                TxRecord(
                    t_s=d.included_s - start_ts,
                    purpose=d.purpose,
                    gas_used=d.gas_used,
                    effective_gas_price_gwei=d.effective_gas_price_wei / 1e9,
                    status="success" if ok else "reverted",
                    delay_s=d.delay_s,
                    calldata_bytes=data_bytes,
                    l1_data_fee_native=data_bytes * l1_data_fee_per_byte_gwei * 1e-9,
                )
            )
    return sorted(out, key=lambda t: t.t_s)


def _cycle_errors(metrics_text: str) -> int:
    """Sum of ``mm_cycle_errors_total`` over its labels, from the Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("mm_cycle_errors_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def world_epoch(world: ChainWorld) -> int:
    """The market's current funding epoch."""
    raw = world._call(world.dep.market, world.market.encode_call("fundingState"))
    return int(world.market.decode_output("fundingState", raw)[0])


def _hedge_records(state: dict[str, Any], tl: Timeline, start_ts: int) -> list[HedgeRecord]:
    out = []
    n = len(tl)
    dt_s = tl.scenario.block_time_s
    for o in state["orders"]:
        t = int(o.get("time", o.get("updateTime", 0))) / 1000 - start_ts
        i = min(n - 1, max(0, math.ceil(t / dt_s) - 1))
        mid = float(tl.index_usd[i])
        filled = float(o["executedQty"])
        avg = float(o.get("avgPrice") or 0.0) or None
        buy = o["side"] == "BUY"
        slip = None
        if avg is not None and filled > 0:
            slip = ((avg - mid) / mid if buy else (mid - avg) / mid) * 1e4
        out.append(
            HedgeRecord(
                t_s=t,
                side="buy" if buy else "sell",
                qty_base=float(o["origQty"]),
                filled_base=filled,
                avg_price=avg,
                slippage_bps=slip,
            )
        )
    return out


# -- command lines -------------------------------------------------------------------------------


def _resolve_scenario(name: str) -> Scenario:
    return load_scenario(name)


async def _run_many(
    names: list[str], args: argparse.Namespace, out_root: Path | None
) -> list[tuple[str, StressResult | BaseException]]:
    results: list[tuple[str, StressResult | BaseException]] = []
    with open_upstream(
        fork_url=args.fork_url,
        fork_block=args.fork_block,
        deployment_file=args.deployment,
        state_file=args.state,
    ) as up:
        for name in names:
            sc = _resolve_scenario(name)
            out = (
                Path(args.out) / sc.name
                if out_root is not None and len(names) > 1
                else Path(args.out or f"runs/{sc.name}-{args.seed}")
            )
            opts = StressOptions(
                seed=args.seed,
                short_s=SHORT_DURATION_S if args.short else args.duration_s,
                config_path=args.config,
                strategy=args.strategy or "shipped",
                chain_profile=args.chain_profile,
            )
            try:
                if args.mode == "live":
                    from sims.live import run_live

                    res = await run_live(sc, up, out, opts, _live_options(args))
                else:
                    res = await run_scenario(sc, up, out, opts)
                results.append((name, res))
                status = "PASS" if res.passed else "FAIL"
                print(
                    f"{sc.name}: {status} in {res.wall_s:.1f}s wall ({res.steps} steps) -> "
                    f"{res.paths.html}",
                    file=sys.stderr,
                )
            except (AgentError, OSError) as exc:
                results.append((name, exc))
                print(f"{sc.name}: ERROR {exc}", file=sys.stderr)
    return results


_MAX_RPC_DELAY_MS = 60_000.0


def parse_delay_ms(text: str) -> tuple[float, float]:
    """``--rpc-delay-ms``'s ``LO-HI`` (or one value) as wall milliseconds, 0 <= LO <= HI <= 60 s.

    Raises
    ------
    ValueError
        One line naming the flag and the form it takes.
    """
    lo, _, hi = text.partition("-")
    try:
        delay = (float(lo), float(hi or lo))
    except ValueError:
        delay = (math.nan, math.nan)
    if not (0.0 <= delay[0] <= delay[1] <= _MAX_RPC_DELAY_MS):
        raise ValueError(
            f"--rpc-delay-ms {text!r}: use LO-HI wall milliseconds with "
            f"0 <= LO <= HI <= {_MAX_RPC_DELAY_MS:.0f}, e.g. 300-800"
        )
    return delay


def _delay_arg(text: str) -> str:
    try:
        parse_delay_ms(text)
    except ValueError as exc:
        why = str(exc).removeprefix(f"--rpc-delay-ms {text!r}: ")
        raise argparse.ArgumentTypeError(why) from None
    return text


def _stress_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mm-agent stress", description=cli_main.__doc__)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--scenario", help="scenario name (sims/scenarios) or a .toml file")
    which.add_argument("--all", action="store_true", help="run every shipped scenario")
    ap.add_argument("--fork-url", help="fork this node (e.g. a testnet RPC) instead of local state")
    ap.add_argument("--fork-block", type=int, help="block to fork at (default: the state's)")
    ap.add_argument("--deployment", type=Path, help="deployment record of the market at --fork-url")
    ap.add_argument("--state", type=Path, help="fork-state file (default: build one now)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="output directory (default runs/<scenario>-<seed>)")
    ap.add_argument(
        "--short",
        action="store_true",
        help=f"{SHORT_DURATION_S:g} simulated s, or longer when a scripted move needs it (CI)",
    )
    ap.add_argument(
        "--duration-s",
        type=positive_float("simulated seconds"),
        help="shorten to this many simulated seconds",
    )
    ap.add_argument("--config", type=Path, help="mm.toml for the agent's strategy and risk")
    ap.add_argument(
        "--chain-profile",
        choices=sorted(CHAIN_PROFILES),
        help="run on this chain's costs instead of the scenario's (l1: ~1 gwei; l2: ~0.02 gwei "
        "plus an L1 data fee per calldata byte)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="agent logs at INFO")
    ap.add_argument(
        "--mode",
        choices=("lockstep", "live"),
        default="lockstep",
        help="lockstep: world and agent step together, reproducible to the cent (default); "
        "live: the agent's own run loop against a chain mining on its own clock (sims/live.py)",
    )
    ap.add_argument(
        "--speed",
        type=positive_float("simulated seconds per wall second"),
        help="live mode: simulated seconds per wall second (default 15: an hour in 4 minutes)",
    )
    ap.add_argument(
        "--rpc-delay-ms",
        type=_delay_arg,
        help="live mode: put a fault proxy before the node delaying answers by LO-HI wall ms",
    )
    from sims.seeds import add_arguments

    add_arguments(ap)
    return ap


def _live_options(args: argparse.Namespace) -> LiveOptions:
    from sims.live import DEFAULT_SPEED, LiveOptions

    delay: tuple[float, float] | None = None
    if args.rpc_delay_ms:
        try:
            delay = parse_delay_ms(str(args.rpc_delay_ms))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return LiveOptions(speed=args.speed or DEFAULT_SPEED, rpc_delay_ms=delay)


def _sweep_main(args: argparse.Namespace) -> int:
    """``--seeds`` / ``--strategy all`` / ``--json``: one table of mean ± std over seeds, per
    scenario (``--all``: every shipped scenario, one after another on the same upstream)."""
    from sims.seeds import (
        format_sweep,
        parse_seeds,
        resolve_strategies,
        run_sweep,
        summarize,
        sweep_payload,
    )

    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    strategies = resolve_strategies(args.strategy)
    base = StressOptions(
        short_s=SHORT_DURATION_S if args.short else args.duration_s,
        config_path=args.config,
        chain_profile=args.chain_profile,
    )
    names = list_scenarios() if args.all else [args.scenario]
    t0 = time.perf_counter()

    async def go() -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        with open_upstream(
            fork_url=args.fork_url,
            fork_block=args.fork_block,
            deployment_file=args.deployment,
            state_file=args.state,
        ) as up:
            for name in names:
                stem = Path(name).stem
                root = Path(args.out or "runs") / f"sweep-{stem}" if args.all else None
                out_root = root or Path(args.out or f"runs/sweep-{stem}")
                runs = await run_sweep(
                    name,
                    up,
                    out_root,
                    seeds,
                    strategies,
                    mode=args.mode,
                    base=base,
                    live=_live_options(args) if args.mode == "live" else None,
                )
                out.append((_resolve_scenario(name).name, runs))
        return out

    results = asyncio.run(go())
    payloads = [sweep_payload(summarize(runs), runs, name) for name, runs in results]
    if args.json:
        print(json.dumps(payloads if args.all else payloads[0], indent=2, allow_nan=False))
    else:
        for name, runs in results:
            print(format_sweep(summarize(runs), name))
        n = sum(len(runs) for _, runs in results)
        print(f"{n} runs ({args.mode}) in {time.perf_counter() - t0:.1f}s wall")
    return 0 if all(r.passed for _, runs in results for r in runs) else 1


def cli_main(argv: list[str]) -> int:
    """Run scripted stress scenarios on forked chain state; exit 1 if an invariant fails."""
    args = _stress_parser().parse_args(argv)
    if args.mode != "live" and (args.speed is not None or args.rpc_delay_ms):
        _stress_parser().error("--speed and --rpc-delay-ms need --mode live")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The agent's per-cycle warnings are counted in the report (cycle_err); keep the
        # terminal to one line per scenario and the table.
        logging.getLogger("agent").setLevel(logging.ERROR)
    if args.seeds or args.json or (args.strategy and args.strategy not in ("shipped",)):
        return _sweep_main(args)
    names = list_scenarios() if args.all else [args.scenario]
    out_root = Path(args.out) if args.out else (Path("runs") / "stress" if args.all else None)
    if args.all and args.out is None:
        args.out = str(out_root)
    results = asyncio.run(_run_many(names, args, out_root))
    rows = []
    ok = True
    for name, res in results:
        if isinstance(res, StressResult):
            row = summary_row(res.report)
            row["cycle_err"] = res.report["agent"]["cycle_errors"]
            row["wall_s"] = round(res.wall_s, 1)
            rows.append(row)
            ok &= res.passed
        else:
            rows.append({"scenario": name, "passed": False, "invariants": f"error: {res}"})
            ok = False
    print(format_table(rows))
    for _, res in results:
        if isinstance(res, StressResult):
            for inv in res.invariants:
                if not inv.passed:
                    print(f"  {res.scenario}: {inv.name} FAILED: {inv.detail}")
    return 0 if ok else 1


def fork_state_cli_main(argv: list[str]) -> int:
    """Build forked chain state for stress runs: ``mm-agent fork-state build --out FILE``."""
    ap = argparse.ArgumentParser(
        prog="mm-agent fork-state", description=fork_state_cli_main.__doc__
    )
    sub = ap.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="deploy, fund, seed liquidity, trade history, dump the state")
    b.add_argument("--out", type=Path, required=True, help="state file to write")
    b.add_argument("--history-blocks", type=int, default=60, help="blocks of trading history")
    b.add_argument("--interval", type=int, action="append", help="funding interval(s) to deploy")
    b.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    meta = build_fork_state(
        args.out, intervals=args.interval, history_blocks=args.history_blocks, seed=args.seed
    )
    print(
        f"fork state: {meta.state_file} (block {meta.block}, "
        f"{len(meta.markets)} markets: funding intervals "
        f"{', '.join(str(m.funding_interval_s) + 's' for m in meta.markets)}) "
        f"in {time.perf_counter() - t0:.1f}s\nsidecar: {ForkStateMeta.sidecar(meta.state_file)}"
    )
    return 0


def demo_cli_main(argv: list[str]) -> int:
    """Run the ``demo`` scenario on an embedded chain in (about) real time with the dashboard."""
    from sims.demo import run_demo

    return run_demo(argv)
