"""A Binance USDⓈ-M futures REST client built for hedging: idempotent orders, typed errors.

One long-lived :class:`httpx.AsyncClient` talks to the real exchange, its testnet or the local
simulator (``sims.cex``); only the base URL changes.

Guarantees
----------
==========================  ======================================================================
signing                     HMAC-SHA256 over the exact parameter string sent (:func:`sign`), API
                            key header, ``timestamp`` + ``recvWindow``; the server-time offset is
                            learned from ``/fapi/v1/time`` and re-learned on -1021
no double order             :meth:`BinanceFuturesClient.place_order` never sends a second order
                            for one client order id: after a timeout, a 5xx or an unknown-status
                            answer (503 "Unknown error", -1006, -1007, or a 200 it cannot
                            parse) it looks the id up first (a -2013 "no such order" right after
                            a send counts as *unknown* for ``lookup_tries`` tries), resends only
                            with the *same* id, and adopts the existing order on -4116
                            "duplicated client order id". :class:`StatusUnknown` carries
                            ``accept_until_ms``: before it, "not found" proves nothing
rate limits                 used-weight / order-count headers are tracked; 429 backs off
                            (``Retry-After`` honoured); 418 latches :attr:`banned` and every
                            later call fails fast with :class:`Banned` until the ban ends;
                            deferrable reads stop short of the weight limit, keeping a reserve
                            for hedge orders (``order_weight_reserve``)
filters                     quantities round *down* to the step, prices round to the tick away
                            from the taker side; an order that still violates a filter is refused
                            locally with :class:`FilterRejected` / :class:`MinNotional`
timeouts                    every call has a network timeout; read calls retry (tenacity) within
                            a bounded number of attempts, so no call blocks for long
==========================  ======================================================================

Error tree (all carry the exchange ``code``; code 0 means "no answer at all")::

    ExchangeError (agent.errors)
    ├── ExchangeUnavailable     timeout, connection refused/reset, 5xx
    ├── StatusUnknown           order outcome unknown after every lookup (reconcile before acting)
    │   └── MalformedAnswer     a 200 whose body cannot be parsed (the request did arrive)
    ├── RateLimited             429 / -1003 (``retry_after_s``)
    │   └── WeightReserved      a deferrable read held back locally (weight kept for orders)
    ├── Banned                  418 (``until_s`` on the monotonic clock)
    ├── TimestampError          -1021 outside recvWindow
    ├── AuthError               -1022 bad signature, -2014/-2015 bad key
    ├── InsufficientMargin      -2019
    ├── ReduceOnlyRejected      -2022
    ├── PostOnlyWouldTake       -5022
    ├── UnknownOrder            -2011 / -2013
    ├── DuplicateClientOrderId  -4116 (handled inside ``place_order``: the order is adopted)
    └── FilterRejected          tick/step/min-qty filters (-1013, -4004, -4014, -4023 ...)
        └── MinNotional         -4164
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from http.cookiejar import CookieJar
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from agent.errors import ConfigError, ExchangeError
from agent.net import AiohttpTransport

__all__ = [
    "AuthError",
    "Balance",
    "Banned",
    "BinanceFuturesClient",
    "BookTicker",
    "ClientConfig",
    "Credentials",
    "Depth",
    "DuplicateClientOrderId",
    "ExchangeUnavailable",
    "FilterRejected",
    "InsufficientMargin",
    "MalformedAnswer",
    "MinNotional",
    "OrderRequest",
    "OrderState",
    "Position",
    "PostOnlyWouldTake",
    "PremiumIndex",
    "RateLimitStatus",
    "RateLimited",
    "ReduceOnlyRejected",
    "StatusUnknown",
    "SymbolFilters",
    "TimestampError",
    "Trade",
    "UnknownOrder",
    "WeightReserved",
    "is_valid_client_order_id",
    "sign",
]

Side = Literal["BUY", "SELL"]
OrderType = Literal["LIMIT", "MARKET"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]

CODE_NO_ANSWER = 0
"""The ``code`` of errors where the exchange said nothing (timeout, connection failure)."""

_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_FINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
_UNKNOWN_CODES = frozenset({-1006, -1007})
_FILTER_CODES = frozenset({-1013, -1111, -4003, -4004, -4005, -4013, -4002, -4014, -4023})


# ---------------------------------------------------------------------------------- errors


class ExchangeUnavailable(ExchangeError):
    """No usable answer: timeout, connection failure or 5xx. Safe to retry reads.

    ``maybe_executed`` is True when the request may have reached the matching engine.
    """

    def __init__(
        self, message: str, http_status: int | None = None, *, maybe_executed: bool = True
    ) -> None:
        self.maybe_executed = maybe_executed
        super().__init__(CODE_NO_ANSWER, message, http_status)


class StatusUnknown(ExchangeError):
    """The exchange may or may not have executed the request (503 "Unknown error", -1006/-1007,
    an answer that cannot be parsed).

    Raised by :meth:`BinanceFuturesClient.place_order` only once every lookup failed: reconcile
    against position and fills before hedging again. ``accept_until_ms`` (exchange clock, as
    estimated by the client) is when the exchange stops accepting the request if it is still in
    transit: its timestamp plus ``recvWindow`` plus the allowed clock skew. Until then a lookup
    that finds nothing proves nothing.
    """

    def __init__(
        self,
        code: int,
        message: str,
        http_status: int | None = None,
        *,
        accept_until_ms: int | None = None,
    ) -> None:
        self.accept_until_ms = accept_until_ms
        super().__init__(code, message, http_status)


class MalformedAnswer(StatusUnknown):
    """A 200 answer that is not the JSON the endpoint promises (truncated, garbled, wrong shape).

    The request reached the exchange, so an order it carried may exist: treat it as unknown.
    """


class RateLimited(ExchangeError):
    """429 / -1003: back off for ``retry_after_s`` seconds (from ``Retry-After`` when sent)."""

    def __init__(self, code: int, message: str, http_status: int | None, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(code, f"{message} (backing off {retry_after_s:.1f}s)", http_status)


class WeightReserved(RateLimited):
    """A deferrable read held back by the client, not sent: the used request weight is inside
    the reserve kept for orders (:attr:`ClientConfig.order_weight_reserve`). Nothing reached
    the exchange and no back-off is set; orders and other reads go on."""


class Banned(ExchangeError):
    """418: the IP is banned; stop sending until ``until_s`` (monotonic seconds)."""

    def __init__(self, code: int, message: str, http_status: int | None, until_s: float):
        self.until_s = until_s
        super().__init__(code, message, http_status)


class TimestampError(ExchangeError):
    """-1021: the request timestamp is outside recvWindow (the client resyncs and retries)."""


class AuthError(ExchangeError):
    """-1022 / -2014 / -2015: bad signature or API key; check the key pair and its permissions."""


class InsufficientMargin(ExchangeError):
    """-2019: not enough margin for this order; reduce size or add collateral."""


class ReduceOnlyRejected(ExchangeError):
    """-2022: a reduce-only order would not reduce the position."""


class PostOnlyWouldTake(ExchangeError):
    """-5022: a post-only (GTX) order would have executed as taker."""


class UnknownOrder(ExchangeError):
    """-2011 / -2013: the exchange has no such (open) order."""


class DuplicateClientOrderId(ExchangeError):
    """-4116: an order with this client order id exists; ``place_order`` adopts it."""


class FilterRejected(ExchangeError):
    """An order violates the symbol's filters; ``local`` is True when refused before sending."""

    def __init__(
        self, code: int, message: str, http_status: int | None = None, *, local: bool = False
    ) -> None:
        self.local = local
        super().__init__(code, message, http_status)


