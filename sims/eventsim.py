"""Event-driven simulation of the live agent against a simulated on-chain venue.

Each step (one block) the simulator opens a block on :class:`~sims.simvenue.SimVenue` and runs one
cycle of the live :class:`~agent.runtime.Agent` on it — the same estimators, risk engine, model,
cost gate and order diff as on chain — then lets takers trade:

* a sent update is a transaction: its inclusion delay (and possible drop) comes from the mempool
  model, gas is charged at the base fee of its inclusion block plus the tip, and a newer update
  replaces a pending one at its nonce; the old quotes keep resting meanwhile;
* the venue keeps price-time priority: a quote joins the back of the queue at its price, a quote
  the order diff keeps keeps its place, and a taker consumes the queue ahead before us;
* uninformed takers reach ``D ~ Exp(k)`` from mid; informed takers know the next mid and take
  every quote on the wrong side of it;
* maker fees are charged on fills; funding is paid on the inventory held at each snapshot.

P&L is split into spread capture (fill price vs mid at the fill), inventory (position × mid moves),
funding, fees and gas; the parts sum to the final mark-to-market P&L. Same seed → bit-identical.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from agent.config import ExecutionSettings
from agent.keeper.duties import KeeperPolicy
from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    QuoteFillIntensity,
)
from agent.model.quoting import GateReason, ModelParams
from agent.risk.engine import RiskEngine, RiskLimits
from agent.runtime import Agent
from agent.store import Journal
from agent.venue.base import MarketInfo, Venue
from sims.processes import (
    BaseFeeSpec,
    FundingSpec,
    MempoolSpec,
    MidPriceSpec,
    TakerFlowSpec,
    base_fee_path,
    funding_premium_path,
    mid_price_path,
    taker_trades,
)
from sims.simvenue import SimVenue

__all__ = ["EventSimConfig", "EventSimResult", "RefreshPolicy", "build_sim_agent", "run_event_sim"]

_SIM_ACCOUNT_QUOTE = 1_000_000.0
"""The simulated venue's account (``sims.simvenue``'s collateral), quote currency."""

RefreshPolicy = Literal["cost", "every_tick"]
"""``"cost"``: send when the cost gate says so; ``"every_tick"``: send whenever the ladder changed
(the same model and ladder with the gate bypassed, the baseline the gate is judged against)."""

FUNDING_INTEREST = 1e-4
"""Interest component of the funding rate per interval (the common perp convention)."""
FUNDING_CLAMP = 5e-4


@dataclass(frozen=True, slots=True)
class EventSimConfig:
    """Scenario for one event-driven run."""

    duration_s: float = 3600.0
    params: ModelParams = field(default_factory=ModelParams)
    mid: MidPriceSpec = field(default_factory=MidPriceSpec)
    funding: FundingSpec = field(default_factory=FundingSpec)
    base_fee: BaseFeeSpec = field(default_factory=BaseFeeSpec)
    mempool: MempoolSpec = field(default_factory=MempoolSpec)
    takers: TakerFlowSpec = field(default_factory=TakerFlowSpec)
    tip_wei: float = 2e9
    book_half_spread_ticks: int = 5
    """Other makers' best bid/ask distance from mid."""
    book_depth_base: float = 50.0
    """Other makers' depth per side (feeds the model's depth sizing)."""
    queue_ahead_base: float = 1.0
    """Size resting ahead of a quote that joins a price level."""
    refresh: RefreshPolicy = "cost"
    risk: RiskLimits = field(
        default_factory=lambda: RiskLimits(strategy_capital_quote=_SIM_ACCOUNT_QUOTE)
    )
    """The live risk engine's limits: the agent's defaults, except that drawdown is measured
    against the whole simulated account, as it was before the strategy-sized capital: this sim
    measures the model and the gate (and the decision rate), and a halt would stop both."""
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    """Unload pacing and quote expiry, as live."""
    live_estimators: bool = False
    """Build the estimators as live does (priors scaled to the price at start, the quote
    fill-intensity state resumed from the journal) instead of seeding the scenario's own."""


@dataclass(frozen=True, slots=True)
class EventSimResult:
    """P&L split, inventory path and gate statistics of one run (quote currency)."""

    pnl_spread: float
    pnl_inventory: float
    pnl_funding: float
    pnl_fees: float
    pnl_gas: float
    pnl_total: float
    """Cash + inventory × final mid − gas − funding: the parts above sum to it."""
    inventory_path: npt.NDArray[np.float64]
    decisions: int
    updates_sent: int
    updates_skipped: int
    """Decisions whose ladder changed but that the cost gate held back."""
    updates_dropped: int
    fills: int
    gas_units_spent: float


def run_event_sim(
    config: EventSimConfig,
    seed: int,
    journal_path: str | Path = ":memory:",
    on_step: Callable[[Agent, SimVenue], None] | None = None,
) -> EventSimResult:
    """Run one scenario through the live :class:`~agent.runtime.Agent`; return its P&L split.

    ``journal_path`` is the agent's journal (a file keeps what it learnt for a next run);
    ``on_step`` sees the agent and the venue after each decision, before the takers trade.
    """
    return asyncio.run(_run(config, seed, journal_path, on_step))


