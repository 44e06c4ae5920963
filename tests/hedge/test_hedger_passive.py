"""Hedging that pays: passive (post-only) hedges, the taker fallback, urgency, on the simulator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from agent.hedge import BinanceFuturesClient, Credentials, Hedger, HedgerConfig
from sims.cex import SimConfig, SimServer

from .cex_simkit import FAST, SYMBOL, MemoryJournal, client_config


@pytest_asyncio.fixture
async def wire() -> AsyncIterator[tuple[SimServer, BinanceFuturesClient]]:
    async with SimServer(SimConfig(seed=9), faults=FAST) as sim:
        creds = Credentials(sim.config.api_key, sim.config.api_secret)
        async with BinanceFuturesClient(client_config(sim.url, timeout_s=1.5), creds) as client:
            await client.connect([SYMBOL])
            yield sim, client


def passive(**changes: object) -> HedgerConfig:
    base: dict[str, object] = {
        "symbol": SYMBOL,
        "order_style": "PASSIVE",
        "dead_band_base": 0.05,
        "passive_timeout_s": 5.0,
    }
    return HedgerConfig(**{**base, **changes})  # type: ignore[arg-type]


async def tick(hedger: Hedger, now_s: float) -> None:
    await hedger.step(now_s)
    await hedger.drain()


@pytest.mark.asyncio
async def test_passive_hedge_rests_at_our_touch_and_fills_as_maker(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    sim, client = wire
    journal = MemoryJournal()
    hedger = Hedger(client, journal, passive(maker_fee_bps=2.0))
    bid = (await client.book_ticker(SYMBOL)).bid_price
    await hedger.on_position(-0.5, dex_mark=2000.0, now_s=0.0)  # hedge: buy 0.5
    await hedger.drain()
    (order,) = await client.open_orders(SYMBOL)
    assert order.time_in_force == "GTX" and order.price == bid and order.side == "BUY"
    await tick(hedger, 1.0)  # still working: no second order, no cancel
    assert [o.client_order_id for o in await client.open_orders(SYMBOL)] == [order.client_order_id]
    sim.exchange.set_mid(SYMBOL, Decimal("1990"))  # the market comes to our bid
    await tick(hedger, 2.0)
    assert sim.exchange.position_qty(SYMBOL) == Decimal("0.5")
    assert hedger.health().cex_position_base == pytest.approx(0.5)
    (trade,) = sim.exchange.trades()
    assert trade["maker"]
    (fill,) = hedger.drain_fills()
    assert fill.fee_quote == pytest.approx(0.5 * float(bid) * 2.0 / 1e4)
    assert [r.status for r in journal.rows.values()] == ["FILLED"]
    assert len(sim.exchange.orders()) == 1


@pytest.mark.asyncio
async def test_passive_hedge_falls_back_to_taker_after_the_timeout(
    wire: tuple[SimServer, BinanceFuturesClient], caplog: pytest.LogCaptureFixture
) -> None:
    sim, client = wire
    caplog.set_level(logging.INFO, logger="agent.hedge.hedger")
    journal = MemoryJournal()
    hedger = Hedger(client, journal, passive())
    await hedger.on_position(0.7, dex_mark=2000.0, now_s=100.0)  # hedge: sell 0.7
    await hedger.drain()
    await tick(hedger, 103.0)
    assert sim.exchange.position_qty(SYMBOL) == 0 and len(sim.exchange.orders()) == 1
    await tick(hedger, 105.5)  # the gap has been out of the band 5.5 s: take it
    assert sim.exchange.position_qty(SYMBOL) == Decimal("-0.7")
    gtx, ioc = sim.exchange.orders()
    assert (gtx["timeInForce"], gtx["status"]) == ("GTX", "CANCELED")
    assert (ioc["timeInForce"], ioc["status"]) == ("IOC", "FILLED")
    executed = sum(Decimal(o["executedQty"]) for o in sim.exchange.orders())
    assert executed == Decimal("0.7")
    assert journal.open_hedge_intents() == []
    # One line per hedge order event, each naming its client order id.
    lines = [r.getMessage() for r in caplog.records]
    for o, events in ((gtx, ("placing", "placed", "cancelled")), (ioc, ("placing", "filled"))):
        for event in events:
            assert any(f"hedge order {o['clientOrderId']} {event}" in m for m in lines), event


@pytest.mark.asyncio
async def test_high_urgency_shrinks_the_band_and_takes_at_once(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    sim, client = wire
    hedger = Hedger(client, MemoryJournal(), passive(dead_band_base=0.4, urgent_band_mult=0.25))
    await hedger.on_position(-0.3, dex_mark=2000.0, now_s=0.0)
    await hedger.drain()
    assert sim.exchange.orders() == []  # 0.3 inside the 0.4 band
    hedger.set_urgency(2)  # the risk engine went HEDGING: band 0.1, taker now
    assert hedger.band_base() == pytest.approx(0.1)
    await tick(hedger, 1.0)
    (order,) = sim.exchange.orders()
    assert order["timeInForce"] == "IOC" and order["status"] == "FILLED"
    assert sim.exchange.position_qty(SYMBOL) == Decimal("0.3")


@pytest.mark.asyncio
async def test_urgency_mid_passive_cancels_and_takes(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    sim, client = wire
    hedger = Hedger(client, MemoryJournal(), passive(passive_timeout_s=600.0))
    await hedger.on_position(0.4, dex_mark=2000.0, now_s=0.0)
    await hedger.drain()
    assert len(await client.open_orders(SYMBOL)) == 1
    hedger.set_urgency(2)
    await tick(hedger, 1.0)
    assert await client.open_orders(SYMBOL) == []
    assert sim.exchange.position_qty(SYMBOL) == Decimal("-0.4")


@pytest.mark.asyncio
async def test_no_urgency_sends_nothing_and_band_can_be_set(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    sim, client = wire
    hedger = Hedger(client, MemoryJournal(), HedgerConfig(SYMBOL, dead_band_base=0.05))
    hedger.set_urgency(0)
    await hedger.on_position(1.0, dex_mark=2000.0, now_s=0.0)
    await hedger.drain()
    assert sim.exchange.orders() == []
    hedger.set_urgency(1)
    hedger.set_band(2.0)  # e.g. hedge_band_base(...) on a calm market
    await tick(hedger, 1.0)
    assert sim.exchange.orders() == []
    hedger.set_band(None)  # back to the configured 0.05
    await tick(hedger, 2.0)
    assert sim.exchange.position_qty(SYMBOL) == Decimal("-1.0")
    with pytest.raises(ValueError, match="urgency"):
        hedger.set_urgency(3)


@pytest.mark.asyncio
async def test_hedge_leg_reads_a_fresh_exchange_mid_and_takes_the_risk_posture(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    # The runtime's view of the leg: a fresh mid for fair value (never waiting on the exchange),
    # the band and urgency the risk directive orders, and what a hedge costs in each style.
    from agent.hedging import HedgeLeg

    sim, client = wire
    now = [100.0]
    hedger = Hedger(client, MemoryJournal(), passive())
    leg = HedgeLeg(hedger, client, SYMBOL, clock=lambda: now[0])
    assert leg.fresh_mid() is None
    leg.poll_mid(now[0])
    task = leg._mid_task
    leg.poll_mid(now[0])  # one read in flight at most
    assert leg._mid_task is task is not None
    now[0] = 100.1  # the answer is stamped with when it was asked for
    await leg.await_mid(5.0)
    seen = leg.fresh_mid()
    assert seen is not None and seen[0] == 100.0
    assert seen[1] == pytest.approx(float(sim.exchange.mid(SYMBOL)), rel=1e-4)
    leg.poll_mid(now[0])  # within the minimum interval: no new read
    assert leg._mid_task is task and task.done()

    leg.set_posture(0.2, 1)
    assert hedger.band_base() == pytest.approx(0.2)
    leg.set_posture(0.2 * 0.5, 2)  # HEDGING: the directive's half band, then the urgent shrink
    assert hedger.band_base() == pytest.approx(0.1 * hedger.config.urgent_band_mult)
    assert leg.hedge_cost_bps() == pytest.approx(max(hedger.config.maker_fee_bps, 0.5))
    assert leg.min_order_base() == pytest.approx(0.001)
    await leg.close(timeout_s=2.0)


@pytest.mark.asyncio
async def test_a_float_gap_is_traded_to_the_step_it_means_not_one_step_short(
    wire: tuple[SimServer, BinanceFuturesClient],
) -> None:
    # Found by the live crash test: hedge −0.121 against a DEX long of 0.121; the DEX position
    # fell to 0.1 and the gap, 0.1 − 0.121 = 0.020999999999999998 in floats, was rounded *down*
    # to 0.020. The hedge stayed 0.101 against a 0.1 position: one step over the DEX position.
    sim, client = wire
    hedger = Hedger(client, MemoryJournal(), passive(dead_band_base=0.0, order_style="IOC"))
    await hedger.on_position(0.121, dex_mark=2000.0, now_s=0.0)
    await hedger.drain()
    assert sim.exchange.position_qty(SYMBOL) == Decimal("-0.121")
    await hedger.on_position(0.1, dex_mark=2000.0, now_s=1.0)
    await hedger.drain()
    assert sim.exchange.position_qty(SYMBOL) == Decimal("-0.100")
    assert [o["origQty"] for o in sim.exchange.orders()] == ["0.121", "0.021"]
