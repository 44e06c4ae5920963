"""Domain types shared by every part of the agent.

Chain amounts stay integers (wei, ticks, lots) until the model boundary; the model works in floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

__all__ = [
    "Fill",
    "Lots",
    "Order",
    "Quote",
    "Side",
    "Tick",
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
