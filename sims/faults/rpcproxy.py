"""A JSON-RPC fault proxy between the agent and its node: slow answers, drops, a black hole.

::

    proxy = RpcProxy(RpcProxyConfig(upstream_url=node.url, delay_ms=(300, 800)))
    await proxy.start()            # listens on 127.0.0.1, a free port: proxy.url / proxy.ws_url
    proxy.set_mode("blackhole")    # requests hang until the client gives up
    proxy.set_mode("forward")
    await proxy.stop()

======================  =========================================================================
``forward`` (default)   HTTP requests go to the node at once; the *answer* is held for a uniform
                        draw from ``delay_ms`` (wall ms), so it describes the chain as it was
                        when the request arrived: the stale read a slow or distant node gives.
                        WebSocket ``eth_subscribe`` connections are piped both ways, undelayed
                        (a head arrives before the reads that follow it are answered)
``drop``                every HTTP request's connection is closed without an answer; new
                        WebSocket connections are refused (the agent falls back to polling)
``blackhole``           requests are read and never answered; WebSocket refused as for ``drop``
``garble``              requests reach the node (a transaction is broadcast), but the answer is
                        200 with its body cut in half: not JSON; WebSocket refused as for ``drop``
======================  =========================================================================

Open WebSocket connections are closed when the mode leaves ``forward`` (and the proxy stops), as
a node going away closes them.

Partial read failures, in any mode that forwards: ``proxy.fail_calls({"0x2a1a8e28": "error"})``
makes every ``eth_call`` whose calldata starts with that selector (alone or inside a batch, at
any block tag) answer with a JSON-RPC error object (``"error"``) or with a result that is no ABI
answer (``"garbage"``), while every other call of the same batch gets the node's answer: one
view of a node failing while the rest work. ``fail_calls({})`` ends it.

Hooks a test sets: ``rewrite_request`` (the request body the node sees), ``rewrite`` (the answer
the client sees) and ``before_answer`` (something happens on chain between a read and its answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

__all__ = ["CallFault", "ProxyMode", "ProxyStats", "RpcProxy", "RpcProxyConfig"]

ProxyMode = Literal["forward", "drop", "blackhole", "garble"]
CallFault = Literal["error", "garbage"]

_GARBAGE_RESULT = "0xdeadbeef"
"""What a ``"garbage"`` call fault answers: hex, but not a whole 32-byte ABI word."""


@dataclass(frozen=True, slots=True)
class RpcProxyConfig:
    """How the proxy starts."""

    upstream_url: str
    """The node's HTTP JSON-RPC URL (its WebSocket is the same host and port)."""
    delay_ms: tuple[float, float] = (300.0, 800.0)
    """Each HTTP answer is held for a uniform draw from this range (wall milliseconds)."""
    seed: int | None = None
    """Seed of the delay draws (None: not reproducible)."""
    websocket: bool = True
    """Forward WebSocket subscriptions; False refuses them (the client must poll)."""
    upstream_timeout_s: float = 30.0


