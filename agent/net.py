"""The HTTP transport every client of the agent sends over: aiohttp under httpx's API.

The JSON-RPC client (:mod:`agent.chain.rpc`) and the exchange client (:mod:`agent.hedge.binance`)
speak httpx (its request/response types, its exception classes, its transport seam for tests), but
send the bytes with aiohttp's pooled client: httpx's own asyncio transport (httpcore on anyio)
spent about three times the CPU per request, 1.3 ms against aiohttp's 0.2 ms to a local node,
and the exchange client was 37% of the stress step's Python CPU on it (`sims/bench/stress.py`).
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport"]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request with aiohttp's client (pooled keep-alive).

    Failures come out as httpx's own exception types, so callers classify them as they would
    httpx's transport's: :class:`httpx.ConnectError` only when no connection could be made (the
    request never left), :class:`httpx.RemoteProtocolError` when the server closed the
    connection, :class:`httpx.ReadTimeout` when no answer came within `timeout_s` (connect or
    read), :class:`httpx.ReadError` for any other client failure; all but the first may have
    reached the server. The session is opened on first use, inside the running loop
    (aiohttp binds it to that loop), and opened again if a later call runs in another loop.

    Parameters
    ----------
    timeout_s
        Whole-request timeout (connect, send, read).
    max_connections
        Pool size; the agent's reads and sends overlap rarely, a few suffice.
    """

    def __init__(self, timeout_s: float, max_connections: int = 8) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session of a finished loop cannot be closed from this one; it is dropped.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._limit),
                skip_auto_headers=("User-Agent",),
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            # encoded=True: the URL goes out byte for byte as httpx built it. yarl would otherwise
            # re-quote the query (",", ":" unescaped), and a signed query (the exchange's HMAC
            # over the exact string) would no longer match its signature.
            url = yarl.URL(str(request.url), encoded=True)
            async with session.request(
                request.method, url, data=request.content, headers=headers
            ) as resp:
                content = await resp.read()
                return httpx.Response(
                    resp.status,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers
                    ],
                    content=content,
                    request=request,
                )
        except TimeoutError as exc:
            # Connect or read: not told apart, so it counts as possibly delivered.
            raise httpx.ReadTimeout(
                f"no answer within {self._timeout.total} s", request=request
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # No connection was made: the request never left.
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(
                f"{type(exc).__name__}: {exc}", request=request
            ) from exc
        except aiohttp.ClientError as exc:
            # A reset or a broken answer after the request may have been sent.
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


_HOP_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding"})
"""Headers aiohttp sets itself from the URL and body (httpx's request carries them too)."""
