"""The orchestrator: the only module that wires the parts together.

One cycle (``Agent.step``), run on every new block, oracle update, fill, CEX price or timer tick::

    snapshot (one RPC batch) ─► events (fills, funding, reorg undo) ─► estimators
        ─► risk engine (graded state) ─► model + cost gate ─► order diff ─► one batch tx

Rules the loop keeps:

- At most one quote transaction in flight; a newer decision replaces the pending one at the same
  nonce (the venue does this), never queues behind it.
- A cancel demanded by risk outranks everything: it pre-empts a pending quote transaction.
- The loop never blocks on the CEX: hedging runs as its own task and reports health back.
- Nothing here reads the clock directly; time comes from the injected ``clock``.
- A bad RPC answer or an exchange error is logged, counted and fed to the risk engine; it never
  crashes the loop.

Operator controls work from another shell through the data dir: ``mm-agent cancel-all`` writes
``HALT`` (the agent halts and cancels), ``mm-agent resume`` writes ``RESUME``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.chain.heads import HeadWatcher, ws_url_for
from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.chain.signer import load_signer
from agent.chain.txpipe import (
    Dropped,
    Failed,
    Included,
    Replaced,
    Reverted,
    TxEvent,
    TxPipeline,
)
from agent.config import (
    AgentConfig,
    ExecutionSettings,
    key_source,
    load_config,
    read_deployment,
)
from agent.errors import (
    AgentError,
    ChainError,
    GasOverBudget,
    TxError,
    VenueError,
)
from agent.hedge.binance import BinanceFuturesClient
from agent.hedge.hedger import Hedger
from agent.keeper.duties import AccountHealth, KeeperPolicy, should_liquidate, should_settle_funding
from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    QuoteLife,
)
from agent.model.quoting import DecisionInputs, LiveQuotes, ModelParams, decide
from agent.model.quoting import RiskDirective as ModelRisk
from agent.orders import diff_orders
from agent.pnl import PnlLedger
from agent.risk.engine import RiskDirective, RiskEngine, RiskInputs, RiskState
from agent.store import Journal
from agent.telemetry import Health, MetricsRegistry, RiskTelemetry, TelemetryServer
from agent.types import Quote, Side
from agent.venue.base import PositionState
from agent.venue.dex import DexSnapshot, DexVenue

__all__ = [
    "Agent",
    "AgentStatus",
    "HedgeLeg",
    "build_agent",
    "cancel_all_cli_main",
    "cli_main",
    "status_cli_main",
]

log = logging.getLogger("agent.runtime")

_YEAR_S = 365.0 * 86_400.0
_HALT_FILE = "HALT"
_RESUME_FILE = "RESUME"
_STATUS_FILE = "status.json"
_BLIND_CYCLES_BEFORE_CANCEL = 3


class HedgeLeg:
    """Adapts the :class:`~agent.hedge.hedger.Hedger` to the runtime (health, marks, shutdown).

    The hedger schedules its own work and returns at once, so the quoting loop never waits on
    the exchange.
    """

    def __init__(
        self, hedger: Hedger, client: BinanceFuturesClient, symbol: str, clock: Callable[[], float]
    ) -> None:
        self.hedger = hedger
        self.client = client
        self.symbol = symbol
        self._clock = clock
        self._healthy_s = clock()

    async def on_position(self, dex_position_base: float, dex_mark: float, now_s: float) -> None:
        """Pass a new confirmed DEX position and mark to the hedger."""
        await self.hedger.on_position(dex_position_base, dex_mark, now_s)

    async def step(self, now_s: float) -> None:
        """Let the hedger advance slices and reconciliation."""
        await self.hedger.step(now_s)

    def health_flags(self) -> tuple[bool, bool, bool, float]:
        """(reachable, banned, rate limited, seconds since the exchange last answered well)."""
        h = self.hedger.health()
        now = self._clock()
        if h.reachable and h.consecutive_failures == 0:
            self._healthy_s = now
        return h.reachable, h.banned, h.rate_limited, now - self._healthy_s

    def hedge_position_base(self) -> float:
        """The hedge position on the exchange, signed base units."""
        return self.hedger.health().cex_position_base

    def cex_mid(self) -> float | None:
        """The exchange mark the hedger last saw."""
        m = self.hedger.attribution().cex_mark
        return m if math.isfinite(m) else None

    async def close(self, cancel_open: bool = True) -> None:
        """Finish scheduled work, cancel open hedge orders, close the connection."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hedger.drain(), timeout=2.0)
        if cancel_open:
            with contextlib.suppress(Exception):
                await self.client.cancel_all(self.symbol)
        with contextlib.suppress(Exception):
            await self.hedger.aclose()
        await self.client.aclose()


@dataclass
class AgentStatus:
    """What ``mm-agent status`` and the dashboard show."""

    state: str = "STARTING"
    block: int = 0
    block_time_s: int = 0
    index: float | None = None
    mid: float | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    inventory_base: float = 0.0
    inventory_cap_base: float = 0.0
    hedge_base: float = 0.0
    equity: float = 0.0
    pnl: dict[str, float] = field(default_factory=dict)
    base_fee_gwei: float = 0.0
    inclusion_delay_s: float = 0.0
    funding_rate_last: float = 0.0
    funding_rate_predicted: float = 0.0
    funding_in_s: float = 0.0
    quotes: list[tuple[str, float, float]] = field(default_factory=list)
    last_decision: str = ""
    triggers: list[str] = field(default_factory=list)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    fills: int = 0
    quote_txs: int = 0
    skipped: int = 0
    unload_slices: int = 0
    gas_spent_native: float = 0.0


