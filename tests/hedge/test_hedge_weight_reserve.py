"""Hedge orders before market-data reads when the exchange's request-weight budget runs short.

The runtime reads the exchange's best bid/ask every cycle (:meth:`agent.hedging.HedgeLeg.poll_mid`)
and the hedger reconciles and books commissions every 10 s: all of it is charged to the same
per-minute request weight as the hedge orders (Binance USDⓈ-M, the simulator alike). When those
reads spend the budget, the exchange answers the next request 429; the client then backs off
for ``Retry-After`` and every request waits behind it, the hedge order included, and is refused
again for as long as the minute's window stays full.

Here the real hedge leg polls the simulator's ticker as the runtime would, on a budget its reads
alone exhaust within seconds (the state of a key that shares its IP, or of a minute of heavy
reconciling), then a DEX fill needs hedging. The hedge order must be placed at its first send,
without a 429 in front of it: the client stops the deferrable reads while the used weight
(``X-MBX-USED-WEIGHT-1M``) is inside the reserve kept for orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from agent.hedge import BinanceFuturesClient, Credentials, Hedger, HedgerConfig, RateLimited
from agent.hedging import HedgeLeg
from sims.cex import SimConfig, SimServer
from sims.cex.server import Faults
from sims.faults import CexFaultProxy, ProxyFault

from .cex_simkit import SYMBOL, MemoryJournal, client_config

WEIGHT_LIMIT = 60
"""Request weight per minute the simulator allows here (Binance: 2400; the reads of this test
would take minutes to spend that)."""
MID0 = 2000.0
POLL_S = 0.03


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    faults = Faults(latency_ms=4.0, jitter_ms=1.0, weight_limit_1m=WEIGHT_LIMIT, retry_after_s=1.0)
    async with SimServer(SimConfig(seed=3), faults=faults) as server:
        server.exchange.set_mid(SYMBOL, MID0)
        yield server


async def _poll(leg: HedgeLeg, stop: asyncio.Event) -> None:
    """The runtime's per-cycle ticker read: start one, wait for it, again."""
    while not stop.is_set():
        leg.poll_mid(time.time(), min_interval_s=0.0)
        await leg.await_mid(1.0)
        await asyncio.sleep(POLL_S)


async def _hedge_after_reads(sim: SimServer, reserve: float | None) -> tuple[list[int], int, float]:
    """Poll until the budget is nearly spent, then hedge a fill (`reserve`: the client's
    ``order_weight_reserve``, None for its default).

    Returns the answers to the order sends, the ticker reads refused 429 and the hedge position.
    """
    creds = Credentials(sim.config.api_key, sim.config.api_secret)
    config = client_config(sim.url, timeout_s=1.0, max_rate_limit_wait_s=2.0)
    client = BinanceFuturesClient(
        config if reserve is None else replace(config, order_weight_reserve=reserve), creds
    )
    await client.connect([SYMBOL])
    hedger = Hedger(
        client,
        MemoryJournal(),
        HedgerConfig(SYMBOL, dead_band_base=0.01, deadman_countdown_s=0.0),
    )
    leg = HedgeLeg(hedger, client, SYMBOL, time.time)
    await hedger.on_position(0.0, dex_mark=MID0, now_s=time.time())
    await hedger.drain()
    stop = asyncio.Event()
    poller = asyncio.create_task(_poll(leg, stop))
    try:
        # Let the reads run until the minute's budget is nearly spent, and some more.
        t0 = time.monotonic()
        while client.rate_limits().used_weight_1m < 0.9 * WEIGHT_LIMIT:
            assert time.monotonic() - t0 < 8.0, "the reads did not spend the budget"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        # A DEX fill: the hedger must sell 0.5 now.
        sent_at = time.monotonic()
        await hedger.on_position(0.5, dex_mark=MID0, now_s=time.time())
        await hedger.drain()
        hedged_in_s = time.monotonic() - sent_at
    finally:
        stop.set()
        await poller
        await client.aclose()

    order_answers = [s for m, p, s in sim.request_log if (m, p) == ("POST", "/fapi/v1/order")]
    ticker_429 = sum(
        1 for _, p, s in sim.request_log if p == "/fapi/v1/ticker/bookTicker" and s == 429
    )
    print(
        f"reserve {reserve}: order answers {order_answers}, hedged in {hedged_in_s:.2f} s, "
        f"ticker 429s {ticker_429}, used weight {client.rate_limits().used_weight_1m}"
    )
    return order_answers, ticker_429, hedger.health().cex_position_base


@pytest.mark.asyncio
async def test_a_hedge_order_is_not_refused_because_reads_spent_the_weight(
    sim: SimServer,
) -> None:
    order_answers, ticker_429, position = await _hedge_after_reads(sim, None)
    # Placed at its first send, and filled.
    assert order_answers == [200], order_answers
    assert position == pytest.approx(-0.5)
    # The polls were held back inside the budget, never refused by the exchange.
    assert ticker_429 == 0


@pytest.mark.asyncio
async def test_without_the_reserve_the_reads_lock_the_hedge_out(sim: SimServer) -> None:
    """What the reserve prevents (measured before it existed): the polls run into the limit,
    the hedger's own pricing read is refused 429 through all its retries, and the order is never
    sent; the window stays full for the rest of the minute."""
    order_answers, ticker_429, position = await _hedge_after_reads(sim, 0.0)
    assert ticker_429 > 0
    assert order_answers == []
    assert position == 0.0


@pytest.mark.asyncio
async def test_a_deferrable_read_gives_way_during_a_retry_after_window(sim: SimServer) -> None:
    """A 429 on the per-cycle poll is not retried, and no poll is sent while its Retry-After
    runs: the first request after the window is the one that must go (the hedge's), and the
    runtime's cycle, which waits on the poll, is not held for the window."""
    async with CexFaultProxy(sim.url) as proxy:
        creds = Credentials(sim.config.api_key, sim.config.api_secret)
        client = BinanceFuturesClient(client_config(proxy.url, max_rate_limit_wait_s=2.0), creds)
        try:
            await client.connect([SYMBOL])
            proxy.inject(
                ProxyFault(
                    "rate_limit_429", method="GET", path="/fapi/v1/ticker/bookTicker",
                    retry_after_s=0.6,
                )
            )  # fmt: skip
            t0 = time.monotonic()
            with pytest.raises(RateLimited):
                await client.book_ticker(SYMBOL, deferrable=True)
            with pytest.raises(RateLimited):
                await client.book_ticker(SYMBOL, deferrable=True)  # inside the window: unsent
            assert time.monotonic() - t0 < 0.3, "a deferrable read waited out the window"
            tickers = [k for m, p, k in proxy.log if p == "/fapi/v1/ticker/bookTicker"]
            assert tickers == ["rate_limit_429"]
            assert client.rate_limits().backoff_remaining_s > 0
            # The read that prices a hedge waits the window out and goes.
            ticker = await client.book_ticker(SYMBOL)
            assert ticker.bid_price > 0
            assert time.monotonic() - t0 >= 0.55
        finally:
            await client.aclose()
