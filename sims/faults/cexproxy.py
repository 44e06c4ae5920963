"""An HTTP fault proxy for the exchange: what the network and the exchange's front end do wrong.

The proxy listens on 127.0.0.1 (port 0 by default) and forwards every request, unchanged, to an
upstream exchange (normally the simulator of ``sims.cex``), except the requests a queued
:class:`ProxyFault` matches. The faults are the ones a hedge client must survive without sending
an order twice:

==================  ============================  ===============================================
kind                reaches the exchange?         what the client sees
==================  ============================  ===============================================
``malformed``       yes (the order executes)      200 with a body cut in half (invalid JSON)
``truncated``       yes                           200 whose connection closes mid-body
``delay``           yes, ``delay_s`` late         the answer after the delay (or its own
                                                  timeout first); the request is forwarded even
                                                  when the client has given up, as a slow
                                                  network path would deliver it
``unknown_503``     when ``forward`` (default)    503 ``-1000`` "Unknown error, please check..."
``timeout``         when ``forward`` (default)    no answer until the client gives up
``ban_418``         no                            418 ``-1003`` with ``Retry-After``
``rate_limit_429``  no                            429 ``-1003`` with ``Retry-After``
``timestamp_1021``  no                            400 ``-1021`` outside recvWindow
``auth_2015``       no                            401 ``-2015``: the key is refused (revoked, its
                                                  permissions or IP allow-list changed)
``drop``            no                            the connection is closed without an answer
==================  ============================  ===============================================

A fault applies to the next ``count`` requests with its method and path (default: new orders,
``POST /fapi/v1/order``); ``"*"`` matches any method or path, so a storm on every request is
``ProxyFault("rate_limit_429", method="*", path="*", count=10**9)`` until :meth:`clear`.
:meth:`CexFaultProxy.settled` waits until every late forward has
reached the exchange, so a test can compare the exchange's final state with what was intended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import aiohttp
from aiohttp import web

__all__ = ["CexFaultProxy", "FaultKind", "ProxyFault"]

FaultKind = Literal[
    "malformed",
    "truncated",
    "delay",
    "unknown_503",
    "timeout",
    "ban_418",
    "rate_limit_429",
    "timestamp_1021",
    "auth_2015",
    "drop",
]
_KINDS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]
# Headers that describe the upstream connection, not the answer: never copied across.
_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)
_UNKNOWN_MSG = "Unknown error, please check your request or try again later."


@dataclass(frozen=True, slots=True)
class ProxyFault:
    """One fault for the next ``count`` matching requests."""

    kind: FaultKind
    method: str = "POST"
    path: str = "/fapi/v1/order"
    count: int = 1
    delay_s: float = 4.0
    """``delay``: how long the request is held before it is forwarded."""
    forward: bool = True
    """``unknown_503`` and ``timeout``: whether the request reaches the exchange at all."""
    retry_after_s: float = 1.0
    """``ban_418`` and ``rate_limit_429``: the ``Retry-After`` header sent."""
    hold_s: float = 30.0
    """``timeout``: the longest the answer is withheld (the client normally gives up first)."""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(_KINDS)}")
        if self.count < 1 or self.delay_s < 0 or self.retry_after_s < 0 or self.hold_s < 0:
            raise ValueError(f"count must be ≥ 1 and durations ≥ 0: {self!r}")


@dataclass(frozen=True, slots=True)
class _Upstream:
    status: int
    body: bytes
    headers: dict[str, str]


class CexFaultProxy:
    """A real HTTP proxy between a client and an upstream exchange, injecting queued faults.

    Parameters
    ----------
    upstream_url
        The exchange to forward to, e.g. a started simulator's ``SimServer.url``.
    host, port
        Bind address (127.0.0.1 only in tests; port 0 picks a free port).

    Examples
    --------
    >>> async with CexFaultProxy(sim.url) as proxy:  # doctest: +SKIP
    ...     proxy.inject(ProxyFault("delay", delay_s=4.0))
    ...     client = BinanceFuturesClient(ClientConfig(base_url=proxy.url), creds)
    """

    def __init__(self, upstream_url: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._upstream = upstream_url.rstrip("/")
        self._host = host
        self._port = port
        self._faults: list[ProxyFault] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._forwards: set[asyncio.Task[_Upstream | None]] = set()
        self._stopping = asyncio.Event()
        self.log: list[tuple[str, str, str | None]] = []
        """Every request as ``(method, path, fault kind or None)``."""
        self.on_fault: Callable[[ProxyFault], None] | None = None
        """Called with each fault as it is applied, before its effect (e.g. a test moves the
        exchange's price exactly while an order is held or refused)."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL of the proxy, e.g. ``http://127.0.0.1:40123``."""
        if self._site is None or self._runner is None:
            raise RuntimeError("the proxy is not started")
        for addr in self._runner.addresses:
            return f"http://{self._host}:{addr[1]}"
        raise RuntimeError("the proxy has no listening socket")

    async def start(self) -> str:
        """Bind and serve; return the base URL."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        return self.url

    async def stop(self) -> None:
        """Let late forwards land, then stop serving and close the upstream session."""
        self._stopping.set()
        await self.settled()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CexFaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ control

    def inject(self, fault: ProxyFault) -> None:
        """Queue ``fault`` (faults for one request apply in the order queued)."""
        self._faults.append(fault)

    def clear(self) -> list[ProxyFault]:
        """Drop every queued fault (end a storm); return what was left of them."""
        left, self._faults = self._faults, []
        return left

    @property
    def pending_faults(self) -> list[ProxyFault]:
        """Faults not yet used up."""
        return list(self._faults)

    async def settled(self) -> None:
        """Wait until every request the proxy accepted has reached the exchange (or failed)."""
        while self._forwards:
            await asyncio.gather(*list(self._forwards), return_exceptions=True)

    # ------------------------------------------------------------------ serving

    def _take(self, method: str, path: str) -> ProxyFault | None:
        for i, fault in enumerate(self._faults):
            if fault.method in ("*", method) and fault.path in ("*", path):
                if fault.count > 1:
                    self._faults[i] = replace(fault, count=fault.count - 1)
                else:
                    del self._faults[i]
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._take(request.method, request.path)
        self.log.append((request.method, request.path, fault.kind if fault else None))
        if fault is None:
            return await self._relay(request, body)
        if self.on_fault is not None:
            self.on_fault(fault)
        kind = fault.kind
        if kind == "drop":
            # A reset before any answer, as a dying load balancer gives; nothing is forwarded.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if kind == "ban_418":
            return _error(418, -1003, "Way too many requests; IP banned.", fault.retry_after_s)
        if kind == "rate_limit_429":
            return _error(429, -1003, "Too many requests.", fault.retry_after_s)
        if kind == "timestamp_1021":
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        if kind == "auth_2015":
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if kind == "delay":
            # The request is on its way: it arrives late whatever the client does meanwhile.
            return await self._relay(request, body, delay_s=fault.delay_s)
        if kind in ("unknown_503", "timeout"):
            if fault.forward:
                await self._forward(request, body)
            if kind == "unknown_503":
                return _error(503, -1000, _UNKNOWN_MSG)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hold_s)
            return _error(503, -1007, "Timeout waiting for response from backend server.")
        upstream = await self._forward(request, body)
        if upstream is None:
            return _error(502, -1001, "upstream unreachable")
        if kind == "malformed":
            cut = upstream.body[: max(1, len(upstream.body) // 2)]
            return web.Response(status=200, body=cut, content_type="application/json")
        # truncated: announce the whole body, send half of it, drop the connection.
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = len(upstream.body)
        await resp.prepare(request)
        await resp.write(upstream.body[: max(1, len(upstream.body) // 2)])
        if request.transport is not None:
            request.transport.close()
        return resp

    async def _relay(
        self, request: web.Request, body: bytes, *, delay_s: float = 0.0
    ) -> web.StreamResponse:
        upstream = await self._forward(request, body, delay_s=delay_s)
        if upstream is None:
            return _error(502, -1001, "upstream unreachable")
        return web.Response(status=upstream.status, body=upstream.body, headers=upstream.headers)

    async def _forward(
        self, request: web.Request, body: bytes, *, delay_s: float = 0.0
    ) -> _Upstream | None:
        """Send the request upstream in its own task: a client that hangs up does not stop it."""
        task = asyncio.create_task(
            self._send(request.method, request.path_qs, dict(request.headers), body, delay_s)
        )
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)
        return await asyncio.shield(task)

    async def _send(
        self, method: str, path_qs: str, headers: dict[str, str], body: bytes, delay_s: float
    ) -> _Upstream | None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        assert self._session is not None
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP | {"host"}}
        try:
            async with self._session.request(
                method, self._upstream + path_qs, data=body or None, headers=sent
            ) as resp:
                data = await resp.read()
                kept = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
                return _Upstream(resp.status, data, kept)
        except (aiohttp.ClientError, TimeoutError):
            return None


def _error(status: int, code: int, msg: str, retry_after_s: float | None = None) -> web.Response:
    headers = {"Retry-After": f"{retry_after_s:g}"} if retry_after_s is not None else None
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "msg": msg}),
        content_type="application/json",
        headers=headers,
    )