class Agent:
    """The market-making keeper bot.

    Parameters
    ----------
    venue
        The on-chain market (connected by :meth:`start`).
    pipe
        The signing account's transaction pipeline (started by :meth:`start`).
    journal
        SQLite journal.
    model_params, risk, keeper
        Strategy, risk limits and keeper policy.
    hedger
        Optional hedging leg; None disables hedging.
    clock
        Wall-clock seconds (injected: sims drive it).
    data_dir
        Where operator control files and ``status.json`` live.
    """

    def __init__(
        self,
        *,
        venue: DexVenue,
        pipe: TxPipeline,
        journal: Journal,
        model_params: ModelParams,
        risk: RiskEngine,
        keeper: KeeperPolicy,
        hedger: HedgeLeg | None = None,
        clock: Callable[[], float] = time.time,
        data_dir: Path | None = None,
        metrics: MetricsRegistry | None = None,
        health: Health | None = None,
        expected_chain_id: int | None = None,
        max_fee_gwei: float = 200.0,
        execution: ExecutionSettings | None = None,
    ) -> None:
        self.venue = venue
        self.pipe = pipe
        self.journal = journal
        self.base_params = model_params
        self.params = model_params
        self.risk = risk
        self.keeper = keeper
        self.hedger = hedger
        self.clock = clock
        self.data_dir = data_dir
        self.metrics = metrics or MetricsRegistry()
        self.health = health or Health(clock=clock)
        self.expected_chain_id = expected_chain_id
        self.max_fee_gwei = max_fee_gwei
        self.execution = execution or ExecutionSettings()
        self._unload_intent: str | None = None
        self._failed_cycles = 0
        self._resend_cancel = False
        self._unload_last_s: float | None = None
        self.est = Estimators(
            # Seed with the model's reference volatility: an empty history must not read as a
            # volatility spike (or as calm) to the risk engine.
            EwmaVolatility(prior_sigma_rel_per_sqrt_s=model_params.ref_sigma_rel_per_sqrt_s),
            FillIntensity(bin_width=max(model_params.tick_size, 1e-9) * 2),
            BaseFeeForecaster(),
            InclusionDelay(),
            FundingPredictor(),
        )
        self.quote_life = QuoteLife(prior_s=model_params.quote_life_s)
        self.ledger = PnlLedger()
        self.status = AgentStatus()
        self.risk_telemetry = RiskTelemetry(self.metrics, log)
        self.last_snapshot: DexSnapshot | None = None
        self.directive: RiskDirective | None = None
        self._last_block = -1
        self._last_block_hash = ""
        self._fill_mids: dict[tuple[str, int], float] = {}
        self._pnl_written_s = -math.inf
        self._status_written_s = -math.inf
        self._block_seen_s = clock()
        self._position: PositionState | None = None
        self._rpc_window: deque[tuple[float, int, int]] = deque()
        self._quote_sends: deque[float] = deque()
        self._settle_tried_epoch = -1
        self._accounts: dict[str, AccountHealth] = {}
        self._cancel_sent_state: RiskState | None = None
        self._last_reason = ""
        self._equity0: float | None = None
        self._m_cycle = self.metrics.histogram(
            "mm_cycle_seconds", "Decision cycle duration", buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2)
        )
        self._m_quotes = self.metrics.counter("mm_quote_txs_total", "Quote batch transactions sent")
        self._m_skips = self.metrics.counter("mm_quote_skips_total", "Refreshes skipped by cost")
        self._m_fills = self.metrics.counter("mm_fills_total", "Own fills on the DEX")
        self._m_inv = self.metrics.gauge("mm_inventory_base", "DEX position, base units")
        self._m_pnl = self.metrics.gauge("mm_pnl", "Cumulative P&L by component", ["component"])
        self._m_errors = self.metrics.counter(
            "mm_cycle_errors_total", "Cycles that failed", ["kind"]
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, start the pipeline, reconcile (cancel orphaned orders, rebuild position)."""
        await self.venue.connect(self.expected_chain_id)
        info = self.venue.market_info()
        self.base_params = replace(
            self.base_params,
            tick_size=info.tick_size,
            lot_size=info.lot_size,
            min_notional=info.min_notional,
            maker_fee_bps=info.maker_fee_bps,
            taker_fee_bps=info.taker_fee_bps,
            funding_interval_s=float(info.funding_interval_s),
        )
        self.params = self.base_params
        await self.pipe.start()
        for sample in self.journal.inclusion_delays(since_s=self.clock() - 3_600):
            self.est.delay.update_inclusion(
                sample.submitted_s, sample.included_s, sample.delay_blocks
            )
        snap = await self.venue.snapshot()
        self._absorb_snapshot(snap)
        ref = snap.index or self._mid(snap)
        if ref:
            # Trade distances live on the price's scale: 20 bins of 2.5 bps span 50 bps from mid,
            # and the prior assumes fills thin out over about 5 bps until trades say otherwise.
            self.est.fills = FillIntensity(
                bin_width=max(self.params.tick_size, ref * 2.5e-4),
                prior_a_per_s=1.0,
                prior_k_per_price=1.0 / (ref * 5e-4),
            )
        # Orders resting from a previous run are orphans: the journal cannot vouch for them
        # matching the current decision, so they go before the first quote.
        if snap.open_orders:
            log.info("cancelling %d orphaned orders from a previous run", len(snap.open_orders))
            await self._cancel_all("orphans at start")
        self._control_files_check()
        self._note(f"started at block {snap.block_number}")

    async def shutdown(self, timeout_s: float = 6.0) -> bool:
        """Cancel every DEX order and every open CEX order, flush the journal.

        Returns True when the chain shows no order of ours resting (False: the deadline passed).
        The default deadline plus the CEX's 3 s keeps a SIGTERM exit inside the 10 s a process
        supervisor is promised.
        """
        clear = await self.cancel_all_verified(timeout_s)
        if self.hedger is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.hedger.close(cancel_open=True), timeout=3.0)
        self._write_status()
        return clear

    async def cancel_all_verified(self, timeout_s: float, why: str = "shutdown") -> bool:
        """Cancel every DEX order of ours and return True once the chain shows none resting.

        The chain is the judge: a cancel-all can lose its nonce to the quote transaction it
        pre-empted (mined first), so this re-reads the book and sends again until no order of
        ours rests or the deadline passes (False). The deadline is wall time, not the agent's
        clock, which in simulations may not move while we wait.
        """
        deadline = time.monotonic() + timeout_s
        intent: str | None = None
        while time.monotonic() < deadline:
            try:
                # Learn what was mined first, so the cancel does not replace a landed quote.
                await self._poll_pipe()
                if intent is not None:
                    st = self.pipe.status(intent)
                    if st is not None and not st.terminal:
                        await asyncio.sleep(0.1)
                        continue
                snap = await self.venue.snapshot()
                if not snap.open_orders and not self.venue.quote_in_flight():
                    return True
                intent = await self._cancel_all(why)
            except (AgentError, OSError) as exc:
                log.warning("cancel-all: %s; retrying", exc)
                await asyncio.sleep(0.2)
        log.error("cancel-all: orders may still rest on the book after %.0f s", timeout_s)
        return False

    async def run(
        self,
        stop: asyncio.Event,
        poll_interval_s: float = 0.25,
        heads: HeadWatcher | None = None,
    ) -> None:
        """Run cycles until `stop` is set, then shut down cleanly.

        A cycle runs on every new head when `heads` is subscribed, and otherwise (or in
        addition: timers, the CEX and risk cooldowns need time to pass) every `poll_interval_s`.
        """
        await self.start()
        if heads is not None:
            heads.start()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                await self.step()
                waits: set[asyncio.Future[Any]] = {stopping}
                head = asyncio.ensure_future(heads.wake.wait()) if heads is not None else None
                if head is not None:
                    waits.add(head)
                await asyncio.wait(waits, timeout=poll_interval_s, return_when="FIRST_COMPLETED")
                if head is not None:
                    head.cancel()
                    heads.wake.clear()  # type: ignore[union-attr]
        finally:
            stopping.cancel()
            if heads is not None:
                await heads.stop()
            await self.shutdown()

    # -- one cycle -----------------------------------------------------------------------------

    async def step(self) -> None:
        """Run one decision cycle; errors are counted and fed to risk, never raised."""
        t0 = time.perf_counter()
        try:
            await self._step()
        # A VenueError (e.g. a quote outside the market's tick range) is a failed cycle like a
        # chain error, not a crash of the loop.
        except (ChainError, TxError, VenueError) as exc:
            self._m_errors.labels(kind=type(exc).__name__).inc()
            log.warning("cycle failed: %s", exc)
            self._note(f"cycle error: {exc}")
            await self._after_failed_cycle()
        except Exception as exc:
            # A malformed answer (a missing field, bad hex) must not kill a keeper bot. Logged
            # with its traceback and counted, so a real bug is loud, not silent.
            self._m_errors.labels(kind="unexpected").inc()
            log.exception("cycle failed unexpectedly")
            self._note(f"cycle error (unexpected {type(exc).__name__}): {exc}")
            await self._after_failed_cycle()
        else:
            self._failed_cycles = 0
        finally:
            self._m_cycle.observe(time.perf_counter() - t0)
            self.health.beat(
                rpc_ok=self.pipe.health.ok,
                cex_ok=self.hedger.health_flags()[0] if self.hedger else True,
                risk_state=self.risk.state.name,
            )

    async def _after_failed_cycle(self) -> None:
        # Quotes resting while the agent cannot see the market are a free option for everyone
        # else: after a few blind cycles in a row, pull them (cancelAll needs no reads).
        self._failed_cycles += 1
        if self._failed_cycles % _BLIND_CYCLES_BEFORE_CANCEL == 0:
            try:
                # Learn what was mined first: a cancel that "replaces" a quote tx already
                # included would lose the nonce race and never happen.
                await self._poll_pipe()
                await self._cancel_all(f"{self._failed_cycles} failed cycles in a row")
            except Exception:  # the fail-safe must never be what crashes the loop
                log.exception("fail-safe cancel-all could not be sent; retrying in a few cycles")

    async def _step(self) -> None:
        now = self.clock()
        self._control_files_check()
        snap = await self.venue.snapshot()
        await self._ingest(snap, now)
        await self.on_snapshot(snap, now)

    async def _ingest(self, snap: DexSnapshot, now: float) -> None:
        """Take in what happened since the last cycle: venue events and transaction outcomes."""
        # Key on the head's hash, not its number: a reorg can replace the head at equal height.
        if snap.block_hash != self._last_block_hash:
            events = await self.venue.poll_events(snap.block_number, snap.block_hash)
            self._on_venue_events(events, snap, now)
            self._block_seen_s = now
            self._last_block = snap.block_number
            self._last_block_hash = snap.block_hash
            self.est.base_fee.update_block(now, snap.base_fee_wei, snap.gas_used, snap.gas_limit)
        self._absorb_snapshot(snap)
        await self._poll_pipe()
        if self._resend_cancel:
            self._resend_cancel = False
            await self._cancel_all("re-sent: the previous cancel-all did not happen")

    async def on_snapshot(self, snap: DexSnapshot, now: float) -> None:
        """The hot path: estimators → risk → model and cost gate → order diff → one batch tx.

        Quoting comes first; hedging (scheduled, never awaited), keeper duties and bookkeeping
        follow, so none of them delays the transaction.
        """
        mid = self._mid(snap)
        self._book_hedge_moves()
        if mid is not None:
            self.est.vol.update_price(now, mid)
            if snap.index:
                self.est.funding.update_premium(now, (mid - snap.index) / snap.index)
                self.ledger.mark(snap.index, mid, self.hedger.cex_mid() if self.hedger else None)
        estimates = self.est.snapshot(now)
        pos = self._position
        inventory = pos.size_lots * self.params.lot_size if pos is not None else 0.0
        directive = self.risk.evaluate(self._risk_inputs(now, snap, mid, inventory, estimates))
        self.directive = directive
        transitions = self.risk.drain_transitions()
        await self._quote(now, snap, mid, inventory, estimates, directive)
        await self._unload(now, snap, directive)
        self.risk_telemetry.record(directive, transitions)
        for tr in transitions:
            self.journal.record_risk_transition(
                int(tr.at_s * 1000), tr.from_state.name, tr.to_state.name, tr.reason
            )
            self._note(f"risk {tr.from_state.name} → {tr.to_state.name}: {tr.reason}")
        await self._hedge(inventory, snap.mark or mid or 0.0, now, directive)
        await self._keeper_duties(now, snap)
        self._update_status(snap, mid, inventory, estimates, directive)

    async def _quote(
        self,
        now: float,
        snap: DexSnapshot,
        mid: float | None,
        inventory: float,
        estimates: Any,
        directive: RiskDirective,
    ) -> None:
        if directive.cancel_all or directive.state is RiskState.HALTED:
            if (snap.open_orders or self.venue.quote_in_flight()) and (
                self._cancel_sent_state is not directive.state or not self._cancel_pending()
            ):
                await self._cancel_all(f"risk {directive.state.name}")
                self._cancel_sent_state = directive.state
            self.status.last_decision = f"withdrawn ({directive.state.name}): no quotes"
            return
        self._cancel_sent_state = None
        if mid is None or snap.index is None:
            self.status.last_decision = "no price: waiting for a two-sided book or the oracle"
            return
        cap = max(directive.inventory_cap_base, 0.0)
        self.params = replace(
            self.base_params,
            inventory_cap_base=cap or self.base_params.inventory_cap_base,
            quote_life_s=self.quote_life.expected_s(now),
        )
        own = {(int(o.side), int(o.price_ticks)) for o in snap.open_orders}
        inputs = DecisionInputs(
            time_s=now,
            mid=mid,
            index=snap.index,
            mark=snap.mark or mid,
            best_bid=self._best_other(snap, Side.BID, own),
            best_ask=self._best_other(snap, Side.ASK, own),
            bid_depth_base=sum(n for _, n in snap.book.bids) * self.params.lot_size,
            ask_depth_base=sum(n for _, n in snap.book.asks) * self.params.lot_size,
            inventory_base=inventory,
            estimates=estimates,
            seconds_to_funding=max(0.0, snap.funding.next_boundary_s - snap.block_time_s),
            risk=ModelRisk(
                size_mult=directive.size_mult,
                spread_mult=directive.spread_mult,
                allow_bid=directive.allow_bid,
                allow_ask=directive.allow_ask,
                reduce_only=directive.reduce_only,
                force_cancel=False,
            ),
        )
        live = LiveQuotes(
            quotes=tuple(Quote(o.side, o.price_ticks, o.remaining_lots) for o in snap.open_orders)
        )
        decision = decide(inputs, self.params, live)
        why = (
            f"{decision.reason}: value {decision.value.gain_quote:.4f} vs cost "
            f"{decision.cost.total_quote:.4f} (gas {decision.cost.gas_quote:.4f}, exposure "
            f"{decision.cost.exposure_quote:.4f}, funding {decision.cost.funding_delta_quote:.4f})"
        )
        if not decision.ladder and (directive.allow_bid or directive.allow_ask):
            why += (
                f"; empty ladder: sizes {decision.bid_size_base:g}/{decision.ask_size_base:g} base "
                f"are below one lot ({self.params.lot_size:g}) or the notional minimum (raise "
                "quoting.base_size_base, or lower quoting.ref_depth_base for a thin book)"
            )
        if not decision.send:
            self._m_skips.inc()
            self.status.skipped += 1
            self.status.last_decision = "skipped " + why
            self._journal_decision(now, "skip", decision, directive, why)
            return
        diff = diff_orders(snap.open_orders, decision.quotes)
        if diff.empty:
            self.status.last_decision = "book already matches the target"
            return
        try:
            await self.venue.replace_quotes(diff.cancel_ids, diff.place)
        except GasOverBudget as exc:
            self.status.last_decision = f"not sent: {exc}"
            self._journal_decision(now, "gas_over_budget", decision, directive, str(exc))
            return
        self._quote_sends.append(now)
        self.quote_life.update_send(now)
        self._m_quotes.inc()
        self.status.quote_txs += 1
        self.status.last_decision = (
            f"sent: -{len(diff.cancel_ids)} +{len(diff.place)} orders; " + why
        )
        self._journal_decision(now, "send", decision, directive, why)

    async def _unload(self, now: float, snap: DexSnapshot, d: RiskDirective) -> None:
        """Work a time-weighted unload plan with reduce-only orders, one slice at a time."""
        plan = d.unload
        if plan is None or snap.index is None or d.state is RiskState.HALTED:
            self._unload_last_s = None
            return
        if self._unload_intent is not None:
            st = self.pipe.status(self._unload_intent)
            if st is not None and not st.terminal:
                return  # one slice in flight at a time
            self._unload_intent = None
        gap = self.execution.unload_min_interval_s
        elapsed = now - self._unload_last_s if self._unload_last_s is not None else gap
        if elapsed < gap:
            return
        lot, tick = self.params.lot_size, self.params.tick_size
        slice_base = min(plan.excess_base, plan.rate_base_per_s * max(elapsed, 1.0))
        lots = int(slice_base / lot + 1e-9)
        if lots < 1:
            lots = 1 if plan.excess_base >= lot else 0
        if lots < 1:
            return
        own = {(int(o.side), int(o.price_ticks)) for o in snap.open_orders}
        opposite = Side.BID if plan.side is Side.ASK else Side.ASK
        ref = self._best_other(snap, opposite, own) or snap.index
        band = self.execution.unload_max_slippage_bps / 1e4
        if plan.side is Side.ASK:  # selling: accept down to ref × (1 − band)
            limit = math.ceil(ref * (1 - band) / tick)
        else:  # buying: pay up to ref × (1 + band)
            limit = math.floor(ref * (1 + band) / tick)
        try:
            self._unload_intent = await self.venue.reduce(plan.side, lots, max(limit, 1))
        except GasOverBudget:
            return
        self._unload_last_s = now
        self.status.unload_slices += 1
        self._note(
            f"unload {plan.side.name} {lots * lot:g} (excess {plan.excess_base:g}, "
            f"limit {max(limit, 1) * tick:,.2f})"
        )

    def _best_other(self, snap: DexSnapshot, side: Side, own: set[tuple[int, int]]) -> float | None:
        # The model must not treat our own resting quotes as "the opposite best" it may not cross.
        levels = snap.book.bids if side is Side.BID else snap.book.asks
        for tick, _ in levels:
            if (int(side), tick) not in own:
                return tick * self.params.tick_size
        return None

    def _cancel_pending(self) -> bool:
        return any(p.purpose == "cancel_all" for p in self.pipe.pending())

    async def _cancel_all(self, why: str) -> str:
        intent = await self.venue.cancel_all()
        self._note(f"cancel-all sent ({why})")
        self.journal.record_decision(int(self.clock() * 1000), "cancel_all", {"why": why})
        return intent

    # -- inputs --------------------------------------------------------------------------------

    def _mid(self, snap: DexSnapshot) -> float | None:
        bb, ba = snap.book.best_bid, snap.book.best_ask
        if bb is not None and ba is not None and bb < ba:
            return (bb + ba) / 2 * self.params.tick_size
        return snap.index

    def _absorb_snapshot(self, snap: DexSnapshot) -> None:
        self.last_snapshot = snap
        if snap.position is not None:
            self._position = snap.position
            # fundingOwed > 0 means the account will pay when next touched.
            self.ledger.set_accrued_funding(-snap.position.funding_owed)
            if self._equity0 is None:
                self._equity0 = snap.position.equity

    def _risk_inputs(
        self, now: float, snap: DexSnapshot, mid: float | None, inventory: float, est: Any
    ) -> RiskInputs:
        pos = self._position
        h = self.pipe.health
        self._rpc_window.append((now, h.total_calls, h.total_failures))
        while self._rpc_window and now - self._rpc_window[0][0] > 60.0:
            self._rpc_window.popleft()
        c0, f0 = self._rpc_window[0][1], self._rpc_window[0][2]
        calls, fails = h.total_calls - c0, h.total_failures - f0
        while self._quote_sends and now - self._quote_sends[0] > 60.0:
            self._quote_sends.popleft()
        pending = self.pipe.pending()
        oldest = min((p.sent_s for p in pending if p.sent_s is not None), default=None)
        reachable, banned, limited, cex_age = (
            self.hedger.health_flags() if self.hedger else (True, False, False, 0.0)
        )
        equity = pos.equity if pos is not None else 0.0
        maint = pos.maintenance_margin if pos is not None else 0.0
        margin_ratio = maint / equity if equity > 0 else (0.0 if maint == 0 else math.inf)
        if pos is not None and pos.size_lots != 0 and snap.mark:
            notional = abs(pos.size_lots) * self.params.lot_size * snap.mark
            liq_bps = max(0.0, (equity - maint) / notional * 1e4)
        else:
            liq_bps = 1e9
        oracle_age = (
            max(0.0, snap.block_time_s - snap.oracle_updated_s) + (now - self._block_seen_s)
            if snap.oracle_updated_s
            else 1e9
        )
        return RiskInputs(
            now_s=now,
            index_price=snap.index if snap.index is not None else (mid or math.nan),
            realized_vol_annual=est.sigma_rel_per_sqrt_s * math.sqrt(_YEAR_S)
            if hasattr(est, "sigma_rel_per_sqrt_s")
            else self.est.vol.snapshot().sigma_rel_per_sqrt_s * math.sqrt(_YEAR_S),
            inventory_base=inventory,
            inventory_cap_base=self.base_params.inventory_cap_base,
            funding_rate_predicted=est.funding_rate,
            funding_flip_prob=est.funding_flip_prob,
            funding_snapshot_in_s=max(0.0, snap.funding.next_boundary_s - snap.block_time_s),
            base_fee_gwei=snap.base_fee_wei / 1e9,
            base_fee_budget_gwei=self.max_fee_gwei,
            oldest_pending_tx_age_s=(now - oldest) if oldest is not None else 0.0,
            inclusion_delay_s=est.inclusion_delay_s,
            oracle_age_s=oracle_age if snap.index is not None else max(oracle_age, 1e6),
            block_age_s=now - self._block_seen_s,
            cex_feed_age_s=cex_age,
            rpc_error_rate=(fails / calls) if calls > 0 else 0.0,
            equity_quote=equity + self.ledger.snapshot().hedge,
            margin_ratio=margin_ratio,
            liq_distance_bps=liq_bps,
            cex_reachable=reachable,
            cex_banned=banned,
            cex_rate_limited=limited,
            orders_per_min=float(len(self._quote_sends)),
            quote_prices=tuple(o.price_ticks * self.params.tick_size for o in snap.open_orders),
        )

    # -- events --------------------------------------------------------------------------------

    def _on_venue_events(self, events: list[Any], snap: DexSnapshot, now: float) -> None:
        tick, lot = self.params.tick_size, self.params.lot_size
        unit = 10 ** self.venue.market_info().collateral_decimals
        mid = self._mid(snap) or 0.0
        for ev in events:
            if ev.kind == "trade":
                if mid > 0:
                    self.est.fills.update_trade(now, abs(float(ev.data["price"]) - mid))
                for who in (ev.data["maker"], ev.data["taker"]):
                    if who != self.venue.account.lower():
                        self._accounts.setdefault(who, AccountHealth(who, math.inf, 0.0, 1))
            elif ev.kind == "fill" and ev.fill is not None:
                f = ev.fill
                if not self.journal.insert_fill(f, int(now * 1000)):
                    continue  # already booked (restart or re-poll)
                size = f.size_lots * lot * (1 if f.side is Side.BID else -1)
                at_mid = mid or f.price_ticks * tick
                self.ledger.on_dex_fill(size, f.price_ticks * tick, f.fee_raw / unit, at_mid)
                self._fill_mids[(f.tx_hash, f.log_index)] = at_mid
                if len(self._fill_mids) > 4096:  # far beyond any reorg window
                    self._fill_mids.pop(next(iter(self._fill_mids)))
                self._m_fills.inc()
                self.status.fills += 1
                self._note(
                    f"fill {f.side.name} {f.size_lots * lot:g} @ {f.price_ticks * tick:,.2f}"
                )
            elif ev.kind == "funding":
                self.ledger.on_funding(ev.amount)
                self.journal.insert_funding(
                    ev.key.split(":")[0],
                    int(ev.key.split(":")[1]),
                    self.venue.market_address,
                    int(-ev.amount * unit),
                    0.0,
                    ev.block_number,
                    int(now * 1000),
                )
                self._note(
                    f"funding {'received' if ev.amount >= 0 else 'paid'} {abs(ev.amount):.4f}"
                )
            elif ev.kind == "funding_settled":
                self._note(f"funding settled: epoch {ev.data['epoch']} rate {ev.data['rate']:.6%}")
            elif ev.kind == "undo":
                self._note(f"reorg: undid {ev.data.get('kind')} {ev.key}")
                if ev.fill is not None and self.journal.remove_fill(
                    ev.fill.tx_hash, ev.fill.log_index
                ):
                    f = ev.fill
                    size = f.size_lots * lot * (1 if f.side is Side.BID else -1)
                    # Reverse at the mid it was booked at, so spread and fees undo exactly.
                    at_mid = self._fill_mids.pop((f.tx_hash, f.log_index), f.price_ticks * tick)
                    self.ledger.on_dex_fill(-size, f.price_ticks * tick, -f.fee_raw / unit, at_mid)

    async def _poll_pipe(self) -> None:
        for ev in await self.pipe.poll():
            self._on_tx_event(ev)

    def _on_tx_event(self, ev: TxEvent) -> None:
        if isinstance(ev, Included):
            d = ev.delay
            self.est.delay.update_inclusion(d.submitted_s, d.included_s, d.delay_blocks)
            if ev.purpose == "quote" and d.gas_used > 0:
                # The model prices a refresh at what refreshes really cost here (EWMA of receipts).
                prev = self.base_params.gas_units_per_refresh
                learned = int(0.8 * prev + 0.2 * d.gas_used)
                self.base_params = replace(self.base_params, gas_units_per_refresh=learned)
            gas = int(ev.receipt.get("gasUsed", "0x0"), 16) * int(
                ev.receipt.get("effectiveGasPrice", "0x0"), 16
            )
            self.status.gas_spent_native += gas / 1e18
            self.ledger.on_gas(gas / 1e18 * self.params.native_price_quote)
        elif isinstance(ev, Reverted):
            self._note(f"{ev.purpose} reverted: {ev.error.name or ev.error.message}")
            if ev.purpose == "settle_funding":
                self._settle_tried_epoch = -1  # try again on a later block
        elif isinstance(ev, Dropped):
            self.est.delay.update_dropped(self.clock())
        elif isinstance(ev, (Replaced, Failed)) or (
            isinstance(ev, Dropped) and ev.action == "nonce_reused"
        ):
            if ev.purpose == "cancel_all":
                # The cancel did not happen (its nonce went to a quote tx that was mined first,
                # to someone else, or the node refused it): send it again at a fresh nonce.
                self._cancel_sent_state = None
                self._resend_cancel = True
            if isinstance(ev, Failed):
                self._note(f"{ev.purpose} failed: {ev.reason}")

    # -- hedging -------------------------------------------------------------------------------

    async def _hedge(self, inventory: float, mark: float, now: float, d: RiskDirective) -> None:
        if self.hedger is None or d.state is RiskState.HALTED or mark <= 0:
            return
        try:
            await self.hedger.on_position(inventory, mark, now)
            await self.hedger.step(now)
        except AgentError as exc:  # the hedger reports through health; never stop quoting
            log.warning("hedge scheduling failed: %s", exc)

    def _book_hedge_moves(self) -> None:
        # Each CEX execution is booked with its edge against the mark the hedger saw before it,
        # minus the taker fee: that is the hedge component. Whatever the fills do not explain
        # (a reconciliation adopting the outcome of an unknown-status order) is booked at the
        # mark, so the ledger's hedge position always equals the exchange's.
        if self.hedger is None:
            return
        cex = self.hedger.cex_mid()
        for f in self.hedger.hedger.drain_fills():
            mark = f.mark if math.isfinite(f.mark) else (cex or f.price)
            self.ledger.on_cex_fill(f.signed_base, f.price, f.fee_quote, mark)
        delta = self.hedger.hedge_position_base() - self.ledger.hedge_position
        if abs(delta) > 1e-12 and cex is not None:
            self.ledger.on_cex_fill(delta, cex, 0.0, cex)

    # -- keeper --------------------------------------------------------------------------------

    async def _keeper_duties(self, now: float, snap: DexSnapshot) -> None:
        p = self.venue.params
        fees = self.pipe.last_fees
        if p is None or fees is None:
            return
        gas_price = fees.base_fee_wei + fees.tip_wei
        reward = p.keeper_reward_raw / p.unit
        native = self.params.native_price_quote
        epoch = snap.funding.epoch
        # The market refuses to settle on a stale oracle: only try with a fresh index.
        due = snap.block_time_s >= snap.funding.next_boundary_s and snap.index is not None
        if due and epoch != self._settle_tried_epoch:
            d = should_settle_funding(
                self.keeper,
                snap.block_time_s,
                snap.funding.next_boundary_s,
                reward,
                200_000,
                gas_price,
                native,
            )
            if d.act:
                self._settle_tried_epoch = epoch
                try:
                    await self.venue.settle_funding()
                    self._note("keeper: settleFunding sent")
                except GasOverBudget:
                    self._settle_tried_epoch = -1  # try again when the base fee is back down
        if not self.keeper.liquidate or snap.block_number % 5:
            return
        for acct in list(self._accounts)[:20]:
            h = await self.venue.account_health(acct)
            if h is None:
                continue
            health = AccountHealth(acct, h[0], h[1], h[2])
            self._accounts[acct] = health
            d = should_liquidate(self.keeper, health, reward, 600_000, gas_price, native)
            if d.act:
                try:
                    await self.venue.liquidate(acct)
                    self._note(f"keeper: liquidate {acct[:10]} (equity {h[0]:.2f} < {h[1]:.2f})")
                except GasOverBudget:
                    return

    # -- bookkeeping ---------------------------------------------------------------------------

    def _journal_decision(
        self, now: float, kind: str, decision: Any, d: RiskDirective, why: str
    ) -> None:
        reason = f"{kind}:{decision.reason}"
        if kind == "skip" and reason == self._last_reason:
            return  # one line per change of mind, not one per block
        self._last_reason = reason
        self.journal.record_decision(
            int(now * 1000),
            kind,
            {
                "why": why,
                "risk_state": d.state.name,
                "reservation": decision.reservation_price,
                "half_spread": decision.half_spread,
                "value": decision.value.gain_quote,
                "cost": {
                    "total": decision.cost.total_quote,
                    "gas": decision.cost.gas_quote,
                    "exposure": decision.cost.exposure_quote,
                    "funding": decision.cost.funding_delta_quote,
                },
                "ladder": [(lv.side.name, lv.price, lv.size_base) for lv in decision.ladder],
            },
        )

    def _note(self, text: str) -> None:
        self.status.events.appendleft(text)
        log.info(text)

    def _update_status(
        self, snap: DexSnapshot, mid: float | None, inventory: float, est: Any, d: RiskDirective
    ) -> None:
        s = self.status
        s.state = d.state.name
        s.block, s.block_time_s = snap.block_number, snap.block_time_s
        s.index, s.mid = snap.index, mid
        tick = self.params.tick_size
        s.best_bid = snap.book.best_bid * tick if snap.book.best_bid else None
        s.best_ask = snap.book.best_ask * tick if snap.book.best_ask else None
        s.inventory_base = inventory
        s.inventory_cap_base = d.inventory_cap_base
        s.hedge_base = self.hedger.hedge_position_base() if self.hedger else 0.0
        s.equity = self._position.equity if self._position is not None else 0.0
        s.pnl = self.ledger.snapshot().as_dict()
        s.base_fee_gwei = snap.base_fee_wei / 1e9
        s.inclusion_delay_s = est.inclusion_delay_s
        s.funding_rate_last = snap.funding.last_rate
        s.funding_rate_predicted = est.funding_rate
        s.funding_in_s = max(0.0, snap.funding.next_boundary_s - snap.block_time_s)
        s.quotes = [
            (o.side.name, o.price_ticks * tick, o.remaining_lots * self.params.lot_size)
            for o in snap.open_orders
        ]
        s.triggers = [f"{r.name}={r.value:.3g}" for r in d.readings if r.level.name != "CLEAR"]
        self._m_inv.set(inventory)
        for k, v in s.pnl.items():
            self._m_pnl.labels(component=k).set(v)
        now = self.clock()
        if now - self._pnl_written_s >= 10.0:
            self._pnl_written_s = now
            self.journal.record_decision(
                int(now * 1000),
                "pnl",
                {**s.pnl, "inventory_base": inventory, "hedge_base": s.hedge_base},
            )
        if now - self._status_written_s >= 1.0:
            self._status_written_s = now
            self._write_status()
            self.journal.checkpoint()

    def _write_status(self) -> None:
        if self.data_dir is None:
            return
        s = self.status
        payload = {k: v for k, v in s.__dict__.items() if k != "events"}
        payload["events"] = list(s.events)
        payload["written_s"] = self.clock()
        tmp = self.data_dir / (_STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(payload, default=str))
        tmp.replace(self.data_dir / _STATUS_FILE)

    def _control_files_check(self) -> None:
        if self.data_dir is None:
            return
        halt, resume = self.data_dir / _HALT_FILE, self.data_dir / _RESUME_FILE
        now = self.clock()
        if halt.exists() and self.risk.state is not RiskState.HALTED:
            self.risk.operator_halt(now, halt.read_text().strip() or "operator halt")
        if resume.exists():
            who = resume.read_text().strip() or "operator"
            resume.unlink()
            halt.unlink(missing_ok=True)
            if self.risk.state is RiskState.HALTED:
                self.risk.operator_resume(now, who)


# -- assembly and the command line ----------------------------------------------------------------


async def build_agent(
    cfg: AgentConfig, *, clock: Callable[[], float] = time.time, with_hedge: bool | None = None
) -> tuple[Agent, list[Callable[[], Any]]]:
    """Construct every part from a validated config.

    Returns the agent and the async closers to call after :meth:`Agent.run` returns.
    """
    params, limits, tx_cfg = cfg.quoting, cfg.risk, cfg.tx
    market, block = read_deployment(cfg)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    signer = load_signer(key_source(cfg), cfg.chain.chain_id)
    journal = Journal(cfg.journal_path, fsync=cfg.storage.journal_fsync)
    rpc = AsyncRpc(RpcConfig(url=cfg.chain.rpc_url, timeout_s=cfg.chain.rpc_timeout_s), clock=clock)
    abi = market_abi()
    pipe = TxPipeline(rpc, signer, journal, tx_cfg, error_abis=[abi], clock=clock)
    venue = DexVenue(
        rpc=rpc,
        pipe=pipe,
        codec=AbiCodec(abi),
        market=market,
        start_block=block,
        session=uuid.uuid4().hex[:6],
        cancel_max_fee_gwei=cfg.chain.cancel_max_fee_gwei or 5 * tx_cfg.max_fee_gwei,
    )
    closers: list[Callable[[], Any]] = [rpc.aclose]
    hedge: HedgeLeg | None = None
    if cfg.hedge.enabled if with_hedge is None else with_hedge:
        from agent.hedge.binance import ClientConfig, Credentials

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
        pipe=pipe,
        journal=journal,
        model_params=params,
        risk=RiskEngine(limits, start_s=clock(), initial_state=_restored_state(journal)),
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
        max_fee_gwei=tx_cfg.max_fee_gwei,
        execution=cfg.execution,
    )

    def close_journal() -> None:
        journal.close()

    closers.append(close_journal)
    return agent, closers


def _restored_state(journal: Journal) -> RiskState:
    # A HALT survives a restart: only an operator resumes.
    last = journal.risk_transitions()
    if last and last[-1][2] == RiskState.HALTED.name:
        return RiskState.HALTED
    return RiskState.NORMAL


async def _run_agent(cfg: AgentConfig) -> int:
    from agent.telemetry import configure_logging

    configure_logging(cfg.telemetry.log_level, json=cfg.telemetry.json_logs)
    agent, closers = await build_agent(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = TelemetryServer(
        agent.metrics,
        agent.health,
        host=cfg.telemetry.host,
        port=cfg.telemetry.port,
        allow_external_bind=cfg.telemetry.allow_external_bind,
    )
    await server.start()
    (cfg.storage.data_dir / "telemetry.port").write_text(str(server.port))
    log.info("telemetry on http://%s:%d (/metrics, /healthz)", cfg.telemetry.host, server.port)
    heads = (
        HeadWatcher(cfg.chain.ws_url or ws_url_for(cfg.chain.rpc_url))
        if cfg.chain.subscribe_heads
        else None
    )
    try:
        await agent.run(stop, poll_interval_s=cfg.chain.poll_interval_s, heads=heads)
    finally:
        await server.stop()
        for close in closers:
            res = close()
            if asyncio.iscoroutine(res):
                await res
    return 0


def cli_main(argv: list[str]) -> int:
    """``mm-agent run --config mm.toml``: run the keeper bot until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="mm-agent run", description=cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path, help="TOML config (see mm.example.toml)")
    ap.add_argument(
        "--check", action="store_true", help="live preflight (node, market, key, gas, exchange)"
    )
    ap.add_argument("--offline", action="store_true", help="with --check: format checks only")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    if args.check:
        if args.offline:
            key_source(cfg)
            print(f"{args.config}: OK")
            return 0
        from agent.preflight import format_report, run_preflight

        report, status = format_report(asyncio.run(run_preflight(cfg)), str(args.config))
        print(report)
        return status
    return asyncio.run(_run_agent(cfg))


