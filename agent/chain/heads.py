"""New-head notifications over a WebSocket ``eth_subscribe``, with polling as the fallback.

The runtime's loop wakes on :attr:`HeadWatcher.wake` as soon as a block arrives instead of waiting
for its next poll. When the node has no WebSocket endpoint, or the connection drops, nothing
breaks: the loop keeps polling on its interval and the watcher reconnects with back-off.

The last head pushed is kept (:attr:`HeadWatcher.latest`): the venue reads its snapshot at that
block's hash without reading the header first. It is a hint, never an authority: a block the node
no longer has (reorged out, a backend behind) makes the venue read the head itself, and a stale
one (a silent subscription) is never newer than the last snapshot, so the runtime does not pass
it. A missed or duplicated notification is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from agent.types import HeadRef

__all__ = ["HeadWatcher", "HeadWatcherStatus", "ws_url_for"]

log = logging.getLogger(__name__)


def ws_url_for(rpc_url: str) -> str:
    """The WebSocket URL of a node whose HTTP URL is `rpc_url` (same host and port, as anvil
    and most nodes serve both; pass an explicit ``ws_url`` where that is not so)."""
    if rpc_url.startswith(("ws://", "wss://")):
        return rpc_url
    if rpc_url.startswith("https://"):
        return "wss://" + rpc_url[len("https://") :]
    return "ws://" + rpc_url.removeprefix("http://")


@dataclass(slots=True)
class HeadWatcherStatus:
    """Whether the subscription is live, and what it has seen."""

    connected: bool = False
    heads: int = 0
    last_block: int = -1
    last_error: str = ""
    reconnects: int = 0


class HeadWatcher:
    """Subscribe to ``newHeads`` and set :attr:`wake` on every new block.

    Parameters
    ----------
    ws_url
        The node's WebSocket endpoint.
    retry_initial_s, retry_max_s
        Reconnect back-off bounds.
    """

    def __init__(self, ws_url: str, retry_initial_s: float = 0.5, retry_max_s: float = 30.0):
        self.ws_url = ws_url
        self.wake = asyncio.Event()
        self.status = HeadWatcherStatus()
        self.latest: HeadRef | None = None
        """The last head pushed (None before the first)."""
        self._retry = (retry_initial_s, retry_max_s)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="head-watcher")

    async def stop(self) -> None:
        """Stop watching and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.status.connected = False

    def _keep(self, header: dict[str, object]) -> None:
        """Keep `header` as :attr:`latest` when it parses; a malformed one only wakes."""
        try:
            self.latest = HeadRef.from_rpc(header)
        except ValueError as exc:
            log.debug("pushed head not kept: %s", exc)

    async def _run(self) -> None:
        delay = self._retry[0]
        while True:
            try:
                async with connect(self.ws_url, open_timeout=5, close_timeout=1) as ws:
                    await ws.send(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": 1,
                                "method": "eth_subscribe",
                                "params": ["newHeads"],
                            }
                        )
                    )
                    ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
                    if "error" in ack:
                        raise ConnectionError(f"eth_subscribe refused: {ack['error']}")
                    self.status.connected = True
                    delay = self._retry[0]
                    log.info("subscribed to new heads at %s", self.ws_url)
                    async for raw in ws:
                        msg = json.loads(raw)
                        head = msg.get("params", {}).get("result")
                        if isinstance(head, dict) and "number" in head:
                            self.status.heads += 1
                            self.status.last_block = int(head["number"], 16)
                            self._keep(head)
                            self.wake.set()
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, TimeoutError, ValueError, ConnectionError) as exc:
                # No endpoint, a refused subscription or a dropped link: the loop polls meanwhile.
                if self.status.connected or not self.status.last_error:
                    log.warning("new-head subscription unavailable (%s): polling", exc)
                self.status.last_error = str(exc) or type(exc).__name__
            self.status.connected = False
            self.status.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry[1])
