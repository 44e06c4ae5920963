"""HTTP front end of the CEX simulator: an aiohttp server on 127.0.0.1.

It serves the Binance USDⓈ-M endpoints the hedge client uses, with the same payload shapes,
headers and error codes, verifies API key, HMAC signature (-1022) and timestamp (-1021), and
injects network faults. An admin surface under ``/_sim/`` lets tests and a separate stress
process drive prices, faults and the clock and read state back; it bypasses the faults.

==============================  =====================================================
``GET  /fapi/v1/ping|time``      connectivity, server time (with the clock-skew fault)
``GET  /fapi/v1/exchangeInfo``   filters: PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL
``GET  /fapi/v1/depth``          synthetic book around the mid
``GET  /fapi/v1/ticker/bookTicker`` best bid/ask
``GET  /fapi/v1/premiumIndex``   mark, funding rate, next funding time
``POST|GET|DELETE /fapi/v1/order`` new / query / cancel (SIGNED)
``POST /fapi/v1/batchOrders``    up to 5 orders (SIGNED)
``GET  /fapi/v1/openOrders``     (SIGNED)
``DELETE /fapi/v1/allOpenOrders`` (SIGNED)
``POST /fapi/v1/countdownCancelAll`` dead-man switch (SIGNED)
``GET  /fapi/v1/userTrades``     our fills (SIGNED)
``GET  /fapi/v2/positionRisk``   (SIGNED)
``GET  /fapi/v2/balance``        (SIGNED)
``POST /_sim/price``             ``{"symbol", "mid"}`` or ``{"symbol", "path": [[t_ms, px]]}``
``POST /_sim/faults``            any :class:`Faults` fields; answers the faults now in force
``POST /_sim/funding``           ``{"symbol", "rate"}``
``POST /_sim/clock``             ``{"advance_ms"}`` (manual clock only)
``GET  /_sim/state``             orders, fills, positions, funding, invariant fields
==============================  =====================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from sims.cex.clock import ManualClock, SimClock
from sims.cex.exchange import Exchange, SimConfig, SimError

__all__ = ["Faults", "SimServer"]

_WEIGHTS = {
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/depth": 5,
    "/fapi/v1/openOrders": 1,
    "/fapi/v1/userTrades": 5,
    "/fapi/v2/positionRisk": 5,
    "/fapi/v2/balance": 5,
    "/fapi/v1/batchOrders": 5,
    "/fapi/v1/allOpenOrders": 1,
    "/fapi/v1/countdownCancelAll": 10,
}
_ORDER_PATHS = frozenset({("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/batchOrders")})
_UNKNOWN_503 = "Unknown error, please check your request or try again later."
_MAX_BODY_BYTES = 1 << 20
_SHUTDOWN_S = 0.5
"""How long :meth:`SimServer.stop` lets requests in progress finish (a held answer is dropped)."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected by the server; replace them with :meth:`SimServer.set_faults`.

    Counters (``*_next``) are consumed one per matching request.
    """

    latency_ms: float = 250.0
    """Round-trip delay added to every API request (half before, half after processing)."""
    jitter_ms: float = 50.0
    """Uniform jitter (±) on ``latency_ms``."""
    partial_fill_prob: float = 0.0
    """Probability that a taker match fills only ``partial_fill_fraction`` of the order."""
    partial_fill_fraction: float = 0.5
    rate_limit_next: int = 0
    """The next N API requests are answered 429 (-1003) with ``Retry-After``."""
    retry_after_s: float = 1.0
    """``Retry-After`` sent with 429 (Binance sends whole seconds; tests use fractions)."""
    ban_after_violations: int = 0
    """Requests sent during a Retry-After window that earn a 418 ban; 0 disables it."""
    ban_s: float = 0.0
    """Set > 0 to ban (418) every API request for that many seconds from now."""
    unknown_status_next: int = 0
    """The next N new orders are accepted, then answered with an unknown-status error."""
    unknown_status_kind: str = "503"
    """``"503"`` (HTTP 503 "Unknown error"), ``"-1006"`` or ``"-1007"``."""
    slow_ack_next: int = 0
    """The next N new orders are accepted, then the answer is held for ``slow_ack_ms``."""
    slow_ack_ms: float = 2_000.0
    lookup_miss_next: int = 0
    """The next N order queries answer -2013 even if the order exists (lagging read replica)."""
    clock_skew_ms: int = 0
    """Added to the server clock: the client must learn the offset."""
    outage: bool = False
    """Drop every API connection without an answer."""
    weight_limit_1m: int = 2400


class SimServer:
    """The simulator as a real HTTP server on 127.0.0.1.

    Parameters
    ----------
    config
        Exchange configuration (symbols, fees, keys).
    clock
        Exchange clock; pass a :class:`~sims.cex.clock.ManualClock` to drive time.
    faults
        Initial faults (defaults: 250 ms ± 50 ms latency, nothing else).
    host, port
        Bind address; port 0 picks a free port (see :attr:`url` after :meth:`start`).

    Examples
    --------
    >>> async with SimServer(faults=Faults(latency_ms=20)) as sim:  # doctest: +SKIP
    ...     sim.exchange.set_mid("ETHUSDT", 2500)
    ...     print(sim.url)
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: SimClock | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.exchange = Exchange(config, clock)
        self.config = self.exchange.config
        self._faults = Faults()
        self.set_faults(**dataclasses.asdict(faults or Faults()))
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._rng = random.Random(self.config.seed + 1)
        self._weight: deque[tuple[float, int]] = deque()
        self._weight_used = 0
        """Sum of the weights in ``_weight`` (kept as they come and go: read on every request)."""
        self._orders_1m: deque[float] = deque()
        self._retry_until = 0.0  # monotonic
        self._violations = 0
        self._banned_until = 0.0  # monotonic
        self.request_log: list[tuple[str, str, int]] = []
        """Every API request as ``(method, path, http_status)`` (admin calls excluded)."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the simulator is not started")
        port = self._runner.addresses[0][1]
        return f"http://{self._host}:{port}"

    async def start(self) -> str:
        """Bind and start serving; return the base URL."""
        # Bodies above the cap are refused (413) before the handler runs.
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._on_request)
        # A handler keeps running when its client hangs up: an order the exchange accepted
        # stays accepted, exactly as on a real venue.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        return self.url

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Serve until cancelled (for ``python -m sims.cex``)."""
        if self._runner is None:
            await self.start()
        await asyncio.Event().wait()

    # ------------------------------------------------------------------ control

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change some fault fields (unknown names are errors); return the faults in force."""
        faults = dataclasses.replace(self._faults, **changes)
        if faults.unknown_status_kind not in ("503", "-1006", "-1007"):
            raise ValueError(f"unknown_status_kind must be 503, -1006 or -1007, not {faults!r}")
        self._faults = faults
        self.exchange.partial_fill_prob = faults.partial_fill_prob
        self.exchange.partial_fill_fraction = faults.partial_fill_fraction
        self.exchange.clock_skew_ms = faults.clock_skew_ms
        if "ban_s" in changes:
            self._banned_until = time.monotonic() + faults.ban_s if faults.ban_s > 0 else 0.0
        return faults

    def state(self) -> dict[str, Any]:
        """Exchange state plus server counters, as served by ``GET /_sim/state``."""
        state = self.exchange.state()
        state["faults"] = dataclasses.asdict(self._faults)
        state["banned"] = time.monotonic() < self._banned_until
        state["requests"] = len(self.request_log)
        return state

    # ------------------------------------------------------------------ connection handling

    async def _on_request(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        # The raw target: the signature covers the query exactly as the client sent it.
        response = await self._handle(request.method, request.raw_path, headers, body)
        if response is None:
            # Outage: drop the connection without a byte of answer. Raising after the abort
            # keeps aiohttp from writing a 500 of its own on the dead socket.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        status, payload, extra = response
        return web.json_response(payload, status=status, headers=extra, dumps=_compact_json)

    async def _handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]] | None:
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/_sim/"):
            return self._admin(method, path, body)
        faults = self._faults
        if faults.outage:
            return None
        half_delay_s = self._latency_s() / 2
        await asyncio.sleep(half_delay_s)
        extra: dict[str, str] = {}
        hold_s = 0.0
        try:
            self._gate_rate_limits(method, path)
            params, signed_ok = self._params(parts.query, body, headers)
            self.exchange.advance()
            result, hold_s = self._route(method, path, params, signed_ok)
            status, payload = 200, result
        except SimError as e:
            status, payload = e.http_status, {"code": e.code, "msg": e.msg}
            if status == 429:
                extra["Retry-After"] = f"{faults.retry_after_s:g}"
        extra.update(self._usage_headers())
        self.request_log.append((method, path, status))
        await asyncio.sleep(half_delay_s + hold_s)
        return status, payload, extra

    def _latency_s(self) -> float:
        f = self._faults
        jitter = self._rng.uniform(-f.jitter_ms, f.jitter_ms) if f.jitter_ms > 0 else 0.0
        return max(0.0, f.latency_ms + jitter) / 1000

    def _window_now(self) -> float:
        """Seconds on the exchange's clock: the per-minute weight and order windows are minutes
        of *exchange* time, so a stress run on compressed simulated time is limited per simulated
        minute, as the real exchange would limit the same activity (wall time otherwise)."""
        return self.exchange.clock.now_ms() / 1000

    def _prune_windows(self) -> float:
        """Drop usage older than a minute; return the window clock's now."""
        now = self._window_now()
        while self._weight and now - self._weight[0][0] > 60:
            self._weight_used -= self._weight.popleft()[1]
        while self._orders_1m and now - self._orders_1m[0] > 60:
            self._orders_1m.popleft()
        return now

    def _usage_headers(self) -> dict[str, str]:
        self._prune_windows()
        return {
            "X-MBX-USED-WEIGHT-1M": str(self._weight_used),
            "X-MBX-ORDER-COUNT-1M": str(len(self._orders_1m)),
        }

    def _gate_rate_limits(self, method: str, path: str) -> None:
        now = time.monotonic()
        faults = self._faults
        if now < self._banned_until:
            until_ms = self.exchange.server_time_ms() + int((self._banned_until - now) * 1000)
            raise SimError(
                -1003,
                f"Way too many requests; IP banned until {until_ms}. Please use the websocket "
                "for live updates to avoid bans.",
                418,
            )
        if now < self._retry_until:
            self._violations += 1
            if faults.ban_after_violations and self._violations >= faults.ban_after_violations:
                self._banned_until = now + max(faults.ban_s, 60.0)
                raise SimError(-1003, "Way too many requests; IP banned.", 418)
        if faults.rate_limit_next > 0:
            self._faults = dataclasses.replace(faults, rate_limit_next=faults.rate_limit_next - 1)
            self._retry_until = now + faults.retry_after_s
            raise SimError(
                -1003,
                "Too many requests; current limit is 2400 requests per minute. Please use the "
                "websocket for live updates to avoid polling the API.",
                429,
            )
        weight = _WEIGHTS.get(path, 1)
        window_now = self._prune_windows()
        used = self._weight_used
        if used + weight > faults.weight_limit_1m:
            self._retry_until = now + faults.retry_after_s
            raise SimError(-1003, "Too many requests; current limit is exceeded.", 429)
        self._weight.append((window_now, weight))
        self._weight_used += weight
        if (method, path) in _ORDER_PATHS:
            self._orders_1m.append(window_now)

    def _params(
        self, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[dict[str, str], bool]:
        """Merge query and form body; report whether a valid signature and timestamp came along."""
        text_body = body.decode() if body else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(text_body, keep_blank_values=True))
        if "signature" not in params:
            return params, False
        api_key = headers.get("x-mbx-apikey")
        if not api_key:
            raise SimError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(api_key, self.config.api_key):
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        total = _strip_signature(query) + _strip_signature(text_body)
        expected = hmac.new(
            self.config.api_secret.encode(), total.encode(), hashlib.sha256
        ).hexdigest()
        # Binance treats HMAC signatures case-insensitively.
        if not hmac.compare_digest(expected, params["signature"].lower()):
            raise SimError(-1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise SimError(-1102, "Mandatory parameter 'timestamp' was not sent.")
        try:
            ts = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise SimError(-1100, "Illegal characters found in parameter 'timestamp'.") from None
        if not 0 < recv_window <= 60_000:
            raise SimError(-1131, "recvWindow must be less than 60000")
        server_ms = self.exchange.server_time_ms()
        if ts >= server_ms + 1000 or server_ms - ts > recv_window:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params, True

    def _route(self, method: str, path: str, p: dict[str, str], signed: bool) -> tuple[Any, float]:
        ex = self.exchange
        public: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/fapi/v1/ping"): lambda: {},
            ("GET", "/fapi/v1/time"): lambda: {"serverTime": ex.server_time_ms()},
            ("GET", "/fapi/v1/exchangeInfo"): self._exchange_info,
            ("GET", "/fapi/v1/depth"): lambda: ex.depth(
                _req(p, "symbol"), int(p.get("limit", "20"))
            ),
            ("GET", "/fapi/v1/ticker/bookTicker"): lambda: ex.book_ticker(_req(p, "symbol")),
            ("GET", "/fapi/v1/premiumIndex"): lambda: ex.premium_index(_req(p, "symbol")),
        }
        if (method, path) in public:
            return public[(method, path)](), 0.0
        private: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/fapi/v1/order"): lambda: self._query(p),
            ("DELETE", "/fapi/v1/order"): lambda: ex.cancel(
                _req(p, "symbol"), _opt_int(p, "orderId"), p.get("origClientOrderId")
            ),
            ("GET", "/fapi/v1/openOrders"): lambda: ex.open_orders(p.get("symbol")),
            ("DELETE", "/fapi/v1/allOpenOrders"): lambda: (
                ex.cancel_all(_req(p, "symbol")),
                {"code": 200, "msg": "The operation of cancel all open order is done."},
            )[1],
            ("POST", "/fapi/v1/countdownCancelAll"): lambda: ex.countdown(
                _req(p, "symbol"), int(_req(p, "countdownTime"))
            ),
            ("GET", "/fapi/v1/userTrades"): lambda: ex.user_trades(
                _req(p, "symbol"), _opt_int(p, "orderId"), _opt_int(p, "fromId")
            ),
            ("GET", "/fapi/v2/positionRisk"): lambda: ex.position_risk(p.get("symbol")),
            ("GET", "/fapi/v2/balance"): ex.balance,
        }
        is_order = (method, path) in _ORDER_PATHS
        if not is_order and (method, path) not in private:
            if any(path == pth for _, pth in [*public, *private, *_ORDER_PATHS]):
                raise SimError(-1000, f"Method {method} not allowed on {path}.", 405)
            raise SimError(-1000, f"Unknown endpoint {path}.", 404)
        if not signed:
            raise SimError(-1102, "Mandatory parameter 'signature' was not sent.")
        if not is_order:
            return private[(method, path)](), 0.0
        if path == "/fapi/v1/order":
            result = ex.place(p)
            return self._after_accept(result)
        return self._batch(p), 0.0

    def _exchange_info(self) -> dict[str, Any]:
        """``exchangeInfo`` with the request-weight limit this server enforces (a client sizes
        its reserve for orders from it, as from the real exchange's)."""
        info = self.exchange.exchange_info()
        for limit in info["rateLimits"]:
            if limit["rateLimitType"] == "REQUEST_WEIGHT":
                limit["limit"] = self._faults.weight_limit_1m
        return info

    def _query(self, p: dict[str, str]) -> Any:
        if self._faults.lookup_miss_next > 0:
            self._faults = dataclasses.replace(
                self._faults, lookup_miss_next=self._faults.lookup_miss_next - 1
            )
            raise SimError(-2013, "Order does not exist.")
        return self.exchange.query(
            _req(p, "symbol"), _opt_int(p, "orderId"), p.get("origClientOrderId")
        )

    def _after_accept(self, result: dict[str, Any]) -> tuple[Any, float]:
        """Apply the faults that hit an order *after* the exchange accepted it."""
        f = self._faults
        if f.unknown_status_next > 0:
            self._faults = dataclasses.replace(f, unknown_status_next=f.unknown_status_next - 1)
            if f.unknown_status_kind == "503":
                raise SimError(-1000, _UNKNOWN_503, 503)
            if f.unknown_status_kind == "-1006":
                raise SimError(
                    -1006,
                    "An unexpected response was received from the message bus. Execution "
                    "status unknown.",
                    503,
                )
            raise SimError(
                -1007,
                "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
                408,
            )
        if f.slow_ack_next > 0:
            self._faults = dataclasses.replace(f, slow_ack_next=f.slow_ack_next - 1)
            return result, f.slow_ack_ms / 1000
        return result, 0.0

    def _batch(self, p: dict[str, str]) -> list[Any]:
        try:
            items = json.loads(_req(p, "batchOrders"))
        except json.JSONDecodeError:
            raise SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.") from None
        if not isinstance(items, list) or not 1 <= len(items) <= 5:
            raise SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
        out: list[Any] = []
        for item in items:
            try:
                out.append(self.exchange.place({str(k): str(v) for k, v in item.items()}))
            except SimError as e:
                out.append({"code": e.code, "msg": e.msg})
        return out

    # ------------------------------------------------------------------ admin

    def _admin(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            data = json.loads(body) if body else {}
            if method == "GET" and path == "/_sim/state":
                self.exchange.advance()
                return 200, self.state(), {}
            if method != "POST":
                return 405, {"error": f"{method} {path} is not supported"}, {}
            if path == "/_sim/price":
                if "path" in data:
                    pts = [(int(t), float(px)) for t, px in data["path"]]
                    self.exchange.set_price_path(data["symbol"], pts)
                else:
                    self.exchange.set_mid(data["symbol"], Decimal(str(data["mid"])))
                return 200, {"mid": str(self.exchange.mid(data["symbol"]))}, {}
            if path == "/_sim/faults":
                return 200, dataclasses.asdict(self.set_faults(**data)), {}
            if path == "/_sim/funding":
                self.exchange.set_funding_rate(data["symbol"], Decimal(str(data["rate"])))
                return 200, {"ok": True}, {}
            if path == "/_sim/clock":
                clock = self.exchange.clock
                if not isinstance(clock, ManualClock):
                    return (
                        409,
                        {
                            "error": "the simulator runs on wall time; start it with a "
                            "ManualClock (--manual-clock) to drive time"
                        },
                        {},
                    )
                clock.advance(int(data["advance_ms"]))
                self.exchange.advance()
                return 200, {"time_ms": clock.now_ms()}, {}
            return 404, {"error": f"unknown admin endpoint {path}"}, {}
        except (KeyError, TypeError, ValueError, SimError) as e:
            return 400, {"error": f"{type(e).__name__}: {e}"}, {}


def _compact_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _strip_signature(raw: str) -> str:
    """Drop the trailing ``signature=`` parameter: the signed string is everything before it."""
    if not raw:
        return ""
    kept = [part for part in raw.split("&") if not part.startswith("signature=")]
    return "&".join(kept)


def _req(p: dict[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise SimError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _opt_int(p: dict[str, str], name: str) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SimError(-1100, f"Illegal characters found in parameter '{name}'.") from None
