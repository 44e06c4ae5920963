"""The exchange core of the CEX simulator: accounts, positions, orders and matching, without I/O.

The HTTP front end (:mod:`sims.cex.server`) parses and authenticates requests, applies network
faults and calls into :class:`Exchange`. Everything here is synchronous and driven by an injected
:class:`~sims.cex.clock.SimClock` and a seeded random generator, so a stress run is reproducible.

Semantics follow Binance USDⓈ-M futures in one-way position mode:

==========================  ======================================================================
matching                    taker orders walk a synthetic book around the current mid; resting
                            orders fill in full, at their own price (maker), once the book crosses
partial fills               a fault: a taker match fills only a fraction of what the book offers
client order ids            unique among *open* orders (as on Binance); ``dedupe_scope="all"``
                            makes them unique forever. Re-acceptances are recorded for invariants
fees                        maker/taker in bps of notional, charged in USDT on every fill
funding                     every ``funding_interval_ms`` on the epoch grid: longs pay
                            ``position × mark × rate`` to shorts (negative rate: the reverse)
margin                      cross, one leverage: an order that raises exposure beyond equity ×
                            leverage is refused with -2019
countdown cancel-all        ``countdown(symbol, ms)`` arms a dead-man switch; each call replaces
                            the countdown (a heartbeat), 0 disarms it. When it expires on the
                            exchange's clock every open order of the symbol is cancelled, stamped
                            at the deadline
==========================  ======================================================================
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from sims.cex.clock import SimClock, WallClock

__all__ = [
    "BookShape",
    "Exchange",
    "SimConfig",
    "SimError",
    "SymbolSpec",
]

_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_ZERO = Decimal(0)
_BPS = Decimal(10_000)


class SimError(Exception):
    """An error answer of the simulated exchange: Binance code, message and HTTP status."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        super().__init__(f"{code}: {msg}")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One perpetual contract and its exchange filters (decimal strings, as the API serves them)."""

    symbol: str = "ETHUSDT"
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("10000")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    min_notional_usdt: Decimal = Decimal("20")
    initial_mid: Decimal = Decimal("2000")
    funding_rate_8h: Decimal = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class BookShape:
    """The synthetic order book generated around the mid on every match.

    Level ``i`` (0 = best) sits ``half_spread_bps + i × level_gap_bps`` away from the mid and
    offers ``best_level_qty × level_qty_growth**i`` base units.
    """

    half_spread_bps: float = 1.0
    level_gap_bps: float = 1.0
    levels: int = 20
    best_level_qty: float = 5.0
    level_qty_growth: float = 1.25


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Static configuration of a simulated exchange."""

    symbols: tuple[SymbolSpec, ...] = (SymbolSpec(),)
    api_key: str = "sim-api-key"
    # The simulator's own well-known test secret, not a credential.
    api_secret: str = "sim-api-secret"  # noqa: S105
    initial_balance_usdt: Decimal = Decimal("100000")
    leverage: int = 10
    maker_fee_bps: Decimal = Decimal("2")
    taker_fee_bps: Decimal = Decimal("4")
    funding_interval_ms: int = 8 * 3_600_000
    book: BookShape = BookShape()
    dedupe_scope: Literal["open", "all"] = "open"
    seed: int = 0


@dataclass(slots=True)
class _Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    time_in_force: str  # GTC | IOC | FOK | GTX
    orig_qty: Decimal
    price: Decimal
    reduce_only: bool
    status: str
    executed_qty: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    time_ms: int = 0
    update_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def to_api(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed_qty if self.executed_qty else _ZERO
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": str(self.price),
            "avgPrice": f"{avg:f}",
            "origQty": str(self.orig_qty),
            "executedQty": str(self.executed_qty),
            "cumQty": str(self.executed_qty),
            "cumQuote": f"{self.cum_quote:f}",
            "timeInForce": self.time_in_force,
            "type": self.type,
            "origType": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "time": self.time_ms,
            "updateTime": self.update_ms,
        }


@dataclass(slots=True)
class _Position:
    qty: Decimal = _ZERO  # signed, base units
    entry_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    update_ms: int = 0


@dataclass(slots=True)
class _Market:
    spec: SymbolSpec
    path_ms: list[int] = field(default_factory=list)
    path_px: list[Decimal] = field(default_factory=list)
    funding_rate: Decimal = _ZERO
    countdown_deadline_ms: int | None = None


def _q(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step``."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class Exchange:
    """Accounts, orders and matching of one simulated USDⓈ-M account.

    Parameters
    ----------
    config
        Symbols, fees, funding and book shape.
    clock
        Exchange time; a :class:`~sims.cex.clock.ManualClock` lets a stress run drive it.
    """

    def __init__(self, config: SimConfig | None = None, clock: SimClock | None = None) -> None:
        self.config = config or SimConfig()
        self.clock: SimClock = clock or WallClock()
        self._rng = random.Random(self.config.seed)
        self._markets: dict[str, _Market] = {}
        now = self.clock.now_ms()
        for spec in self.config.symbols:
            self._markets[spec.symbol] = _Market(
                spec=spec,
                path_ms=[0],
                path_px=[spec.initial_mid],
                funding_rate=spec.funding_rate_8h,
            )
        self._positions: dict[str, _Position] = {s: _Position() for s in self._markets}
        self._wallet = self.config.initial_balance_usdt
        self._orders: list[_Order] = []
        self._by_id: dict[int, _Order] = {}
        self._accepted_client_ids: dict[str, int] = {}
        self._trades: list[dict[str, Any]] = []
        self._funding_events: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._next_order_id = 8_000_000_000
        self._next_trade_id = 1
        self._last_funding_ms = now
        self._next_funding_ms = self._funding_after(now)
        # The partial-fill fault lives here (it changes matching); the server owns the rest.
        self.partial_fill_prob = 0.0
        self.partial_fill_fraction = 0.5
        self.clock_skew_ms = 0

    # ------------------------------------------------------------------ control (in-process)

    def server_time_ms(self) -> int:
        """Exchange time as served by ``/fapi/v1/time`` (includes the clock-skew fault)."""
        return self.clock.now_ms() + self.clock_skew_ms

    def set_mid(self, symbol: str, mid: float | Decimal) -> None:
        """Make ``mid`` the price from now on (drops the rest of any path), then match."""
        market = self._market(symbol)
        market.path_ms = [0]
        market.path_px = [Decimal(str(mid))]
        self.advance()

    def set_price_path(self, symbol: str, points: Sequence[tuple[int, float]]) -> None:
        """Follow a step price path: ``[(time_ms, mid), ...]``, sorted by time.

        Before the first point the first price applies; afterwards the latest point at or before
        the exchange time.
        """
        if not points:
            raise ValueError("a price path needs at least one point")
        times = [int(t) for t, _ in points]
        if times != sorted(times):
            raise ValueError("price path times must be sorted")
        market = self._market(symbol)
        market.path_ms = times
        market.path_px = [Decimal(str(p)) for _, p in points]
        self.advance()

    def set_funding_rate(self, symbol: str, rate_8h: float | Decimal) -> None:
        """Set the funding rate applied at the next funding times."""
        self._market(symbol).funding_rate = Decimal(str(rate_8h))

    def mid(self, symbol: str) -> Decimal:
        """The current mid (also the mark price) of ``symbol``."""
        market = self._market(symbol)
        i = bisect.bisect_right(market.path_ms, self.clock.now_ms()) - 1
        return market.path_px[max(i, 0)]

    def advance(self) -> None:
        """Catch up with the clock: fire countdowns, settle funding, fill crossed resting orders.

        Called before every API request and after every price change, so a driven clock needs no
        background task.
        """
        now = self.clock.now_ms()
        for symbol, market in self._markets.items():
            deadline = market.countdown_deadline_ms
            if deadline is not None and now >= deadline:
                # Fired at the deadline on the exchange's clock, whenever we first look: a
                # resting order is matched below only if it outlived the switch.
                market.countdown_deadline_ms = None
                cancelled = self.cancel_all(symbol, at_ms=deadline)
                self._events.append(
                    {
                        "type": "countdown_cancel_all",
                        "symbol": symbol,
                        "time": deadline,
                        "n": cancelled,
                    }
                )
        while now >= self._next_funding_ms:
            self._settle_funding(self._next_funding_ms)
            self._next_funding_ms += self.config.funding_interval_ms
        for order in list(self._orders):
            if order.is_open:
                self._match_resting(order)

    # ------------------------------------------------------------------ market data

    def exchange_info(self) -> dict[str, Any]:
        """The ``/fapi/v1/exchangeInfo`` payload."""
        symbols = []
        for m in self._markets.values():
            s = m.spec
            symbols.append(
                {
                    "symbol": s.symbol,
                    "pair": s.symbol,
                    "contractType": "PERPETUAL",
                    "status": "TRADING",
                    "baseAsset": s.symbol.removesuffix("USDT"),
                    "quoteAsset": "USDT",
                    "marginAsset": "USDT",
                    "pricePrecision": _decimals(s.tick_size),
                    "quantityPrecision": _decimals(s.step_size),
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": str(s.min_price),
                            "maxPrice": str(s.max_price),
                            "tickSize": str(s.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": str(s.min_qty),
                            "maxQty": str(s.max_qty),
                            "stepSize": str(s.step_size),
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": str(s.min_qty),
                            "maxQty": str(s.max_qty),
                            "stepSize": str(s.step_size),
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": str(s.min_notional_usdt)},
                    ],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "symbols": symbols,
        }

    def book(
        self, symbol: str, levels: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The synthetic book around the current mid: ``(bids, asks)``, best first."""
        spec = self._market(symbol).spec
        shape = self.config.book
        mid = self.mid(symbol)
        n = min(levels or shape.levels, shape.levels)
        bids: list[tuple[Decimal, Decimal]] = []
        asks: list[tuple[Decimal, Decimal]] = []
        for i in range(n):
            off = Decimal(str(shape.half_spread_bps + i * shape.level_gap_bps)) / _BPS
            qty = _q(Decimal(str(shape.best_level_qty * shape.level_qty_growth**i)), spec.step_size)
            bid_px = _q(mid * (1 - off), spec.tick_size)
            ask_px = -_q(-mid * (1 + off), spec.tick_size)  # round up
            if not bids or bid_px < bids[-1][0]:
                bids.append((bid_px, qty))
            if not asks or ask_px > asks[-1][0]:
                asks.append((ask_px, qty))
        return bids, asks

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The ``/fapi/v1/depth`` payload."""
        bids, asks = self.book(symbol, limit)
        now = self.server_time_ms()
        return {
            "lastUpdateId": now,
            "E": now,
            "T": now,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """The ``/fapi/v1/ticker/bookTicker`` payload."""
        bids, asks = self.book(symbol, 1)
        return {
            "symbol": symbol,
            "bidPrice": str(bids[0][0]),
            "bidQty": str(bids[0][1]),
            "askPrice": str(asks[0][0]),
            "askQty": str(asks[0][1]),
            "time": self.server_time_ms(),
        }

    def premium_index(self, symbol: str) -> dict[str, Any]:
        """The ``/fapi/v1/premiumIndex`` payload (mark = index = mid here)."""
        market = self._market(symbol)
        mark = self.mid(symbol)
        return {
            "symbol": symbol,
            "markPrice": str(mark),
            "indexPrice": str(mark),
            "estimatedSettlePrice": str(mark),
            "lastFundingRate": str(market.funding_rate),
            "interestRate": "0.00010000",
            "nextFundingTime": self._next_funding_ms,
            "time": self.server_time_ms(),
        }

    # ------------------------------------------------------------------ trading

    def place(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Validate and execute a new order (``POST /fapi/v1/order``); return its RESULT view."""
        symbol = _required(params, "symbol")
        market = self._market(symbol)
        spec = market.spec
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise SimError(-1117, "Invalid side.")
        otype = _required(params, "type")
        if otype not in ("LIMIT", "MARKET"):
            raise SimError(-1116, "Invalid orderType.")
        qty = _decimal(params, "quantity")
        if qty <= 0:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        if qty % spec.step_size != 0:
            raise SimError(-4023, f"Qty not increased by step size ({spec.step_size}).")
        if qty < spec.min_qty:
            raise SimError(-4004, f"Quantity less than min quantity ({spec.min_qty}).")
        if qty > spec.max_qty:
            raise SimError(-4005, f"Quantity greater than max quantity ({spec.max_qty}).")
        if otype == "LIMIT":
            tif = params.get("timeInForce", "")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise SimError(-1102, "Mandatory parameter 'timeInForce' was not sent or invalid.")
            price = _decimal(params, "price")
            if price < spec.min_price:
                raise SimError(-4013, "Price less than min price.")
            if price > spec.max_price:
                raise SimError(-4002, "Price greater than max price.")
            if price % spec.tick_size != 0:
                raise SimError(-4014, "Price not increased by tick size.")
        else:
            tif = "IOC"
            price = _ZERO
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        coid = params.get("newClientOrderId") or f"sim_{self._rng.getrandbits(64):016x}"
        if not _CLIENT_ID_RE.match(coid):
            raise SimError(-4015, "Client order id is not valid.")
        if self._client_id_taken(coid):
            raise SimError(-4116, "ClientOrderId is duplicated.")

        position = self._positions[symbol]
        signed = qty if side == "BUY" else -qty
        if reduce_only:
            if position.qty == 0 or (position.qty > 0) == (signed > 0):
                raise SimError(-2022, "ReduceOnly Order is rejected.")
            qty = min(qty, abs(position.qty))
            signed = qty if side == "BUY" else -qty
        ref_price = price if otype == "LIMIT" else self.mid(symbol)
        if not reduce_only and qty * ref_price < spec.min_notional_usdt:
            raise SimError(
                -4164,
                f"Order's notional must be no smaller than {spec.min_notional_usdt} "
                "(unless you choose reduce only).",
            )
        bids, asks = self.book(symbol)
        if tif == "GTX" and (
            (side == "BUY" and price >= asks[0][0]) or (side == "SELL" and price <= bids[0][0])
        ):
            raise SimError(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected. The order will not be recorded in the order history",
            )
        if not reduce_only:
            self._check_margin(symbol, signed, ref_price)

        now = self.clock.now_ms()
        order = _Order(
            order_id=self._next_order_id,
            client_order_id=coid,
            symbol=symbol,
            side=side,
            type=otype,
            time_in_force=tif,
            orig_qty=qty,
            price=price,
            reduce_only=reduce_only,
            status="NEW",
            time_ms=now,
            update_ms=now,
        )
        self._next_order_id += 1
        self._orders.append(order)
        self._by_id[order.order_id] = order
        self._accepted_client_ids[coid] = self._accepted_client_ids.get(coid, 0) + 1
        self._match_taker(order, bids, asks)
        return order.to_api()

    def query(self, symbol: str, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        """``GET /fapi/v1/order``: the order by exchange id or client id (latest if reused)."""
        return self._find(
            symbol, order_id, client_id, missing=(-2013, "Order does not exist.")
        ).to_api()

    def cancel(self, symbol: str, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        """``DELETE /fapi/v1/order``: cancel an open order."""
        order = self._find(symbol, order_id, client_id, missing=(-2011, "Unknown order sent."))
        if not order.is_open:
            raise SimError(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self.clock.now_ms()
        return order.to_api()

    def cancel_all(self, symbol: str, *, at_ms: int | None = None) -> int:
        """Cancel every open order of ``symbol`` (stamped ``at_ms``, default now); return how
        many were cancelled."""
        self._market(symbol)
        stamp = self.clock.now_ms() if at_ms is None else at_ms
        n = 0
        for order in self._orders:
            if order.symbol == symbol and order.is_open:
                order.status = "CANCELED"
                order.update_ms = stamp
                n += 1
        return n

    def countdown(self, symbol: str, countdown_ms: int) -> dict[str, Any]:
        """Arm (or with 0, disarm) the dead-man switch that cancels all orders of ``symbol``."""
        market = self._market(symbol)
        market.countdown_deadline_ms = (
            None if countdown_ms == 0 else self.clock.now_ms() + countdown_ms
        )
        return {"symbol": symbol, "countdownTime": str(countdown_ms)}

    def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        """``GET /fapi/v1/openOrders``."""
        return [
            o.to_api() for o in self._orders if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    def user_trades(
        self, symbol: str, order_id: int | None, from_id: int | None
    ) -> list[dict[str, Any]]:
        """``GET /fapi/v1/userTrades``: our fills, oldest first."""
        self._market(symbol)
        return [
            t
            for t in self._trades
            if t["symbol"] == symbol
            and (order_id is None or t["orderId"] == order_id)
            and (from_id is None or t["id"] >= from_id)
        ]

    def position_risk(self, symbol: str | None) -> list[dict[str, Any]]:
        """``GET /fapi/v2/positionRisk``."""
        out = []
        for sym, pos in self._positions.items():
            if symbol is not None and sym != symbol:
                continue
            mark = self.mid(sym)
            out.append(
                {
                    "symbol": sym,
                    "positionAmt": str(pos.qty),
                    "entryPrice": f"{pos.entry_price:f}",
                    "markPrice": str(mark),
                    "unRealizedProfit": f"{pos.qty * (mark - pos.entry_price):f}",
                    "liquidationPrice": "0",
                    "leverage": str(self.config.leverage),
                    "marginType": "cross",
                    "positionSide": "BOTH",
                    "notional": f"{pos.qty * mark:f}",
                    "updateTime": pos.update_ms,
                }
            )
        return out

    def balance(self) -> list[dict[str, Any]]:
        """``GET /fapi/v2/balance``."""
        upnl = self._unrealized()
        available = self._wallet + upnl - self._used_margin()
        return [
            {
                "accountAlias": "sim",
                "asset": "USDT",
                "balance": f"{self._wallet:f}",
                "crossWalletBalance": f"{self._wallet:f}",
                "crossUnPnl": f"{upnl:f}",
                "availableBalance": f"{available:f}",
                "maxWithdrawAmount": f"{max(available, _ZERO):f}",
                "marginAvailable": True,
                "updateTime": self.clock.now_ms(),
            }
        ]

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot for invariant checks (``GET /_sim/state``)."""
        return {
            "time_ms": self.clock.now_ms(),
            "wallet_usdt": f"{self._wallet:f}",
            "mids": {s: str(self.mid(s)) for s in self._markets},
            "positions": {
                s: {
                    "qty": str(p.qty),
                    "entry_price": f"{p.entry_price:f}",
                    "realized_pnl": f"{p.realized_pnl:f}",
                }
                for s, p in self._positions.items()
            },
            "orders": [o.to_api() for o in self._orders],
            "trades": list(self._trades),
            "funding": list(self._funding_events),
            "events": list(self._events),
            "client_ids_accepted_more_than_once": sorted(
                c for c, n in self._accepted_client_ids.items() if n > 1
            ),
            "next_funding_ms": self._next_funding_ms,
        }

    def position_qty(self, symbol: str) -> Decimal:
        """Our signed position in base units."""
        return self._positions[symbol].qty

    def orders(self) -> list[dict[str, Any]]:
        """Every order ever accepted, in acceptance order."""
        return [o.to_api() for o in self._orders]

    def trades(self) -> list[dict[str, Any]]:
        """Every fill, oldest first."""
        return list(self._trades)

    # ------------------------------------------------------------------ internals

    def _market(self, symbol: str) -> _Market:
        try:
            return self._markets[symbol]
        except KeyError:
            raise SimError(-1121, "Invalid symbol.") from None

    def _funding_after(self, now_ms: int) -> int:
        interval = self.config.funding_interval_ms
        return (now_ms // interval + 1) * interval

    def _client_id_taken(self, coid: str) -> bool:
        if self.config.dedupe_scope == "all":
            return coid in self._accepted_client_ids
        return any(o.client_order_id == coid and o.is_open for o in self._orders)

    def _find(
        self, symbol: str, order_id: int | None, client_id: str | None, missing: tuple[int, str]
    ) -> _Order:
        self._market(symbol)
        if order_id is None and client_id is None:
            raise SimError(-1102, "Either orderId or origClientOrderId must be sent.")
        if order_id is not None:
            order = self._by_id.get(order_id)
            if order is not None and order.symbol == symbol:
                return order
            raise SimError(*missing)
        for order in reversed(self._orders):
            if order.client_order_id == client_id and order.symbol == symbol:
                return order
        raise SimError(*missing)

    def _unrealized(self) -> Decimal:
        return sum(
            (p.qty * (self.mid(s) - p.entry_price) for s, p in self._positions.items()), _ZERO
        )

    def _used_margin(self) -> Decimal:
        lev = Decimal(self.config.leverage)
        used = sum((abs(p.qty) * self.mid(s) for s, p in self._positions.items()), _ZERO)
        return used / lev

    def _check_margin(self, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        lev = Decimal(self.config.leverage)
        pos = self._positions[symbol].qty
        pending = sum(
            (
                o.remaining if o.side == "BUY" else -o.remaining
                for o in self._orders
                if o.symbol == symbol and o.is_open
            ),
            _ZERO,
        )
        worst_after = abs(pos + pending + signed_qty)
        if worst_after <= abs(pos):
            return  # reduces exposure: always allowed
        others = sum(
            (abs(p.qty) * self.mid(s) for s, p in self._positions.items() if s != symbol), _ZERO
        )
        needed = (others + worst_after * price) / lev
        equity = self._wallet + self._unrealized()
        if needed > equity:
            raise SimError(-2019, "Margin is insufficient.")

    def _match_taker(
        self,
        order: _Order,
        bids: list[tuple[Decimal, Decimal]],
        asks: list[tuple[Decimal, Decimal]],
    ) -> None:
        spec = self._markets[order.symbol].spec
        levels = asks if order.side == "BUY" else bids
        cap = order.orig_qty
        if self.partial_fill_prob > 0 and self._rng.random() < self.partial_fill_prob:
            cap = _q(order.orig_qty * Decimal(str(self.partial_fill_fraction)), spec.step_size)
        fills: list[tuple[Decimal, Decimal]] = []
        want = cap
        for px, avail in levels:
            if want <= 0:
                break
            marketable = order.type == "MARKET" or (
                px <= order.price if order.side == "BUY" else px >= order.price
            )
            if not marketable:
                break
            take = min(want, avail)
            fills.append((px, take))
            want -= take
        filled = sum((q for _, q in fills), _ZERO)
        if order.time_in_force == "FOK" and filled < order.orig_qty:
            order.status = "EXPIRED"
            return
        for px, q in fills:
            self._fill(order, px, q, maker=False)
        if order.remaining == 0:
            order.status = "FILLED"
        elif order.time_in_force in ("IOC", "FOK") or order.type == "MARKET":
            order.status = "EXPIRED"
        else:
            order.status = "PARTIALLY_FILLED" if order.executed_qty > 0 else "NEW"

    def _match_resting(self, order: _Order) -> None:
        if order.type != "LIMIT":
            return
        bids, asks = self.book(order.symbol, 1)
        crossed = order.price >= asks[0][0] if order.side == "BUY" else order.price <= bids[0][0]
        if not crossed:
            return
        qty = order.remaining
        if order.reduce_only:
            pos = self._positions[order.symbol].qty
            if pos == 0 or (pos > 0) == (order.side == "BUY"):
                order.status = "EXPIRED"  # nothing left to reduce
                order.update_ms = self.clock.now_ms()
                return
            qty = min(qty, abs(pos))
        self._fill(order, order.price, qty, maker=True)
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"

    def _fill(self, order: _Order, price: Decimal, qty: Decimal, *, maker: bool) -> None:
        now = self.clock.now_ms()
        signed = qty if order.side == "BUY" else -qty
        pos = self._positions[order.symbol]
        realized = _ZERO
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = abs(pos.qty) + qty
            pos.entry_price = (pos.entry_price * abs(pos.qty) + price * qty) / total
            pos.qty += signed
        else:
            closing = min(qty, abs(pos.qty))
            direction = Decimal(1) if pos.qty > 0 else Decimal(-1)
            realized = closing * (price - pos.entry_price) * direction
            pos.qty += signed
            if pos.qty == 0:
                pos.entry_price = _ZERO
            elif (pos.qty > 0) == (signed > 0):  # flipped through zero
                pos.entry_price = price
        pos.realized_pnl += realized
        pos.update_ms = now
        fee_bps = self.config.maker_fee_bps if maker else self.config.taker_fee_bps
        fee = price * qty * fee_bps / _BPS
        self._wallet += realized - fee
        order.executed_qty += qty
        order.cum_quote += price * qty
        order.update_ms = now
        self._trades.append(
            {
                "symbol": order.symbol,
                "id": self._next_trade_id,
                "orderId": order.order_id,
                "clientOrderId": order.client_order_id,
                "side": order.side,
                "price": str(price),
                "qty": str(qty),
                "realizedPnl": f"{realized:f}",
                "quoteQty": f"{price * qty:f}",
                "commission": f"{fee:f}",
                "commissionAsset": "USDT",
                "time": now,
                "buyer": order.side == "BUY",
                "maker": maker,
                "positionSide": "BOTH",
            }
        )
        self._next_trade_id += 1

    def _settle_funding(self, at_ms: int) -> None:
        for symbol, pos in self._positions.items():
            if pos.qty == 0:
                continue
            market = self._markets[symbol]
            mark = self.mid(symbol)
            payment = pos.qty * mark * market.funding_rate  # >0: we pay
            self._wallet -= payment
            self._funding_events.append(
                {
                    "symbol": symbol,
                    "time": at_ms,
                    "rate": str(market.funding_rate),
                    "position": str(pos.qty),
                    "mark": str(mark),
                    "income": f"{-payment:f}",
                }
            )
        self._last_funding_ms = at_ms


def _decimals(step: Decimal) -> int:
    """Number of decimals of a tick or step size (0.01 -> 2, 1 -> 0)."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise SimError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    raw = _required(params, name)
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise SimError(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite():
        raise SimError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value
