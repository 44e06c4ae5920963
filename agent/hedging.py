"""The hedge leg as the runtime sees it: health, marks and shutdown of the CEX hedger.

The leg never invents a position: the runtime passes ``None`` until it has read the DEX position
from the chain, and the hedger sends no order before its first number (see
:mod:`agent.hedge.hedger`). Neither :meth:`HedgeLeg.cancel_open` nor :meth:`HedgeLeg.close` ever
sends an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

from agent.errors import ExchangeError
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

    async def on_position(
        self, dex_position_base: float | None, dex_mark: float, now_s: float
    ) -> None:
        """Pass a confirmed DEX position (None: not read from the chain yet) and mark on."""
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

    async def cancel_open(self, timeout_s: float) -> str:
        """Cancel the symbol's open orders, keep hedging; return ``clear`` or why not.

        No order is sent, so no position changes.
        """
        try:
            await asyncio.wait_for(self.client.cancel_all(self.symbol), timeout_s)
        except TimeoutError:
            return f"not confirmed within {timeout_s:g} s ({self._deadman_text()})"
        except ExchangeError as exc:
            return f"not confirmed: {exc} ({self._deadman_text()})"
        return "clear"

    async def close(self, timeout_s: float) -> str:
        """Stop hedging for good, cancel open orders, close the connection: ``clear`` or why not.

        Uses :meth:`Hedger.close`, which never sends an order: the exchange position stays as it
        is. Bounded by `timeout_s` (an in-flight order is let finish inside it).
        """
        try:
            await asyncio.wait_for(self.hedger.close(cancel_open=True), timeout_s)
            out = "clear"
        except TimeoutError:
            out = f"not confirmed within {timeout_s:g} s ({self._deadman_text()})"
        except ExchangeError as exc:
            out = f"not confirmed: {exc} ({self._deadman_text()})"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.aclose(), 1.0)
        return out

    def _deadman_text(self) -> str:
        countdown = self.hedger.config.deadman_countdown_s
        if countdown > 0:
            return f"the exchange's dead-man switch cancels them within {countdown:g} s"
        return "no dead-man switch: hedge.policy.deadman_countdown_s is 0"
