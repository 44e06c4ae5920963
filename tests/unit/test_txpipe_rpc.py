"""The JSON-RPC client's retry and health rules, through httpx's transport seam."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest

from agent.chain.rpc import AsyncRpc, RpcConfig, RpcError
from agent.errors import ChainError, RpcUnavailable
from agent.net import AiohttpTransport

FAST = RpcConfig(
    "http://node.test",
    retry_attempts=4,
    retry_budget_s=2.0,
    backoff_initial_s=0.001,
    backoff_max_s=0.002,
)


def _client(handler: httpx.MockTransport) -> AsyncRpc:
    return AsyncRpc(FAST, transport=handler)


@pytest.mark.asyncio
async def test_5xx_and_refused_are_retried_and_recorded_as_health() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503)
        body = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": "0x10"})

    rpc = _client(httpx.MockTransport(handle))
    try:
        assert await rpc.call("eth_blockNumber") == "0x10"
        assert len(calls) == 3
        assert rpc.health.ok and rpc.health.total_failures == 2
        assert rpc.health.consecutive_failures == 0
    finally:
        await rpc.aclose()


@pytest.mark.asyncio
async def test_gives_up_with_rpc_unavailable_and_unhealthy() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    rpc = _client(httpx.MockTransport(handle))
    try:
        with pytest.raises(RpcUnavailable, match="unavailable"):
            await rpc.call("eth_blockNumber")
        assert not rpc.health.ok and rpc.health.consecutive_failures == 4
        assert "ReadTimeout" in rpc.health.last_error
    finally:
        await rpc.aclose()


@pytest.mark.asyncio
async def test_non_idempotent_calls_and_rpc_errors_are_not_retried() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(502)
        body = json.loads(request.content)
        err = {"code": 3, "message": "execution reverted", "data": "0xdeadbeef"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": err})

    rpc = _client(httpx.MockTransport(handle))
    try:
        with pytest.raises(RpcUnavailable):
            await rpc.call("eth_sendTransaction", [], retry=False)
        assert len(calls) == 1
        with pytest.raises(RpcError) as exc:
            await rpc.call("eth_call", [])
        assert (exc.value.code, exc.value.data) == (3, "0xdeadbeef")
        assert len(calls) == 2
    finally:
        await rpc.aclose()


@pytest.mark.asyncio
async def test_batch_returns_errors_in_place_and_4xx_is_a_config_problem() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not isinstance(body, list):
            return httpx.Response(401)
        out = [
            {"jsonrpc": "2.0", "id": body[1]["id"], "error": {"code": -1, "message": "no"}},
            {"jsonrpc": "2.0", "id": body[0]["id"], "result": "0x1"},
        ]
        return httpx.Response(200, json=out)

    rpc = _client(httpx.MockTransport(handle))
    try:
        ok, err = await rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        assert ok == "0x1" and isinstance(err, RpcError) and err.rpc_message == "no"
        with pytest.raises(ChainError, match="HTTP 401"):
            await rpc.call("eth_chainId")
    finally:
        await rpc.aclose()


# -- the default transport (aiohttp) reports failures as httpx's types, precisely -------------


class _Server:
    """A loopback server that reads a request, then closes the connection or says nothing."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        if self.behaviour == "close":
            writer.close()
        # "silent": no answer; the connection is closed when the test ends

    async def __aenter__(self) -> _Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self.writers:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        await self._server.wait_closed()


@pytest.mark.asyncio
async def test_aiohttp_transport_tells_a_request_that_never_left_from_one_that_may_have() -> None:
    # Nothing listens on port 9: no connection, so nothing was sent (ConnectError).
    t = AiohttpTransport(timeout_s=0.5)
    try:
        with pytest.raises(httpx.ConnectError):
            await t.handle_async_request(httpx.Request("POST", "http://127.0.0.1:9", content=b"{}"))
        for behaviour, want in (
            ("close", httpx.RemoteProtocolError),
            ("silent", httpx.ReadTimeout),
        ):
            async with _Server(behaviour) as server:
                with pytest.raises(want) as info:
                    await t.handle_async_request(httpx.Request("POST", server.url, content=b"{}"))
                # Delivered, maybe acted on: never reported as a request that did not leave.
                assert not isinstance(info.value, httpx.ConnectError), behaviour
    finally:
        await t.aclose()


@pytest.mark.asyncio
async def test_a_connection_closed_mid_request_is_unavailable_and_not_retried_for_a_send() -> None:
    async with (
        _Server("close") as server,
        AsyncRpc(RpcConfig(server.url, retry_attempts=3, timeout_s=1.0)) as rpc,
    ):
        with pytest.raises(RpcUnavailable):
            await rpc.call("eth_sendRawTransaction", ["0x00"], retry=False)
        assert rpc.health.total_failures == 1  # one attempt: a send is never repeated blindly
