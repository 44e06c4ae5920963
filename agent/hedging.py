"""The hedge leg as the runtime sees it: health, marks and shutdown of the CEX hedger.

The leg never invents a position: the runtime passes ``None`` until it has read the DEX position
from the chain, and the hedger sends no order before its first number (see
:mod:`agent.hedge.hedger`). Neither :meth:`HedgeLeg.cancel_open` nor :meth:`HedgeLeg.close` ever
sends an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from agent.errors import ExchangeError
from agent.hedge.binance import BinanceFuturesClient, WeightReserved
from agent.hedge.hedger import Hedger

__all__ = ["HedgeLeg"]

log = logging.getLogger("agent.hedging")


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
        self._mid: tuple[float, float] | None = None
        self._mid_asked_s = -math.inf
        # When the last read that got an answer was asked (the leg's creation before any), and
        # the latest read that got none: how long the exchange has failed our reads.
        self._mid_answered_s = clock()
        self._mid_failed_s = -math.inf
        self._mid_asked_wall_s = -math.inf  # monotonic: compared with the client's timeout
        self._mid_task: asyncio.Future[None] | None = None

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
        # The hedger learns of a frozen exchange only when its retries run out (and only when
        # a request is due): the market-data reads of every cycle know one timeout after it.
        age = max(now - self._healthy_s, self.silence_s(now))
        return h.reachable, h.banned, h.rate_limited, age

    def hedge_position_base(self) -> float:
        """The hedge position on the exchange, signed base units."""
        return self.hedger.health().cex_position_base

    def cex_mid(self) -> float | None:
        """The exchange mark the hedger last saw."""
        m = self.hedger.attribution().cex_mark
        return m if math.isfinite(m) else None

    def poll_mid(self, now_s: float, min_interval_s: float = 0.2) -> None:
        """Start a read of the exchange's best bid and ask; return at once.

        The hedger re-reads its mark only every reconciliation (10 s): too old for fair value,
        momentum and the jump detector, which need the exchange's lead over the chain. The
        runtime starts the read beside its chain snapshot and collects it with
        :meth:`await_mid`. At most one read is in flight and at most one starts per
        ``min_interval_s``; the answer is stamped with ``now_s``, when it was asked for (the
        price is at least that fresh, and the stamp does not depend on how fast it came back).
        """
        if self._mid_task is not None and not self._mid_task.done():
            return
        if now_s - self._mid_asked_s < min_interval_s:
            return
        self._mid_asked_s = now_s
        self._mid_asked_wall_s = time.monotonic()
        self._mid_task = asyncio.ensure_future(self._read_mid(now_s))

    async def await_mid(self, timeout_s: float | None) -> None:
        """Wait up to ``timeout_s`` (wall time) for the read in flight; never longer.

        A slow or dead exchange costs a cycle at most this much: the read keeps going and its
        answer is used by a later cycle. ``None`` waits for the answer (or the client's own
        failure): the lock-step simulator's exchange answers in simulated time, and a wall-time
        cut would make a decision depend on how busy the machine is.
        """
        task = self._mid_task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout_s)

    async def _read_mid(self, asked_s: float) -> None:
        try:
            # Deferrable: this poll skips a turn rather than spend the weight kept for orders.
            ticker = await self.client.book_ticker(self.symbol, deferrable=True)
        except WeightReserved as exc:
            # Not sent, so not the exchange's silence: the hedge leg still works, and the mid
            # simply ages (fair value drops it past its own age limit).
            log.debug("exchange mid read held back: %s", exc)
            return
        except Exception as exc:  # the hedger's own reads report the exchange's health
            log.debug("exchange mid read failed: %s", exc)
            # When it failed, not when it was asked: the read waited out its retries unanswered.
            self._mid_failed_s = max(self._mid_failed_s, self._clock())
            return
        self._mid_answered_s = max(self._mid_answered_s, asked_s)
        bid, ask = float(ticker.bid_price), float(ticker.ask_price)
        if 0.0 < bid < ask:
            self._mid = (asked_s, 0.5 * (bid + ask))

    def silence_s(self, now_s: float) -> float:
        """How long the exchange has failed our market-data reads, seconds (0: it answers).

        From the ask of the last read that was answered to the failure of the latest read that
        failed, or to `now_s` while a read has gone unanswered for longer than the client's
        request timeout (the client retries a read several times before it fails). A frozen
        exchange (requests accepted, never answered) fails none of the hedger's requests until
        the client's retries run out and its next reconciliation is due, so the hedger's health
        reads "reachable" for many seconds; the mid is read every cycle, so this grows one
        request timeout after the freeze. A read in flight for less counts for nothing (latency
        is not silence). The timeout is wall time: a simulation's clock may run faster.
        """
        bad = self._mid_failed_s
        task = self._mid_task
        overdue = time.monotonic() - self._mid_asked_wall_s > self.client.config.timeout_s
        if task is not None and not task.done() and overdue:
            bad = max(bad, now_s)
        return max(0.0, bad - self._mid_answered_s)

    def fresh_mid(self) -> tuple[float, float] | None:
        """(when it was read, the exchange mid) from :meth:`poll_mid`; None before any answer."""
        return self._mid

    def set_posture(self, band_base: float, urgency: int) -> None:
        """Set the hedger's dead band (base units) and urgency from the risk directive."""
        self.hedger.set_band(band_base)
        self.hedger.set_urgency(urgency)

    def hedge_cost_bps(self) -> float:
        """What one hedge costs, bps of notional: the maker fee when working passive orders,
        else the taker fee plus about a bp of slippage."""
        cfg = self.hedger.config
        if cfg.order_style == "PASSIVE":
            return max(cfg.maker_fee_bps, 0.5)
        return cfg.taker_fee_bps + 1.0

    def min_order_base(self) -> float:
        """The exchange's smallest tradable quantity step for the hedged symbol, base units."""
        return float(self.client.filters(self.symbol).step_size)

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
        if self._mid_task is not None:
            self._mid_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._mid_task
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
