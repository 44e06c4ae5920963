"""A typed venue snapshot built from plain numbers, for the runtime components' unit tests."""

from __future__ import annotations

from agent.types import (
    BookSnapshot,
    FundingState,
    Lots,
    Order,
    PositionState,
    Side,
    Tick,
    VenueSnapshot,
)


def snapshot(
    *,
    block: int = 100,
    block_time_s: int = 1_000,
    bid: int = 299_000,
    ask: int = 301_000,
    index: float | None = 3000.0,
    mark: float | None = 3000.0,
    oracle_updated_s: int = 995,
    position: PositionState | None = None,
    own: tuple[tuple[Side, int, int], ...] = (),
    next_funding_s: int = 4_600,
) -> VenueSnapshot:
    """One snapshot: a two-sided book at `bid`/`ask` ticks ($0.01) plus our `own` orders."""
    orders = tuple(
        Order(i + 1, side, Tick(tick), Lots(lots), Lots(lots))
        for i, (side, tick, lots) in enumerate(own)
    )
    bids = sorted([(bid, 50)] + [(t, n) for s, t, n in own if s is Side.BID], reverse=True)
    asks = sorted([(ask, 50)] + [(t, n) for s, t, n in own if s is Side.ASK])
    return VenueSnapshot(
        block_number=block,
        block_hash=f"0x{block:064x}",
        block_time_s=block_time_s,
        base_fee_wei=10**9,
        gas_used=15_000_000,
        gas_limit=30_000_000,
        oracle_updated_s=oracle_updated_s,
        book=BookSnapshot(tuple(bids), tuple(asks), block),
        index=index,
        index_error=None,
        mark=mark,
        funding=FundingState(1, next_funding_s, 0.0, 0.0, 0.0),
        position=position,
        open_orders=orders,
    )


def position(size_lots: int = 0, equity: float = 10_000.0, maint: float = 0.0) -> PositionState:
    """Our account with `size_lots` and the given equity and maintenance margin."""
    return PositionState(size_lots, 0.0, equity, 0.0, 0.0, equity, 0.0, maint, 0.0)
