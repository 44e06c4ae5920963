"""The unload executor: works the risk engine's unload plan with reduce-only slices.

One slice in flight at a time, at most one per ``unload_min_interval_s``; each slice is a
reduce-only immediate-or-cancel order limited to ``unload_max_slippage_bps`` from the best
price of another maker (our own quotes are not "the market"), so it can never add exposure or
rest on the book.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from agent.errors import GasOverBudget
from agent.risk.engine import RiskDirective, RiskState
from agent.types import Side, VenueSnapshot
from agent.venue.base import Venue

__all__ = ["UnloadExecutor", "best_other", "unload_limit_tick"]


def best_other(snap: VenueSnapshot, side: Side, tick_size: float) -> float | None:
    """The best `side` price in `snap` that is not one of our own resting quotes."""
    own = {(int(o.side), int(o.price_ticks)) for o in snap.open_orders}
    levels = snap.book.bids if side is Side.BID else snap.book.asks
    for tick, _ in levels:
        if (int(side), tick) not in own:
            return tick * tick_size
    return None


def unload_limit_tick(side: Side, ref: float, band: float, tick_size: float) -> int:
    """The worst acceptable tick for a reduce-only `side` order `band` (fraction) from `ref`."""
    if side is Side.ASK:  # selling: accept down to ref × (1 − band)
        limit = math.ceil(ref * (1 - band) / tick_size)
    else:  # buying: pay up to ref × (1 + band)
        limit = math.floor(ref * (1 + band) / tick_size)
    return max(limit, 1)


class UnloadExecutor:
    """Sends the unload plan's slices through :meth:`Venue.reduce`.

    Parameters
    ----------
    venue
        Where reduce-only orders go.
    min_interval_s, max_slippage_bps
        Pacing and price band (``[execution]``).
    note
        Human-readable notes for the status page and the log.
    """

    def __init__(
        self,
        venue: Venue,
        *,
        min_interval_s: float,
        max_slippage_bps: float,
        note: Callable[[str], None],
    ) -> None:
        self.venue = venue
        self.min_interval_s = min_interval_s
        self.max_slippage_bps = max_slippage_bps
        self._note = note
        self._intent: str | None = None
        self._last_s: float | None = None
        self.slices = 0

    async def step(
        self, now: float, snap: VenueSnapshot, d: RiskDirective, lot: float, tick: float
    ) -> str | None:
        """Send the next slice when one is due; return its handle (None: nothing sent)."""
        plan = d.unload
        if plan is None or snap.index is None or d.state is RiskState.HALTED:
            self._last_s = None
            return None
        if self._intent is not None:
            if self.venue.in_flight(self._intent):
                return None  # one slice in flight at a time
            self._intent = None
        gap = self.min_interval_s
        elapsed = now - self._last_s if self._last_s is not None else gap
        if elapsed < gap:
            return None
        slice_base = min(plan.excess_base, plan.rate_base_per_s * max(elapsed, 1.0))
        lots = int(slice_base / lot + 1e-9)
        if lots < 1:
            lots = 1 if plan.excess_base >= lot else 0
        if lots < 1:
            return None
        opposite = Side.BID if plan.side is Side.ASK else Side.ASK
        ref = best_other(snap, opposite, tick) or snap.index
        limit = unload_limit_tick(plan.side, ref, self.max_slippage_bps / 1e4, tick)
        try:
            self._intent = await self.venue.reduce(plan.side, lots, limit)
        except GasOverBudget:
            return None
        self._last_s = now
        self.slices += 1
        self._note(
            f"unload {plan.side.name} {lots * lot:g} (excess {plan.excess_base:g}, "
            f"limit {limit * tick:,.2f})"
        )
        return self._intent