class MinNotional(FilterRejected):
    """-4164: price × quantity is below the symbol's minimum notional (reduce-only is exempt)."""


# ---------------------------------------------------------------------------------- data


def sign(payload: str, secret: str) -> str:
    """Return the hex HMAC-SHA256 of ``payload`` (the full parameter string) keyed by ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def is_valid_client_order_id(client_order_id: str) -> bool:
    """True if the id fits the exchange's rule: 1-36 chars of ``[.A-Z:/a-z0-9_-]``."""
    return bool(_CLIENT_ID_RE.match(client_order_id))


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key pair. Load it from the environment; never put the secret in config files."""

    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def from_env(
        cls,
        key_var: str = "MM_CEX_API_KEY",
        secret_var: str = "MM_CEX_API_SECRET",  # noqa: S107 (a variable name, not a secret)
    ) -> Credentials:
        """Read the pair from the named environment variables."""
        key, secret = os.environ.get(key_var), os.environ.get(secret_var)
        if not key or not secret:
            raise ConfigError(
                f"CEX API credentials missing: set {key_var} and {secret_var} in the environment"
            )
        return cls(key, secret)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Connection and retry settings of :class:`BinanceFuturesClient`."""

    base_url: str
    """``https://fapi.binance.com``, the testnet, or the simulator's URL."""
    recv_window_ms: int = 5_000
    timeout_s: float = 2.0
    """Per-request network timeout (connect + read)."""
    read_attempts: int = 4
    """Attempts for idempotent reads (time, book, order lookups, positions)."""
    order_send_attempts: int = 3
    """Sends of one client order id (each after lookups found nothing)."""
    lookup_tries: int = 3
    """Lookups by client id after an ambiguous send before concluding "not there"."""
    lookup_interval_s: float = 0.3
    clock_skew_allowance_ms: int = 1_000
    """How far the learned server-time offset may be off. An order in transit can still be
    accepted until its timestamp + ``recv_window_ms`` + this, by the exchange's clock; only a
    lookup after that which finds nothing proves the order will never exist."""
    resend_when_not_found: bool = False
    """After an ambiguous send whose lookups all said "no such order", send the same id again.

    Off by default: Binance checks client-id uniqueness only among *open* orders, so an IOC that
    already executed is not protected by -4116 and a resend could double the hedge. Leave it off
    and let the caller reconcile against position (what :class:`agent.hedge.Hedger` does); turn
    it on only where ids are unique forever (e.g. the simulator with ``dedupe_scope="all"``)."""
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    max_rate_limit_wait_s: float = 10.0
    """A call that would have to wait longer than this for a Retry-After window fails instead."""
    default_ban_s: float = 120.0
    """Ban length assumed on 418 when the answer does not say."""
    order_weight_reserve: float = 0.1
    """Share of the per-minute request-weight limit (``exchangeInfo`` ``REQUEST_WEIGHT``) kept
    for orders and the reads an order needs: a *deferrable* read (the per-cycle market-data
    poll, commission bookkeeping) is held back locally with :class:`WeightReserved` once the
    used weight (``X-MBX-USED-WEIGHT-1M``) reaches the rest, so it never draws the 429 that
    would make the next hedge order wait out a ``Retry-After``. 0 turns the reserve off."""
    weight_window_s: float = 60.0
    """How long a used-weight reading stands without a newer answer (the exchange's window)."""


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """Exchange filters of one symbol, from ``exchangeInfo``."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    margin_asset: str = "USDT"
    """The asset fees and P&L settle in (``marginAsset``): our collateral units."""

    def round_qty(self, qty_base: Decimal) -> Decimal:
        """Round a quantity *down* to the step: a hedge never trades more than was asked."""
        return (qty_base / self.step_size).to_integral_value(rounding=ROUND_FLOOR) * self.step_size

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Round to the tick inside the limit: a buy never pays more, a sell never gets less."""
        mode = ROUND_FLOOR if side == "BUY" else ROUND_CEILING
        return (price / self.tick_size).to_integral_value(rounding=mode) * self.tick_size

    def check(self, qty_base: Decimal, price: Decimal, *, reduce_only: bool) -> None:
        """Raise :class:`FilterRejected` / :class:`MinNotional` if the order cannot be placed."""
        sym = self.symbol
        if qty_base < self.min_qty:
            raise FilterRejected(
                -4004,
                f"{sym}: quantity {qty_base} is below the minimum {self.min_qty} "
                f"(step {self.step_size}); the order was not sent",
                local=True,
            )
        if qty_base > self.max_qty:
            raise FilterRejected(
                -4005, f"{sym}: quantity {qty_base} is above the maximum {self.max_qty}", local=True
            )
        if qty_base % self.step_size != 0:
            raise FilterRejected(
                -4023,
                f"{sym}: quantity {qty_base} is not a multiple of {self.step_size}",
                local=True,
            )
        if price < self.min_price or price > self.max_price or price % self.tick_size != 0:
            raise FilterRejected(
                -4014,
                f"{sym}: price {price} is off the tick {self.tick_size} or outside "
                f"[{self.min_price}, {self.max_price}]",
                local=True,
            )
        if not reduce_only and qty_base * price < self.min_notional:
            raise MinNotional(
                -4164,
                f"{sym}: notional {qty_base * price:f} is below the minimum {self.min_notional} "
                f"(quantity {qty_base} at {price}); the order was not sent",
                local=True,
            )


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order. Quantity and price are rounded to the filters by the client."""

    symbol: str
    side: Side
    quantity_base: Decimal
    client_order_id: str
    order_type: OrderType = "LIMIT"
    time_in_force: TimeInForce = "IOC"
    price: Decimal | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as the exchange reports it. ``resolution`` says how the client learned it."""

    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    status: str
    orig_qty_base: Decimal
    executed_qty_base: Decimal
    avg_price: Decimal
    price: Decimal
    time_in_force: str
    order_type: str
    reduce_only: bool
    update_time_ms: int
    resolution: Literal["acked", "adopted", "found", "queried"] = "queried"
    """``acked``: answer to the send; ``adopted``: -4116 then looked up; ``found``: looked up after
    an ambiguous send; ``queried``: a plain lookup."""

    @property
    def is_final(self) -> bool:
        """True when the order can no longer fill."""
        return self.status in _FINAL

    @property
    def signed_filled_base(self) -> Decimal:
        """Executed quantity, positive for a buy and negative for a sell."""
        return self.executed_qty_base if self.side == "BUY" else -self.executed_qty_base


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid and ask."""

    symbol: str
    bid_price: Decimal
    bid_qty_base: Decimal
    ask_price: Decimal
    ask_qty_base: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class Depth:
    """Order book levels, best first, as ``(price, qty_base)``."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    time_ms: int