def build_sim_agent(
    config: EventSimConfig, venue: Venue, clock: Callable[[], float], journal: Journal
) -> Agent:
    """The agent the event simulator runs: the live one, with the scenario's known priors."""
    p = config.params
    dt = config.mempool.block_time_s
    est = Estimators(
        EwmaVolatility(
            halflife_s=300.0, prior_sigma_rel_per_sqrt_s=config.mid.sigma_rel_per_sqrt_s[0]
        ),
        FillIntensity(
            bin_width=0.25 / config.takers.k_per_price,
            prior_a_per_s=config.takers.a_per_s,
            prior_k_per_price=config.takers.k_per_price,
        ),
        BaseFeeForecaster(),
        InclusionDelay(prior_delay_s=dt),
        # The simulated market pays interest and clamp per interval (``_realized_rate``), so the
        # predictor's rate basis is the interval itself: its rate is per interval either way.
        FundingPredictor(
            interval_s=p.funding_interval_s,
            interest_rate=FUNDING_INTEREST,
            clamp=FUNDING_CLAMP,
            rate_basis_s=p.funding_interval_s,
        ),
        tip_wei=config.tip_wei,
        # As live: (A, k) from our own quotes' fills by distance from fair value, starting at
        # the scenario's known taker flow.
        quote_fills=QuoteFillIntensity(
            bin_width=0.25 / config.takers.k_per_price,
            prior_a_per_s=config.takers.a_per_s,
            prior_k_per_price=config.takers.k_per_price,
        ),
    )
    return Agent(
        venue=venue,
        journal=journal,
        model_params=p,
        risk=RiskEngine(config.risk, start_s=clock()),
        keeper=KeeperPolicy(settle_funding=False, liquidate=False),
        clock=clock,
        execution=config.execution,
        estimators=None if config.live_estimators else est,
        gate="every_tick" if config.refresh == "every_tick" else "cost",
        # The simulated chain prices gas at its own base fee; no budget ceiling.
        max_fee_gwei=1e9,
    )


async def _run(
    config: EventSimConfig,
    seed: int,
    journal_path: str | Path,
    on_step: Callable[[Agent, SimVenue], None] | None,
) -> EventSimResult:
    p = config.params
    dt = config.mempool.block_time_s
    n = max(1, int(config.duration_s / dt))
    rng = np.random.default_rng(seed)
    index_path, _ = mid_price_path(rng, config.mid, n, dt)
    premium = funding_premium_path(rng, config.funding, n, dt)
    fees_wei, fullness = base_fee_path(rng, config.base_fee, n + config.mempool.max_blocks + 1)
    mark_path = index_path * (1.0 + premium)
    venue = SimVenue(
        MarketInfo(
            tick_size=p.tick_size,
            lot_size=p.lot_size,
            min_notional=p.min_notional,
            maker_fee_bps=p.maker_fee_bps,
            taker_fee_bps=p.taker_fee_bps,
            funding_interval_s=round(p.funding_interval_s),
            collateral_decimals=6,
            market_id="sim",
        ),
        mempool=config.mempool,
        tip_wei=config.tip_wei,
        fullness=fullness,
        base_fee_wei=fees_wei,
        gas_limit=config.base_fee.gas_limit,
        rng=rng,
        gas_units_per_tx=p.gas_units_per_refresh,
        native_price_quote=p.native_price_quote,
        book_half_spread_ticks=config.book_half_spread_ticks,
        book_depth_base=config.book_depth_base,
        queue_ahead_base=config.queue_ahead_base,
        # Chain time starts at a funding boundary in 2023, as a live chain's would.
        epoch_s=math.ceil(1.7e9 / p.funding_interval_s) * round(p.funding_interval_s),
    )
    journal = Journal(journal_path, fsync=False)
    agent = build_sim_agent(config, venue, lambda: venue.now_s, journal)
    inventory_path = np.empty(n + 1)
    inventory_path[0] = 0.0
    decisions = skipped = 0
    try:
        venue.begin_block(0, 0.0, float(mark_path[0]), float(index_path[0]))
        await agent.start()
        for i in range(n):
            t = i * dt
            mid, next_mid = float(mark_path[i]), float(mark_path[i + 1])
            if i:
                venue.begin_block(i, t, mid, float(index_path[i]))
            sent_before = venue.quotes_sent
            await agent.step()
            if on_step is not None:
                on_step(agent, venue)
            decisions += 1
            d = agent.decision
            if d is not None and venue.quotes_sent == sent_before:
                changed = d.reason not in (GateReason.UNCHANGED, GateReason.NOTHING_LIVE)
                if changed and not d.send and config.refresh == "cost":
                    skipped += 1  # the ladder moved, the gate held it back
            venue.take(taker_trades(rng, config.takers, dt, mid, next_mid), next_mid)
            t_end = t + dt
            rate = None
            if math.floor(t_end / p.funding_interval_s) > math.floor(t / p.funding_interval_s):
                rate = _realized_rate(premium, i + 1, p.funding_interval_s, dt)
            venue.end_block(next_mid, rate)
            inventory_path[i + 1] = venue.ledger.position_base
    finally:
        journal.close()
    led = venue.ledger
    return EventSimResult(
        pnl_spread=led.spread,
        pnl_inventory=led.inventory,
        pnl_funding=led.funding,
        pnl_fees=led.fees,
        pnl_gas=led.gas,
        pnl_total=led.total(float(mark_path[n])),
        inventory_path=inventory_path,
        decisions=decisions,
        updates_sent=venue.quotes_sent,
        updates_skipped=skipped,
        updates_dropped=venue.dropped,
        fills=led.fills,
        gas_units_spent=led.gas_units,
    )


def _realized_rate(
    premium: npt.NDArray[np.float64], end: int, interval_s: float, dt: float
) -> float:
    """Funding rate of the interval ending at step ``end``: TWAP premium + clamped interest."""
    start = max(0, end - round(interval_s / dt))
    twap = float(premium[start:end].mean()) if end > start else float(premium[end])
    return twap + max(-FUNDING_CLAMP, min(FUNDING_CLAMP, FUNDING_INTEREST - twap))
