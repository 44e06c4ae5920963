"""No double hedge through any exchange fault: the hedger, a fault proxy, the real simulator.

Each case sends one hedge through :class:`sims.faults.CexFaultProxy` with one fault on the order
request, then steps the hedger until it is done. The exchange's executed quantity over every
order must equal the intended hedge: an order sent twice, or one resent before the first could
still arrive, shows up as more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from agent.hedge import BinanceFuturesClient, Credentials, Hedger, HedgerConfig
from sims.cex import SimConfig, SimServer
from sims.faults import CexFaultProxy, ProxyFault

from .cex_simkit import FAST, SYMBOL, MemoryJournal, client_config

TARGET_BASE = 1.2


@pytest_asyncio.fixture
async def wire() -> AsyncIterator[tuple[SimServer, CexFaultProxy]]:
    async with SimServer(SimConfig(seed=5), faults=FAST) as sim:
        proxy = CexFaultProxy(sim.url)
        await proxy.start()
        try:
            yield sim, proxy
        finally:
            await proxy.stop()


def executed_base(sim: SimServer) -> Decimal:
    return sum((Decimal(o["executedQty"]) for o in sim.exchange.orders()), Decimal(0))


async def hedge_through(
    sim: SimServer, proxy: CexFaultProxy, fault: ProxyFault, *, recv_window_ms: int = 2_000
) -> tuple[Hedger, MemoryJournal, float]:
    """Hedge a DEX position of −TARGET_BASE through ``fault``; return when the hedger is done."""
    creds = Credentials(sim.config.api_key, sim.config.api_secret)
    client = BinanceFuturesClient(
        client_config(
            proxy.url, timeout_s=1.5, recv_window_ms=recv_window_ms, clock_skew_allowance_ms=500
        ),
        creds,
    )
    await client.connect([SYMBOL])
    journal = MemoryJournal()
    hedger = Hedger(client, journal, HedgerConfig(SYMBOL, dead_band_base=0.01))
    proxy.inject(fault)
    start = time.monotonic()
    try:
        await hedger.on_position(-TARGET_BASE, dex_mark=2000.0, now_s=time.time())
        await hedger.drain()
        deadline = start + (recv_window_ms + 500) / 1000 + fault.delay_s + 8.0
        while time.monotonic() < deadline:
            health = hedger.health()
            if not health.status_unknown and abs(health.hedge_gap_base) <= 0.01:
                break
            await asyncio.sleep(0.2)
            await hedger.step(time.time())
            await hedger.drain()
        await proxy.settled()  # every late request has reached the exchange by now
        for _ in range(2):  # and the hedger has looked at the result
            await hedger.step(time.time())
            await hedger.drain()
    finally:
        await hedger.aclose()
        await client.aclose()
    return hedger, journal, time.monotonic() - start


FAULTS = {
    "malformed 200": ProxyFault("malformed"),
    "truncated 200": ProxyFault("truncated"),
    "503 unknown, executed": ProxyFault("unknown_503"),
    "503 unknown, never arrived": ProxyFault("unknown_503", forward=False),
    "timeout, executed": ProxyFault("timeout"),
    "timeout, never arrived": ProxyFault("timeout", forward=False),
    "418 ban": ProxyFault("ban_418", retry_after_s=1.0),
    "429": ProxyFault("rate_limit_429", retry_after_s=0.5),
    "-1021": ProxyFault("timestamp_1021"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_on_the_order_never_doubles_the_hedge(
    wire: tuple[SimServer, CexFaultProxy], name: str
) -> None:
    sim, proxy = wire
    hedger, journal, _ = await hedge_through(sim, proxy, FAULTS[name])
    assert proxy.pending_faults == [], "the fault never hit an order: the case tested nothing"
    assert executed_base(sim) == Decimal(str(TARGET_BASE))
    assert sim.exchange.position_qty(SYMBOL) == Decimal(str(TARGET_BASE))
    assert sim.state()["client_ids_accepted_more_than_once"] == []
    health = hedger.health()
    assert not health.status_unknown
    assert health.cex_position_base == pytest.approx(TARGET_BASE)
    assert journal.open_hedge_intents() == []


@pytest.mark.asyncio
async def test_order_delayed_4s_in_transit_is_not_given_up_early(
    wire: tuple[SimServer, CexFaultProxy],
) -> None:
    # The case: the default 5 s recvWindow, an order 4 s late on the wire. The client
    # times out after 1.5 s; the order lands at 4 s and the exchange still accepts it. Declaring
    # it "not found" before recvWindow + skew has passed (it used to after ~2.9 s) hedges twice.
    sim, proxy = wire
    hedger, journal, took_s = await hedge_through(
        sim, proxy, ProxyFault("delay", delay_s=4.0), recv_window_ms=5_000
    )
    assert executed_base(sim) == Decimal(str(TARGET_BASE))
    (order,) = sim.exchange.orders()
    assert order["status"] == "FILLED"
    assert [r.status for r in journal.rows.values()] == ["FILLED"]
    assert took_s >= 4.0
    assert hedger.health().cex_position_base == pytest.approx(TARGET_BASE)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["malformed", "truncated"])
async def test_unreadable_ack_is_looked_up_not_refused(
    wire: tuple[SimServer, CexFaultProxy], kind: str
) -> None:
    from agent.hedge.binance import OrderRequest

    sim, proxy = wire
    creds = Credentials(sim.config.api_key, sim.config.api_secret)
    async with BinanceFuturesClient(client_config(proxy.url, timeout_s=1.5), creds) as client:
        await client.connect([SYMBOL])
        proxy.inject(ProxyFault(kind))  # type: ignore[arg-type]
        req = OrderRequest(SYMBOL, "BUY", Decimal("0.3"), "unreadable-1", price=Decimal("2100"))
        state = await client.place_order(req)
    assert state.resolution == "found" and state.status == "FILLED"
    assert [r[2] for r in proxy.log if r[:2] == ("POST", "/fapi/v1/order")] == [kind]
    assert len(sim.exchange.orders()) == 1