@dataclass(frozen=True, slots=True)
class PremiumIndex:
    """Mark price and funding of a perpetual."""

    symbol: str
    mark_price: Decimal
    index_price: Decimal
    funding_rate_8h: Decimal
    next_funding_time_ms: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class Position:
    """One-way-mode position of one symbol."""

    symbol: str
    qty_base: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl_usdt: Decimal


@dataclass(frozen=True, slots=True)
class Balance:
    """Futures wallet balance of one asset."""

    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
    cross_unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    """One of our fills."""

    symbol: str
    trade_id: int
    order_id: int
    side: Side
    price: Decimal
    qty_base: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """What the client knows about its rate-limit budget."""

    used_weight_1m: int
    order_count_1m: int
    backoff_remaining_s: float
    banned: bool
    ban_remaining_s: float
    weight_limit_1m: int | None = None
    """The exchange's per-minute request-weight limit (``exchangeInfo``); None until read."""


# ---------------------------------------------------------------------------------- client


class _BackoffWait(wait_base):
    """Exponential backoff that honours a Retry-After carried by :class:`RateLimited`."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self._base_s = base_s
        self._max_s = max_s

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RateLimited):
            return float(exc.retry_after_s)
        if isinstance(exc, TimestampError):
            return 0.0  # the offset was just re-learned
        return float(min(self._max_s, self._base_s * 2 ** (retry_state.attempt_number - 1)))


def _retryable_read(max_wait_s: float) -> Callable[[BaseException], bool]:
    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            return exc.retry_after_s <= max_wait_s  # a long Retry-After fails fast instead
        return isinstance(exc, ExchangeUnavailable | StatusUnknown | TimestampError)

    return retryable


class BinanceFuturesClient:
    """Async REST client for Binance USDⓈ-M futures (and compatible venues).

    Parameters
    ----------
    config
        Base URL, timeouts and retry budget.
    credentials
        API key pair (see :meth:`Credentials.from_env`).
    transport
        Optional httpx transport (the I/O seam for tests that need a fake network); by default
        :class:`agent.net.AiohttpTransport` (a third of httpx's own transport's CPU per request).
    wall_ms
        Source of local Unix time in ms for request timestamps (default: ``time.time``).

    Use as ``async with BinanceFuturesClient(...) as client:``; :meth:`connect` learns the
    server-time offset and the symbol filters.
    """

    def __init__(
        self,
        config: ClientConfig,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_ms: Callable[[], int] | None = None,
        observer: Callable[[str, float, str | None], None] | None = None,
    ) -> None:
        self.config = config
        self._creds = credentials
        # (REST path, wall seconds, None or the failure's kind): per request, for metrics.
        self._observer = observer
        # aiohttp does not tell a connect timeout from a read timeout: both come out as
        # ReadTimeout, "maybe executed", so an order is looked up, never blindly re-sent.
        self._transport = transport or AiohttpTransport(config.timeout_s)
        self._timeouts = {"timeout": httpx.Timeout(config.timeout_s).as_dict()}
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            timeout=httpx.Timeout(config.timeout_s),
            transport=self._transport,
            headers={"X-MBX-APIKEY": credentials.api_key},
            cookies=_NoCookies(),
        )
        self._urls: dict[str, httpx.URL] = {}
        """Absolute URLs of unsigned requests, built once (their query never changes)."""
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._offset_ms = 0
        self._filters: dict[str, SymbolFilters] = {}
        self._used_weight_1m = 0
        self._weight_seen_s = -math.inf  # monotonic: when the used-weight header last came
        self._weight_limit_1m: int | None = None
        self._order_count_1m = 0
        self._backoff_until_s = 0.0
        self._banned_until_s = 0.0

    async def __aenter__(self) -> BinanceFuturesClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def connect(self, symbols: Sequence[str] = ()) -> None:
        """Learn the server-time offset and the filters of ``symbols`` (all when empty)."""
        await self.sync_time()
        await self.load_filters(symbols)

    # ------------------------------------------------------------------ state

    @property
    def time_offset_ms(self) -> int:
        """Server time minus local time, learned from ``/fapi/v1/time``."""
        return self._offset_ms

    def exchange_time_ms(self) -> int:
        """The exchange's clock as this client estimates it (local time + learned offset)."""
        return self._wall_ms() + self._offset_ms

    def acceptance_deadline_ms(self, sent_ms: int | None = None) -> int:
        """When a signed request stamped ``sent_ms`` (default: now) can no longer be accepted.

        The exchange refuses a request whose timestamp is older than ``recvWindow`` on arrival
        (-1021), so one still in transit after this time (exchange clock, estimated, with
        ``clock_skew_allowance_ms`` for the estimate's error) will never execute.
        """
        sent = self.exchange_time_ms() if sent_ms is None else sent_ms
        return sent + self.config.recv_window_ms + self.config.clock_skew_allowance_ms

    @property
    def banned(self) -> bool:
        """True while a 418 ban is in force: nothing is sent."""
        return time.monotonic() < self._banned_until_s

    def rate_limits(self) -> RateLimitStatus:
        """Snapshot of the rate-limit budget (headers of the last answer, backoff, ban)."""
        now = time.monotonic()
        return RateLimitStatus(
            used_weight_1m=self._used_weight_1m,
            order_count_1m=self._order_count_1m,
            backoff_remaining_s=max(0.0, self._backoff_until_s - now),
            banned=now < self._banned_until_s,
            ban_remaining_s=max(0.0, self._banned_until_s - now),
            weight_limit_1m=self._weight_limit_1m,
        )

    def filters(self, symbol: str) -> SymbolFilters:
        """Filters of ``symbol`` (call :meth:`connect` or :meth:`load_filters` first)."""
        try:
            return self._filters[symbol]
        except KeyError:
            raise ConfigError(
                f"no exchange filters for {symbol}: call connect()/load_filters() first, "
                "and check the symbol is listed"
            ) from None

    # ------------------------------------------------------------------ market data

    async def sync_time(self) -> int:
        """Learn the server-time offset (midpoint of the round trip); return it in ms."""

        async def once() -> int:
            t0 = self._wall_ms()
            data = await self._request("GET", "/fapi/v1/time", None, signed=False)
            t1 = self._wall_ms()
            return int(data["serverTime"]) - (t0 + t1) // 2

        self._offset_ms = await self._retrying(once)
        return self._offset_ms

    async def load_filters(self, symbols: Sequence[str] = ()) -> dict[str, SymbolFilters]:
        """Fetch ``exchangeInfo`` and cache the tick/step/min-notional filters."""
        data = await self._read("GET", "/fapi/v1/exchangeInfo", None)
        for limit in data.get("rateLimits", ()):
            if (limit.get("rateLimitType"), limit.get("interval"), limit.get("intervalNum")) == (
                "REQUEST_WEIGHT",
                "MINUTE",
                1,
            ):
                self._weight_limit_1m = int(limit["limit"])
        wanted = set(symbols)
        for s in data["symbols"]:
            if wanted and s["symbol"] not in wanted:
                continue
            f = {x["filterType"]: x for x in s["filters"]}
            self._filters[s["symbol"]] = SymbolFilters(
                symbol=s["symbol"],
                tick_size=Decimal(f["PRICE_FILTER"]["tickSize"]),
                min_price=Decimal(f["PRICE_FILTER"]["minPrice"]),
                max_price=Decimal(f["PRICE_FILTER"]["maxPrice"]),
                step_size=Decimal(f["LOT_SIZE"]["stepSize"]),
                min_qty=Decimal(f["LOT_SIZE"]["minQty"]),
                max_qty=Decimal(f["LOT_SIZE"]["maxQty"]),
                min_notional=Decimal(f.get("MIN_NOTIONAL", {}).get("notional", "0")),
                margin_asset=str(s.get("marginAsset") or s.get("quoteAsset") or "USDT"),
            )
        missing = wanted - self._filters.keys()
        if missing:
            raise ConfigError(f"symbols not listed on {self.config.base_url}: {sorted(missing)}")
        return dict(self._filters)

    async def book_ticker(self, symbol: str, *, deferrable: bool = False) -> BookTicker:
        """Best bid/ask (``/fapi/v1/ticker/bookTicker``).

        ``deferrable``: a poll that can skip a turn (raises :class:`WeightReserved`, unsent,
        while the used weight is inside the reserve kept for orders); the read that prices a
        hedge order is not.
        """
        d = await self._read(
            "GET", "/fapi/v1/ticker/bookTicker", {"symbol": symbol}, deferrable=deferrable
        )
        return BookTicker(
            symbol=d["symbol"],
            bid_price=Decimal(d["bidPrice"]),
            bid_qty_base=Decimal(d["bidQty"]),
            ask_price=Decimal(d["askPrice"]),
            ask_qty_base=Decimal(d["askQty"]),
            time_ms=int(d.get("time", 0)),
        )

    async def depth(self, symbol: str, limit: int = 20) -> Depth:
        """Order book levels (``/fapi/v1/depth``)."""
        d = await self._read("GET", "/fapi/v1/depth", {"symbol": symbol, "limit": str(limit)})
        return Depth(
            symbol=symbol,
            bids=tuple((Decimal(p), Decimal(q)) for p, q in d["bids"]),
            asks=tuple((Decimal(p), Decimal(q)) for p, q in d["asks"]),
            time_ms=int(d.get("T", 0)),
        )

    async def premium_index(self, symbol: str) -> PremiumIndex:
        """Mark price, funding rate and next funding time (``/fapi/v1/premiumIndex``)."""
        d = await self._read("GET", "/fapi/v1/premiumIndex", {"symbol": symbol})
        return PremiumIndex(
            symbol=d["symbol"],
            mark_price=Decimal(d["markPrice"]),
            index_price=Decimal(d["indexPrice"]),
            funding_rate_8h=Decimal(d["lastFundingRate"]),
            next_funding_time_ms=int(d["nextFundingTime"]),
            time_ms=int(d["time"]),
        )

    # ------------------------------------------------------------------ account

    async def position_risk(self, symbol: str | None = None) -> list[Position]:
        """Positions (``/fapi/v2/positionRisk``)."""
        params = {"symbol": symbol} if symbol else {}
        rows = await self._read("GET", "/fapi/v2/positionRisk", params, signed=True)
        return [
            Position(
                symbol=r["symbol"],
                qty_base=Decimal(r["positionAmt"]),
                entry_price=Decimal(r["entryPrice"]),
                mark_price=Decimal(r["markPrice"]),
                unrealized_pnl_usdt=Decimal(r["unRealizedProfit"]),
            )
            for r in rows
        ]

    async def position(self, symbol: str) -> Decimal:
        """Signed position of ``symbol`` in base units (0 when flat)."""
        return sum((p.qty_base for p in await self.position_risk(symbol)), Decimal(0))

    async def balances(self) -> list[Balance]:
        """Wallet balances (``/fapi/v2/balance``)."""
        rows = await self._read("GET", "/fapi/v2/balance", {}, signed=True)
        return [
            Balance(
                asset=r["asset"],
                wallet_balance=Decimal(r["balance"]),
                available_balance=Decimal(r["availableBalance"]),
                cross_unrealized_pnl=Decimal(r["crossUnPnl"]),
            )
            for r in rows
        ]

    async def user_trades(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        deferrable: bool = False,
    ) -> list[Trade]:
        """Our fills (``/fapi/v1/userTrades``), oldest first (``deferrable``: as
        :meth:`book_ticker`)."""
        params = {"symbol": symbol}
        if order_id is not None:
            params["orderId"] = str(order_id)
        if from_id is not None:
            params["fromId"] = str(from_id)
        rows = await self._read(
            "GET", "/fapi/v1/userTrades", params, signed=True, deferrable=deferrable
        )
        return [
            Trade(
                symbol=r["symbol"],
                trade_id=int(r["id"]),
                order_id=int(r["orderId"]),
                side=r["side"],
                price=Decimal(r["price"]),
                qty_base=Decimal(r["qty"]),
                commission=Decimal(r["commission"]),
                commission_asset=r["commissionAsset"],
                realized_pnl=Decimal(r["realizedPnl"]),
                maker=bool(r["maker"]),
                time_ms=int(r["time"]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ orders

    def prepare(self, req: OrderRequest) -> dict[str, str]:
        """Round ``req`` to the filters and check it; return the wire parameters.

        Raises
        ------
        FilterRejected, MinNotional
            The rounded order still violates a filter; nothing is sent.
        """
        if not is_valid_client_order_id(req.client_order_id):
            raise FilterRejected(
                -4015,
                f"client order id {req.client_order_id!r} must be 1-36 chars of [.A-Z:/a-z0-9_-]",
                local=True,
            )
        f = self.filters(req.symbol)
        qty = f.round_qty(Decimal(req.quantity_base))
        params = {
            "symbol": req.symbol,
            "side": req.side,
            "type": req.order_type,
            "quantity": _fmt(qty),
            "newClientOrderId": req.client_order_id,
            "newOrderRespType": "RESULT",
        }
        if req.order_type == "LIMIT":
            if req.price is None:
                raise FilterRejected(-1102, "a LIMIT order needs a price", local=True)
            price = f.round_price(Decimal(req.price), req.side)
            f.check(qty, price, reduce_only=req.reduce_only)
            params["price"] = _fmt(price)
            params["timeInForce"] = req.time_in_force
        elif req.price is not None:
            f.check(qty, f.round_price(Decimal(req.price), req.side), reduce_only=req.reduce_only)
        if req.reduce_only:
            params["reduceOnly"] = "true"
        return params

    async def place_order(self, req: OrderRequest, *, wait_rate_limited: bool = True) -> OrderState:
        """Place ``req`` at most once, whatever the network does.

        A MARKET order's ``price`` (if given) is only the reference for the min-notional check.
        A 429 is a definite refusal: with ``wait_rate_limited`` the same request is sent again
        once its ``Retry-After`` window has passed (up to ``read_attempts`` refusals); without
        it the :class:`RateLimited` is raised at once (the window is still noted, so the
        caller's next request waits it out), for a caller whose limit price goes stale while it
        waits and who must re-price before sending again (the hedger in a fast market).

        Raises
        ------
        StatusUnknown
            Every send was ambiguous and no lookup found the order; reconcile before acting.
        ExchangeUnavailable
            The exchange could not be reached at all (nothing was placed as far as we know).
        FilterRejected, MinNotional, InsufficientMargin, ReduceOnlyRejected, PostOnlyWouldTake,
        Banned, RateLimited, AuthError
            Definite refusals; the order does not exist.
        """
        params = self.prepare(req)
        coid = req.client_order_id
        last: ExchangeError | None = None
        ambiguous = False  # did any send possibly reach the matching engine?
        sends = refusals = 0
        while sends < self.config.order_send_attempts:
            try:
                data = await self._signed_once("POST", "/fapi/v1/order", params)
                return _order_state(data, "acked")
            except DuplicateClientOrderId as e:
                found = await self._lookup_after_send(req.symbol, coid)
                if found is not None:
                    return _with_resolution(found, "adopted")
                # -4116 proves the id exists; a lagging lookup must not turn it into a resend
                # under a new id, so keep trying the same id (and lookups) until resolved.
                last, ambiguous = e, True
                sends += 1
            except (RateLimited, TimestampError) as e:
                # Definite "not processed" answers: they do not use up the send budget.
                last = e
                refusals += 1
                if isinstance(e, RateLimited) and not wait_rate_limited:
                    if ambiguous:
                        break  # an earlier send may have landed: that stays unknown
                    raise
                if refusals > self.config.read_attempts:
                    raise
                if isinstance(e, RateLimited):
                    await asyncio.sleep(min(e.retry_after_s, self.config.max_rate_limit_wait_s))
                else:
                    await self.sync_time()
            except (ExchangeUnavailable, StatusUnknown) as e:
                # StatusUnknown includes MalformedAnswer: an ack we cannot read is no refusal.
                last = e
                sends += 1
                if isinstance(e, ExchangeUnavailable) and not e.maybe_executed:
                    continue  # never left this host: nothing to look up
                ambiguous = True
                found = await self._lookup_after_send(req.symbol, coid)
                if found is not None:
                    return _with_resolution(found, "found")
                if not self.config.resend_when_not_found:
                    break
        if not ambiguous and last is not None:
            raise last
        # The last send was stamped no later than now: from now on the deadline is safe.
        raise StatusUnknown(
            getattr(last, "code", CODE_NO_ANSWER),
            f"order {coid} status unknown ({last}); it was not found by client id after "
            f"{self.config.lookup_tries} lookups: reconcile position and fills before hedging "
            "again",
            accept_until_ms=self.acceptance_deadline_ms(),
        )

    async def place_batch(self, reqs: Sequence[OrderRequest]) -> list[OrderState | ExchangeError]:
        """Place up to 5 orders in one request, with the same at-most-once rule per order.

        If the batch answer is lost or ambiguous, each order is looked up by its client id and
        the missing ones are placed individually with the same ids.
        """
        if not 1 <= len(reqs) <= 5:
            raise ValueError("a batch holds 1 to 5 orders")
        items = [self.prepare(r) for r in reqs]
        payload = {"batchOrders": json.dumps(items, separators=(",", ":"))}
        try:
            rows = await self._signed_once("POST", "/fapi/v1/batchOrders", payload)
        except (ExchangeUnavailable, StatusUnknown):
            out: list[OrderState | ExchangeError] = []
            for r in reqs:
                try:
                    out.append(await self.place_order(r))
                except ExchangeError as e:
                    out.append(e)
            return out
        results: list[OrderState | ExchangeError] = []
        for req, row in zip(reqs, rows, strict=True):
            if "code" in row and "orderId" not in row:
                err = _error(400, int(row["code"]), str(row.get("msg", "")), None, self.config)
                if isinstance(err, DuplicateClientOrderId | StatusUnknown):
                    try:
                        results.append(await self.place_order(req))
                    except ExchangeError as e:
                        results.append(e)
                else:
                    results.append(err)
            else:
                results.append(_order_state(row, "acked"))
        return results

    async def query_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> OrderState:
        """Look an order up by client id or exchange id (raises :class:`UnknownOrder`)."""
        params = _order_ref(symbol, client_order_id, order_id)
        return _order_state(await self._read("GET", "/fapi/v1/order", params, signed=True))

    async def lookup_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look ``client_order_id`` up ``lookup_tries`` times; None if every try said -2013.

        A single -2013 can be a lagging read; several in a row, made after the order's
        :meth:`acceptance_deadline_ms`, mean it does not exist and never will.
        """
        return await self._lookup_after_send(symbol, client_order_id)

    async def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> OrderState:
        """Cancel an open order; if it is already final, return its final state."""
        params = _order_ref(symbol, client_order_id, order_id)
        try:
            return _order_state(await self._read("DELETE", "/fapi/v1/order", params, signed=True))
        except UnknownOrder:
            # A retried cancel after a lost answer lands here: the first one worked.
            state = await self.query_order(
                symbol, client_order_id=client_order_id, order_id=order_id
            )
            if state.is_final:
                return state
            raise

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Open orders (``/fapi/v1/openOrders``)."""
        params = {"symbol": symbol} if symbol else {}
        rows = await self._read("GET", "/fapi/v1/openOrders", params, signed=True)
        return [_order_state(r) for r in rows]

    async def cancel_all(self, symbol: str) -> None:
        """Cancel every open order of ``symbol`` (``DELETE /fapi/v1/allOpenOrders``)."""
        await self._read("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}, signed=True)

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None:
        """Arm the dead-man switch: all orders of ``symbol`` are cancelled if not re-armed
        within ``countdown_ms``; 0 disarms it."""
        await self._read(
            "POST",
            "/fapi/v1/countdownCancelAll",
            {"symbol": symbol, "countdownTime": str(countdown_ms)},
            signed=True,
        )

    # ------------------------------------------------------------------ plumbing

    async def _lookup_after_send(self, symbol: str, coid: str) -> OrderState | None:
        """Find ``coid`` after an ambiguous send; -2013 counts as "not yet" for a few tries."""
        for i in range(self.config.lookup_tries):
            if i:
                await asyncio.sleep(self.config.lookup_interval_s)
            try:
                return await self.query_order(symbol, client_order_id=coid)
            except UnknownOrder:
                continue
            except (ExchangeUnavailable, StatusUnknown, RateLimited):
                continue
        return None

    async def _read(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        *,
        signed: bool = False,
        deferrable: bool = False,
    ) -> Any:
        """An idempotent call, retried on no-answer, 5xx, 429 and -1021 (after a resync).

        A ``deferrable`` one gives way to orders: it is not sent while the used weight is inside
        the order reserve (:class:`WeightReserved`) or while a ``Retry-After`` is in force, and
        a 429 is not retried (:class:`RateLimited` at once). Waiting out the window would put it
        in the queue of requests released together when the window ends, ahead of or beside the
        hedge order, and keep its caller (the runtime's cycle) waiting meanwhile.
        """
        if deferrable:
            self._check_reserve(path)
            wait_s = self._backoff_until_s - time.monotonic()
            if wait_s > 0:
                raise RateLimited(
                    -1003, f"{path} not sent: rate-limit back-off in force", 429, wait_s
                )

        async def once() -> Any:
            if signed:
                return await self._signed_once(method, path, params or {})
            return await self._request(method, path, params, signed=False)

        return await self._retrying(once, retry_rate_limited=not deferrable)

    async def _retrying(self, fn: Callable[[], Any], *, retry_rate_limited: bool = True) -> Any:
        max_wait_s = self.config.max_rate_limit_wait_s if retry_rate_limited else -1.0
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable_read(max_wait_s)),
            stop=stop_after_attempt(self.config.read_attempts),
            wait=_BackoffWait(self.config.backoff_base_s, self.config.backoff_max_s),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _signed_once(self, method: str, path: str, params: Mapping[str, str]) -> Any:
        try:
            return await self._request(method, path, params, signed=True)
        except TimestampError:
            # The local clock drifted from the exchange's: re-learn the offset, retry once.
            await self.sync_time()
            return await self._request(method, path, params, signed=True)

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None, *, signed: bool
    ) -> Any:
        now = time.monotonic()
        if now < self._banned_until_s:
            raise Banned(
                -1003,
                f"IP banned by the exchange for {self._banned_until_s - now:.0f}s more; "
                "not sending (hedging is paused)",
                418,
                self._banned_until_s,
            )
        if now < self._backoff_until_s:
            wait_s = self._backoff_until_s - now
            if wait_s > self.config.max_rate_limit_wait_s:
                raise RateLimited(-1003, "rate-limit backoff in force", 429, wait_s)
            await asyncio.sleep(wait_s)
        query = urlencode(dict(params or {}))
        if signed:
            ts = self._wall_ms() + self._offset_ms
            extra = f"recvWindow={self.config.recv_window_ms}&timestamp={ts}"
            query = f"{query}&{extra}" if query else extra
            query = f"{query}&signature={sign(query, self._creds.api_secret)}"
        url = f"{path}?{query}" if query else path
        t0 = time.perf_counter()
        try:
            answer = await self._send(method, path, url, signed=signed)
        except ExchangeError as e:
            if self._observer is not None:
                self._observer(path, time.perf_counter() - t0, _failure_kind(e))
            raise
        if self._observer is not None:
            self._observer(path, time.perf_counter() - t0, None)
        return answer

    async def _send(self, method: str, path: str, url: str, *, signed: bool = False) -> Any:
        try:
            if signed:
                resp = await self._http.request(method, url)
            else:
                # An unsigned request (the ticker, every cycle) has the same URL each time: it
                # is merged with the base URL and parsed once, with httpx's own build_request,
                # and goes straight to the transport with the client's headers, as the JSON-RPC
                # client's requests do (no redirects, auth or cookies apply here). Measured
                # need: httpx.AsyncClient's per-request work (URL merging and parsing, cookie
                # handling, response wrapping) was about half of the client-side CPU per ticker
                # read on the lock-step loop. Signed requests keep the client's path: their
                # query must go out byte for byte as signed.
                request = httpx.Request(
                    method,
                    self._urls.get(url) or self._cache_url(url),
                    headers=self._http.headers,
                    extensions=self._timeouts,
                )
                resp = await self._transport.handle_async_request(request)
                try:
                    await resp.aread()
                finally:
                    await resp.aclose()
        except httpx.TimeoutException as e:
            raise ExchangeUnavailable(
                f"{method} {path}: no answer within {self.config.timeout_s}s ({type(e).__name__})",
                maybe_executed=not isinstance(e, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from e
        except httpx.TransportError as e:
            raise ExchangeUnavailable(
                f"{method} {path}: {type(e).__name__}: {e}",
                maybe_executed=not isinstance(e, httpx.ConnectError),
            ) from e
        self._note_headers(resp.headers)
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as e:
                # It reached the exchange and was answered: whatever it asked may have happened.
                raise MalformedAnswer(
                    CODE_NO_ANSWER,
                    f"{method} {path}: unparseable 200 answer ({e}): {resp.text[:80]!r}",
                    200,
                ) from e
        try:
            body = resp.json()
            code, msg = int(body.get("code", CODE_NO_ANSWER)), str(body.get("msg", ""))
        except (ValueError, AttributeError):
            code, msg = CODE_NO_ANSWER, resp.text[:200]
        err = _error(resp.status_code, code, msg, resp.headers, self.config)
        if isinstance(err, RateLimited):
            self._backoff_until_s = time.monotonic() + err.retry_after_s
        elif isinstance(err, Banned):
            self._banned_until_s = err.until_s
        raise err

    def _cache_url(self, url: str) -> httpx.URL:
        if len(self._urls) >= _URL_CACHE_SIZE:
            self._urls.clear()  # a few symbols' endpoints in practice; never unbounded
        full = self._urls[url] = self._http.build_request("GET", url).url
        return full

    def _check_reserve(self, path: str) -> None:
        """Raise :class:`WeightReserved` when a deferrable read would eat the order reserve.

        The used weight is the exchange's own count from the last answer's header (other
        clients on our IP included), trusted for one window; the reserve is a share of the
        limit ``exchangeInfo`` published. Without a limit or a recent reading nothing is held.
        """
        limit = self._weight_limit_1m
        share = self.config.order_weight_reserve
        if limit is None or share <= 0:
            return
        age_s = time.monotonic() - self._weight_seen_s
        if age_s > self.config.weight_window_s:
            return
        reserve = max(1, math.ceil(limit * share))
        if self._used_weight_1m < limit - reserve:
            return
        raise WeightReserved(
            -1003,
            f"{path} not sent: request weight {self._used_weight_1m}/{limit} used this minute, "
            f"the last {reserve} are kept for hedge orders",
            None,
            max(0.0, self.config.weight_window_s - age_s),
        )

    def _note_headers(self, headers: httpx.Headers) -> None:
        for name, value in headers.items():
            lname = name.lower()
            if lname.startswith("x-mbx-used-weight-") and lname.endswith("1m"):
                self._used_weight_1m = int(value)
                self._weight_seen_s = time.monotonic()
            elif lname.startswith("x-mbx-order-count-") and lname.endswith("1m"):
                self._order_count_1m = int(value)


# ---------------------------------------------------------------------------------- helpers

_URL_CACHE_SIZE = 256


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing.

    The exchange's REST API authenticates each request by API key and signature and never needs
    a cookie. httpx hands every answer to its jar, and the standard jar first copies all of the
    answer's headers into an ``email.message.Message`` to look for ``Set-Cookie``: measured, that
    was about a fifth of the client's CPU per request on the lock-step loop, for nothing.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Keep no cookie from `response`."""


def _failure_kind(e: ExchangeError) -> str:
    """The ``kind`` label of ``mm_exchange_errors_total`` for a failed request."""
    if isinstance(e, Banned):
        return "banned"
    if isinstance(e, RateLimited):
        return "rate_limited"
    if isinstance(e, ExchangeUnavailable | MalformedAnswer):
        return "timeout"
    if e.code in (-1022, -2014, -2015) or e.http_status == 401:
        return "auth"
    return "rejected"


def _fmt(value: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros ("0.001", "2000")."""
    return f"{value.normalize():f}"


def _order_state(
    d: Mapping[str, Any], resolution: Literal["acked", "adopted", "found", "queried"] = "queried"
) -> OrderState:
    try:
        return _parse_order_state(d, resolution)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as e:
        raise MalformedAnswer(CODE_NO_ANSWER, f"order answer of the wrong shape: {e!r}") from e


def _parse_order_state(
    d: Mapping[str, Any], resolution: Literal["acked", "adopted", "found", "queried"]
) -> OrderState:
    return OrderState(
        symbol=d["symbol"],
        order_id=int(d["orderId"]),
        client_order_id=d["clientOrderId"],
        side=d["side"],
        status=d["status"],
        orig_qty_base=Decimal(d["origQty"]),
        executed_qty_base=Decimal(d["executedQty"]),
        avg_price=Decimal(d.get("avgPrice", "0")),
        price=Decimal(d.get("price", "0")),
        time_in_force=d.get("timeInForce", ""),
        order_type=d.get("type", ""),
        reduce_only=bool(d.get("reduceOnly", False)),
        update_time_ms=int(d.get("updateTime", 0)),
        resolution=resolution,
    )


def _with_resolution(
    state: OrderState, resolution: Literal["acked", "adopted", "found", "queried"]
) -> OrderState:
    return OrderState(**{**_asdict(state), "resolution": resolution})


def _asdict(state: OrderState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in OrderState.__dataclass_fields__}


def _retry_after_s(headers: httpx.Headers | None, default_s: float) -> float:
    if headers is None:
        return default_s
    raw = headers.get("Retry-After")
    if raw is None:
        return default_s
    try:
        value = float(raw)
    except ValueError:
        return default_s
    return value if math.isfinite(value) and value >= 0 else default_s


def _error(
    status: int, code: int, msg: str, headers: httpx.Headers | None, config: ClientConfig
) -> ExchangeError:
    """Map an error answer to the typed exception the caller can act on."""
    if status == 418:
        ban_s = _retry_after_s(headers, config.default_ban_s)
        return Banned(
            code,
            f"IP banned (HTTP 418): {msg or 'way too many requests'}; hedging stops for "
            f"{ban_s:.0f}s",
            status,
            time.monotonic() + ban_s,
        )
    if status == 429 or code in (-1003, -1015):
        return RateLimited(
            code, msg or "too many requests", status, _retry_after_s(headers, config.backoff_base_s)
        )
    if code in _UNKNOWN_CODES or (status == 503 and "unknown error" in msg.lower()):
        return StatusUnknown(code, msg or "execution status unknown", status)
    if status >= 500:
        return ExchangeUnavailable(f"HTTP {status}: {msg}", status)
    table: dict[int, type[ExchangeError]] = {
        -1021: TimestampError,
        -1022: AuthError,
        -2014: AuthError,
        -2015: AuthError,
        -2019: InsufficientMargin,
        -2022: ReduceOnlyRejected,
        -5022: PostOnlyWouldTake,
        -2011: UnknownOrder,
        -2013: UnknownOrder,
        -4116: DuplicateClientOrderId,
        -4164: MinNotional,
    }
    cls = table.get(code)
    if cls is not None:
        return cls(code, msg, status)
    if code in _FILTER_CODES:
        return FilterRejected(code, msg, status)
    return ExchangeError(code, msg or f"HTTP {status}", status)


def _order_ref(symbol: str, client_order_id: str | None, order_id: int | None) -> dict[str, str]:
    """The parameters naming one order: the exchange id when given, else our client id."""
    if order_id is not None:
        return {"symbol": symbol, "orderId": str(order_id)}
    if client_order_id is not None:
        return {"symbol": symbol, "origClientOrderId": client_order_id}
    raise ValueError("pass client_order_id or order_id")
