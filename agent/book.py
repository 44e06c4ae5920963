"""The event book: venue events into the journal, the P&L ledger and the fill estimator.

Each :data:`~agent.venue.base.MarketEvent` is handled by one ``match`` arm; ``assert_never``
makes a new event kind a type error here until it is handled. Fills are booked once (the journal
keys them by transaction hash and log index, across restarts) and a reorganisation reverses a
booked fill at the mid it was booked at, so spread and fees undo exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, assert_never

from agent.pnl import PnlLedger
from agent.types import BookSnapshot, Fill, Order, Side
from agent.venue.base import (
    AllOrdersCancelled,
    FundingPaid,
    FundingSettled,
    Liquidated,
    MarketEvent,
    MarketInfo,
    OrderCancelled,
    OrderExpired,
    OrderPlaced,
    OwnFill,
    ReorgUndo,
    Trade,
)

__all__ = ["BookJournal", "EventBook", "others_book"]

_FILL_MIDS_KEPT = 4096  # far beyond any reorg window


def others_book(book: BookSnapshot, own: Iterable[Order]) -> BookSnapshot:
    """Return `book` with our own resting orders taken out: what the rest of the market shows.

    Our remaining lots are subtracted level by level (others may rest at the same price), and a
    level left empty disappears. Fair value, depth sizing and the post-only bounds read this:
    a mid that contains our own quotes follows wherever we quote.
    """
    mine: dict[tuple[Side, int], int] = {}
    for o in own:
        key = (o.side, int(o.price_ticks))
        mine[key] = mine.get(key, 0) + int(o.remaining_lots)

    def strip(side: Side, levels: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        out = ((t, n - mine.get((side, t), 0)) for t, n in levels)
        return tuple((t, n) for t, n in out if n > 0)

    return BookSnapshot(strip(Side.BID, book.bids), strip(Side.ASK, book.asks), book.block_number)


class BookJournal(Protocol):
    """What the event book writes (``agent.store.Journal`` implements it)."""

    def insert_fill(self, fill: Fill, recorded_ms: int) -> bool: ...

    def remove_fill(self, tx_hash: str, log_index: int) -> bool: ...

    def insert_funding(
        self,
        tx_hash: str,
        log_index: int,
        market: str,
        amount_raw: int,
        rate: float,
        block_number: int,
        ts_ms: int,
    ) -> bool: ...


class EventBook:
    """Books market events; reports what it learnt through callbacks.

    Parameters
    ----------
    journal
        Where fills and funding payments are recorded (exactly once).
    ledger
        The P&L ledger fills and funding feed.
    market
        Static parameters (tick and lot size, collateral decimals, market id).
    account
        Our address (lower case compares): our own trades are not a keeper's business.
    on_trade
        Called with (now, |price − mid|) for every trade (the fill-intensity estimator).
    on_account
        Called with every other account seen trading (the keeper's liquidation candidates).
    on_own_fill
        Called with (now, fill) for each own fill booked for the first time (the quote
        fill-intensity estimator); a reorg's undo does not call it again.
    note
        Human-readable notes for the status page and the log.
    """

    def __init__(
        self,
        journal: BookJournal,
        ledger: PnlLedger,
        market: MarketInfo,
        account: str,
        *,
        on_trade: Callable[[float, float], None],
        on_account: Callable[[str], None],
        note: Callable[[str], None],
        on_own_fill: Callable[[float, Fill], None] | None = None,
    ) -> None:
        self.journal = journal
        self.ledger = ledger
        self.market = market
        self._me = account.lower()
        self._on_trade = on_trade
        self._on_account = on_account
        self._on_own_fill = on_own_fill
        self._note = note
        self._unit = 10**market.collateral_decimals
        self._fill_mids: dict[tuple[str, int], float] = {}
        self.fills = 0
        """Own fills booked (a reorg's undo does not lower it: it counts what was seen)."""

    def apply(self, events: list[MarketEvent], mid: float | None, now_s: float) -> int:
        """Book `events` (in order) with `mid` as the reference price; return new own fills."""
        booked = 0
        for ev in events:
            booked += self._apply(ev, mid or 0.0, now_s)
        return booked

    def _apply(self, ev: MarketEvent, mid: float, now_s: float) -> int:
        tick, lot = self.market.tick_size, self.market.lot_size
        match ev:
            case Trade():
                if mid > 0:
                    self._on_trade(now_s, abs(ev.price - mid))
                for who in (ev.maker, ev.taker):
                    if who.lower() != self._me:
                        self._on_account(who.lower())
            case OwnFill(fill=f):
                if not self.journal.insert_fill(f, int(now_s * 1000)):
                    return 0  # already booked (restart or re-poll)
                at_mid = mid or f.price_ticks * tick
                self.ledger.on_dex_fill(
                    _signed(f) * lot, f.price_ticks * tick, f.fee_raw / self._unit, at_mid
                )
                self._fill_mids[(f.tx_hash, f.log_index)] = at_mid
                if len(self._fill_mids) > _FILL_MIDS_KEPT:
                    self._fill_mids.pop(next(iter(self._fill_mids)))
                self.fills += 1
                if self._on_own_fill is not None:
                    self._on_own_fill(now_s, f)
                self._note(
                    f"fill {f.side.name} {f.size_lots * lot:g} @ {f.price_ticks * tick:,.2f}"
                )
                return 1
            case FundingPaid():
                self.ledger.on_funding(ev.amount)
                tx_hash, _, log_index = ev.key.partition(":")
                self.journal.insert_funding(
                    tx_hash,
                    int(log_index),
                    self.market.market_id,
                    int(-ev.amount * self._unit),
                    0.0,
                    ev.block_number,
                    int(now_s * 1000),
                )
                self._note(
                    f"funding {'received' if ev.amount >= 0 else 'paid'} {abs(ev.amount):.4f}"
                )
            case FundingSettled():
                self._note(f"funding settled: epoch {ev.epoch} rate {ev.rate:.6%}")
            case Liquidated():
                self._note(f"liquidation of {ev.account[:10]} by {ev.keeper[:10]}")
            case ReorgUndo(original=orig):
                self._undo(orig, ev.key)
            case OrderPlaced() | OrderCancelled() | OrderExpired() | AllOrdersCancelled():
                pass  # the snapshot's open orders are the truth; these are for the log
            case _:
                assert_never(ev)
        return 0

    def _undo(self, orig: MarketEvent, key: str) -> None:
        self._note(f"reorg: undid {type(orig).__name__} {key}")
        if not isinstance(orig, OwnFill):
            return
        f = orig.fill
        if not self.journal.remove_fill(f.tx_hash, f.log_index):
            return
        tick, lot = self.market.tick_size, self.market.lot_size
        at_mid = self._fill_mids.pop((f.tx_hash, f.log_index), f.price_ticks * tick)
        self.ledger.on_dex_fill(
            -_signed(f) * lot, f.price_ticks * tick, -f.fee_raw / self._unit, at_mid
        )


def _signed(f: Fill) -> int:
    return f.size_lots if f.side is Side.BID else -f.size_lots
