"""Pure parts of the hedge client and policy: signing, filters, ids, error mapping."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from agent.errors import ConfigError
from agent.hedge import (
    Banned,
    BinanceFuturesClient,
    ClientConfig,
    Credentials,
    FilterRejected,
    HedgerConfig,
    MinNotional,
    RateLimited,
    SymbolFilters,
    WeightReserved,
    sign,
)
from agent.hedge.binance import is_valid_client_order_id
from agent.hedge.hedger import hedge_client_order_id, hedge_intent_id

D = Decimal
FILTERS = SymbolFilters(
    "ETHUSDT", D("0.01"), D("0.001"), D("0.001"), D("1000"), D("0.01"), D("1000000"), D("20")
)


def test_signature_matches_binance_worked_example() -> None:
    # USDⓈ-M futures "SIGNED endpoint examples": HMAC SHA256 of the query string.
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    query = (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    assert sign(query, secret) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_credentials_hide_secret_and_load_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K_VAR", "key")
    monkeypatch.setenv("S_VAR", "very-secret")
    creds = Credentials.from_env("K_VAR", "S_VAR")
    assert creds.api_secret == "very-secret" and "very-secret" not in repr(creds)
    monkeypatch.delenv("S_VAR")
    with pytest.raises(ConfigError, match="S_VAR"):
        Credentials.from_env("K_VAR", "S_VAR")


def test_rounding_never_overshoots() -> None:
    assert FILTERS.round_qty(D("1.23999")) == D("1.239")
    assert FILTERS.round_price(D("2000.019"), "BUY") == D("2000.01")  # never pay more
    assert FILTERS.round_price(D("2000.011"), "SELL") == D("2000.02")  # never get less


def test_filter_check_refusals_are_clear() -> None:
    with pytest.raises(MinNotional, match="below the minimum 20"):
        FILTERS.check(D("0.009"), D("2000"), reduce_only=False)
    FILTERS.check(D("0.009"), D("2000"), reduce_only=True)  # reduce-only is exempt
    with pytest.raises(FilterRejected, match=r"below the minimum 0\.001"):
        FILTERS.check(D("0"), D("2000"), reduce_only=True)
    with pytest.raises(FilterRejected, match="tick"):
        FILTERS.check(D("1"), D("2000.005"), reduce_only=False)


def test_hedge_ids_are_deterministic_short_and_valid() -> None:
    a = hedge_intent_id("ETHUSDT", 3, -1.25, 1_700_000_000_000)
    assert a == hedge_intent_id("ETHUSDT", 3, -1.25, 1_700_000_000_000)
    assert a != hedge_intent_id("ETHUSDT", 4, -1.25, 1_700_000_000_000)
    coid = hedge_client_order_id("mmh", a, 12)
    assert coid == f"mmh-{a}-12" and len(coid) <= 36 and is_valid_client_order_id(coid)
    assert not is_valid_client_order_id("x" * 37) and not is_valid_client_order_id("a b")


def test_hedger_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        HedgerConfig("ETHUSDT", hedge_ratio=-1)
    with pytest.raises(ConfigError):
        HedgerConfig("ETHUSDT", twap_slice_base=10, twap_threshold_base=5)
    with pytest.raises(ConfigError):
        HedgerConfig("ETHUSDT", client_id_prefix="way-too-long")


@pytest.mark.asyncio
async def test_rate_limit_headers_429_and_418_through_transport_seam() -> None:
    calls: list[str] = []
    answers = [
        httpx.Response(
            429,
            json={"code": -1003, "msg": "Too many requests"},
            headers={"Retry-After": "0.05", "X-MBX-USED-WEIGHT-1M": "2399"},
        ),
        httpx.Response(
            200,
            json={"serverTime": 1},
            headers={"X-MBX-USED-WEIGHT-1M": "7", "X-MBX-ORDER-COUNT-1M": "3"},
        ),
        httpx.Response(
            418,
            json={"code": -1003, "msg": "Way too many requests; IP banned"},
            headers={"Retry-After": "120"},
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answers[len(calls) - 1]

    cfg = ClientConfig("http://exchange.invalid", backoff_base_s=0.01)
    async with BinanceFuturesClient(
        cfg, Credentials("k", "s"), transport=httpx.MockTransport(handler), wall_ms=lambda: 1
    ) as client:
        await client.sync_time()  # 429, honoured Retry-After, then success
        limits = client.rate_limits()
        assert (limits.used_weight_1m, limits.order_count_1m) == (7, 3)
        with pytest.raises(Banned) as ban:
            await client.book_ticker("ETHUSDT")
        assert ban.value.http_status == 418 and client.banned
        with pytest.raises(Banned):  # latched: fails fast without a request
            await client.premium_index("ETHUSDT")
    assert len(calls) == 3


@pytest.mark.asyncio
async def test_signed_request_carries_key_timestamp_and_signature() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async with BinanceFuturesClient(
        ClientConfig("http://exchange.invalid", recv_window_ms=3000),
        Credentials("my-key", "my-secret"),
        transport=httpx.MockTransport(handler),
        wall_ms=lambda: 1_000,
    ) as client:
        await client.open_orders("ETHUSDT")
    req = seen[0]
    query = req.url.query.decode()
    payload, _, signature = query.rpartition("&signature=")
    assert req.headers["X-MBX-APIKEY"] == "my-key"
    assert payload == "symbol=ETHUSDT&recvWindow=3000&timestamp=1000"
    assert signature == sign(payload, "my-secret")


def test_rate_limited_carries_retry_after() -> None:
    err = RateLimited(-1003, "slow down", 429, 2.5)
    assert err.retry_after_s == 2.5 and err.code == -1003 and "2.5s" in str(err)


@pytest.mark.asyncio
async def test_unsigned_urls_are_reused_and_cookies_never_kept() -> None:
    # The ticker's URL is built once and reused; it must be exactly what httpx would build from
    # the base URL (a base with a path keeps it). An exchange cookie is neither kept nor sent.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        cookie = {"Set-Cookie": "session=abc; Path=/"}
        if request.url.path.endswith("openOrders"):
            return httpx.Response(200, json=[], headers=cookie)
        return httpx.Response(
            200,
            json={"symbol": "ETHUSDT", "bidPrice": "1.0", "bidQty": "1", "askPrice": "2.0",
                  "askQty": "1", "time": 1},
            headers=cookie,
        )  # fmt: skip

    async with BinanceFuturesClient(
        ClientConfig("http://exchange.invalid/api"),
        Credentials("k", "s"),
        transport=httpx.MockTransport(handler),
        wall_ms=lambda: 1,
    ) as client:
        for _ in range(3):
            await client.book_ticker("ETHUSDT")
        await client.open_orders("ETHUSDT")
    assert [str(r.url) for r in seen[:3]] == [
        "http://exchange.invalid/api/fapi/v1/ticker/bookTicker?symbol=ETHUSDT"
    ] * 3
    assert seen[3].url.path == "/api/fapi/v1/openOrders"
    assert all("cookie" not in r.headers for r in seen)


@pytest.mark.asyncio
async def test_deferrable_reads_keep_the_order_reserve_and_trust_a_reading_one_window() -> None:
    # exchangeInfo publishes 100 weight a minute: the default reserve keeps the last 10.
    calls: list[str] = []
    used = {"w": 89}
    ticker = {"symbol": "ETHUSDT", "bidPrice": "1", "bidQty": "1", "askPrice": "2", "askQty": "1"}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used["w"])}
        if request.url.path == "/fapi/v1/exchangeInfo":
            limits = [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 100},
            ]  # fmt: skip
            return httpx.Response(200, json={"rateLimits": limits, "symbols": []}, headers=headers)
        return httpx.Response(200, json={**ticker, "time": 1}, headers=headers)

    cfg = ClientConfig("http://exchange.invalid", weight_window_s=0.2)
    async with BinanceFuturesClient(
        cfg, Credentials("k", "s"), transport=httpx.MockTransport(handler), wall_ms=lambda: 1
    ) as client:
        await client.load_filters()
        assert client.rate_limits().weight_limit_1m == 100
        await client.book_ticker("ETHUSDT", deferrable=True)  # 89 used: below 90, sent
        used["w"] = 90
        await client.book_ticker("ETHUSDT")  # the order path's read: always sent
        with pytest.raises(WeightReserved, match="90/100"):
            await client.book_ticker("ETHUSDT", deferrable=True)  # not sent
        assert len(calls) == 3
        # A reading older than the window no longer holds anything back.
        await asyncio.sleep(0.25)
        await client.book_ticker("ETHUSDT", deferrable=True)
        assert len(calls) == 4
