"""Domain types shared by every part of the agent.

Chain amounts stay integers (wei, ticks, lots) until the model boundary; the model works in floats.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NewType

__all__ = [
    "BookSnapshot",
    "Fill",
    "FundingState",
    "HeadRef",
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
class HeadRef:
    """A block header, as much of it as a snapshot takes from its head block.

    Either read by the venue (``eth_getBlockByNumber``) or pushed by the node's new-heads
    subscription (:class:`agent.chain.heads.HeadWatcher`), which carries no transaction list.
    """

    number: int
    hash: str
    timestamp_s: int
    base_fee_wei: int
    gas_used: int
    gas_limit: int
    tx_hashes: tuple[str, ...] | None = None
    """The block's transactions when the header listed them (a pushed head does not)."""

    @classmethod
    def from_rpc(cls, header: Mapping[str, Any]) -> HeadRef:
        """Parse a JSON-RPC block header (hex quantities); ValueError names a bad field."""
        try:
            number = int(str(header["number"]), 16)
            block_hash = str(header["hash"])
            timestamp = int(str(header["timestamp"]), 16)
            base_fee = int(str(header.get("baseFeePerGas") or "0x0"), 16)
            gas_used = int(str(header.get("gasUsed") or "0x0"), 16)
            gas_limit = int(str(header.get("gasLimit") or "0x1"), 16)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a block header ({exc!r}): {str(header)[:200]}") from exc
        if len(block_hash) != 66 or not block_hash.startswith("0x"):
            raise ValueError(f"not a block hash: {block_hash!r}")
        txs = header.get("transactions")
        tx_hashes = None
        if isinstance(txs, list) and all(isinstance(t, str) for t in txs):
            tx_hashes = tuple(txs)
        return cls(number, block_hash, timestamp, base_fee, gas_used, gas_limit, tx_hashes)


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
