"""The event book: venue events into the journal and the P&L ledger, each exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.book import EventBook
from agent.pnl import PnlLedger
from agent.store import Journal
from agent.types import Fill, Lots, Side, Tick
from agent.venue.base import (
    FundingPaid,
    MarketInfo,
    OrderPlaced,
    OwnFill,
    ReorgUndo,
    Trade,
)

MARKET = MarketInfo(0.01, 0.01, 10.0, -1.0, 5.0, 3600, 6, market_id="0xmarket")


def _book(
    tmp_path: Path,
) -> tuple[EventBook, Journal, PnlLedger, list[tuple[float, float]], set[str]]:
    journal = Journal(tmp_path / "j.sqlite", fsync=False)
    ledger = PnlLedger()
    trades: list[tuple[float, float]] = []
    accounts: set[str] = set()
    book = EventBook(
        journal,
        ledger,
        MARKET,
        "0xMe",
        on_trade=lambda t, d: trades.append((t, d)),
        on_account=accounts.add,
        note=lambda _: None,
    )
    return book, journal, ledger, trades, accounts


def _own_fill(log_index: int = 3) -> OwnFill:
    # We sold 0.05 at $3001 (maker, 1 bp rebate: fee −15 raw units of a 6-decimal token).
    fill = Fill(7, Side.ASK, Tick(300_100), Lots(5), -15, 10, "0xabc", log_index)
    return OwnFill(10, f"0xabc:{log_index}:own", fill, True, 1)


def test_a_fill_is_booked_once_and_a_reorg_undoes_it_exactly(tmp_path: Path) -> None:
    book, journal, ledger, _, _ = _book(tmp_path)
    assert book.apply([_own_fill()], 3000.0, 1.0) == 1
    assert book.apply([_own_fill()], 3000.0, 2.0) == 0  # a re-poll is not a second fill
    assert ledger.snapshot().spread == pytest.approx(0.05)
    assert len(journal.fills()) == 1
    book.apply([ReorgUndo(10, "0xabc:3:own", _own_fill())], 2990.0, 3.0)
    assert journal.fills() == []
    assert ledger.snapshot().spread == pytest.approx(0.0, abs=1e-12)
    assert ledger.snapshot().fees == pytest.approx(0.0, abs=1e-12)
    journal.close()


def test_trades_feed_the_estimator_and_the_keeper_but_not_with_our_own_address(
    tmp_path: Path,
) -> None:
    book, journal, _, trades, accounts = _book(tmp_path)
    book.apply([Trade(9, "0x1:0", 3001.5, 0.1, Side.BID, "0xme", "0xother")], 3000.0, 5.0)
    assert trades == [(5.0, pytest.approx(1.5))]
    assert accounts == {"0xother"}
    journal.close()


def test_funding_is_journaled_with_its_log_key_and_order_events_change_nothing(
    tmp_path: Path,
) -> None:
    book, journal, ledger, _, _ = _book(tmp_path)
    book.apply(
        [
            FundingPaid(11, "0xdef:4", -1.25),
            OrderPlaced(11, "0xdef:5", 8, 2, Side.BID, 299_000, 5, 0),
        ],
        3000.0,
        6.0,
    )
    assert ledger.snapshot().funding == pytest.approx(-1.25)
    assert journal.funding_total_raw("0xmarket") == 1_250_000  # paid: positive raw
    journal.close()


def test_others_book_takes_out_only_our_lots() -> None:
    from agent.book import others_book
    from agent.types import BookSnapshot, Order

    book = BookSnapshot(bids=((2999, 15), (2998, 4)), asks=((3001, 10), (3003, 7)), block_number=9)
    ours = (
        Order(1, Side.BID, Tick(2999), Lots(10), Lots(10)),  # shares the level with 5 of others
        Order(2, Side.ASK, Tick(3001), Lots(10), Lots(10)),  # alone at the level
    )
    rest = others_book(book, ours)
    assert rest.bids == ((2999, 5), (2998, 4))
    assert rest.asks == ((3003, 7),)
    assert (rest.best_bid, rest.best_ask) == (2999, 3003)


def test_own_fills_reach_the_callback_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", fsync=False)
    seen: list[tuple[float, Fill]] = []
    book = EventBook(
        journal,
        PnlLedger(),
        MARKET,
        "0xMe",
        on_trade=lambda t, d: None,
        on_account=lambda a: None,
        note=lambda _: None,
        on_own_fill=lambda t, f: seen.append((t, f)),
    )
    fill = _own_fill()
    assert book.apply([fill], 3000.0, 5.0) == 1
    assert book.apply([fill], 3000.0, 6.0) == 0  # re-polled: not a new fill
    assert seen == [(5.0, fill.fill)]
