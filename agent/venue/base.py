"""The venue protocol: one shape for every place the agent trades.

Every adapter implements :class:`Venue`. The orchestrator talks to venues only through it, so the
same strategy runs against the on-chain book (live or forked) and against simulated venues.

========================  ========================================================================
method                    guarantee
========================  ========================================================================
``connect()``             idempotent; verifies the venue is the one configured (chain id, code at
                          the market address) and loads static market parameters
``market()``              static parameters: tick size, lot size, min notional, fees (no I/O
                          after ``connect``)
``book(depth)``           aggregated levels, best first, from one consistent read
``open_orders()``         our resting orders as the venue sees them *now* (the source of truth)
``position()``            our signed position, collateral, equity and margin, as the venue sees them
``funding()``             epoch, next boundary, running premium, last rate, cumulative index
``replace_quotes(...)``   cancel ``cancel_ids`` and place ``quotes`` atomically (all or nothing);
                          an id that is already gone is skipped, never an error; returns a handle
                          whose outcome arrives through ``poll_events``
``cancel_all()``          removes every resting order of ours; outranks any pending replace
``poll_events()``         new fills / funding payments / order state changes since the last call,
                          each exactly once, with chain reorganisations undone
``reconcile()``           compares local order state with the venue and returns the differences
========================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent.types import Fill, Order, Quote

__all__ = [
    "BookSnapshot",
    "FundingState",
    "MarketInfo",
    "PositionState",
    "Venue",
    "VenueEvent",
]


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Static market parameters, converted to floats at the model boundary by the caller."""

    tick_size: float
    """Price units (collateral per base unit) per tick."""
    lot_size: float
    """Base units per lot."""
    min_notional: float
    """Collateral units."""
    maker_fee_bps: float
    taker_fee_bps: float
    funding_interval_s: int
    collateral_decimals: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Aggregated book levels, best first: (price_ticks, size_lots)."""

    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    block_number: int

    @property
    def best_bid(self) -> int | None:
        """Best bid in ticks, None when the side is empty."""
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> int | None:
        """Best ask in ticks, None when the side is empty."""
        return self.asks[0][0] if self.asks else None


@dataclass(frozen=True, slots=True)
class PositionState:
    """Our account on the venue, in collateral units (floats) and lots (signed)."""

    size_lots: int
    entry_notional: float
    collateral: float
    unrealized_pnl: float
    funding_owed: float
    equity: float
    initial_margin: float
    maintenance_margin: float
    reserved_margin: float


@dataclass(frozen=True, slots=True)
class FundingState:
    """The venue's funding clock and rates (rates are per interval, as fractions)."""

    epoch: int
    next_boundary_s: int
    running_premium: float
    last_rate: float
    cumulative_index: float


@dataclass(frozen=True, slots=True)
class VenueEvent:
    """One thing that happened to us on the venue, delivered exactly once."""

    kind: str
    """"fill" (ours), "trade" (anyone's), "funding" (paid/received by us), "funding_settled",
    "placed", "cancelled", "cancelled_all", "liquidation", "undo" (a reorg removed the event
    whose key is `key`)."""
    block_number: int
    key: str
    """Unique id (tx hash + log index on chain) so consumers can deduplicate."""
    fill: Fill | None = None
    order: Order | None = None
    amount: float = 0.0
    """Funding paid (negative) or received (positive), collateral units."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific details (e.g. rate and index for "funding_settled", account for
    "liquidation", taker side and size for "trade")."""


@runtime_checkable
class Venue(Protocol):
    """The operations the orchestrator needs from a venue; see the module table."""

    async def connect(self) -> None: ...

    def market(self) -> MarketInfo: ...

    async def book(self, depth: int) -> BookSnapshot: ...

    async def open_orders(self) -> list[Order]: ...

    async def position(self) -> PositionState: ...

    async def funding(self) -> FundingState: ...

    async def replace_quotes(self, cancel_ids: Sequence[int], quotes: Sequence[Quote]) -> str: ...

    async def cancel_all(self) -> str: ...

    async def poll_events(self) -> list[VenueEvent]: ...
