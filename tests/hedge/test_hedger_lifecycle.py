"""Hedge from confirmed truth: restart, close and the dead-man switch, on the real simulator.

A restart must not trade the hedge toward a default target before the DEX position is read, and
closing the hedge leg (what ``mm-agent cancel-all`` and a shutdown do) must cancel orders without
ever changing a position.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from agent.hedge import BinanceFuturesClient, Credentials, Hedger, HedgerConfig
from agent.hedge.binance import OrderRequest
from sims.cex import ManualClock, SimConfig, SimServer

from .cex_simkit import FAST, SYMBOL, MemoryJournal, client_config


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(seed=11), faults=FAST) as server:
        yield server


async def connect(sim: SimServer) -> BinanceFuturesClient:
    creds = Credentials(sim.config.api_key, sim.config.api_secret)
    client = BinanceFuturesClient(client_config(sim.url, timeout_s=1.5), creds)
    await client.connect([SYMBOL])
    return client


def trades(sim: SimServer) -> int:
    return len(sim.exchange.trades())


def position(sim: SimServer) -> Decimal:
    return sim.exchange.position_qty(SYMBOL)


async def hedged(sim: SimServer, journal: MemoryJournal, dex_base: float) -> None:
    """A first run: hedge ``dex_base`` of DEX position, then die without closing anything."""
    client = await connect(sim)
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    await hedger.resume(0.0)
    await hedger.on_position(dex_base, dex_mark=2000.0, now_s=1.0)
    await hedger.drain()
    assert position(sim) == Decimal(str(-dex_base))
    await client.aclose()


@pytest.mark.asyncio
async def test_restart_with_a_hedged_position_makes_no_exchange_trade(sim: SimServer) -> None:
    journal = MemoryJournal()
    await hedged(sim, journal, 1.5)
    before = trades(sim)
    orders_before = len(sim.exchange.orders())

    client = await connect(sim)
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    try:
        await hedger.resume(100.0)  # assembly: before the chain is read
        for t in (101.0, 102.0, 200.0):  # the runtime ticks while the RPC is still down
            await hedger.step(t)
            await hedger.drain()
        health = hedger.health()
        assert not health.armed and health.cex_position_base == pytest.approx(-1.5)
        assert len(sim.exchange.orders()) == orders_before, "an order before the DEX read"
        # The first confirmed read shows the same DEX position: already hedged, nothing to do.
        await hedger.on_position(1.5, dex_mark=2000.0, now_s=201.0)
        await hedger.drain()
        assert hedger.health().armed
        assert trades(sim) == before
        assert len(sim.exchange.orders()) == orders_before
        assert position(sim) == Decimal("-1.5")
        # Armed, it follows the next confirmed change (and only the change).
        await hedger.on_position(2.0, dex_mark=2000.0, now_s=202.0)
        await hedger.drain()
        assert position(sim) == Decimal("-2.0")
        assert sum(float(o["executedQty"]) for o in sim.exchange.orders()) == pytest.approx(2.0)
    finally:
        await hedger.aclose()
        await client.aclose()


@pytest.mark.asyncio
async def test_start_up_that_never_reads_the_chain_sends_nothing(sim: SimServer) -> None:
    journal = MemoryJournal()
    await hedged(sim, journal, -0.8)
    requests_before = [r for r in sim.request_log if r[:2] == ("POST", "/fapi/v1/order")]
    client = await connect(sim)
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL))
    await hedger.resume(10.0)
    await hedger.step(11.0)
    await hedger.drain()
    # Start-up fails here (e.g. RPC down): the runtime closes the leg and exits.
    await hedger.close(cancel_open=True)
    await client.aclose()
    posts = [r for r in sim.request_log if r[:2] == ("POST", "/fapi/v1/order")]
    assert posts == requests_before
    assert position(sim) == Decimal("0.8")


@pytest.mark.asyncio
async def test_close_cancels_open_orders_and_never_changes_a_position(sim: SimServer) -> None:
    journal = MemoryJournal()
    await hedged(sim, journal, 0.6)
    client = await connect(sim)
    # A resting GTC hedge order (the LIMIT style) is what a close must take off the book.
    resting = await client.place_order(
        OrderRequest(SYMBOL, "SELL", Decimal("0.2"), "resting-1", "LIMIT", "GTC", Decimal("2100"))
    )
    assert resting.status == "NEW"
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    try:
        # What `mm-agent cancel-all` does: assemble, resume, close, with the DEX position open
        # and never read (cancel-all must not unwind either leg).
        await hedger.resume(50.0)
        before = trades(sim)
        await hedger.close(cancel_open=True)
        assert await client.open_orders(SYMBOL) == []
        assert position(sim) == Decimal("-0.6")
        assert trades(sim) == before
        # A closed leg ignores later positions: nothing can reopen trading by accident.
        await hedger.on_position(3.0, dex_mark=2000.0, now_s=51.0)
        await hedger.step(52.0)
        await hedger.drain()
        assert position(sim) == Decimal("-0.6") and trades(sim) == before
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_close_while_armed_stops_trading_before_cancelling(sim: SimServer) -> None:
    client = await connect(sim)
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    try:
        await hedger.on_position(0.5, dex_mark=2000.0, now_s=0.0)
        await hedger.drain()
        assert position(sim) == Decimal("-0.5")
        # A new position is scheduled, then the leg closes at once (shutdown): the send that is
        # already in flight completes, but no further order follows the close.
        await hedger.on_position(0.9, dex_mark=2000.0, now_s=1.0)
        await hedger.close(cancel_open=True)
        in_flight = position(sim)
        assert in_flight in (Decimal("-0.5"), Decimal("-0.9"))
        await hedger.step(2.0)
        await hedger.drain()
        assert position(sim) == in_flight
        assert journal.open_hedge_intents() == []
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_dead_man_switch_kills_resting_hedges_after_a_crash() -> None:
    clock = ManualClock()
    async with SimServer(SimConfig(seed=3), clock=clock, faults=FAST) as sim:
        creds = Credentials(sim.config.api_key, sim.config.api_secret)
        now_s = clock.now_ms() / 1000
        client = BinanceFuturesClient(
            client_config(sim.url, timeout_s=1.5), creds, wall_ms=clock.now_ms
        )
        await client.connect([SYMBOL])
        cfg = HedgerConfig(
            SYMBOL,
            order_style="LIMIT",
            max_slippage_bps=-50.0,  # rest away from the touch: a GTC that stays open
            deadman_countdown_s=30.0,
            deadman_renew_s=10.0,
        )
        hedger = Hedger(client, MemoryJournal(), cfg)
        await hedger.on_position(-1.0, dex_mark=2000.0, now_s=now_s)
        await hedger.drain()
        assert len(await client.open_orders(SYMBOL)) == 1
        # Alive: renewals keep the orders' switch from firing across 50 s of exchange time.
        for _ in range(5):
            clock.advance(10_000)
            now_s += 10.0
            await hedger.step(now_s)
            await hedger.drain()
        assert sim.exchange.open_orders(SYMBOL) != []
        countdowns = [r for r in sim.request_log if r[1] == "/fapi/v1/countdownCancelAll"]
        assert len(countdowns) >= 5
        # Crash (kill -9): no close, no renewal. The exchange cancels on its own clock.
        clock.advance(29_000)
        sim.exchange.advance()
        assert sim.exchange.open_orders(SYMBOL) != []  # not yet: 30 s after the last renewal
        clock.advance(1_000)
        sim.exchange.advance()
        assert sim.exchange.open_orders(SYMBOL) == []
        assert sim.state()["events"][-1]["type"] == "countdown_cancel_all"
        await client.aclose()


@pytest.mark.asyncio
async def test_unread_position_never_arms(sim: SimServer) -> None:
    journal = MemoryJournal()
    await hedged(sim, journal, 0.7)
    client = await connect(sim)
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    try:
        await hedger.resume(0.0)
        await hedger.on_position(None, dex_mark=2000.0, now_s=1.0)  # the account read failed
        await hedger.drain()
        assert not hedger.armed and position(sim) == Decimal("-0.7")
    finally:
        await hedger.aclose()
        await client.aclose()


@pytest.mark.asyncio
async def test_runtime_hedge_leg_close_leaves_the_position(sim: SimServer) -> None:
    # `mm-agent cancel-all` and a failed start-up assemble the leg exactly like this (resume at
    # assembly, before any chain read) and close it: the hedge must stay where it is.
    from agent.hedging import HedgeLeg

    journal = MemoryJournal()
    await hedged(sim, journal, -1.1)
    client = await connect(sim)
    await client.place_order(
        OrderRequest(SYMBOL, "BUY", Decimal("0.1"), "resting-2", "LIMIT", "GTC", Decimal("1900"))
    )
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    await hedger.resume(10.0)
    leg = HedgeLeg(hedger, client, SYMBOL, clock=lambda: 10.0)
    before = trades(sim)
    assert await leg.close(5.0) == "clear"
    assert position(sim) == Decimal("1.1") and trades(sim) == before
    assert sim.exchange.open_orders(SYMBOL) == []
