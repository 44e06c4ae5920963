"""The hedge leg as the runtime sees it: health, marks and shutdown of the CEX hedger."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

from agent.hedge.binance import BinanceFuturesClient
from agent.hedge.hedger import Hedger

__all__ = ["HedgeLeg"]


class HedgeLeg:
    """Adapts the :class:`~agent.hedge.hedger.Hedger` to the runtime (health, marks, shutdown).

    The hedger schedules its own work and returns at once, so the quoting loop never waits on
    the exchange.
    """

    def __init__(
        self, hedger: Hedger, client: BinanceFuturesClient, symbol: str, clock: Callable[[], float]
    ) -> None:
        self.hedger = hedger
        self.client = client
        self.symbol = symbol
        self._clock = clock
        self._healthy_s = clock()

    async def on_position(self, dex_position_base: float, dex_mark: float, now_s: float) -> None:
        """Pass a new confirmed DEX position and mark to the hedger."""
        await self.hedger.on_position(dex_position_base, dex_mark, now_s)

    async def step(self, now_s: float) -> None:
        """Let the hedger advance slices and reconciliation."""
        await self.hedger.step(now_s)

    def health_flags(self) -> tuple[bool, bool, bool, float]:
        """(reachable, banned, rate limited, seconds since the exchange last answered well)."""
        h = self.hedger.health()
        now = self._clock()
        if h.reachable and h.consecutive_failures == 0:
            self._healthy_s = now
        return h.reachable, h.banned, h.rate_limited, now - self._healthy_s

    def hedge_position_base(self) -> float:
        """The hedge position on the exchange, signed base units."""
        return self.hedger.health().cex_position_base

    def cex_mid(self) -> float | None:
        """The exchange mark the hedger last saw."""
        m = self.hedger.attribution().cex_mark
        return m if math.isfinite(m) else None

    async def close(self, cancel_open: bool = True) -> None:
        """Finish scheduled work, cancel open hedge orders, close the connection."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hedger.drain(), timeout=2.0)
        if cancel_open:
            with contextlib.suppress(Exception):
                await self.client.cancel_all(self.symbol)
        with contextlib.suppress(Exception):
            await self.hedger.aclose()
        await self.client.aclose()
