"""A thin asynchronous JSON-RPC client over httpx, with retries and health signals.

Why not web3's ``AsyncWeb3``: the transaction pipeline needs exact control over which calls are
retried (only idempotent ones), over how transport failures are classified (refused, timeout, 5xx
become :class:`~agent.errors.RpcUnavailable`; a JSON-RPC error is an answer, never retried), and
over the latency of the hot path (one pooled HTTP/1.1 connection, no middleware stack). All of that
is about 150 lines here, with httpx's transport as the seam for tests.

The bytes travel over aiohttp's client (:class:`agent.net.AiohttpTransport`, plugged in as the httpx
transport) unless a test passes its own: httpx's own asyncio transport (httpcore on anyio) spends
about three times the CPU per request, which made the agent's round trips to a local node cost
2–4 ms each instead of about 1 ms (measured against anvil, `sims/bench/stress.py`).

Health is tracked, not thrown at the caller's loop: every failure updates :class:`RpcHealth`
(consecutive failures, last error, last success time) that the runtime exports and acts on.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from agent.errors import ChainError, RpcUnavailable
from agent.net import AiohttpTransport

__all__ = ["AsyncRpc", "RpcConfig", "RpcError", "RpcHealth"]

log = logging.getLogger(__name__)


RequestObserver = Callable[[str, float, str | None], None]
"""Per request: (method, wall seconds, None or the failure's kind), see :class:`AsyncRpc`."""


class RpcError(ChainError):
    """The node answered with a JSON-RPC error object (an answer, so never retried).

    Attributes
    ----------
    code
        The JSON-RPC error code (anvil uses 3 for reverts, -32003 for pool rejections).
    data
        The error's ``data`` member; for a revert this is the hex-encoded revert payload.
    """

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(f"{method} failed ({code}): {message}")


@dataclass(frozen=True, slots=True)
class RpcConfig:
    """Connection and retry settings for one RPC endpoint."""

    url: str
    timeout_s: float = 10.0
    """Per-request timeout (connect, read and write)."""
    retry_attempts: int = 5
    """Attempts per idempotent call, first one included."""
    retry_budget_s: float = 8.0
    """Give up retrying one call after this long; the caller sees RpcUnavailable."""
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0


@dataclass(slots=True)
class RpcHealth:
    """Live health of the RPC link, updated by every call (mutable on purpose: a gauge)."""

    ok: bool = True
    consecutive_failures: int = 0
    total_failures: int = 0
    total_calls: int = 0
    last_error: str = ""
    last_ok_s: float = 0.0
    """Clock time of the last successful call (0 before the first)."""


class AsyncRpc:
    """Asynchronous JSON-RPC client for one endpoint.

    Parameters
    ----------
    config
        Endpoint and retry policy.
    transport
        Optional httpx transport: the seam tests use for faults; None sends over the network
        through :class:`AiohttpTransport`.
    clock
        Time source for health timestamps (seconds).
    observer
        Called after every HTTP request with (method or ``"batch"``, wall seconds, None or the
        failure's kind: ``unavailable``, ``http``, ``malformed``); metrics hang off it. It must not
        raise or block.
    """

    def __init__(
        self,
        config: RpcConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: RequestObserver | None = None,
    ) -> None:
        self.config = config
        self.health = RpcHealth()
        self._clock = clock
        self._observer = observer
        self._ids = itertools.count(1)
        # Requests go straight to the transport: a JSON-RPC POST to one fixed URL needs none of
        # httpx.AsyncClient's per-request work (URL merging, cookies, auth, redirects), which
        # cost about as much CPU as the transport itself.
        self._transport = transport or AiohttpTransport(config.timeout_s)
        self._url = httpx.URL(config.url)
        self._headers = httpx.Headers({"Content-Type": "application/json"})
        t = config.timeout_s
        self._timeouts = {"timeout": {"connect": t, "read": t, "write": t, "pool": t}}

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self, method: str, params: list[Any] | None = None, *, retry: bool = True
    ) -> Any:
        """Call `method` and return its ``result``.

        Parameters
        ----------
        method, params
            The JSON-RPC request.
        retry
            Retry transport failures with exponential backoff. Pass False for a call that is not
            idempotent; reads and re-broadcasts of already-signed bytes are idempotent.

        Raises
        ------
        RpcUnavailable
            The node could not be reached (after retries when `retry`).
        RpcError
            The node answered with an error object.
        """
        if not retry:
            return await self._once(method, params or [])
        async for attempt in self._retrying():
            with attempt:
                return await self._once(method, params or [])
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Send several idempotent calls in one HTTP round trip (retried as a whole).

        Returns the results in order; a call the node answered with an error object yields an
        :class:`RpcError` instance in its place (returned, not raised).
        """
        async for attempt in self._retrying():
            with attempt:
                return await self._batch_once(calls)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _batch_once(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        first = next(self._ids)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        for _ in calls[1:]:
            next(self._ids)
        msgs = await self._post(body, "batch")
        if not isinstance(msgs, list):
            # Some nodes answer a whole batch with one error object (e.g. batching disabled).
            raise ChainError(f"RPC {self.config.url} does not accept JSON-RPC batches: {msgs}")
        by_id = {m.get("id"): m for m in msgs}
        out: list[Any] = []
        for i, (method, _) in enumerate(calls):
            msg = by_id.get(first + i)
            if msg is None:
                raise self._failed(method, "missing response in batch")
            err = msg.get("error")
            if err is not None:
                out.append(
                    RpcError(
                        method,
                        int(err.get("code", 0)),
                        str(err.get("message", "")),
                        err.get("data"),
                    )
                )
            else:
                out.append(msg.get("result"))
        return out

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(RpcUnavailable),
            stop=stop_after_attempt(self.config.retry_attempts)
            | stop_after_delay(self.config.retry_budget_s),
            wait=wait_exponential(
                multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s
            ),
            reraise=True,
        )

    async def _once(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        msg = await self._post(body, method)
        err = msg.get("error")
        if err is not None:
            raise RpcError(
                method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data")
            )
        return msg.get("result")

    async def _post(self, body: Any, method: str) -> Any:
        self.health.total_calls += 1
        t0 = time.perf_counter()
        failure: str | None = "unavailable"
        try:
            request = httpx.Request(
                "POST",
                self._url,
                headers=self._headers,
                content=json.dumps(body, separators=(",", ":")).encode(),
                extensions=self._timeouts,
            )
            try:
                resp = await self._transport.handle_async_request(request)
                try:
                    await resp.aread()
                finally:
                    await resp.aclose()
            except (httpx.TransportError, OSError) as exc:
                # TransportError covers refused connections, resets and timeouts.
                raise self._failed(method, f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code >= 500 or resp.status_code == 429:
                raise self._failed(method, f"HTTP {resp.status_code}")
            if resp.status_code >= 400:
                # A 4xx other than 429 is a client bug (bad URL, auth): retrying will not help.
                failure = "http"
                self._record_ok()
                raise ChainError(
                    f"{method}: HTTP {resp.status_code} from the RPC: check the rpc url"
                )
            try:
                msg = resp.json()
            except ValueError as exc:
                failure = "malformed"
                raise self._failed(method, "malformed JSON in response") from exc
            failure = None
            self._record_ok()
            return msg
        finally:
            if self._observer is not None:
                self._observer(method, time.perf_counter() - t0, failure)

    def _failed(self, method: str, why: str) -> RpcUnavailable:
        h = self.health
        h.ok = False
        h.consecutive_failures += 1
        h.total_failures += 1
        h.last_error = f"{method}: {why}"
        if h.consecutive_failures == 1:
            log.warning("rpc unavailable: %s", h.last_error)
        return RpcUnavailable(
            f"RPC {self.config.url} unavailable ({why}): check the node and chain.rpc_url"
        )

    def _record_ok(self) -> None:
        h = self.health
        if not h.ok:
            log.info("rpc recovered after %d failures", h.consecutive_failures)
        h.ok = True
        h.consecutive_failures = 0
        h.last_ok_s = self._clock()
