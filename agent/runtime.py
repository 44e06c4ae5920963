"""The orchestrator: a thin sequencer over the agent's components.

One cycle (``Agent.step``), run on every new block, oracle update, fill, CEX price or timer tick::

    venue.snapshot() ─► event book (fills, funding, reorg undo) ─► estimators
        ─► risk inputs ─► risk engine ─► model + cost gate ─► order diff ─► venue.replace_quotes
        ─► unload executor ─► hedge leg ─► keeper runner ─► status sink

The agent knows a venue only through :class:`~agent.venue.base.Venue`, so the same object runs
live (:class:`~agent.venue.dex.DexVenue`), in the stress runner (the same adapter on a forked
chain) and in the event-driven simulator (:class:`sims.simvenue.SimVenue`). Assembly from a config
is :mod:`agent.app`; the command line is :mod:`agent.commands`.

Rules the loop keeps:

- At most one quote transaction in flight; a newer decision replaces the pending one at the same
  nonce (the venue does this), never queues behind it.
- No quote batch is decided from a snapshot that predates our last landed order change: the
  snapshot is read again first (and the venue refuses such a batch), so a batch is never sent
  twice at consecutive nonces.
- A cancel demanded by risk outranks everything: it pre-empts a pending quote transaction.
- The loop never blocks on the CEX: hedging runs as its own task and reports health back.
- Nothing here reads the clock directly; time comes from the injected ``clock``.
- A bad RPC answer or an exchange error is logged, counted and fed to the risk engine; it never
  crashes the loop.
- The hedge leg is given a position only once it was read from the chain (None before), so no
  exchange order is ever sized from a default.
- A stop is honoured within about a second whatever the node does; :meth:`Agent.shutdown` has
  hard deadlines and says per venue whether orders may still rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Protocol, assert_never

from agent.alerts import AlertKind, Severity
from agent.book import EventBook, others_book
from agent.chain.heads import HeadWatcher
from agent.config import ExecutionSettings
from agent.errors import (
    AgentError,
    ChainError,
    ConfigError,
    ExchangeError,
    GasOverBudget,
    TxError,
    VenueError,
)
from agent.hedge.band import HedgeBandInputs, hedge_band_base
from agent.hedging import HedgeLeg
from agent.keeper.duties import KeeperPolicy
from agent.keeper.runner import KeeperRunner
from agent.logs import Event, log_event
from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    ModelEstimates,
    QuoteFillIntensity,
    QuoteLife,
)
from agent.model.fairvalue import (
    FairValue,
    FairValueEstimator,
    FairValueParams,
    PremiumFreshness,
)
from agent.model.quoting import (
    Decision,
    DecisionInputs,
    GateReason,
    LiveQuotes,
    ModelParams,
    decide,
    kept_quotes_expiring,
)
from agent.model.quoting import RiskDirective as ModelRisk
from agent.model.signals import (
    ExchangeMomentum,
    JumpDetector,
    JumpParams,
    JumpSignal,
    JumpState,
    SweepGuard,
    SweepParams,
)
from agent.model.strategies import Strategy, StrategyName, strategy
from agent.orders import OrderDiff, diff_orders
from agent.pnl import PnlLedger
from agent.risk.engine import RiskDirective, RiskEngine, RiskState, book_equity_quote
from agent.risk.inputs import CycleObservations, SlidingCount, build_risk_inputs
from agent.status import AgentStatus, ControlKind, StatusSink
from agent.store import Journal
from agent.telemetry import Children, Condition, Health, MetricsRegistry, RiskTelemetry
from agent.types import BookSnapshot, Fill, HeadRef, PositionState, Quote, Side, VenueSnapshot
from agent.unload import UnloadExecutor
from agent.venue.base import StaleSnapshot, TxIncluded, TxLost, TxOutcome, TxReverted, Venue

__all__ = ["Agent", "AgentStatus", "AlertSink", "HedgeConnect", "HedgeLeg", "WalletProbe"]

log = logging.getLogger("agent.runtime")

_BLIND_CYCLES_BEFORE_CANCEL = 3
_QUOTE_FILLS = "quote_fills"
"""The journal's name for the quote fill-intensity state."""
_SAVE_ESTIMATORS_S = 60.0
# The market's funding parameters as deployed (agent/chain/deploy.py MarketConfig): 8-hour
# interest and premium clamp, and the per-interval cap. The venue does not report them yet.
_FUNDING_INTEREST_8H = 1e-4
_FUNDING_CLAMP_8H = 5e-4
_FUNDING_CAP = 0.04
# A quote that filled a taker at fair value: the prior's arrival rate per side and its decay
# length (1/k) in bps of the price, for a thin perp DEX (the study measured ~0.05 per second).
_FILL_PRIOR_A_PER_S = 0.05
_FILL_PRIOR_DECAY_BPS = 5.0
_CEX_MID_WAIT_S = 0.25
"""Longest a cycle waits for the exchange mid read it started beside the chain snapshot."""
_MOMENTUM_HALFLIFE_S = 10.0
"""Half-life of the exchange-momentum EWMA (its noise level, for the model, follows from it)."""
_QUOTE_OPS_KEPT = 64
"""Recent quote batches whose order counts are kept until their receipt (for the gas model)."""
_HEDGE_BAND_MAX_CAP_FRAC = 0.25
"""The hedge band never lets more than this fraction of the inventory cap sit unhedged."""

_AUTH_CODES = frozenset({-1022, -2014, -2015})
_WATCH_INTERVAL_S = 1.0
_WALLET_READ_INTERVAL_S = 10.0
_MEMORY_SAVE_INTERVAL_S = 5.0
_STEP_GRACE_S = 1.0
"""How long a cycle in flight may finish after a stop before it is abandoned (shutdown's own
deadlines then bound the exit)."""
_JUMP_MEMORY = "jump_detector"
"""Key of the jump detector's memory inside the risk memory row (``RiskEngine.restore`` ignores
it: unknown keys are skipped)."""
_HEDGE_RETRY_S = (1.0, 30.0)
"""First and longest wait between tries to reach an exchange that did not answer at start
(doubling in between)."""
_HEDGE_WAIT_CANCEL_S = 10.0
"""How long each check of the DEX book while waiting for the exchange may take to clear it."""


class WalletProbe(Protocol):
    """Reads the signer's gas wallet: native balance (wei) and pending nonce."""

    async def read(self) -> tuple[int, int]:
        """Return (balance in wei, pending nonce)."""
        ...


AlertSink = Callable[[AlertKind, Severity, str], object]
"""Where operator alerts go (``Alerter.emit`` without fields); never blocks."""

HedgeConnect = Callable[[], Awaitable[HedgeLeg]]
"""Connects the exchange and resumes the hedger (``agent.app.build_hedge_leg``): raises an
:class:`~agent.errors.ExchangeError` while the exchange does not answer, a
:class:`~agent.errors.ConfigError` when it refuses the key or does not list the symbol."""