def status_cli_main(argv: list[str]) -> int:
    """``mm-agent status --config mm.toml``: health, risk state, inventory and P&L."""
    ap = argparse.ArgumentParser(prog="mm-agent status", description=status_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--json", action="store_true", help="print the raw status JSON")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    path = cfg.storage.data_dir / _STATUS_FILE
    if not path.is_file():
        print(f"no status at {path}: is the agent running with this config?")
        return 1
    st = json.loads(path.read_text())
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    age = time.time() - float(st.get("written_s", 0))
    print(f"state {st['state']}  block {st['block']}  (status written {age:.0f} s ago)")
    print(f"index {st['index']}  mid {st['mid']}  bid {st['best_bid']}  ask {st['best_ask']}")
    print(
        f"inventory {st['inventory_base']:+.4f} (cap {st['inventory_cap_base']:.4f})  "
        f"hedge {st['hedge_base']:+.4f}  equity {st['equity']:.2f}"
    )
    pnl = st.get("pnl", {})
    print("pnl " + "  ".join(f"{k} {v:+.2f}" for k, v in pnl.items()))
    print(f"last decision: {st['last_decision']}")
    return 0


def cancel_all_cli_main(argv: list[str]) -> int:
    """``mm-agent cancel-all --config mm.toml``: halt the running agent and cancel every order."""
    ap = argparse.ArgumentParser(
        prog="mm-agent cancel-all", description=cancel_all_cli_main.__doc__
    )
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--reason", default="operator cancel-all")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    # Halt first: a running agent must not re-quote after our cancel lands.
    (cfg.storage.data_dir / _HALT_FILE).write_text(args.reason)

    async def go() -> int:
        agent, closers = await build_agent(cfg, with_hedge=cfg.hedge.enabled)
        try:
            await agent.venue.connect(cfg.chain.chain_id)
            await agent.pipe.start()
            # The same verified path as a shutdown: re-read the book, re-send a cancel that
            # lost its nonce (e.g. to the running agent's last quote), until nothing rests. No
            # status write: status.json belongs to the running agent.
            clear = await agent.cancel_all_verified(args.timeout, args.reason)
            if agent.hedger is not None:
                await agent.hedger.close(cancel_open=True)
            print("cancelAll done: no order rests" if clear else "orders may still rest")
            if not clear:
                return 1
        finally:
            for close in closers:
                res = close()
                if asyncio.iscoroutine(res):
                    await res
        return 0

    return asyncio.run(go())


def resume_cli_main(argv: list[str]) -> int:
    """``mm-agent resume --config mm.toml``: let a HALTED agent resume (operator decision)."""
    ap = argparse.ArgumentParser(prog="mm-agent resume", description=resume_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--who", default=os.environ.get("USER", "operator"))
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.storage.data_dir / _RESUME_FILE).write_text(args.who)
    print(
        "resume requested: the agent leaves HALTED on its next cycle "
        "(to WITHDRAWN, then steps down)"
    )
    return 0