@dataclass(slots=True)
class ProxyStats:
    """What the proxy did."""

    requests: int = 0
    answered: int = 0
    dropped: int = 0
    blackholed: int = 0
    garbled: int = 0
    calls_failed: int = 0
    """eth_call answers replaced by a call fault (see `RpcProxy.fail_calls`)."""
    upstream_errors: int = 0
    ws_connections: int = 0
    ws_refused: int = 0
    ws_notifications: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for reports)."""
        return asdict(self)


class RpcProxy:
    """The proxy (see the module docstring). Listens on 127.0.0.1 only, on a free port."""

    def __init__(self, config: RpcProxyConfig) -> None:
        self.config = config
        self.stats = ProxyStats()
        self._mode: ProxyMode = "forward"
        self._delay_ms = config.delay_ms
        self._rng = random.Random(config.seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._closed = asyncio.Event()
        self._call_faults: dict[str, CallFault] = {}
        self.rewrite_request: Callable[[bytes], bytes] | None = None
        """Called with each forwarded HTTP request's body before the node sees it; what it
        returns is sent instead: a backend behind the others (``"latest"`` read at an older
        block, a block hash it does not have yet)."""
        self.rewrite: Callable[[bytes, bytes], bytes] | None = None
        """Called with each forwarded HTTP request's body and the node's answer; what it returns
        is sent instead: a node answering one method with garbage while the others are fine."""
        self.before_answer: Callable[[bytes], Awaitable[None]] | None = None
        """Awaited with each forwarded request's body after the node answered and before the
        answer is held and sent: a test makes something happen on chain *between* a read and
        its answer reaching the client (a block landing while a snapshot is in flight)."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        """Start listening; return the HTTP URL."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.upstream_timeout_s)
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop listening (safe to call twice)."""
        self._closed.set()
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RpcProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The proxy's HTTP URL."""
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def ws_url(self) -> str:
        """The proxy's WebSocket URL."""
        return "ws://" + self.url.removeprefix("http://")

    # -- control ---------------------------------------------------------------------------

    @property
    def mode(self) -> ProxyMode:
        """What the proxy does with requests now."""
        return self._mode

    def set_mode(self, mode: ProxyMode) -> None:
        """Switch behaviour; leaving ``forward`` closes open WebSocket connections."""
        if mode not in ("forward", "drop", "blackhole", "garble"):
            raise ValueError(f"mode must be forward, drop, blackhole or garble, not {mode!r}")
        self._mode = mode
        if mode != "forward" and self._sockets:
            asyncio.get_running_loop().create_task(self._close_sockets())

    def set_delay(self, lo_ms: float, hi_ms: float) -> None:
        """Hold answers for a uniform draw from [lo_ms, hi_ms] from now on."""
        if not 0 <= lo_ms <= hi_ms:
            raise ValueError(f"need 0 <= lo_ms <= hi_ms, got {lo_ms}, {hi_ms}")
        self._delay_ms = (lo_ms, hi_ms)

    def fail_calls(self, faults: Mapping[str, CallFault]) -> None:
        """From now on answer each ``eth_call`` whose calldata starts with one of these
        selectors (``"0x"`` and 8 hex digits) with its fault; an empty mapping ends them."""
        checked: dict[str, CallFault] = {}
        for sel, fault in faults.items():
            if len(sel) != 10 or not sel.startswith("0x"):
                raise ValueError(f"a selector is 0x and 8 hex digits, not {sel!r}")
            if fault not in ("error", "garbage"):
                raise ValueError(f"a call fault is error or garbage, not {fault!r}")
            checked[sel.lower()] = fault
        self._call_faults = checked

    def _apply_call_faults(self, body: bytes, payload: bytes) -> bytes:
        """The node's answer with the failing calls' entries replaced (see `fail_calls`)."""
        try:
            request, reply = json.loads(body), json.loads(payload)
        except ValueError:
            return payload  # not JSON either way: nothing to match
        faults: dict[Any, CallFault] = {}
        for r in request if isinstance(request, list) else [request]:
            if not isinstance(r, dict) or r.get("method") != "eth_call":
                continue
            params = r.get("params") or [{}]
            call = params[0] if isinstance(params[0], dict) else {}
            data = str(call.get("data") or call.get("input") or "")[:10].lower()
            if data in self._call_faults:
                faults[r.get("id")] = self._call_faults[data]
        if not faults:
            return payload
        for msg in reply if isinstance(reply, list) else [reply]:
            fault = faults.get(msg.get("id")) if isinstance(msg, dict) else None
            if fault is None:
                continue
            self.stats.calls_failed += 1
            msg.pop("result", None)
            msg.pop("error", None)
            if fault == "error":
                msg["error"] = {"code": -32000, "message": "injected by the fault proxy"}
            else:
                msg["result"] = _GARBAGE_RESULT
        return json.dumps(reply).encode()

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    # -- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        self.stats.requests += 1
        body = await request.read()
        if self._mode == "drop":
            self.stats.dropped += 1
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable  # never reaches the closed connection
        if self._mode == "blackhole":
            self.stats.blackholed += 1
            await self._closed.wait()  # until the client gives up or the proxy stops
            raise web.HTTPServiceUnavailable
        assert self._session is not None  # start() made it
        if self.rewrite_request is not None:
            body = self.rewrite_request(body)
        try:
            async with self._session.post(
                self.config.upstream_url,
                data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as up:
                status, payload = up.status, await up.read()
                ctype = up.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError):
            # The node is down (a restart): the client sees a 502, as behind a real gateway.
            self.stats.upstream_errors += 1
            return web.Response(status=502, text="upstream unavailable")
        if self._mode == "garble":
            self.stats.garbled += 1
            payload = payload[: max(1, len(payload) // 2)]
        if self._call_faults:
            payload = self._apply_call_faults(body, payload)
        if self.rewrite is not None:
            payload = self.rewrite(body, payload)
        if self.before_answer is not None:
            await self.before_answer(body)
        lo, hi = self._delay_ms
        if hi > 0:
            await asyncio.sleep(self._rng.uniform(lo, hi) / 1000.0)
        self.stats.answered += 1
        return web.Response(status=status, body=payload, headers={"Content-Type": ctype})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.config.websocket or self._mode != "forward":
            self.stats.ws_refused += 1
            return web.Response(status=503, text="websocket unavailable")
        assert self._session is not None  # start() made it
        up_url = "ws://" + self.config.upstream_url.removeprefix("http://")
        try:
            upstream = await self._session.ws_connect(up_url)
        except (aiohttp.ClientError, TimeoutError):
            self.stats.ws_refused += 1
            return web.Response(status=502, text="upstream websocket unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stats.ws_connections += 1
        self._sockets.add(ws)

        async def down() -> None:
            async for msg in upstream:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.stats.ws_notifications += 1
                    await ws.send_str(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                else:
                    break

        async def up() -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await upstream.send_str(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)
                else:
                    break

        tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._sockets.discard(ws)
            await upstream.close()
            await ws.close()
        return ws
