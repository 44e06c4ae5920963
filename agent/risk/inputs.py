"""Build the risk engine's inputs from one venue snapshot and the cycle's observations (pure).

The runtime gathers plain numbers (estimates, the write path's health, the hedge leg's health)
into :class:`CycleObservations`; :func:`build_risk_inputs` turns those and the snapshot into
:class:`~agent.risk.engine.RiskInputs`. Nothing here does I/O or keeps state except
:class:`SlidingCount`, a 60 s window the runtime owns, so every formula is testable with numbers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from agent.risk.engine import RiskInputs
from agent.types import PositionState, VenueSnapshot

__all__ = ["CycleObservations", "SlidingCount", "build_risk_inputs"]

_YEAR_S = 365.0 * 86_400.0
_NO_LIQUIDATION_BPS = 1e9
_UNKNOWN_AGE_S = 1e9


@dataclass(frozen=True, slots=True)
class CycleObservations:
    """What the runtime observed this cycle, besides the snapshot (plain numbers)."""

    now_s: float
    mid: float | None
    inventory_base: float
    inventory_cap_base: float
    lot_size: float
    tick_size: float
    sigma_rel_per_sqrt_s: float
    """Realised volatility of the mid, relative, per √second."""
    funding_rate: float
    funding_flip_prob: float
    inclusion_delay_s: float
    block_seen_s: float
    """When the snapshot's head was first seen (our clock)."""
    base_fee_budget_gwei: float
    oldest_pending_sent_s: float | None
    rpc_calls_60s: int
    rpc_failures_60s: int
    orders_last_min: int
    hedge_pnl: float
    cex_reachable: bool = True
    cex_banned: bool = False
    cex_rate_limited: bool = False
    cex_feed_age_s: float = 0.0
    fair_value: float | None = None
    """Fair value (``FairValueEstimator``): the collar and the funding stake centre on it."""
    fair_value_divergence_bps: float = 0.0
    cex_jump: bool = False
    """The exchange jump detector has quotes pulled."""
    swept_bid: bool = False
    """Our bids were swept (``SweepGuard``): the bid side is paused and the residual hedged."""
    swept_ask: bool = False
    """Our asks were swept (``SweepGuard``): the ask side is paused and the residual hedged."""
    funding_interval_s: float = 28_800.0
    """The market's funding interval (the funding window scales with it)."""
    marked_equity_quote: float | None = None
    """Both legs marked fresh (``book_equity_quote``); None (no account read yet, or no price at
    all): DEX equity plus the hedge P&L."""
    hedge_exposure_base: float | None = None
    """DEX inventory plus the exchange hedge position, base units; None: no hedge leg."""
    gas_spent_quote: float = 0.0
    """Gas spent this session, quote currency (>= 0). It is paid from the signer's native balance,
    outside both trading accounts, so neither leg's equity shows it; the drawdown must."""


def build_risk_inputs(
    snap: VenueSnapshot, position: PositionState | None, obs: CycleObservations
) -> RiskInputs:
    """Return the risk engine's inputs for `snap` (with `position`, the last known account)."""
    now = obs.now_s
    equity = position.equity if position is not None else 0.0
    maint = position.maintenance_margin if position is not None else 0.0
    margin_ratio = maint / equity if equity > 0 else (0.0 if maint == 0 else math.inf)
    if position is not None and position.size_lots != 0 and snap.mark:
        notional = abs(position.size_lots) * obs.lot_size * snap.mark
        liq_bps = max(0.0, (equity - maint) / notional * 1e4)
    else:
        liq_bps = _NO_LIQUIDATION_BPS
    block_age = now - obs.block_seen_s
    # The oracle's age as of the head, plus how long we have been looking at that head.
    oracle_age = (
        max(0.0, snap.block_time_s - snap.oracle_updated_s) + block_age
        if snap.oracle_updated_s
        else _UNKNOWN_AGE_S
    )
    calls, fails = obs.rpc_calls_60s, obs.rpc_failures_60s
    oldest = obs.oldest_pending_sent_s
    return RiskInputs(
        now_s=now,
        index_price=snap.index if snap.index is not None else (obs.mid or math.nan),
        realized_vol_annual=obs.sigma_rel_per_sqrt_s * math.sqrt(_YEAR_S),
        inventory_base=obs.inventory_base,
        inventory_cap_base=obs.inventory_cap_base,
        funding_rate_predicted=obs.funding_rate,
        funding_flip_prob=obs.funding_flip_prob,
        funding_snapshot_in_s=max(0.0, snap.funding.next_boundary_s - snap.block_time_s),
        base_fee_gwei=snap.base_fee_wei / 1e9,
        base_fee_budget_gwei=obs.base_fee_budget_gwei,
        oldest_pending_tx_age_s=(now - oldest) if oldest is not None else 0.0,
        inclusion_delay_s=obs.inclusion_delay_s,
        # A stale oracle (no index) must read as stale however fresh its last update looks.
        oracle_age_s=oracle_age if snap.index is not None else max(oracle_age, 1e6),
        block_age_s=block_age,
        cex_feed_age_s=obs.cex_feed_age_s,
        rpc_error_rate=(fails / calls) if calls > 0 else 0.0,
        equity_quote=(
            obs.marked_equity_quote
            if obs.marked_equity_quote is not None
            else equity + obs.hedge_pnl
        )
        - obs.gas_spent_quote,
        margin_ratio=margin_ratio,
        liq_distance_bps=liq_bps,
        cex_reachable=obs.cex_reachable,
        cex_banned=obs.cex_banned,
        cex_rate_limited=obs.cex_rate_limited,
        orders_per_min=float(obs.orders_last_min),
        quote_prices=tuple(o.price_ticks * obs.tick_size for o in snap.open_orders),
        fair_value=obs.fair_value,
        fair_value_divergence_bps=obs.fair_value_divergence_bps,
        cex_jump=obs.cex_jump,
        swept_bid=obs.swept_bid,
        swept_ask=obs.swept_ask,
        funding_interval_s=obs.funding_interval_s,
        hedge_exposure_base=obs.hedge_exposure_base,
    )


class SlidingCount:
    """Counts over the last `window_s` seconds: events (:meth:`add`) or counter deltas."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._events: deque[float] = deque()
        self._marks: deque[tuple[float, int, int]] = deque()

    def add(self, now_s: float) -> None:
        """Record one event at `now_s`."""
        self._events.append(now_s)

    def events(self, now_s: float) -> int:
        """Events within the window ending at `now_s`."""
        while self._events and now_s - self._events[0] > self.window_s:
            self._events.popleft()
        return len(self._events)

    def deltas(self, now_s: float, a: int, b: int) -> tuple[int, int]:
        """Record cumulative counters (a, b) at `now_s`; return their growth over the window."""
        self._marks.append((now_s, a, b))
        while self._marks and now_s - self._marks[0][0] > self.window_s:
            self._marks.popleft()
        _, a0, b0 = self._marks[0]
        return a - a0, b - b0
