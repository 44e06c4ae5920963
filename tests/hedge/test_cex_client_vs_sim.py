"""The hedge client against the running exchange simulator: orders, faults and recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from agent.hedge import (
    AuthError,
    Banned,
    BinanceFuturesClient,
    Credentials,
    FilterRejected,
    MinNotional,
    OrderRequest,
    RateLimited,
    StatusUnknown,
)
from sims.cex import SimConfig, SimServer

from .cex_simkit import FAST, SYMBOL, client_config

D = Decimal


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(), faults=FAST) as server:
        yield server


@pytest_asyncio.fixture
async def client(sim: SimServer) -> AsyncIterator[BinanceFuturesClient]:
    creds = Credentials(sim.config.api_key, sim.config.api_secret)
    async with BinanceFuturesClient(client_config(sim.url), creds) as c:
        await c.connect([SYMBOL])
        yield c


def orders_with(sim: SimServer, coid: str) -> list[dict[str, object]]:
    return [o for o in sim.exchange.orders() if o["clientOrderId"] == coid]


def order_posts(sim: SimServer) -> int:
    return sum(1 for m, p, _ in sim.request_log if (m, p) == ("POST", "/fapi/v1/order"))


@pytest.mark.asyncio
async def test_place_query_cancel(sim: SimServer, client: BinanceFuturesClient) -> None:
    req = OrderRequest(SYMBOL, "BUY", D("0.5"), "t-pqc-1", time_in_force="GTC", price=D("1990"))
    placed = await client.place_order(req)
    assert (placed.status, placed.resolution, placed.executed_qty_base) == ("NEW", "acked", 0)
    queried = await client.query_order(SYMBOL, client_order_id="t-pqc-1")
    assert queried.order_id == placed.order_id and queried.status == "NEW"
    assert [o.client_order_id for o in await client.open_orders(SYMBOL)] == ["t-pqc-1"]
    cancelled = await client.cancel_order(SYMBOL, client_order_id="t-pqc-1")
    assert cancelled.status == "CANCELED"
    assert await client.open_orders(SYMBOL) == []
    # A repeated cancel (e.g. after a lost answer) reports the final state instead of failing.
    again = await client.cancel_order(SYMBOL, order_id=placed.order_id)
    assert again.status == "CANCELED"


@pytest.mark.asyncio
async def test_partial_fill_then_completion(sim: SimServer, client: BinanceFuturesClient) -> None:
    sim.set_faults(partial_fill_prob=1.0, partial_fill_fraction=0.4)
    req = OrderRequest(SYMBOL, "BUY", D("2"), "t-partial-1", time_in_force="GTC", price=D("2001"))
    first = await client.place_order(req)
    assert first.status == "PARTIALLY_FILLED"
    assert first.executed_qty_base == D("0.8")
    # The resting remainder is crossed by the book and completes as maker.
    done = await client.query_order(SYMBOL, client_order_id="t-partial-1")
    assert done.status == "FILLED" and done.executed_qty_base == D("2")
    trades = await client.user_trades(SYMBOL, order_id=done.order_id)
    assert [t.maker for t in trades] == [False, True]
    assert sum(t.qty_base for t in trades) == D("2")
    assert await client.position(SYMBOL) == D("2")


@pytest.mark.asyncio
async def test_ioc_partial_fill_expires_remainder(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    sim.set_faults(partial_fill_prob=1.0, partial_fill_fraction=0.3)
    state = await client.place_order(
        OrderRequest(SYMBOL, "SELL", D("1"), "t-ioc-1", price=D("1995"))
    )
    assert (state.status, state.executed_qty_base) == ("EXPIRED", D("0.3"))
    assert await client.position(SYMBOL) == D("-0.3")


@pytest.mark.asyncio
async def test_timeout_after_accept_makes_exactly_one_order(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    # The exchange accepts the order, then its answer arrives after the client gave up.
    sim.set_faults(slow_ack_next=1, slow_ack_ms=1_000)
    state = await client.place_order(
        OrderRequest(SYMBOL, "BUY", D("1"), "t-timeout-1", price=D("2005"))
    )
    assert state.resolution == "found"
    assert state.status == "FILLED"
    assert len(orders_with(sim, "t-timeout-1")) == 1
    assert order_posts(sim) == 1
    assert sim.exchange.position_qty(SYMBOL) == D("1")


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["503", "-1006", "-1007"])
async def test_unknown_status_is_adopted_not_resent(
    sim: SimServer, client: BinanceFuturesClient, kind: str
) -> None:
    # The order *was* accepted; the answer says "unknown", and the first lookups lag behind.
    sim.set_faults(unknown_status_next=1, unknown_status_kind=kind, lookup_miss_next=2)
    state = await client.place_order(
        OrderRequest(SYMBOL, "SELL", D("0.7"), f"t-unknown{kind}", price=D("1990"))
    )
    assert state.resolution == "found"
    assert state.executed_qty_base == D("0.7")
    assert order_posts(sim) == 1
    assert len(orders_with(sim, f"t-unknown{kind}")) == 1


@pytest.mark.asyncio
async def test_duplicate_client_order_id_is_adopted(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    req = OrderRequest(SYMBOL, "BUY", D("0.5"), "t-dup-1", time_in_force="GTC", price=D("1980"))
    first = await client.place_order(req)
    again = await client.place_order(req)
    assert again.resolution == "adopted"
    assert again.order_id == first.order_id
    assert len(orders_with(sim, "t-dup-1")) == 1


@pytest.mark.asyncio
async def test_unfound_after_ambiguous_send_is_unknown_not_resent(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    # Lookups never see the IOC (a lagging replica): resending could double it on Binance,
    # where ids are unique only among open orders. The client must say "unknown" instead.
    sim.set_faults(unknown_status_next=1, lookup_miss_next=10)
    with pytest.raises(StatusUnknown, match="reconcile"):
        await client.place_order(OrderRequest(SYMBOL, "BUY", D("1"), "t-lost-1", price=D("2005")))
    assert order_posts(sim) == 1
    assert sim.exchange.position_qty(SYMBOL) == D("1")


@pytest.mark.asyncio
async def test_resend_same_id_when_ids_are_unique_forever() -> None:
    async with SimServer(SimConfig(dedupe_scope="all"), faults=FAST) as sim:
        creds = Credentials(sim.config.api_key, sim.config.api_secret)
        cfg = client_config(sim.url, resend_when_not_found=True)
        async with BinanceFuturesClient(cfg, creds) as client:
            await client.connect([SYMBOL])
            sim.set_faults(unknown_status_next=1, lookup_miss_next=3)
            state = await client.place_order(
                OrderRequest(SYMBOL, "BUY", D("1"), "t-resend-1", price=D("2005"))
            )
    assert state.resolution == "adopted"  # resent with the same id, refused -4116, adopted
    assert order_posts(sim) == 2
    assert len(orders_with(sim, "t-resend-1")) == 1
    assert sim.exchange.position_qty(SYMBOL) == D("1")


@pytest.mark.asyncio
async def test_429_storm_backs_off_and_loses_nothing(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    # Ignoring Retry-After twice would earn a 418 ban; honouring it must not.
    sim.set_faults(rate_limit_next=3, retry_after_s=0.1, ban_after_violations=2)
    t0 = time.monotonic()
    state = await client.place_order(
        OrderRequest(SYMBOL, "BUY", D("1"), "t-429-1", price=D("2005"))
    )
    ticker = await client.book_ticker(SYMBOL)
    assert time.monotonic() - t0 >= 0.3
    assert state.status == "FILLED" and ticker.ask_price > ticker.bid_price
    assert [s for _, _, s in sim.request_log].count(429) == 3
    assert 418 not in [s for _, _, s in sim.request_log]
    assert len(orders_with(sim, "t-429-1")) == 1
    assert client.rate_limits().used_weight_1m > 0


@pytest.mark.asyncio
async def test_long_retry_after_fails_fast_with_rate_limited(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    sim.set_faults(rate_limit_next=1, retry_after_s=30)
    with pytest.raises(RateLimited):
        await client.book_ticker(SYMBOL)
    assert client.rate_limits().backoff_remaining_s > 20


@pytest.mark.asyncio
async def test_418_latches_ban_and_stops_sending(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    sim.set_faults(ban_s=60)
    with pytest.raises(Banned):
        await client.book_ticker(SYMBOL)
    sent = len(sim.request_log)
    with pytest.raises(Banned):
        await client.place_order(OrderRequest(SYMBOL, "BUY", D("1"), "t-ban-1", price=D("2005")))
    assert len(sim.request_log) == sent  # nothing went out during the ban
    assert client.banned and client.rate_limits().ban_remaining_s > 30


@pytest.mark.asyncio
async def test_timestamp_error_resyncs_and_succeeds(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    assert abs(client.time_offset_ms) < 200
    sim.set_faults(clock_skew_ms=15_000)  # the exchange clock jumps ahead of ours
    state = await client.place_order(
        OrderRequest(SYMBOL, "BUY", D("1"), "t-1021-1", price=D("2005"))
    )
    assert state.status == "FILLED"
    assert any(p == "/fapi/v1/order" and s == 400 for _, p, s in sim.request_log)
    assert 14_500 < client.time_offset_ms < 15_500
    assert len(orders_with(sim, "t-1021-1")) == 1


@pytest.mark.asyncio
async def test_bad_signature_is_refused_with_1022(sim: SimServer) -> None:
    creds = Credentials(sim.config.api_key, "not-the-secret")
    async with BinanceFuturesClient(client_config(sim.url), creds) as bad:
        with pytest.raises(AuthError) as info:
            await bad.balances()
    assert info.value.code == -1022


@pytest.mark.asyncio
async def test_min_notional_and_step_size_are_refused_locally(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    before = len(sim.request_log)
    with pytest.raises(MinNotional) as small:
        await client.place_order(OrderRequest(SYMBOL, "BUY", D("0.005"), "t-mn-1", price=D("2000")))
    assert small.value.local and small.value.code == -4164 and "minimum 20" in str(small.value)
    with pytest.raises(FilterRejected) as tiny:
        await client.place_order(
            OrderRequest(SYMBOL, "BUY", D("0.0004"), "t-st-1", price=D("2000"))
        )
    assert tiny.value.local and "step 0.001" in str(tiny.value)
    assert len(sim.request_log) == before
    # Off-step quantities are rounded down, never up.
    state = await client.place_order(
        OrderRequest(SYMBOL, "BUY", D("0.0129"), "t-st-2", price=D("2005.019"))
    )
    assert state.orig_qty_base == D("0.012") and state.price == D("2005.01")


@pytest.mark.asyncio
async def test_exchange_side_refusals_are_typed(
    sim: SimServer, client: BinanceFuturesClient
) -> None:
    from agent.hedge import InsufficientMargin, PostOnlyWouldTake, ReduceOnlyRejected

    with pytest.raises(PostOnlyWouldTake):
        await client.place_order(
            OrderRequest(SYMBOL, "BUY", D("1"), "t-gtx", time_in_force="GTX", price=D("2005"))
        )
    with pytest.raises(ReduceOnlyRejected):
        await client.place_order(
            OrderRequest(SYMBOL, "SELL", D("1"), "t-ro", price=D("1990"), reduce_only=True)
        )
    with pytest.raises(InsufficientMargin):
        await client.place_order(OrderRequest(SYMBOL, "BUY", D("600"), "t-im", price=D("2100")))


@pytest.mark.asyncio
async def test_countdown_cancel_all_and_batch(sim: SimServer, client: BinanceFuturesClient) -> None:
    reqs = [
        OrderRequest(SYMBOL, "BUY", D("0.5"), f"t-batch-{i}", time_in_force="GTC", price=D("1950"))
        for i in range(3)
    ]
    results = await client.place_batch(reqs)
    assert all(getattr(r, "status", None) == "NEW" for r in results)
    await client.countdown_cancel_all(SYMBOL, 100)
    await asyncio.sleep(0.15)  # wall clock: let the dead-man switch expire
    assert await client.open_orders(SYMBOL) == []
    assert sim.state()["events"][-1]["type"] == "countdown_cancel_all"


@pytest.mark.asyncio
async def test_outage_reports_unavailable(sim: SimServer, client: BinanceFuturesClient) -> None:
    from agent.hedge import ExchangeUnavailable

    sim.set_faults(outage=True)
    with pytest.raises(ExchangeUnavailable):
        await client.book_ticker(SYMBOL)
    sim.set_faults(outage=False)
    assert (await client.premium_index(SYMBOL)).mark_price == D("2000")
