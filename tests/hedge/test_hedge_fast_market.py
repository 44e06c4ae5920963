"""Hedging into a fast market through exchange faults: the hedger, a fault proxy, the simulator.

A crash moves the exchange faster than a hedge order gets through: a 429 window, or an order
slow on the wire, and the price read before it is stale by the time the order lands. The hedge
must then be re-priced against the book as it is, sent once, and fill — not resent at the old
price (it expires unfilled, the residual stays open while the market keeps falling).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from agent.hedge import BinanceFuturesClient, Credentials, Hedger, HedgerConfig
from sims.cex import SimConfig, SimServer
from sims.faults import CexFaultProxy, ProxyFault

from .cex_simkit import FAST, SYMBOL, MemoryJournal, client_config

HEDGE_BASE = 1.2
MID0 = 2000.0
CRASHED_MID = 1980.0  # −1%: far beyond the 15 bps cap of an order priced before the move


@pytest_asyncio.fixture
async def wire() -> AsyncIterator[tuple[SimServer, CexFaultProxy, BinanceFuturesClient]]:
    async with SimServer(SimConfig(seed=7), faults=FAST) as sim:
        sim.exchange.set_mid(SYMBOL, MID0)
        proxy = CexFaultProxy(sim.url)
        await proxy.start()
        creds = Credentials(sim.config.api_key, sim.config.api_secret)
        client = BinanceFuturesClient(client_config(proxy.url, timeout_s=1.5), creds)
        try:
            await client.connect([SYMBOL])
            yield sim, proxy, client
        finally:
            await client.aclose()
            await proxy.stop()


def crash_when_hit(sim: SimServer, proxy: CexFaultProxy) -> list[float]:
    """Move the exchange to CRASHED_MID when the proxy applies its first fault; return a list
    that receives the (wall) time of that fault."""
    hit: list[float] = []

    def crash(fault: ProxyFault) -> None:
        if not hit:
            sim.exchange.set_mid(SYMBOL, CRASHED_MID)
            hit.append(time.time())

    proxy.on_fault = crash
    return hit


def order_posts(proxy: CexFaultProxy) -> list[str | None]:
    return [k for m, p, k in proxy.log if (m, p) == ("POST", "/fapi/v1/order")]


@pytest.mark.asyncio
async def test_after_a_429_window_the_hedge_goes_once_at_the_then_current_price(
    wire: tuple[SimServer, CexFaultProxy, BinanceFuturesClient],
) -> None:
    # The crash starts as the exchange answers the hedge with 429s (Retry-After 0.5 s, twice).
    # Resending the refused order after the window (it used to be resent as it was) sells at a
    # limit 1% above the book: it expires unfilled and the long stays unhedged into the fall.
    sim, proxy, client = wire
    proxy.inject(ProxyFault("rate_limit_429", count=2, retry_after_s=0.5))
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    hit = crash_when_hit(sim, proxy)
    await hedger.on_position(HEDGE_BASE, dex_mark=MID0, now_s=time.time())
    await hedger.drain()  # one step, as the runtime would schedule it
    (first_429_s,) = hit

    assert order_posts(proxy) == ["rate_limit_429", "rate_limit_429", None]
    (order,) = sim.exchange.orders()  # the refused ones never reached the exchange
    assert order["status"] == "FILLED"
    assert Decimal(order["executedQty"]) == Decimal(str(HEDGE_BASE))
    # Priced off the book after the move, not off the read before it.
    assert float(order["price"]) < CRASHED_MID
    assert CRASHED_MID * (1 - 20e-4) < float(order["avgPrice"]) < CRASHED_MID
    # Sent after both Retry-After windows, and promptly after them.
    waited_s = order["time"] / 1000 - first_429_s
    assert 0.9 <= waited_s < 2.5
    assert sim.exchange.position_qty(SYMBOL) == Decimal(str(-HEDGE_BASE))
    assert sim.state()["client_ids_accepted_more_than_once"] == []
    assert [r.status for r in journal.rows.values()] == ["REJECTED", "REJECTED", "FILLED"]
    assert journal.open_hedge_intents() == []
    assert hedger.health().hedge_gap_base == pytest.approx(0.0)


@pytest.mark.asyncio
async def test_an_ioc_the_market_ran_from_is_repriced_wider_and_resent_at_once(
    wire: tuple[SimServer, CexFaultProxy, BinanceFuturesClient],
) -> None:
    # The order is 0.3 s on the wire while the exchange falls 1%: it lands above the book and
    # expires unfilled. At the risk engine's high urgency the rest is re-priced against a
    # fresh read, with the cap doubled, in the same step (it used to wait for the next step
    # and price again at the normal cap).
    sim, proxy, client = wire
    proxy.inject(ProxyFault("delay", delay_s=0.3))
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    hedger.set_urgency(2)
    hit = crash_when_hit(sim, proxy)
    await hedger.on_position(HEDGE_BASE, dex_mark=MID0, now_s=time.time())
    await hedger.drain()
    assert hit, "the fault never hit the order: the case tested nothing"
    await proxy.settled()

    first, second = sim.exchange.orders()
    assert first["status"] == "EXPIRED" and Decimal(first["executedQty"]) == 0
    assert second["status"] == "FILLED"
    assert Decimal(second["executedQty"]) == Decimal(str(HEDGE_BASE))
    # Urgency 2 starts at twice the 15 bps cap; one miss doubles it again (60 bps).
    first_cap_bps = (MID0 - float(first["price"])) / MID0 * 1e4
    second_cap_bps = (CRASHED_MID - float(second["price"])) / CRASHED_MID * 1e4
    assert 25 < first_cap_bps < 35
    assert 55 < second_cap_bps < 65
    assert CRASHED_MID * (1 - 20e-4) < float(second["avgPrice"]) < CRASHED_MID
    assert sim.exchange.position_qty(SYMBOL) == Decimal(str(-HEDGE_BASE))
    assert journal.open_hedge_intents() == []


@pytest.mark.asyncio
async def test_at_normal_urgency_a_missed_ioc_is_repriced_once_at_the_same_cap(
    wire: tuple[SimServer, CexFaultProxy, BinanceFuturesClient],
) -> None:
    # Normal urgency: one prompt re-price at the configured cap, no widening, no chasing.
    sim, proxy, client = wire
    proxy.inject(ProxyFault("delay", delay_s=0.3))
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    hit = crash_when_hit(sim, proxy)
    await hedger.on_position(HEDGE_BASE, dex_mark=MID0, now_s=time.time())
    await hedger.drain()
    assert hit, "the fault never hit the order: the case tested nothing"
    await proxy.settled()

    first, second = sim.exchange.orders()
    assert first["status"] == "EXPIRED" and second["status"] == "FILLED"
    second_cap_bps = (CRASHED_MID - float(second["price"])) / CRASHED_MID * 1e4
    assert 13 < second_cap_bps < 17
    assert sim.exchange.position_qty(SYMBOL) == Decimal(str(-HEDGE_BASE))


@pytest.mark.asyncio
async def test_a_lost_answer_looked_up_through_429s_is_never_sent_twice(
    wire: tuple[SimServer, CexFaultProxy, BinanceFuturesClient],
) -> None:
    # The order executes but its answer is lost, and the lookups by client id that follow are
    # answered 429: its outcome stays unknown, and no second order may go out until the
    # exchange says what became of the first (the id lookup, then the position).
    sim, proxy, client = wire
    proxy.inject(ProxyFault("timeout", hold_s=2.0))
    proxy.inject(
        ProxyFault(
            "rate_limit_429", method="GET", path="/fapi/v1/order", count=3, retry_after_s=0.2
        )
    )
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    hedger.set_urgency(2)
    await hedger.on_position(HEDGE_BASE, dex_mark=MID0, now_s=time.time())
    await hedger.drain()
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        health = hedger.health()
        if not health.status_unknown and abs(health.hedge_gap_base) <= 0.01:
            break
        await hedger.step(time.time())
        await hedger.drain()
    await proxy.settled()
    await hedger.step(time.time())
    await hedger.drain()

    assert proxy.pending_faults == [], "a fault never hit: the case tested nothing"
    (order,) = sim.exchange.orders()
    assert order["status"] == "FILLED"
    assert sim.exchange.position_qty(SYMBOL) == Decimal(str(-HEDGE_BASE))
    assert not hedger.health().status_unknown
    assert hedger.health().cex_position_base == pytest.approx(-HEDGE_BASE)
