"""Domain types shared by every part of the agent.

Chain amounts stay integers (wei, ticks, lots) until the model boundary; the model works in floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

__all__ = [
    "BookSnapshot",
    "Fill",
    "FundingState",
    "Lots",
    "Order",
    "PositionState",
    "Quote",
    "Side",
    "Tick",
    "VenueSnapshot",
    "Wei",
]

Wei = NewType("Wei", int)
"""An amount of native currency or gas price in wei."""
Tick = NewType("Tick", int)
"""A price expressed in integer ticks of the market's tick size."""
Lots = NewType("Lots", int)
"""A size expressed in integer lots of the market's lot size (signed for positions)."""


class Side(enum.IntEnum):
    """Order side; the integer values match the contract's encoding."""

    BID = 0
    ASK = 1

    @property
    def sign(self) -> int:
        """+1 for a bid (buying adds inventory), -1 for an ask."""
        return 1 if self is Side.BID else -1


@dataclass(frozen=True, slots=True)
class Quote:
    """One desired resting order, in chain units."""

    side: Side
    price_ticks: Tick
    size_lots: Lots


@dataclass(frozen=True, slots=True)
class Order:
    """A live order on a venue."""

    order_id: int
    side: Side
    price_ticks: Tick
    size_lots: Lots
    remaining_lots: Lots
    client_id: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """A confirmed fill of one of our orders (size is unsigned; `side` is ours)."""

    order_id: int
    side: Side
    price_ticks: Tick
    size_lots: Lots
    fee_raw: int
    block_number: int
    tx_hash: str
    log_index: int


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
class VenueSnapshot:
    """One consistent read of the market and our account: what one decision is made from.

    It lives here, not in :mod:`agent.venue`, because the pure layers (the risk-inputs builder
    beside the risk engine) read it and may import nothing but this module and the errors.
    """

    block_number: int
    block_hash: str
    block_time_s: int
    base_fee_wei: int
    gas_used: int
    gas_limit: int
    oracle_updated_s: int
    """The oracle's latest ``updatedAt`` (0 when unreadable)."""
    book: BookSnapshot
    index: float | None
    """None when the oracle is stale or invalid (see `index_error`)."""
    index_error: str | None
    mark: float | None
    funding: FundingState
    position: PositionState | None
    """None when the view could not be read (it needs a fresh oracle); keep the last known one."""
    open_orders: tuple[Order, ...]
