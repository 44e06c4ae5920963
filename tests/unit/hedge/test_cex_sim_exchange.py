"""The simulator's exchange core, driven by a manual clock: matching, fees, margin, funding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sims.cex import Exchange, ManualClock, SimConfig, SimError

D = Decimal
EIGHT_HOURS_MS = 8 * 3_600_000


def order(side: str, qty: str, price: str, coid: str, **extra: str) -> dict[str, str]:
    base = {
        "symbol": "ETHUSDT",
        "side": side,
        "type": "LIMIT",
        "timeInForce": "IOC",
        "quantity": qty,
        "price": price,
        "newClientOrderId": coid,
    }
    return {**base, **extra}


@pytest.fixture
def ex() -> Exchange:
    return Exchange(SimConfig(), ManualClock(start_ms=EIGHT_HOURS_MS * 1000 + 1))


def test_taker_walks_the_book_and_pays_taker_fee(ex: Exchange) -> None:
    _bids, asks = ex.book("ETHUSDT", 3)
    res = ex.place(order("BUY", "8", "2100", "a"))  # more than the best level (5)
    assert res["status"] == "FILLED"
    prices = [D(t["price"]) for t in ex.trades()]
    assert prices == [asks[0][0], asks[1][0]]
    fee = sum(D(t["commission"]) for t in ex.trades())
    assert fee == sum(D(t["quoteQty"]) for t in ex.trades()) * D("0.0004")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (order("BUY", "0.0015", "2000", "x"), -4023),
        (order("BUY", "0.005", "2000", "x"), -4164),
        (order("BUY", "1", "2000.005", "x"), -4014),
        (order("BUY", "1", "2000", "bad id!"), -4015),
        (order("BUY", "1", "2001", "x", timeInForce="GTX"), -5022),
        (order("SELL", "1", "1990", "x", reduceOnly="true"), -2022),
        (order("BUY", "600", "2100", "x"), -2019),
    ],
)
def test_refusals_use_binance_codes(ex: Exchange, params: dict[str, str], code: int) -> None:
    with pytest.raises(SimError) as info:
        ex.place(params)
    assert info.value.code == code
    assert ex.orders() == []


def test_client_ids_unique_among_open_orders(ex: Exchange) -> None:
    ex.place(order("BUY", "1", "1900", "rest", timeInForce="GTC"))
    with pytest.raises(SimError) as info:
        ex.place(order("BUY", "1", "1900", "rest", timeInForce="GTC"))
    assert info.value.code == -4116
    ex.place(order("BUY", "1", "2100", "ioc"))
    ex.place(order("BUY", "1", "2100", "ioc"))  # not open any more: Binance accepts it again
    assert ex.state()["client_ids_accepted_more_than_once"] == ["ioc"]


def test_funding_every_eight_hours(ex: Exchange) -> None:
    clock = ex.clock
    assert isinstance(clock, ManualClock)
    ex.place(order("BUY", "2", "2100", "long"))
    wallet = D(ex.balance()[0]["balance"])
    clock.advance(EIGHT_HOURS_MS)
    ex.advance()
    events = ex.state()["funding"]
    assert len(events) == 1
    assert D(events[0]["income"]) == -D("2") * D("2000") * D("0.0001")  # longs pay
    assert D(ex.balance()[0]["balance"]) == wallet + D(events[0]["income"])
    clock.advance(3 * EIGHT_HOURS_MS)
    ex.advance()
    assert len(ex.state()["funding"]) == 4


def test_resting_order_fills_as_maker_when_price_crosses(ex: Exchange) -> None:
    ex.place(order("SELL", "1", "2010", "ask", timeInForce="GTC"))
    ex.set_mid("ETHUSDT", 2015)
    (trade,) = ex.trades()
    assert trade["maker"] and D(trade["price"]) == D("2010")
    assert ex.position_qty("ETHUSDT") == D("-1")


def test_countdown_cancels_all_open_orders(ex: Exchange) -> None:
    clock = ex.clock
    assert isinstance(clock, ManualClock)
    ex.place(order("BUY", "1", "1900", "r1", timeInForce="GTC"))
    ex.countdown("ETHUSDT", 5_000)
    clock.advance(4_999)
    ex.advance()
    assert len(ex.open_orders("ETHUSDT")) == 1
    clock.advance(1)
    ex.advance()
    assert ex.open_orders("ETHUSDT") == []


def test_countdown_renewal_postpones_and_zero_disarms(ex: Exchange) -> None:
    clock = ex.clock
    assert isinstance(clock, ManualClock)
    ex.place(order("BUY", "1", "1900", "r1", timeInForce="GTC"))
    ex.countdown("ETHUSDT", 5_000)
    clock.advance(4_000)
    ex.countdown("ETHUSDT", 5_000)  # heartbeat: the deadline moves to now + 5 s
    clock.advance(4_000)
    ex.advance()
    assert len(ex.open_orders("ETHUSDT")) == 1
    deadline = clock.now_ms() + 1_000
    clock.advance(60_000)  # nobody looked for a minute: it still fired at the deadline
    ex.advance()
    (cancelled,) = [o for o in ex.orders() if o["clientOrderId"] == "r1"]
    assert cancelled["status"] == "CANCELED" and cancelled["updateTime"] == deadline
    ex.place(order("BUY", "1", "1900", "r2", timeInForce="GTC"))
    ex.countdown("ETHUSDT", 5_000)
    ex.countdown("ETHUSDT", 0)
    clock.advance(10_000)
    ex.advance()
    assert len(ex.open_orders("ETHUSDT")) == 1