class Agent:
    """The market-making keeper bot.

    Parameters
    ----------
    venue
        Where the agent trades (connected by :meth:`start`).
    journal
        SQLite journal (fills, funding, decisions, risk transitions).
    model_params, risk, keeper
        Strategy, risk limits and keeper policy.
    hedger
        Optional hedging leg; None disables hedging (unless `hedge_connect` is given).
    hedge_connect
        Connects the hedging leg in :meth:`start`, after the DEX's orphaned orders are
        cancelled, retrying with backoff while the exchange does not answer (nothing quotes
        meanwhile); None: `hedger` is all there is.
    clock
        Wall-clock seconds (injected: sims drive it).
    data_dir
        Where operator control files and ``status.json`` live (None: nowhere, simulations).
    max_fee_gwei
        The pipeline's fee ceiling (the risk engine's gas budget).
    execution
        Unload pacing and quote expiry.
    estimators
        Estimators seeded with known priors (simulators know their scenario); None builds the
        live defaults, whose fill-intensity prior is rescaled to the price at :meth:`start`.
    gate
        ``"cost"`` sends what the cost gate approves (live). ``"every_tick"`` sends whenever the
        ladder changed: the baseline simulators judge the gate against, never for live use.
    wallet
        Reads the gas wallet (balance, pending nonce) for metrics, health and the risk engine's
        ``gas_refreshes_left``; None: not read (simulations).
    alert
        Receives operator alerts (WITHDRAWN/HALTED, gas over budget, exchange ban, low gas).
    chain_stale_s
        ``/healthz`` reports ``chain_stale`` after this long without a successful chain read.
    strategy
        A preset of :mod:`agent.model.strategies` (``shipped``, ``plain``, ``every-block``)
        applied to `model_params` once. The agent decides on every cycle (every new head when
        run with a head watcher), so ``decide_every_block`` needs nothing more: with its cost
        gate off a preset sends any change of the ladder.
    fair_value, jumps
        Settings of the fair-value estimator and the exchange jump detector.
    """

    def __init__(
        self,
        *,
        venue: Venue,
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
        estimators: Estimators | None = None,
        gate: Literal["cost", "every_tick"] = "cost",
        wallet: WalletProbe | None = None,
        alert: AlertSink | None = None,
        chain_stale_s: float = 15.0,
        strategy: Strategy | str = "shipped",
        fair_value: FairValueParams | None = None,
        jumps: JumpParams | None = None,
        hedge_connect: HedgeConnect | None = None,
    ) -> None:
        self.venue = venue
        self._hedge_connect = hedge_connect if hedger is None else None
        self.wallet = wallet
        self.alert = alert
        self.chain_stale_s = chain_stale_s
        self._read_ok_s = clock()  # last successful chain read (snapshot)
        self._gas_refreshes_left = math.inf
        self._alerted_state = risk.state
        self._memory_saved: dict[str, object] | None = None
        self._memory_states_saved: tuple[object, object] | None = None  # (risk, jump) states
        self._memory_saved_s = -math.inf
        self._requests: asyncio.Queue[
            tuple[str, dict[str, Any], asyncio.Future[dict[str, Any]]]
        ] = asyncio.Queue()
        self._request_wake = asyncio.Event()
        self._connected = False  # the venue checked chain id and market code (start)
        self.shutdown_report: dict[str, str] = {}
        """Per venue, what the last :meth:`shutdown` left (``clear`` or why not)."""
        self.gate = gate
        self.journal = journal
        self.execution = execution or ExecutionSettings()
        self.strategy = strategy if isinstance(strategy, Strategy) else _preset(strategy)
        model_params = self.strategy.params(model_params)
        # The gate prices the expiry the orders are stamped with (the execution setting).
        model_params = replace(model_params, quote_expiry_s=self.execution.quote_expiry_s)
        self.base_params = model_params
        self.params = model_params
        self._derived: tuple[ModelParams, ModelParams, float, float] | None = None
        """(base_params, params, cap, quote life) when `params` was last derived in `_quote`."""
        self.risk = risk
        self.keeper_policy = keeper
        self.hedger = hedger
        self.clock = clock
        self.data_dir = data_dir
        self.metrics = metrics or MetricsRegistry()
        self.health = health or Health(clock=clock)
        self.expected_chain_id = expected_chain_id
        self.max_fee_gwei = max_fee_gwei
        self._failed_cycles = 0
        self._failsafe_cancel: str | None = None  # intent id of the last fail-safe cancel-all
        self.cex_mid_wait_s: float | None = _CEX_MID_WAIT_S
        """Wall time a cycle waits for its exchange mid read (None: until it is answered)."""
        self._resend_cancel = False
        self._seeded_estimators = estimators is not None
        self.est = estimators or Estimators(
            # Seed with the model's reference volatility: an empty history must not read as a
            # volatility spike (or as calm) to the risk engine.
            EwmaVolatility(prior_sigma_rel_per_sqrt_s=model_params.ref_sigma_rel_per_sqrt_s),
            FillIntensity(bin_width=max(model_params.tick_size, 1e-9) * 2),
            BaseFeeForecaster(),
            InclusionDelay(),
            FundingPredictor(),
        )
        self.quote_life = QuoteLife(prior_s=model_params.quote_life_s)
        hb = risk.limits.oracle_heartbeat_s
        if fair_value is None and hb is not None:
            # A heartbeat feed is fresh for a few heartbeats: the same age the risk engine
            # withdraws at, so the oracle fallback and the oracle-age trigger agree.
            fair_value = FairValueParams(max_oracle_age_s=hb * risk.limits.oracle_breach_heartbeats)
        self.fair = FairValueEstimator(fair_value)
        self.momentum = ExchangeMomentum(_MOMENTUM_HALFLIFE_S)
        self.jumps = JumpDetector(jumps)
        self.fair_value: FairValue | None = None
        """The last fair-value estimate (None before the first cycle)."""
        self.jump: JumpSignal = self.jumps.signal()
        lim = risk.limits
        # The textbook quoter knows no toxic flow: a swept side is re-quoted at once.
        sweep_fills = 0 if self.strategy.name is StrategyName.PLAIN else lim.sweep_fills
        self.sweeps = SweepGuard(SweepParams(sweep_fills, lim.sweep_window_s, lim.sweep_pause_s))
        self._cex_seen: tuple[float, float] | None = None
        self._oracle_fed: tuple[int, bool] | None = None
        self._quote_fair: float | None = None
        """Fair value the resting quotes' distances were measured from (fills are measured so)."""
        self._live_expires_s: float | None = None
        """When the earliest of our resting quotes expires on chain (None: none, or never)."""
        # The quote batch in flight: (intent id, its target ladder, its expiry). While it is
        # pending, the gate values a new decision against it, not against the (older) resting
        # book: otherwise every cycle inside one block saw its own pending batch as missing and
        # replaced it at the same nonce, paying a fee bump each time (seen live: 7 identical
        # replacements in one 1 s block, differing only by a one-second later expiry).
        self._pending_quote: tuple[str, tuple[Quote, ...], float | None] | None = None
        self._quote_ops: dict[str, tuple[int, int]] = {}
        """Cancels and places of each recent quote batch, by intent (to read its receipt)."""
        self._stale_cancel_sent = False
        self._estimators_saved_s = -math.inf
        self._hedge_cash = 0.0
        """Cash of the hedge leg, quote currency: −Σ signed size × price − fees."""
        self.ledger = PnlLedger()
        # One freshness rule for the DEX premium, judged once per cycle and given to both fair
        # value and the ledger: with only the ledger holding it, fair value (so the model, the
        # collar and the risk engine) took a halted chain's stale book as premium.
        self._premium_freshness = PremiumFreshness(
            lim.block_age_s.warn, self.fair.params.max_dex_age_s
        )
        self._premium_fresh = False
        """This cycle's :meth:`PremiumFreshness.fresh`, read by fair value and the ledger."""
        self.status = AgentStatus()
        self.sink = StatusSink(data_dir, clock)
        self.risk_telemetry = RiskTelemetry(self.metrics, log)
        self.last_snapshot: VenueSnapshot | None = None
        self.directive: RiskDirective | None = None
        self.decision: Decision | None = None
        """The model's last decision (None in cycles that did not reach the model)."""
        self._last_block_hash = ""
        self._heads: HeadWatcher | None = None
        """The new-heads subscription while :meth:`run` runs (its pushed head saves the
        snapshot's header read)."""
        self._pnl_written_s = -math.inf
        self._block_seen_s = clock()
        self._position: PositionState | None = None
        self._rpc_window = SlidingCount(60.0)
        self._quote_sends = SlidingCount(60.0)
        self._cancel_sent_state: RiskState | None = None
        self._last_reason = ""
        self._equity0: float | None = None
        # Built in `start`, once the venue's static parameters are known.
        self._book: EventBook | None = None
        self.keeper = KeeperRunner(venue, keeper, own_account=venue.account, note=self._note)
        self.unloader = UnloadExecutor(
            venue,
            min_interval_s=self.execution.unload_min_interval_s,
            max_slippage_bps=self.execution.unload_max_slippage_bps,
            note=self._note,
        )
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
        self._fam = self.metrics.families
        # Label children set every cycle, looked up once (``labels()`` validates and locks).
        self._pnl_kids = Children(self._m_pnl)
        self._open_orders_kids = Children(self._fam.open_orders)
        self._outcome_kids = Children(self._fam.tx_outcomes)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, reconcile (cancel orphaned orders, rebuild position), build the event book."""
        await self.venue.connect(self.expected_chain_id)
        self._connected = True
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
        self._book = EventBook(
            self.journal,
            self.ledger,
            info,
            self.venue.account,
            on_trade=lambda t_s, dist: self.est.fills.update_trade(t_s, dist),
            on_account=self.keeper.learn,
            note=self._note,
            on_own_fill=self._on_own_fill,
        )
        for sample in self.journal.inclusion_delays(since_s=self.clock() - 3_600):
            self.est.delay.update_inclusion(
                sample.submitted_s, sample.included_s, sample.delay_blocks
            )
        # The crash posture survives a restart with the risk engine's memory (saved together):
        # a keeper killed while its quotes were pulled for a jump must not come back quoting.
        memory = self.journal.risk_memory()
        jump_memory = memory.get(_JUMP_MEMORY) if memory is not None else None
        if isinstance(jump_memory, dict):
            self.jumps.restore(jump_memory)
            self.jump = self.jumps.signal()
        snap = await self.venue.snapshot()
        self._absorb_snapshot(snap)
        self._calibrate_estimators(snap)
        # Orders resting from a previous run are orphans: the journal cannot vouch for them
        # matching the current decision, so they go before the first quote. So does a batch of
        # that run still waiting to be mined: the cancel-all takes its nonce.
        if snap.open_orders or self.venue.quote_in_flight():
            log.info(
                "cancelling %d orphaned orders from a previous run%s",
                len(snap.open_orders),
                " and its quote batch still in flight" if self.venue.quote_in_flight() else "",
            )
            await self._cancel_all("orphans at start")
        if self._hedge_connect is not None:
            await self._connect_hedge()
        self._control_files_check()
        self._note(f"started at block {snap.block_number}")

    async def _connect_hedge(self) -> None:
        """Reach the exchange at start; while it does not answer, keep the DEX book clear of ours.

        Runs after the orphans' cancel-all was sent. A quote resting while no fill of it can be
        hedged is exposure nobody manages, so until the exchange answers the agent quotes
        nothing and re-checks, at every try, that no order of ours rests (the previous run's
        batch may be mined late; a reorg may bring an order back); ``/healthz`` says
        ``exchange_down``, ``status.json`` says why, operator requests are served. Tries come
        at growing intervals (:data:`_HEDGE_RETRY_S`). Once connected, the hedger resumes (its
        unknown orders are looked up by client order id) and is armed only by the first DEX
        position the loop reads from the chain: it hedges the confirmed position against the
        exchange's own, never a remembered target, so nothing is hedged twice.

        Raises
        ------
        ConfigError
            The exchange refuses the API key or does not list the symbol: a restart cannot fix
            that, so the run ends (its shutdown verifies the DEX book is clear).
        """
        assert self._hedge_connect is not None
        wait_s = _HEDGE_RETRY_S[0]
        tries = 0
        while True:
            tries += 1
            try:
                self.hedger = await self._hedge_connect()
            except ConfigError:
                raise
            # An answer of the wrong shape (KeyError, TypeError, ValueError while parsing) is
            # an exchange not working, like no answer: waited out, not a crash after the cancel.
            except (ExchangeError, OSError, TimeoutError, KeyError, TypeError, ValueError) as exc:
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            else:
                self._hedge_connect = None
                self.health.clear_condition(Condition.EXCHANGE_DOWN)
                if tries > 1:
                    self._note(f"exchange answered after {tries} tries: hedging resumes")
                return
            if tries == 1:
                self._note(f"exchange down at start ({why}): no quotes until it answers")
            try:
                clear = await self.cancel_all_verified(_HEDGE_WAIT_CANCEL_S, "exchange down")
            except (AgentError, OSError) as exc:
                clear = False
                log.warning("exchange down: DEX book not checked: %s", exc)
            book = "no order of ours rests" if clear else "orders may rest, cancel-all retried"
            self.health.set_condition(
                Condition.EXCHANGE_DOWN,
                f"the exchange did not answer at start ({why}; {tries} tries): no fill could "
                f"be hedged, so nothing is quoted (DEX: {book}); next try in {wait_s:g} s: "
                "check hedge.base_url and the exchange's status",
            )
            self.health.beat(
                rpc_ok=self.venue.io_health().ok, cex_ok=False, risk_state=self.risk.state.name
            )
            self.status.state = RiskState.WITHDRAWN.name
            self.status.last_decision = f"waiting for the exchange (try {tries}): {why}"
            with contextlib.suppress(OSError):
                self.sink.write(self.status)
            self._control_files_check()
            await self._serve_requests()
            # Wake early for an operator request (halt, cancel-all): they are served here too.
            woken = asyncio.ensure_future(self._request_wake.wait())
            try:
                await asyncio.wait({woken}, timeout=wait_s)
            finally:
                woken.cancel()
            wait_s = min(wait_s * 2.0, _HEDGE_RETRY_S[1])

    async def shutdown(self, timeout_s: float = 5.0, cex_timeout_s: float = 2.5) -> bool:
        """Cancel every DEX order and every open CEX order, save the risk memory.

        Returns True when both venues show no order of ours resting; False when a deadline
        passed or a venue did not confirm (orders may rest until their expiry: ``quote_expiry_s``
        on the DEX, the dead-man countdown on the exchange). :attr:`shutdown_report` says which.
        Each venue's deadline is hard (``asyncio.wait_for``: a frozen node or a dead RPC cannot
        hold it), and together they keep a SIGTERM exit inside the 10 s a supervisor is promised.
        """
        if self._connected:
            try:
                dex_clear = await asyncio.wait_for(
                    self.cancel_all_verified(max(timeout_s - 0.5, 0.1)), timeout_s
                )
            except TimeoutError:
                dex_clear = False
            self.shutdown_report["dex"] = (
                "clear"
                if dex_clear
                else f"orders may rest until their expiry ({self._expiry_text()})"
            )
        else:
            # Never connected (node down, wrong chain, no market code): a cancel sent now
            # could go to the wrong chain or contract. Orders of an earlier run die by expiry.
            dex_clear = False
            self.shutdown_report["dex"] = (
                f"not connected, not cancelled: orders of an earlier run expire "
                f"({self._expiry_text()})"
            )
        cex_clear = True
        if self.hedger is not None:
            self.shutdown_report["cex"] = await self.hedger.close(cex_timeout_s)
            cex_clear = self.shutdown_report["cex"] == "clear"
        elif self._hedge_connect is not None:
            # The exchange never answered this run: an earlier run's open hedge orders (a
            # passive one works for a while) are the exchange's dead-man switch's to cancel.
            cex_clear = False
            self.shutdown_report["cex"] = (
                "never connected, not cancelled: an earlier run's open orders are cancelled by "
                "the exchange's dead-man switch (hedge.policy.deadman_countdown_s)"
            )
        with contextlib.suppress(Exception):
            self.sink.write(self.status)
        self._save_risk_memory(force=True)
        return dex_clear and cex_clear

    def _expiry_text(self) -> str:
        e = self.execution.quote_expiry_s
        return f"≤ {e:g} s after they were sent" if e > 0 else "never: quote_expiry_s is 0"

    async def cancel_all_verified(self, timeout_s: float, why: str = "shutdown") -> bool:
        """Cancel every order of ours and return True once the venue shows none resting.

        The venue is the judge: a cancel-all can lose its nonce to the quote transaction it
        pre-empted (mined first), so this re-reads the book and sends again until no order of
        ours rests or the deadline passes (False). The deadline is wall time, not the agent's
        clock, which in simulations may not move while we wait.
        """
        deadline = time.monotonic() + timeout_s
        intent: str | None = None
        while time.monotonic() < deadline:
            try:
                # Learn what was mined first, so the cancel does not replace a landed quote.
                await self.absorb_outcomes()
                if intent is not None and self.venue.in_flight(intent):
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
    ) -> bool:
        """Run cycles until `stop` is set, then shut down; return True when no order rests.

        A cycle runs on every new head when `heads` is subscribed, and otherwise (or in
        addition: timers, the CEX and risk cooldowns need time to pass) every `poll_interval_s`.
        A stop is honoured within about a second whatever the node does: during start-up (which
        is abandoned) and during a cycle (given :data:`_STEP_GRACE_S` to finish, then
        abandoned). A start-up failure is raised after the shutdown has run.
        """
        stopping = asyncio.ensure_future(stop.wait())
        started = asyncio.ensure_future(self.start())
        watchdog: asyncio.Task[None] | None = None
        try:
            await asyncio.wait({started, stopping}, return_when="FIRST_COMPLETED")
            if not started.done():
                await _abandon(started)
                return await self.shutdown()
            started.result()  # a start-up failure propagates (after the shutdown below)
            watchdog = asyncio.create_task(self._watch(), name="agent-watchdog")
            if heads is not None:
                heads.start()
                self._heads = heads
            while not stop.is_set():
                await self._step_unless_stopped(stopping)
                if stop.is_set():
                    break
                await self._serve_requests_unless_stopped(stopping)
                if stop.is_set():
                    break
                waits: set[asyncio.Future[Literal[True]]] = {
                    stopping,
                    asyncio.ensure_future(self._request_wake.wait()),
                }
                head = asyncio.ensure_future(heads.wake.wait()) if heads is not None else None
                if head is not None:
                    waits.add(head)
                await asyncio.wait(waits, timeout=poll_interval_s, return_when="FIRST_COMPLETED")
                for w in waits:
                    if w is not stopping:
                        w.cancel()
                if heads is not None:
                    heads.wake.clear()
            return await self.shutdown()
        except BaseException:
            await self.shutdown()
            raise
        finally:
            stopping.cancel()
            if watchdog is not None:
                await _abandon(watchdog)
            if heads is not None:
                self._heads = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(heads.stop(), 1.0)
            self._fail_requests("the agent stopped")

    async def _step_unless_stopped(self, stopping: asyncio.Future[Literal[True]]) -> None:
        step: asyncio.Future[Any] = asyncio.ensure_future(self.step())
        await asyncio.wait({step, stopping}, return_when="FIRST_COMPLETED")
        if step.done():
            return
        # A stop during a cycle (a frozen node holds reads for the RPC timeout): let the cycle
        # finish what it is writing, then abandon it; the journal has every signed transaction.
        await asyncio.wait({step}, timeout=_STEP_GRACE_S)
        if not step.done():
            log.warning("stop: abandoning a cycle still waiting on the node")
            await _abandon(step)

    # -- operator requests (the control channel) -------------------------------------------

    async def control(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Queue an operator request for the loop and wait for its answer.

        Commands: ``halt`` and ``cancel-all`` (enter HALTED, then cancel every order on both
        venues; no position changes), ``resume`` (leave HALTED for WITHDRAWN, or clear the
        drawdown withdraw level's latch by re-basing the peak; needs ``who``), ``status``. The
        loop serves requests between cycles, so they never race a cycle's transactions.
        """
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests.put_nowait((cmd, args, fut))
        self._request_wake.set()
        return await fut

    async def _serve_requests_unless_stopped(self, stopping: asyncio.Future[Literal[True]]) -> None:
        """Serve operator requests, but give way to a stop at once.

        A cancel-all waits for the chain to show the book clear (up to its timeout, 30 s by
        default): a SIGTERM meanwhile (a stalled chain, a supervisor stopping the agent) must
        not wait that out. The request is answered that the agent is stopping, and the
        shutdown's own cancel-all, with its hard deadline, takes over.
        """
        serving: asyncio.Future[Any] = asyncio.ensure_future(self._serve_requests())
        await asyncio.wait({serving, stopping}, return_when="FIRST_COMPLETED")
        if not serving.done():
            log.warning("stop: an operator request in progress gives way to the shutdown")
            await _abandon(serving)

    async def _serve_requests(self) -> None:
        self._request_wake.clear()
        while not self._requests.empty():
            cmd, args, fut = self._requests.get_nowait()
            try:
                answer = await self._handle(cmd, args)
            except asyncio.CancelledError:
                if not fut.done():
                    fut.set_result(
                        {"error": "the agent is stopping: its shutdown cancels every order"}
                    )
                raise
            except Exception as exc:
                log.exception("control request %s failed", cmd)
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            if not fut.done():
                fut.set_result(answer)

    def _fail_requests(self, why: str) -> None:
        while not self._requests.empty():
            _, _, fut = self._requests.get_nowait()
            if not fut.done():
                fut.set_result({"error": why})

    async def _handle(self, cmd: str, args: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        if cmd in ("halt", "cancel-all"):
            reason = str(args.get("reason") or f"operator {cmd}")
            if self.risk.operator_halt(now, reason) is not None:
                self._note(f"risk → HALTED: operator {cmd}: {reason}")
            self._save_risk_memory(force=True)
            timeout_s = float(args.get("timeout_s", 30.0))
            dex = await self.cancel_all_verified(timeout_s, reason)
            cex = "no hedge leg"
            if self.hedger is not None:
                cex = await self.hedger.cancel_open(min(timeout_s, 10.0))
            return {
                "state": self.risk.state.name,
                "dex": "clear" if dex else "orders may still rest",
                "cex": cex,
                "dex_position_base": self.status.inventory_base,
                "cex_position_base": self.hedger.hedge_position_base() if self.hedger else 0.0,
            }
        if cmd == "resume":
            who = str(args.get("who") or "operator")
            self.sink.clear_halt()
            # What was resumed: HALTED, or the drawdown withdraw level's latch (the peak is
            # re-based; the transition, same state to same state, is the journal's record).
            held_by = "HALTED" if self.risk.state is RiskState.HALTED else "drawdown_latch"
            tr = self.risk.operator_resume(now, who)
            if tr is not None:
                self._update_operator_status()
            self._save_risk_memory(force=True)
            answer: dict[str, Any] = {"state": self.risk.state.name, "resumed": tr is not None}
            if tr is not None:
                answer |= {"resumed_from": held_by, "reason": tr.reason}
            return answer
        if cmd == "status":
            return {"state": self.risk.state.name, "pid_ok": True}
        return {"error": f"unknown command {cmd!r}"}

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
            log_event(
                log,
                Event.CYCLE_FAILED,
                f"cycle failed: {exc}",
                level=logging.WARNING,
                kind=type(exc).__name__,
                error=str(exc),
            )
            self._note(f"cycle error: {exc}")
            await self._after_failed_cycle()
        except Exception as exc:
            # A malformed answer (a missing field, bad hex) must not kill a keeper bot. Logged
            # with its traceback and counted, so a real bug is loud, not silent.
            self._m_errors.labels(kind="unexpected").inc()
            log_event(
                log,
                Event.CYCLE_FAILED,
                "cycle failed unexpectedly",
                level=logging.ERROR,
                exc_info=True,
                kind="unexpected",
                error=f"{type(exc).__name__}: {exc}",
            )
            self._note(f"cycle error (unexpected {type(exc).__name__}): {exc}")
            await self._after_failed_cycle()
        else:
            self._failed_cycles = 0
        finally:
            self._m_cycle.observe(time.perf_counter() - t0)
            self.health.beat(
                rpc_ok=self.venue.io_health().ok,
                cex_ok=self.hedger.health_flags()[0] if self.hedger else True,
                risk_state=self.risk.state.name,
            )
            self._observe()

    async def _after_failed_cycle(self) -> None:
        # Quotes resting while the agent cannot see the market are a free option for everyone
        # else: after a few blind cycles in a row, pull them (cancelAll needs no reads).
        self._failed_cycles += 1
        if self._failed_cycles % _BLIND_CYCLES_BEFORE_CANCEL == 0:
            try:
                # Learn what was mined first: a cancel that "replaces" a quote tx already
                # included would lose the nonce race and never happen.
                await self.absorb_outcomes()
                last = self._failsafe_cancel
                if last is not None and self.venue.in_flight(last):
                    return  # sent blind, not yet known mined: another would only pay gas
                self._failsafe_cancel = await self._cancel_all(
                    f"{self._failed_cycles} failed cycles in a row"
                )
            except Exception:  # the fail-safe must never be what crashes the loop
                log.exception("fail-safe cancel-all could not be sent; retrying in a few cycles")

    async def _step(self) -> None:
        now = self.clock()
        self._control_files_check()
        if self.hedger is not None:
            # The exchange mid is read beside the chain snapshot, collected in on_snapshot.
            self.hedger.poll_mid(now)
        snap = await self.venue.snapshot(self._pushed_head())
        self._read_ok_s = self.clock()
        await self.ingest(snap, now)
        if not self.venue.snapshot_current(snap):
            # Our own order change landed after this snapshot was read (we learnt it from the
            # receipts just now): deciding from it would place again what already rests.
            snap = await self.venue.snapshot()
            await self.ingest(snap, now)
        await self.on_snapshot(snap, now)

    def _pushed_head(self) -> HeadRef | None:
        """The subscription's last head when it is newer than the last snapshot's block.

        The venue then reads the snapshot at it in one round trip instead of reading the header
        first. An older or equal one (a silent or lagging subscription, a reorg back to a lower
        height) is not passed: the venue reads the head itself.
        """
        head = self._heads.latest if self._heads is not None else None
        last = self.last_snapshot
        if head is None or (last is not None and head.number <= last.block_number):
            return None
        return head

    async def ingest(self, snap: VenueSnapshot, now: float) -> None:
        """Take in what happened up to `snap`: market events and our transactions' outcomes."""
        # Key on the head's hash, not its number: a reorg can replace the head at equal height.
        if snap.block_hash != self._last_block_hash:
            events = await self.venue.poll_events(snap.block_number, snap.block_hash)
            assert self._book is not None, "Agent.start() first"
            booked = self._book.apply(events, self._mid(snap), now)
            if booked:
                self.status.fills += booked
                self._m_fills.inc(booked)
            self._block_seen_s = now
            self._last_block_hash = snap.block_hash
            self.est.base_fee.update_block(now, snap.base_fee_wei, snap.gas_used, snap.gas_limit)
        self._absorb_snapshot(snap)
        await self.absorb_outcomes()
        if self._resend_cancel:
            self._resend_cancel = False
            await self._cancel_all("re-sent: the previous cancel-all did not happen")

    async def on_snapshot(self, snap: VenueSnapshot, now: float) -> None:
        """The hot path: estimators → risk → model and cost gate → order diff → one batch tx.

        Quoting comes first; hedging (scheduled, never awaited), keeper duties and bookkeeping
        follow, so none of them delays the transaction.
        """
        mid = self._mid(snap)
        others = others_book(snap.book, snap.open_orders)
        self._book_hedge_moves()
        fair = await self._update_fair_value(now, snap, others)
        if not fair.stale:
            # A step the jump detector would call a jump moves the level, not the diffusion
            # σ: counted as variance, one 3% step priced re-entry quotes out for minutes.
            sigma_rel = self.est.vol.snapshot().sigma_rel_per_sqrt_s
            jump = math.log1p(self.jumps.threshold_bps(sigma_rel) / 1e4)
            self.est.vol.update_price(now, fair.price, jump_log_return=jump)
        if mid is not None and snap.index:
            # The contract's premium is its book mid (ours included) against the index: the
            # funding predictor must see what the contract samples.
            # The contract's accumulator is the accrued TWAP, exact, while its interval is open.
            open_interval = snap.funding.next_boundary_s > snap.block_time_s
            self.est.funding.update_premium(
                now,
                (mid - snap.index) / snap.index,
                snap.funding.running_premium if open_interval else None,
            )
        if not fair.stale:
            self._mark_ledger(now, fair)
        self._update_gas(snap)
        estimates = self.est.snapshot(now)
        pos = self._position
        inventory = pos.size_lots * self.params.lot_size if pos is not None else 0.0
        inputs = build_risk_inputs(
            snap, pos, self._observations(now, mid, inventory, estimates, snap, fair)
        )
        if inputs.gas_refreshes_left != self._gas_refreshes_left:
            # Copied only when the wallet reading differs (replace() of the ~30 fields was 2%
            # of an event-sim decision, where no wallet is read and both are inf).
            inputs = replace(inputs, gas_refreshes_left=self._gas_refreshes_left)
        directive = self.risk.evaluate(inputs)
        self.directive = directive
        transitions = self.risk.drain_transitions()
        await self._quote(now, snap, others, fair, inventory, estimates, directive)
        self._feed_quote_fills(now, snap, fair)
        await self.unloader.step(now, snap, directive, self.params.lot_size, self.params.tick_size)
        self.status.unload_slices = self.unloader.slices
        self.risk_telemetry.record(directive, transitions)
        for tr in transitions:
            self.journal.record_risk_transition(
                int(tr.at_s * 1000), tr.from_state.name, tr.to_state.name, tr.reason
            )
            self._note(f"risk {tr.from_state.name} → {tr.to_state.name}: {tr.reason}")
        # The hedge target comes only from a position read from the chain: None until then.
        confirmed = inventory if pos is not None else None
        await self._hedge(confirmed, snap.mark or mid or 0.0, now, directive, fair, estimates)
        await self.keeper.run(
            snap,
            self.venue.market_info(),
            self.venue.io_health().gas_price_wei,
            self.params.native_price_quote,
        )
        self._update_status(snap, mid, inventory, estimates, directive)

    async def _quote(
        self,
        now: float,
        snap: VenueSnapshot,
        others: BookSnapshot,
        fair: FairValue,
        inventory: float,
        estimates: ModelEstimates,
        directive: RiskDirective,
    ) -> None:
        self.decision = None
        if directive.cancel_all or directive.state is RiskState.HALTED:
            if (snap.open_orders or self.venue.quote_in_flight()) and (
                self._cancel_sent_state is not directive.state
                or not self.venue.io_health().cancel_pending
            ):
                await self._cancel_all(f"risk {directive.state.name}")
                self._cancel_sent_state = directive.state
            self.status.last_decision = f"withdrawn ({directive.state.name}): no quotes"
            return
        self._cancel_sent_state = None
        if fair.stale or snap.index is None:
            # Quotes priced off nothing fresh are a free option for everyone else: pull them
            # (once; the next fresh estimate re-quotes around the new fair value).
            if (snap.open_orders or self.venue.quote_in_flight()) and not self._stale_cancel_sent:
                await self._cancel_all(f"no fresh fair value ({fair.source})")
                self._stale_cancel_sent = True
            self.status.last_decision = (
                "no fresh fair value: waiting for the exchange, the oracle or the book"
            )
            return
        self._stale_cancel_sent = False
        cap = max(directive.inventory_cap_base, 0.0) or self.base_params.inventory_cap_base
        life = self.quote_life.expected_s(now)
        # The last cycle's parameters are not rebuilt (and re-validated) when nothing they are
        # made of changed: equal frozen values, so the decision cannot tell.
        d = self._derived
        if (
            d is None
            or d[0] is not self.base_params
            or d[1] is not self.params
            or (d[2], d[3]) != (cap, life)
        ):
            self.params = replace(self.base_params, inventory_cap_base=cap, quote_life_s=life)
            self._derived = (self.base_params, self.params, cap, life)
        lot, tick = self.params.lot_size, self.params.tick_size
        # Everything the model reads of the book is the rest of the market: a mid, a best price
        # or a depth that contains our own quotes follows wherever we quote.
        inputs = DecisionInputs(
            time_s=now,
            mid=self._mid(snap) or fair.price,
            index=snap.index,
            mark=snap.mark or fair.price,
            best_bid=others.best_bid * tick if others.best_bid is not None else None,
            best_ask=others.best_ask * tick if others.best_ask is not None else None,
            bid_depth_base=sum(n for _, n in others.bids) * lot,
            ask_depth_base=sum(n for _, n in others.asks) * lot,
            inventory_base=inventory,
            estimates=estimates,
            seconds_to_funding=max(0.0, snap.funding.next_boundary_s - snap.block_time_s),
            risk=ModelRisk(
                # Re-entry after an exchange jump: smaller, wider quotes for a while.
                size_mult=directive.size_mult * self.jump.size_mult,
                spread_mult=directive.spread_mult * max(self.jump.spread_mult, 1.0),
                allow_bid=directive.allow_bid,
                allow_ask=directive.allow_ask,
                reduce_only=directive.reduce_only,
                max_bid_base=directive.bid_room_base,
                max_ask_base=directive.ask_room_base,
                force_cancel=False,
            ),
            fair_value=fair.price,
            hedge_base=self.hedger.hedge_position_base() if self.hedger is not None else 0.0,
            momentum_per_s=self.momentum.drift_per_s(),
            # The drift estimate's noise on a driftless price: σ·√(ln 2 / (2·half-life)).
            momentum_noise_per_s=estimates.sigma_per_sqrt_s
            * math.sqrt(math.log(2.0) / (2.0 * _MOMENTUM_HALFLIFE_S)),
        )
        pending = self._pending_quote
        if pending is not None and self.venue.in_flight(pending[0]):
            # A newer batch replaces the pending one: it is priced by what it changes on chain.
            live = LiveQuotes(
                quotes=pending[1],
                expires_at_s=pending[2],
                resting=tuple(
                    Quote(o.side, o.price_ticks, o.remaining_lots) for o in snap.open_orders
                ),
            )
        else:
            self._pending_quote = None
            live = LiveQuotes(
                quotes=tuple(
                    Quote(o.side, o.price_ticks, o.remaining_lots) for o in snap.open_orders
                ),
                expires_at_s=self._live_expires_s if snap.open_orders else None,
            )
        decision = decide(inputs, self.params, live)
        self.decision = decision
        send = decision.send
        # What the chosen update leaves resting: the target, or the live ladder with its top
        # re-priced (a touch: never more orders on a side than rest there now).
        quotes = decision.quotes
        if self.gate == "every_tick" and not send:
            send = decision.reason not in (GateReason.UNCHANGED, GateReason.NOTHING_LIVE)
            quotes = decision.target_quotes
        why = (
            f"{decision.reason} ({decision.action}): value {decision.value.gain_quote:.4f} vs cost "
            f"{decision.cost.total_quote:.4f} (gas {decision.cost.gas_quote:.4f}, exposure "
            f"{decision.cost.exposure_quote:.4f}, funding {decision.cost.funding_delta_quote:.4f})"
        )
        if not decision.ladder and (directive.allow_bid or directive.allow_ask):
            why += (
                f"; empty ladder: sizes {decision.bid_size_base:g}/{decision.ask_size_base:g} base "
                f"are below one lot ({lot:g}) or the notional minimum (raise "
                "quoting.base_size_base, or lower quoting.ref_depth_base for a thin book)"
            )
        if not send:
            self._m_skips.inc()
            self.status.skipped += 1
            self.status.last_decision = "skipped " + why
            self._journal_decision(now, "skip", decision, directive, why)
            return
        expiry_s = self.execution.quote_expiry_s
        diff = diff_orders(snap.open_orders, quotes)
        if diff.keep and self._expiring(now, expiry_s):
            # A kept order would die on chain soon after this refresh: replace all of them,
            # or the refresh the gate paid for leaves the book to expire under us. (The gate
            # offers no touch then; should the two clocks disagree, the target goes out whole.)
            quotes = decision.target_quotes
            diff = OrderDiff(
                cancel_ids=tuple(sorted(o.order_id for o in snap.open_orders)),
                place=quotes,
                keep=(),
            )
        if diff.empty:
            self.status.last_decision = "book already matches the target"
            return
        # The market compares expiry with its block time: a clock behind the chain must not
        # send quotes that are dead on arrival (and revert the whole batch).
        expiry = (
            int(max(decision.expires_at_s or now, snap.block_time_s + expiry_s))
            if expiry_s > 0
            else 0
        )
        try:
            intent = await self.venue.replace_quotes(
                diff.cancel_ids, diff.place, expiry, based_on_block=snap.block_number
            )
        except StaleSnapshot as exc:
            self.status.last_decision = f"not sent: {exc}"
            return
        except GasOverBudget as exc:
            self._fam.gas_over_budget.inc()
            self.status.last_decision = f"not sent: {exc}"
            self._journal_decision(now, "gas_over_budget", decision, directive, str(exc))
            return
        self._quote_sends.add(now)
        self._quote_ops[intent] = (len(diff.cancel_ids), len(diff.place))
        if len(self._quote_ops) > _QUOTE_OPS_KEPT:  # replaced batches never report a receipt
            del self._quote_ops[next(iter(self._quote_ops))]
        if expiry > 0:
            kept = self._live_expires_s if diff.keep else None
            self._live_expires_s = min(float(expiry), kept) if kept is not None else float(expiry)
        # The pending ladder expires with its oldest kept order (a touch keeps the deeper ones).
        self._pending_quote = (intent, quotes, self._live_expires_s if expiry > 0 else None)
        self.quote_life.update_send(now)
        log_event(
            log,
            Event.QUOTE_SENT,
            f"quotes sent ({decision.action}): -{len(diff.cancel_ids)} +{len(diff.place)}",
            intent=intent,
            cancels=len(diff.cancel_ids),
            places=len(diff.place),
            expires_at_s=expiry,
            block=snap.block_number,
        )
        self._m_quotes.inc()
        self.status.quote_txs += 1
        self.status.last_decision = (
            f"sent: -{len(diff.cancel_ids)} +{len(diff.place)} orders; " + why
        )
        self._journal_decision(now, "send", decision, directive, why, intent=intent)

    async def _cancel_all(self, why: str) -> str:
        intent = await self.venue.cancel_all()
        self.status.events.appendleft(f"cancel-all sent ({why})")  # the status view's event list
        log_event(log, Event.CANCEL_ALL, f"cancel-all sent ({why})", intent=intent, why=why)
        self.journal.record_decision(int(self.clock() * 1000), "cancel_all", {"why": why})
        return intent

    # -- inputs --------------------------------------------------------------------------------

    def _mid(self, snap: VenueSnapshot) -> float | None:
        bb, ba = snap.book.best_bid, snap.book.best_ask
        if bb is not None and ba is not None and bb < ba:
            return (bb + ba) / 2 * self.params.tick_size
        return snap.index

    def _absorb_snapshot(self, snap: VenueSnapshot) -> None:
        self.last_snapshot = snap
        if snap.position is not None:
            self._position = snap.position
            # fundingOwed > 0 means the account will pay when next touched.
            self.ledger.set_accrued_funding(-snap.position.funding_owed)
            if self._equity0 is None:
                self._equity0 = snap.position.equity

    def _observations(
        self,
        now: float,
        mid: float | None,
        inventory: float,
        est: ModelEstimates,
        snap: VenueSnapshot,
        fair: FairValue,
    ) -> CycleObservations:
        io = self.venue.io_health()
        calls, fails = self._rpc_window.deltas(now, io.total_calls, io.total_failures)
        reachable, banned, limited, cex_age = (
            self.hedger.health_flags() if self.hedger else (True, False, False, 0.0)
        )
        pnl = self.ledger.snapshot()
        return CycleObservations(
            now_s=now,
            mid=mid,
            inventory_base=inventory,
            inventory_cap_base=self.base_params.inventory_cap_base,
            lot_size=self.params.lot_size,
            tick_size=self.params.tick_size,
            sigma_rel_per_sqrt_s=self.est.vol.snapshot().sigma_rel_per_sqrt_s,
            funding_rate=est.funding_rate,
            funding_flip_prob=est.funding_flip_prob,
            inclusion_delay_s=est.inclusion_delay_s,
            block_seen_s=self._block_seen_s,
            base_fee_budget_gwei=self.max_fee_gwei,
            oldest_pending_sent_s=io.oldest_pending_sent_s,
            rpc_calls_60s=calls,
            rpc_failures_60s=fails,
            orders_last_min=self._quote_sends.events(now),
            hedge_pnl=pnl.hedge,
            cex_reachable=reachable,
            cex_banned=banned,
            cex_rate_limited=limited,
            cex_feed_age_s=cex_age,
            hedge_exposure_base=(
                inventory + self.hedger.hedge_position_base() if self.hedger else None
            ),
            fair_value=None if fair.stale else fair.price,
            fair_value_divergence_bps=fair.divergence_bps,
            cex_jump=self.jump.state is JumpState.PULLED,
            swept_bid=self.sweeps.paused(now, 1),
            swept_ask=self.sweeps.paused(now, -1),
            funding_interval_s=self.params.funding_interval_s,
            marked_equity_quote=self._marked_equity(snap, fair),
            gas_spent_quote=-pnl.gas,
        )

    # -- estimators, fair value, marks ---------------------------------------------------------

    def _calibrate_estimators(self, snap: VenueSnapshot) -> None:
        """Scale the live estimators to this market (once, at start; sims bring their own)."""
        if self._seeded_estimators:
            return
        interval = self.params.funding_interval_s
        # Per-interval rates in the contract's units, snapshots on the market's own boundaries.
        self.est.funding = FundingPredictor(
            interval_s=interval,
            offset_s=float(snap.funding.next_boundary_s) % interval,
            interest_rate=_FUNDING_INTEREST_8H,
            clamp=_FUNDING_CLAMP_8H,
            cap=_FUNDING_CAP,
            # An oracle beyond the filter's own jump threshold of the exchange is not basis.
            trust_z=self.fair.params.jump_z,
        )
        ref = snap.index or self._mid(snap)
        if not ref:
            return
        # Trade distances live on the price's scale: 20 bins of 2.5 bps span 50 bps from mid.
        self.est.fills = FillIntensity(
            bin_width=max(self.params.tick_size, ref * 2.5e-4),
            prior_a_per_s=_FILL_PRIOR_A_PER_S,
            prior_k_per_price=1.0 / (ref * _FILL_PRIOR_DECAY_BPS * 1e-4),
        )
        # (A, k) from our own quotes' fills by distance from fair value, resumed from the
        # journal: what an earlier run learnt is kept, the prior is scaled to the price.
        restored: QuoteFillIntensity | None = None
        saved = self.journal.load_estimator(_QUOTE_FILLS)
        if saved is not None:
            try:
                restored = QuoteFillIntensity.from_state(saved)
            except (ConfigError, KeyError, TypeError, ValueError) as exc:
                log.warning("fill-intensity state in the journal not usable (%s); prior", exc)
        self.est.quote_fills = restored or QuoteFillIntensity.for_price(
            ref, prior_a_per_s=_FILL_PRIOR_A_PER_S, prior_decay_bps=_FILL_PRIOR_DECAY_BPS
        )

    async def _update_fair_value(
        self, now: float, snap: VenueSnapshot, others: BookSnapshot
    ) -> FairValue:
        """Feed the exchange mid, the oracle and the rest of the book; return fair value."""
        tick = self.params.tick_size
        cex: float | None = None
        read_s: float | None = None  # no exchange: the index is the oracle's
        if self.hedger is not None:
            self.hedger.poll_mid(now)  # a no-op when _step started it
            await self.hedger.await_mid(self.cex_mid_wait_s)
            seen = self.hedger.fresh_mid()
            read_s = seen[0] if seen is not None else -math.inf
            if seen is not None:
                t_cex, cex = seen
                if seen != self._cex_seen:
                    self._cex_seen = seen
                    self.fair.update_cex(t_cex, cex)
                    sigma_rel = self.est.vol.snapshot().sigma_rel_per_sqrt_s
                    self.momentum.update(t_cex, cex, self.jumps.threshold_bps(sigma_rel))
                if now - t_cex > self.fair.params.max_cex_age_s:
                    cex = None
        if snap.index is not None and snap.oracle_updated_s:
            # The basis is sampled once per oracle report (and once more when the exchange
            # first turns fresh): re-sampling an old report against a moving exchange would
            # drag fair value back toward the old price.
            key = (snap.oracle_updated_s, cex is not None)
            if key != self._oracle_fed:
                self._oracle_fed = key
                age = max(0.0, snap.block_time_s - snap.oracle_updated_s)
                self.fair.update_oracle(now - age - (now - self._block_seen_s), snap.index)
            if cex is not None:
                # Funding is read against this oracle: trusted as far as the exchange agrees.
                self.est.funding.update_oracle(
                    snap.index,
                    cex * math.exp(-self.fair.basis_mean_log),
                    max(0.0, snap.block_time_s - snap.oracle_updated_s),
                    self.fair.params.basis_vol_bps,
                    self.fair.index_vol_bps_per_sqrt_s,
                )
        bb, ba = others.best_bid, others.best_ask
        self._premium_fresh = self._premium_freshness.fresh(now, self._block_seen_s, read_s)
        self.fair.update_dex(
            now,
            bb * tick if bb is not None else None,
            ba * tick if ba is not None else None,
            premium_fresh=self._premium_fresh,
            book_fresh=self._premium_freshness.book_fresh,
        )
        fair = self.fair.value(now)
        if cex is not None:
            sigma_rel = self.est.vol.snapshot().sigma_rel_per_sqrt_s
            self.jump = self.jumps.update(now, cex, sigma_rel)
        self.fair_value = fair
        return fair

    def _mark_ledger(self, now: float, fair: FairValue) -> None:
        """Mark the P&L ledger: both legs from fair value, the hedge at the exchange mid if fresh.

        Never the DEX book mid (it holds our own quotes and freezes with the chain), a premium
        read from a stale book or against a held index, nor the hedger's last mark (frozen
        through an exchange outage while the DEX leg follows the market: $324 of phantom basis
        loss in ``holdout/crash_exchange_down``). Which price marks each leg and why:
        :mod:`agent.pnl`. The ledger feeds reports, not decisions: the risk engine reads only
        its hedge and gas components and its hedge position, which marks do not move.
        """
        cex: float | None = None
        if self.hedger is not None:
            seen = self.hedger.fresh_mid()
            if seen is not None and now - seen[0] <= self.fair.params.max_cex_age_s:
                cex = seen[1]
        premium = self.fair.params.dex_premium_weight * self.fair.premium
        self.ledger.mark_fair(
            fair.price,
            premium,
            premium_fresh=self._premium_fresh,
            cex_mid=cex,
            # fair.basis is what fair value adds to the exchange mid (its basis and the premium).
            cex_estimate=fair.price - fair.basis,
        )

    def _update_gas(self, snap: VenueSnapshot) -> None:
        """Price gas at what the pipeline pays (base fee + its tip), plus an L2's L1 data fee."""
        paid = self.venue.io_health().gas_price_wei
        if paid is not None and paid > 0:
            base = min(float(snap.base_fee_wei), float(paid))
            self.est.update_paid_fee(base, float(paid) - base)
        self.est.update_l1_fee(self.params.l1_data_fee_per_byte_gwei * 1e9)

    def _feed_quote_fills(self, now: float, snap: VenueSnapshot, fair: FairValue) -> None:
        """Credit exposure to the quotes resting now, by distance from fair value."""
        qf = self.est.quote_fills
        if qf is None:
            return
        if fair.stale:
            qf.update_quotes(now, ())  # no fair value to measure from: no exposure counted
            self._quote_fair = None
        else:
            tick = self.params.tick_size
            qf.update_quotes(
                now,
                tuple((fair.price - o.price_ticks * tick) * o.side.sign for o in snap.open_orders),
            )
            self._quote_fair = fair.price
        if now - self._estimators_saved_s >= _SAVE_ESTIMATORS_S:
            self._estimators_saved_s = now
            self.journal.save_estimator(_QUOTE_FILLS, qf.to_state(), int(now * 1000))

    def _on_own_fill(self, now: float, fill: Fill) -> None:
        """A fill of ours: its quote's distance from the fair value it rested against."""
        if self.sweeps.on_fill(now, fill.side.sign):
            self._note(f"sweep: {fill.side.name} side swept, paused and residual hedged")
        qf = self.est.quote_fills
        if qf is None or self._quote_fair is None:
            return
        price = fill.price_ticks * self.params.tick_size
        qf.update_fill(now, max((self._quote_fair - price) * fill.side.sign, 0.0))

    def _expiring(self, now: float, expiry_s: float) -> bool:
        """Whether the resting quotes are past half their life on chain (the gate's rule)."""
        return kept_quotes_expiring(self._live_expires_s, now, expiry_s)

    def _marked_equity(self, snap: VenueSnapshot, fair: FairValue) -> float | None:
        """Both legs marked fresh: the DEX leg at fair value, the hedge at the exchange mid now
        (`book_equity_quote`: the DEX leg as the account reads while either price is missing)."""
        pos = self._position
        if pos is None:
            return None
        dex_base = pos.size_lots * self.params.lot_size
        venue_mark = snap.mark or None
        price = None if fair.stale else fair.price
        if self.hedger is None:
            return book_equity_quote(
                pos.equity, dex_base, 0.0, 0.0, venue_mark=venue_mark, fair_value=price
            )
        seen = self.hedger.fresh_mid()
        fresh = seen is not None and self.clock() - seen[0] <= self.fair.params.max_cex_age_s
        return book_equity_quote(
            pos.equity,
            dex_base,
            self._hedge_cash,
            self.ledger.hedge_position,
            venue_mark=venue_mark,
            fair_value=price,
            hedge_mark=seen[1] if fresh and seen is not None else None,
        )

    def _hedge_band(self, fair: FairValue, est: ModelEstimates) -> float:
        """The hedge dead band, base units: ``hedge_band_base`` (inventory risk against hedge
        cost), at least the configured dead band and at most a quarter of the inventory cap;
        the configured dead band until the model has quoted."""
        assert self.hedger is not None
        configured = self.hedger.hedger.config.dead_band_base
        sigma_rel = self.est.vol.snapshot().sigma_rel_per_sqrt_s
        d = self.decision
        if fair.stale or d is None or sigma_rel <= 0.0:
            return configured
        # DEX fills per second (both sides) at the spread we quote: how fast the residual moves.
        rate = 2.0 * est.fill_a_per_s * math.exp(-est.fill_k_per_price * d.half_spread)
        size = self.params.base_size_base
        if not (rate > 0.0 and math.isfinite(rate)):
            return configured
        cap = self.base_params.inventory_cap_base * _HEDGE_BAND_MAX_CAP_FRAC
        return hedge_band_base(
            HedgeBandInputs(
                price_usd=fair.price,
                vol_per_sqrt_s=sigma_rel,
                fill_rate_per_s=rate,
                fill_size_base=size,
                hedge_cost_bps=self.hedger.hedge_cost_bps(),
                risk_aversion_per_usd=self.params.gamma,
            ),
            min_base=min(configured, cap),
            max_base=max(cap, self.hedger.min_order_base()),
        )

    # -- our transactions' outcomes ------------------------------------------------------------

    async def absorb_outcomes(self) -> None:
        """Take in the outcomes of our transactions (receipts, replacements, drops)."""
        for ev in await self.venue.poll_outcomes():
            self._on_outcome(ev)

    def _on_outcome(self, ev: TxOutcome) -> None:
        _log_outcome(ev)
        self._outcome_kids(_outcome_name(ev)).inc()
        if not isinstance(ev, TxLost):
            self._fam.gas_fees_paid_native.inc(max(ev.gas_cost_native, 0.0))
        match ev:
            case TxIncluded():
                self.est.delay.update_inclusion(ev.submitted_s, ev.included_s, ev.delay_blocks)
                if ev.purpose == "quote" and ev.gas_used > 0:
                    self._learn_refresh_gas(ev.handle, ev.gas_used)
                self._book_gas(ev.gas_cost_native)
            case TxReverted():
                self._note(f"{ev.purpose} reverted: {ev.reason}")
                if ev.purpose == "settle_funding":
                    self.keeper.settle_failed()  # try again on a later block
            case TxLost():
                if ev.dropped:
                    self.est.delay.update_dropped(self.clock())
                elif ev.purpose == "cancel_all":
                    # The cancel did not happen (its nonce went to a quote tx that was mined
                    # first, or the node refused it): send it again at a fresh nonce.
                    self._cancel_sent_state = None
                    self._resend_cancel = True
                if not ev.dropped and not ev.nonce_taken:
                    self._note(f"{ev.purpose} failed: {ev.reason}")
            case _:
                assert_never(ev)

    def _learn_refresh_gas(self, intent: str, gas_used: int) -> None:
        """Price a refresh at what batches really cost here (EWMA of the full-refresh gas).

        A batch's receipt is scaled to a full refresh by its own count of orders: the gas beyond
        the fixed part and the cancels, per place, times a full refresh's places. A touch (one
        place a side) measures the same per-place gas as a full refresh, instead of dragging the
        full refresh's price down to its own.
        """
        ops = self._quote_ops.pop(intent, None)
        if ops is None or ops[1] == 0:
            # Its counts are unknown (sent before a restart), or it placed nothing: it says
            # nothing about what a place costs.
            return
        p = self.base_params
        n_cancel, n_place = ops
        extra = gas_used - p.gas_units_per_batch - n_cancel * p.gas_units_per_cancel
        per_place = max(0.0, extra / n_place)
        observed = p.gas_units_per_batch + 2 * p.levels * (p.gas_units_per_cancel + per_place)
        learned = max(1, int(0.8 * p.gas_units_per_refresh + 0.2 * observed))
        self.base_params = replace(p, gas_units_per_refresh=learned)

    def _book_gas(self, native: float) -> None:
        self.status.gas_spent_native += native
        self.ledger.on_gas(native * self.params.native_price_quote)

    # -- hedging -------------------------------------------------------------------------------

    async def _hedge(
        self,
        confirmed: float | None,
        mark: float,
        now: float,
        d: RiskDirective,
        fair: FairValue,
        est: ModelEstimates,
    ) -> None:
        if self.hedger is None or d.state is RiskState.HALTED:
            return
        if mark <= 0:
            confirmed = None  # no mark to hedge at: tick the hedger, keep its target
        else:
            # The band: inventory risk against what a hedge costs, times the risk state's
            # multiplier (0 when withdrawing or on an exchange jump: hedge the whole residual
            # now). Taker urgency when the directive says so (HEDGING, WITHDRAWN, a jump).
            band = self._hedge_band(fair, est) * d.hedge_band_mult
            urgency = 2 if d.hedge_taker else int(d.hedge_urgency)
            self.hedger.set_posture(band, urgency)
        try:
            await self.hedger.on_position(confirmed, mark, now)
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
            self._hedge_cash -= f.signed_base * f.price + f.fee_quote
        delta = self.hedger.hedge_position_base() - self.ledger.hedge_position
        if abs(delta) > 1e-12 and cex is not None:
            self.ledger.on_cex_fill(delta, cex, 0.0, cex)
            self._hedge_cash -= delta * cex

    # -- health, operator metrics, alerts, risk memory ----------------------------------------

    def _observe(self) -> None:
        """After every cycle: health conditions, operator metrics, alerts and the risk memory."""
        fam, health = self._fam, self.health
        n = self._failed_cycles
        fam.blind_cycles.set(n)
        health.update_condition(
            Condition.BLIND_CYCLES,
            f"{n} failed cycles in a row: the agent cannot see the market (its quotes are pulled)"
            if n >= _BLIND_CYCLES_BEFORE_CANCEL
            else None,
        )
        io = self.venue.io_health()
        health.update_condition(
            Condition.RPC_FAILING,
            None
            if io.ok
            else f"RPC calls failing ({io.total_failures} of {io.total_calls} so far): "
            "check chain.rpc_url and the node",
        )
        fam.pending_txs.set(io.pending)
        snap = self.last_snapshot
        if snap is not None:
            bids = sum(1 for o in snap.open_orders if o.side is Side.BID)
            self._open_orders_kids("bid").set(bids)
            self._open_orders_kids("ask").set(len(snap.open_orders) - bids)
            fee_gwei = snap.base_fee_wei / 1e9
            over = fee_gwei > self.max_fee_gwei
            if over and Condition.GAS_OVER_BUDGET not in health.conditions():
                fam.gas_over_budget.inc()
                self._alert(
                    AlertKind.GAS_OVER_BUDGET,
                    Severity.WARNING,
                    f"base fee {fee_gwei:.3g} gwei is above tx.max_fee_gwei "
                    f"{self.max_fee_gwei:g}: quotes cannot be updated",
                )
            health.update_condition(
                Condition.GAS_OVER_BUDGET,
                f"base fee {fee_gwei:.3g} gwei above tx.max_fee_gwei {self.max_fee_gwei:g}"
                if over
                else None,
            )
        if self.hedger is not None:
            h = self.hedger.hedger.health()
            fam.cex_position_base.set(h.cex_position_base)
            fam.hedge_gap_base.set(h.hedge_gap_base if h.armed else math.nan)
            fam.hedge_dead_band_base.set(self.hedger.hedger.band_base())
            health.update_condition(
                Condition.EXCHANGE_AUTH,
                f"the exchange refuses our API key ({h.last_error}): check hedge.api_key_env, "
                "hedge.api_secret_env and the key's permissions"
                if h.consecutive_failures > 0 and h.last_error_code in _AUTH_CODES
                else None,
            )
            if h.banned and Condition.EXCHANGE_BANNED not in health.conditions():
                self._alert(AlertKind.EXCHANGE_BANNED, Severity.CRITICAL, str(h.last_error))
            health.update_condition(
                Condition.EXCHANGE_BANNED, str(h.last_error) if h.banned else None
            )
        state = self.risk.state
        if state is not self._alerted_state:
            if state > self._alerted_state and state in (RiskState.WITHDRAWN, RiskState.HALTED):
                kind = (
                    AlertKind.RISK_HALTED if state is RiskState.HALTED else AlertKind.RISK_WITHDRAWN
                )
                sev = Severity.CRITICAL if state is RiskState.HALTED else Severity.WARNING
                text = f"risk {state.name}: {self.status.events[0] if self.status.events else ''}"
                if self.risk.drawdown_latched:
                    text += f" (needs an operator: {self._operator_needed()})"
                self._alert(kind, sev, text)
            self._alerted_state = state
        self._save_risk_memory()

    async def _watch(self) -> None:
        """Judge the chain link and read the gas wallet on a timer, whatever the loop does.

        A frozen node holds the loop inside a read for the RPC timeout; /healthz must say so
        while it happens, not after.
        """
        next_wallet_s = -math.inf
        while True:
            self.health.update_condition(Condition.CHAIN_STALE, self._chain_stale_reason())
            if self.hedger is not None:
                self.health.update_condition(Condition.EXCHANGE_DOWN, self._exchange_down_reason())
            if self.wallet is not None and time.monotonic() >= next_wallet_s:
                next_wallet_s = time.monotonic() + _WALLET_READ_INTERVAL_S
                try:
                    balance_wei, nonce = await asyncio.wait_for(self.wallet.read(), 5.0)
                except (AgentError, OSError, TimeoutError) as exc:
                    log.debug("gas wallet read failed: %s", exc)
                else:
                    self.on_wallet(balance_wei, nonce)
            await asyncio.sleep(_WATCH_INTERVAL_S)

    def _chain_stale_reason(self) -> str | None:
        """Why the chain view is stale (None: it is not): no read succeeds, or no new head."""
        now = self.clock()
        age = now - self._read_ok_s
        if age > self.chain_stale_s:
            return (
                f"no successful chain read for {age:.0f} s (limit {self.chain_stale_s:g} s): "
                "the node is frozen, unreachable or failing"
            )
        # A node that answers but stops following the chain (stuck syncing, a stalled
        # sequencer) passes every read: the head not moving is what says so.
        head_age = now - self._block_seen_s
        limit = self.risk.limits.block_age_s.breach
        if head_age > limit:
            return (
                f"no new block for {head_age:.0f} s (limit {limit:g} s, risk.block_age_s): the "
                "node is not following the chain or the chain has stalled; check chain.rpc_url"
            )
        return None

    def _exchange_down_reason(self) -> str | None:
        """Why the exchange counts as down (None: it does not)."""
        assert self.hedger is not None
        h = self.hedger.hedger.health()
        if h.banned:
            return None  # exchange_banned says it, with the ban's end
        silence = self.hedger.silence_s(self.clock())
        limit = self.risk.limits.cex_feed_age_s.breach
        if silence > limit:
            return (
                f"the exchange has not answered for {silence:.0f} s (limit {limit:g} s, "
                "risk.cex_feed_age_s): no hedge can be placed; check hedge.base_url and the "
                "exchange's status"
            )
        if not h.reachable:
            return (
                f"the exchange did not answer the hedger ({h.last_error}): check hedge.base_url "
                "and the exchange's status"
            )
        return None

    def on_wallet(self, balance_wei: int, pending_nonce: int) -> None:
        """Take a gas wallet reading: metrics, the risk engine's refreshes-left, low-gas health."""
        fam = self._fam
        fam.gas_balance_native.set(balance_wei / 1e18)
        fam.pending_nonce.set(pending_nonce)
        snap = self.last_snapshot
        price_wei = self.venue.io_health().gas_price_wei or (snap.base_fee_wei if snap else 0)
        per_refresh_wei = self.base_params.gas_units_per_refresh * price_wei
        left = balance_wei / per_refresh_wei if per_refresh_wei > 0 else math.inf
        self._gas_refreshes_left = left
        warn = self.risk.limits.gas_refreshes_left.warn
        fam.gas_balance_min_native.set(warn * per_refresh_wei / 1e18)
        low = left < warn
        reason = (
            f"gas wallet {balance_wei / 1e18:.6g} pays for {left:.0f} quote refreshes "
            f"(warn below {warn:g}): top up {self.venue.account}"
        )
        if low and Condition.GAS_LOW not in self.health.conditions():
            self._alert(AlertKind.GAS_BALANCE_LOW, Severity.CRITICAL, reason)
        self.health.update_condition(Condition.GAS_LOW, reason if low else None)

    def _alert(self, kind: AlertKind, severity: Severity, text: str) -> None:
        if self.alert is not None:
            try:
                self.alert(kind, severity, text)
            except Exception:  # an alert hook must never take the loop down
                log.exception("alert %s could not be queued", kind)

    def _save_risk_memory(self, *, force: bool = False) -> None:
        # A state change (the risk engine's or the jump detector's) is written at once; a new
        # equity peak at most every few seconds (it can move every cycle, and a crash loses at
        # most that much of the peak's rise). Both go in one row: restored together, they agree.
        jump = self.jumps.memory()
        mem = {**self.risk.memory(), _JUMP_MEMORY: jump}
        states = (mem["state"], jump["state"])
        saved = self._memory_saved
        if not force and (
            mem == saved
            or (
                states == self._memory_states_saved
                and time.monotonic() - self._memory_saved_s < _MEMORY_SAVE_INTERVAL_S
            )
        ):
            return
        try:
            self.journal.save_risk_memory(int(self.clock() * 1000), mem)
        except Exception:  # a full disk must not stop the loop; the journal's writes will say
            log.exception("risk memory not saved")
            return
        self._memory_saved = mem
        self._memory_states_saved = states
        self._memory_saved_s = time.monotonic()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _journal_decision(
        self,
        now: float,
        kind: str,
        decision: Decision,
        d: RiskDirective,
        why: str,
        intent: str | None = None,
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
                "fair_value": decision.fair_value,
                "fair_source": self.fair_value.source.value if self.fair_value else "none",
                "momentum_per_s": self.momentum.drift_per_s(),
                "jump": self.jump.state.value,
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
                "action": decision.action.value,
                # A sent batch's intent: its transactions (journal) and so its receipt on chain.
                **({"intent": intent} if intent is not None else {}),
            },
        )

    def _note(self, text: str) -> None:
        self.status.events.appendleft(text)
        log.info(text)

    def _update_status(
        self,
        snap: VenueSnapshot,
        mid: float | None,
        inventory: float,
        est: ModelEstimates,
        d: RiskDirective,
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
        self._update_operator_status()
        self._m_inv.set(inventory)
        for k, v in s.pnl.items():
            self._pnl_kids(k).set(v)
        now = self.clock()
        if now - self._pnl_written_s >= 10.0:
            self._pnl_written_s = now
            self.journal.record_decision(
                int(now * 1000),
                "pnl",
                {**s.pnl, "inventory_base": inventory, "hedge_base": s.hedge_base},
            )
        if self.sink.due(1.0):
            self.sink.write(s)
            self.journal.checkpoint()

    def _operator_needed(self) -> str:
        """Why only an operator can put the agent back to work ("" when nothing waits on one)."""
        risk = self.risk
        if risk.state is RiskState.HALTED:
            return "HALTED: only `mm-agent resume --who NAME` leaves it"
        if risk.drawdown_latched:
            lim = risk.limits
            return (
                f"withdrawn by the drawdown level (drawdown {risk.drawdown_frac:.2%} of the "
                f"strategy capital, level {lim.drawdown_withdraw_frac:.2%}): a flat agent does "
                "not earn its peak back, so it stays out until `mm-agent resume --who NAME` "
                "re-bases the peak to the equity now (accepting the loss)"
            )
        return ""

    def _update_operator_status(self) -> None:
        # The status line and the health condition say the same thing, from the same test.
        why = self._operator_needed()
        self.status.operator_needed = why
        latched = self.risk.drawdown_latched
        self.health.update_condition(Condition.DRAWDOWN_WITHDRAWN, why if latched else None)

    def _control_files_check(self) -> None:
        now = self.clock()
        for req in self.sink.requests(halted=self.risk.state is RiskState.HALTED):
            if req.kind is ControlKind.HALT:
                self.risk.operator_halt(now, req.text)
            elif self.risk.state is RiskState.HALTED or self.risk.drawdown_latched:
                if self.risk.operator_resume(now, req.text) is not None:
                    self._update_operator_status()
                self._save_risk_memory(force=True)


async def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait for it to unwind (its exception, if any, is dropped)."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _preset(name: str) -> Strategy:
    return strategy(name)


def _outcome_name(ev: TxOutcome) -> str:
    match ev:
        case TxIncluded():
            return "mined"
        case TxReverted():
            return "reverted"
        case TxLost():
            return "dropped" if ev.dropped else "replaced" if ev.nonce_taken else "failed"
        case _:
            assert_never(ev)


def _log_outcome(ev: TxOutcome) -> None:
    """One ``tx.outcome`` line per transaction outcome (mined, reverted, lost)."""
    match ev:
        case TxIncluded():
            log_event(
                log, Event.TX_OUTCOME, f"{ev.purpose} mined in block {ev.block_number}",
                intent=ev.handle, purpose=ev.purpose, outcome="mined", block=ev.block_number,
                gas_used=ev.gas_used, fee_native=ev.gas_cost_native,
                delay_blocks=ev.delay_blocks,
            )  # fmt: skip
        case TxReverted():
            log_event(
                log, Event.TX_OUTCOME, f"{ev.purpose} reverted: {ev.reason}",
                level=logging.WARNING, intent=ev.handle, purpose=ev.purpose, outcome="reverted",
                block=ev.block_number, reason=ev.reason, fee_native=ev.gas_cost_native,
            )  # fmt: skip
        case TxLost():
            outcome = _outcome_name(ev)
            log_event(
                log, Event.TX_OUTCOME, f"{ev.purpose} {outcome}: {ev.reason}",
                intent=ev.handle, purpose=ev.purpose, outcome=outcome, reason=ev.reason,
            )  # fmt: skip
        case _:
            assert_never(ev)
