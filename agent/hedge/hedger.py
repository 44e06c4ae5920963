"""Hedging policy: keep the CEX position at −(confirmed DEX position) × hedge ratio.

The runtime calls :meth:`Hedger.on_position` with every confirmed DEX position and
:meth:`Hedger.step` periodically; both only *schedule* work on one background task and return at
once, so the caller's loop never waits on the exchange. Time is injected (``now_s``); the policy
reads no clock.

Life cycle::

    Hedger(...)  ──resume()──▶  DISARMED  ──on_position(confirmed)──▶  ARMED  ──close()──▶  CLOSED
                  (look up unknown        (reads, lookups,            (trades toward        (never
                   orders, reconcile)      cancels; no new order)      the target)           trades)

==========================  ======================================================================
armed                       no exchange order is sent before the first :meth:`Hedger.on_position`:
                            the target comes only from a confirmed DEX position, never from a
                            default. :meth:`Hedger.resume` and :meth:`Hedger.step` before it only
                            reconcile and resolve unknown orders
close                       :meth:`Hedger.close` stops trading first, lets an in-flight send
                            resolve, then cancels open orders; it never sends an order, so it
                            never changes a position (unwinding is a separate, explicit action)
target                      ``−dex_position × hedge_ratio`` (base units)
dead band                   no order while ``|target − cex_position| ≤ dead_band_base``; outside it
                            the whole gap is traded (rounded down to the step)
orders                      IOC (default) or GTC limit, priced at the touch ± ``max_slippage_bps``:
                            never worse than the cap. A GTC remainder is cancelled next step.
                            ``PASSIVE``: a post-only (GTX) order at our side's touch, left to
                            work; once the gap has been out of the band ``passive_timeout_s``,
                            or at high urgency, the rest goes as a capped IOC (taker fallback)
band and urgency            the band is ``dead_band_base`` or what :meth:`Hedger.set_band` gave
                            (e.g. :func:`agent.hedge.band.hedge_band_base`, inventory risk
                            against hedge cost). :meth:`Hedger.set_urgency` takes the risk
                            engine's hedge urgency: 2 (HEDGING) shrinks the band to
                            ``urgent_band_mult`` of itself and hedges as taker at once; 0 sends
                            no new order
partial fills, expiries     the remaining gap is re-evaluated at once, up to
                            ``max_orders_per_step`` orders per step, each priced off a fresh read
                            of the book (an IOC the market ran away from is re-priced at the then
                            current touch, never resent at its old price); at urgency 2 the cap
                            doubles after each such miss, up to ``max_escalated_slippage_bps``
rate limits                 a 429 on an order is a refusal (nothing placed): the order is not
                            resent at its old price; the next one reads the book once the
                            exchange's ``Retry-After`` window has passed and is priced afresh,
                            in the same step when the window is short
order of work               an IOC hedge (IOC style, or PASSIVE's taker fallback) goes out
                            before the periodic reconciliation and the dead-man renewal
                            (bookkeeping must not delay it in a 429 storm); before an order that
                            can rest, the dead-man switch is renewed first
large gaps                  ``|gap| > twap_threshold_base`` is unloaded in slices of
                            ``twap_slice_base`` every ``twap_interval_s``
never a double hedge        one client order id per (intent, slice), derived from the intent;
                            the client resends only that id. A hedge with unknown outcome
                            (timeout, 503, unparseable answer, an exception) pauses hedging: it
                            is looked up by client order id at every step, and declared "not
                            found" only by lookups made after the exchange would refuse it
                            (its timestamp + recvWindow + clock-skew allowance)
dead-man switch             the exchange's countdown cancel-all is armed at the first step and
                            renewed every ``deadman_renew_s``: after a crash every open hedge
                            order dies within ``deadman_countdown_s`` (exchange clock)
log                         one INFO line per hedge order event (placed, filled, cancelled,
                            expired, unknown, not found, rejected) with its client order id
journal                     every intent before it is sent, every result after
health                      reachable / banned / rate-limited / unknown / last error / gap, for
                            the risk engine (:meth:`Hedger.health`)
attribution                 basis (DEX mark vs CEX mark) P&L, unhedged delta P&L, CEX funding,
                            and the DEX−CEX funding-rate difference (:meth:`Hedger.attribution`)
==========================  ======================================================================
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from agent.errors import ConfigError, ExchangeError
from agent.hedge.band import urgent_band
from agent.hedge.binance import (
    Banned,
    BinanceFuturesClient,
    ExchangeUnavailable,
    FilterRejected,
    OrderRequest,
    OrderState,
    PostOnlyWouldTake,
    RateLimited,
    StatusUnknown,
    UnknownOrder,
)
from agent.logs import Event, log_event

__all__ = [
    "HedgeAttribution",
    "HedgeFill",
    "HedgeHealth",
    "HedgeJournal",
    "HedgeRecord",
    "Hedger",
    "HedgerConfig",
    "hedge_client_order_id",
    "hedge_intent_id",
]

_log = logging.getLogger(__name__)


def _order_line(cloid: str, status: str, why: str, level: int = logging.INFO) -> None:
    """One ``hedge.order`` line for an order that did not reach the book (or whose fate is open)."""
    log_event(
        _log, Event.HEDGE_ORDER, f"hedge order {cloid} {status}: {why}", level=level,
        cloid=cloid, status=status, reason=why,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class HedgeRecord:
    """One hedge order as journaled: the intent and its latest known result."""

    intent_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    created_ms: int
    status: str
    filled_qty: float
    avg_price: float


class HedgeJournal(Protocol):
    """Where hedge intents and results are written (implemented by ``agent.store``)."""

    def record_hedge_intent(
        self,
        intent_id: str,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: float,
        created_ms: int,
    ) -> None:
        """Record an order about to be sent (status ``INTENT``)."""
        ...

    def update_hedge(
        self,
        client_order_id: str,
        status: str,
        filled_qty: float,
        avg_price: float,
        updated_ms: int,
    ) -> None:
        """Record the latest known status of a hedge order."""
        ...

    def open_hedge_intents(self) -> list[HedgeRecord]:
        """Hedge orders whose final outcome is not yet known (to resolve after a restart)."""
        ...


@dataclass(frozen=True, slots=True)
class HedgerConfig:
    """Hedging policy settings."""

    symbol: str
    hedge_ratio: float = 1.0
    """CEX hedge per unit of DEX position (1.0 = fully neutral)."""
    dead_band_base: float = 0.05
    """No order while the hedge gap is within ± this many base units."""
    max_slippage_bps: float = 15.0
    """Limit price cap beyond the touch (best ask for buys, best bid for sells)."""
    max_escalated_slippage_bps: float = 60.0
    """The widest cap an urgent hedge may take. At urgency 2 the cap starts at twice
    ``max_slippage_bps`` and doubles after every IOC the book moved away from (expired not fully
    filled), up to this; the cap is a limit, the fill is at the book's prices."""
    order_style: Literal["IOC", "LIMIT", "PASSIVE"] = "IOC"
    """IOC sweeps up to the cap; LIMIT rests a GTC at the cap and cancels it next step; PASSIVE
    works a post-only order at our side's touch (maker fee, no spread paid) and falls back to a
    capped IOC after ``passive_timeout_s`` or at high urgency."""
    passive_timeout_s: float = 10.0
    """PASSIVE: how long the gap may stay outside the band before the rest is taken as taker."""
    urgent_band_mult: float = 0.25
    """The band at high urgency (the risk engine's HEDGING), as a fraction of the normal band."""
    twap_threshold_base: float = 5.0
    """Gaps larger than this are unloaded in time-weighted slices instead of one sweep."""
    twap_slice_base: float = 1.0
    twap_interval_s: float = 2.0
    max_orders_per_step: int = 3
    """Orders per step while partial fills leave the gap outside the band."""
    reconcile_interval_s: float = 10.0
    """How often the CEX position, mark and funding are re-read from the exchange."""
    client_id_prefix: str = "mmh"
    taker_fee_bps: float = 4.0
    """The exchange's taker fee for this account, used only to attribute hedge P&L."""
    maker_fee_bps: float = 2.0
    """The exchange's maker fee (passive hedges), used only to attribute hedge P&L."""
    deadman_countdown_s: float = 60.0
    """Countdown of the exchange's cancel-all dead-man switch (``countdownCancelAll``): if the
    hedger stops renewing it (crash, hang), every open order of the symbol is cancelled this
    many seconds (exchange clock) after the last renewal. 0 never arms it."""
    deadman_renew_s: float = 15.0
    """How often the dead-man switch is renewed; well under the countdown, so a slow or failed
    renewal or two does not let it fire while the hedger is alive."""

    def __post_init__(self) -> None:
        if self.hedge_ratio < 0 or not math.isfinite(self.hedge_ratio):
            raise ConfigError(f"hedge_ratio must be ≥ 0, not {self.hedge_ratio}")
        if self.dead_band_base < 0:
            raise ConfigError(f"dead_band_base must be ≥ 0, not {self.dead_band_base}")
        if self.twap_slice_base <= 0 or self.twap_threshold_base < self.twap_slice_base:
            raise ConfigError(
                "twap_slice_base must be > 0 and ≤ twap_threshold_base "
                f"(got slice {self.twap_slice_base}, threshold {self.twap_threshold_base})"
            )
        if self.max_orders_per_step < 1:
            raise ConfigError("max_orders_per_step must be ≥ 1")
        if not 0 <= self.taker_fee_bps < 100:
            raise ConfigError(f"taker_fee_bps must be in [0, 100), not {self.taker_fee_bps}")
        if not -100 < self.maker_fee_bps < 100:
            raise ConfigError(f"maker_fee_bps must be in (-100, 100), not {self.maker_fee_bps}")
        if not (math.isfinite(self.passive_timeout_s) and self.passive_timeout_s >= 0):
            raise ConfigError(f"passive_timeout_s must be ≥ 0, not {self.passive_timeout_s}")
        if not (
            math.isfinite(self.max_escalated_slippage_bps)
            and self.max_slippage_bps <= self.max_escalated_slippage_bps < 10_000
        ):
            raise ConfigError(
                "need max_slippage_bps ≤ max_escalated_slippage_bps < 10000 (got "
                f"{self.max_slippage_bps}, {self.max_escalated_slippage_bps})"
            )
        if not 0 <= self.urgent_band_mult <= 1:
            raise ConfigError(f"urgent_band_mult must be in [0, 1], not {self.urgent_band_mult}")
        if not 1 <= len(self.client_id_prefix) <= 8 or not self.client_id_prefix.isalnum():
            raise ConfigError("client_id_prefix must be 1-8 alphanumeric characters")
        if self.deadman_countdown_s != 0 and not (
            5.0 <= self.deadman_countdown_s <= 86_400.0
            and 0 < self.deadman_renew_s <= self.deadman_countdown_s / 2
        ):
            raise ConfigError(
                "deadman_countdown_s must be 0 (off) or in [5, 86400] s, and deadman_renew_s in "
                f"(0, countdown / 2] (got countdown {self.deadman_countdown_s}, renew "
                f"{self.deadman_renew_s})"
            )


@dataclass(frozen=True, slots=True)
class HedgeHealth:
    """What the risk engine needs to know about hedging."""

    reachable: bool
    """False after a request got no answer, until one succeeds."""
    banned: bool
    """418 from the exchange: no hedging until the ban ends."""
    rate_limited: bool
    status_unknown: bool
    """A hedge order's outcome is unknown; hedging waits for reconciliation."""
    last_error: str | None
    last_error_code: int | None
    last_error_s: float | None
    consecutive_failures: int
    target_base: float
    cex_position_base: float
    hedge_gap_base: float
    """target − CEX position: the unhedged inventory the risk engine should count."""
    armed: bool = False
    """A confirmed DEX position has been given; before it the hedger sends no order."""

    @property
    def can_hedge(self) -> bool:
        """True when orders can go out now."""
        return self.reachable and not (self.banned or self.rate_limited or self.status_unknown)


@dataclass(frozen=True, slots=True)
class HedgeAttribution:
    """P&L attribution of the hedged book, in quote currency (USDT)."""

    dex_mark: float
    cex_mark: float
    basis_bps: float
    """(DEX mark − CEX mark) / CEX mark."""
    dex_funding_rate_8h: float
    cex_funding_rate_8h: float
    funding_diff_8h: float
    """DEX rate − CEX rate: what holding the hedged pair earns per 8 h, per unit notional."""
    basis_pnl_quote: float
    """Σ dex_position × (Δ dex mark − Δ cex mark): P&L from basis moves on the hedged part."""
    delta_pnl_quote: float
    """Σ (dex_position + cex_position) × Δ cex mark: P&L from the unhedged remainder."""
    cex_funding_pnl_quote: float
    """Funding received (+) or paid (−) on the CEX position at each funding time observed."""
    fees_paid_quote: float = 0.0
    """Commissions the exchange reported for this session's hedge trades (read at each
    reconciliation; a trade not yet read is not in it)."""


@dataclass(frozen=True, slots=True)
class HedgeFill:
    """One execution of a hedge order, for P&L attribution (hedge edge against the CEX mark)."""

    signed_base: float
    """Positive: bought on the exchange."""
    price: float
    """Average price of this execution."""
    mark: float
    """The CEX mark the hedger last saw before the execution (NaN before the first)."""
    fee_quote: float
    """Exchange fee, collateral units. An execution carries the estimate at the configured taker
    rate; once the exchange reports the real commission (``userTrades``, read at each
    reconciliation), a correction follows as a fill with ``signed_base == 0`` whose fee is the
    difference (negative when the estimate was too high)."""
    at_s: float


def hedge_intent_id(symbol: str, seq: int, target_base: float, created_ms: int) -> str:
    """Deterministic id of one hedge decision (the same inputs give the same id)."""
    raw = f"{symbol}|{seq}|{target_base:.12g}|{created_ms}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def hedge_client_order_id(prefix: str, intent_id: str, slice_no: int) -> str:
    """Client order id of slice ``slice_no`` of an intent: ``<prefix>-<intent>-<slice>``.

    Derived from the intent, never from the attempt, so a resend reuses it and the exchange can
    refuse a duplicate. At most 36 characters of the exchange's charset.
    """
    coid = f"{prefix}-{intent_id}-{slice_no}"
    if len(coid) > 36:
        raise ValueError(f"client order id {coid!r} is longer than 36 characters")
    return coid


_EVENT = {
    "NEW": "placed",
    "PARTIALLY_FILLED": "partially filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}


@dataclass(slots=True)
class _Intent:
    intent_id: str
    target_base: float
    created_ms: int
    slices: int = 0


class Hedger:
    """Keeps the CEX hedge of one symbol inside its band.

    Parameters
    ----------
    client
        A connected :class:`~agent.hedge.binance.BinanceFuturesClient` (filters loaded).
    journal
        Receives every intent and result.
    config
        Policy settings.
    """

    def __init__(
        self, client: BinanceFuturesClient, journal: HedgeJournal, config: HedgerConfig
    ) -> None:
        self._client = client
        self._journal = journal
        self.config = config
        self._target = 0.0
        self._dex_pos = 0.0
        self._cex_pos = 0.0
        self._intent: _Intent | None = None
        self._armed = False  # no order before the first confirmed DEX position
        self._urgency = 1  # the risk engine's HedgeUrgency.NORMAL
        self._band_base: float | None = None  # None: config.dead_band_base
        self._gap_since_s: float | None = None  # when the gap last left the band
        self._misses = 0  # IOCs in a row the book moved away from (expired not fully filled)
        self._closed = False  # after close(): never another order
        self._next_deadman_s = -math.inf
        self._fills: list[HedgeFill] = []
        self._seq = 0
        self._next_slice_s = -math.inf
        self._next_reconcile_s = -math.inf
        self._needs_reconcile = True
        self._resting: OrderState | None = None
        # client order id -> exchange time (ms) after which "not found" is final
        self._unknown: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending_now_s: float | None = None
        # health
        self._reachable = True
        self._last_error: str | None = None
        self._last_error_code: int | None = None
        self._last_error_s: float | None = None
        self._failures = 0
        # attribution
        self._dex_mark = math.nan
        self._cex_mark = math.nan
        self._dex_funding = 0.0
        self._cex_funding = 0.0
        self._next_funding_ms: int | None = None
        self._basis_pnl = 0.0
        self._delta_pnl = 0.0
        self._funding_pnl = 0.0
        # commissions: the next exchange trade id to read; None until the session's baseline
        self._trade_cursor: int | None = None
        self._fees_paid = 0.0

    # ------------------------------------------------------------------ driving

    async def on_position(
        self, confirmed_dex_position_base: float | None, dex_mark: float, now_s: float
    ) -> None:
        """Take a new confirmed DEX position and mark; schedule hedging. Returns at once.

        Pass only a position read from the chain, never a default or a guess: ``None`` means
        "not read yet" and only ticks the hedger like :meth:`step`. The first number arms the
        hedger; from then on it trades the exchange toward ``−position × hedge_ratio``. After
        :meth:`close` the call is ignored.
        """
        if self._closed:
            return
        if confirmed_dex_position_base is None or not math.isfinite(confirmed_dex_position_base):
            # Not a reading: tick (lookups, reconciliation, dead-man) but keep the target.
            if confirmed_dex_position_base is not None:
                _log.warning(
                    "hedger ignored a non-finite DEX position %s", confirmed_dex_position_base
                )
            self._kick(now_s)
            return
        self._mark(dex_mark, self._cex_mark)
        self._dex_pos = confirmed_dex_position_base
        self._target = -confirmed_dex_position_base * self.config.hedge_ratio
        if not self._armed:
            _log.info(
                "hedger armed: confirmed DEX position %.6g, hedge target %.6g",
                confirmed_dex_position_base,
                self._target,
            )
        self._armed = True
        self._kick(now_s)

    async def step(self, now_s: float) -> None:
        """Periodic tick: slices, partial-fill follow-ups, lookups, reconciliation, dead-man
        renewal. Returns at once. Before the first :meth:`on_position` it sends no order."""
        if self._closed:
            return
        self._kick(now_s)

    def set_urgency(self, urgency: int) -> None:
        """Take the risk engine's hedge urgency (``agent.risk.HedgeUrgency`` or its int value).

        0 (NONE): no new hedge order. 1 (NORMAL): the configured style and band. 2 (AGGRESSIVE,
        the HEDGING state): the band shrinks to ``urgent_band_mult`` of itself and the gap is
        taken as taker at once (a working passive order is cancelled first). Applies from the
        next step.
        """
        level = int(urgency)
        if level not in (0, 1, 2):
            raise ValueError(f"urgency must be 0, 1 or 2, not {urgency!r}")
        if level != self._urgency:
            _log.info("hedge urgency %d -> %d", self._urgency, level)
        self._urgency = level

    def set_band(self, band_base: float | None) -> None:
        """Use ``band_base`` (base units) as the dead band; ``None`` returns to the config's.

        Meant for :func:`agent.hedge.band.hedge_band_base`, recomputed as volatility, fill rate
        and hedge cost change.
        """
        if band_base is not None and not (math.isfinite(band_base) and band_base >= 0):
            raise ValueError(f"band must be finite and ≥ 0, not {band_base}")
        self._band_base = band_base

    def band_base(self) -> float:
        """The dead band in force now (urgency included)."""
        base = self.config.dead_band_base if self._band_base is None else self._band_base
        return urgent_band(base, self._urgency, urgent_mult=self.config.urgent_band_mult)

    @property
    def armed(self) -> bool:
        """True once a confirmed DEX position was given (and until :meth:`close`)."""
        return self._armed

    def set_dex_funding_rate(self, rate_8h: float) -> None:
        """Record the DEX funding rate (per 8 h) for attribution."""
        self._dex_funding = rate_8h

    async def resume(self, now_s: float) -> None:
        """After a restart: look up journaled hedges with unknown outcome, then reconcile.

        Never trades: the hedger stays disarmed until :meth:`on_position` gives it a confirmed
        DEX position. An unknown order of the previous run may still be in transit; it was
        stamped before now, so lookups continue until the exchange would refuse it.
        """
        deadline_ms = self._client.acceptance_deadline_ms()
        for r in self._journal.open_hedge_intents():
            self._unknown.setdefault(r.client_order_id, deadline_ms)
        self._needs_reconcile = True
        self._kick(now_s)
        await self.drain()

    async def drain(self) -> None:
        """Wait until scheduled work is done (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Finish in-flight work (never cancel a send mid-flight: its outcome must be known)."""
        await self.drain()

    async def close(self, *, cancel_open: bool = True) -> None:
        """Stop hedging for good; with ``cancel_open``, cancel the symbol's open orders.

        Trading stops first, so no new order is sent from here on; an order already in flight
        is let finish (its outcome must be known). Then, with ``cancel_open``, every open order
        of the symbol is cancelled. No order is ever sent: the position stays as it is.
        The dead-man switch is left armed (it cancels nothing once no order rests, and
        disarming it could disarm another process on the same account).

        Raises
        ------
        ExchangeError
            The cancel was not confirmed (open orders may remain until the dead-man fires).
        """
        self._closed = True
        self._armed = False
        self._pending_now_s = None
        await self.drain()
        if cancel_open:
            await self._client.cancel_all(self.config.symbol)
            _log.info("hedger closed: open %s orders cancelled", self.config.symbol)

    # ------------------------------------------------------------------ reading

    def health(self) -> HedgeHealth:
        """Snapshot for the risk engine."""
        limits = self._client.rate_limits()
        return HedgeHealth(
            reachable=self._reachable,
            banned=limits.banned,
            rate_limited=limits.backoff_remaining_s > 0,
            status_unknown=bool(self._unknown),
            last_error=self._last_error,
            last_error_code=self._last_error_code,
            last_error_s=self._last_error_s,
            consecutive_failures=self._failures,
            target_base=self._target,
            cex_position_base=self._cex_pos,
            hedge_gap_base=self._target - self._cex_pos,
            armed=self._armed,
        )

    def attribution(self) -> HedgeAttribution:
        """Basis and funding attribution so far."""
        basis = (
            (self._dex_mark - self._cex_mark) / self._cex_mark * 1e4
            if self._cex_mark and math.isfinite(self._cex_mark) and math.isfinite(self._dex_mark)
            else math.nan
        )
        return HedgeAttribution(
            dex_mark=self._dex_mark,
            cex_mark=self._cex_mark,
            basis_bps=basis,
            dex_funding_rate_8h=self._dex_funding,
            cex_funding_rate_8h=self._cex_funding,
            funding_diff_8h=self._dex_funding - self._cex_funding,
            basis_pnl_quote=self._basis_pnl,
            delta_pnl_quote=self._delta_pnl,
            cex_funding_pnl_quote=self._funding_pnl,
            fees_paid_quote=self._fees_paid,
        )

    # ------------------------------------------------------------------ work

    def _kick(self, now_s: float) -> None:
        if self._closed:
            return
        if self._task is not None and not self._task.done():
            self._pending_now_s = now_s  # the running task picks it up when it finishes
            return
        self._task = asyncio.create_task(self._run_all(now_s), name="hedger")

    async def _run_all(self, now_s: float) -> None:
        while True:
            try:
                await self._run(now_s)
            except ExchangeError as e:
                self._fail(e, now_s)
            except Exception:  # a bug must not kill hedging silently; surface it as health
                _log.exception("hedger step failed")
                self._last_error, self._last_error_s = "internal error (see log)", now_s
            if self._pending_now_s is None or self._closed:
                return
            now_s, self._pending_now_s = self._pending_now_s, None

    async def _run(self, now_s: float) -> None:
        if self._closed:
            return
        if self._client.banned:
            self._note_banned(now_s)
            return
        # Orders that can rest need the dead-man switch armed before they go out; an IOC does
        # not, and in an outage every request before it delays the hedge by a retry cycle.
        may_rest = (
            self._resting is not None
            or self.config.order_style == "LIMIT"
            or self._passive_now(now_s)
        )
        if may_rest:
            await self._renew_deadman(now_s)
        if self._resting is not None:
            if self._keep_working(self._resting, now_s):
                await self._refresh_resting(now_s)
            else:
                await self._settle_resting(now_s)
        if self._unknown or self._needs_reconcile:
            await self._reconcile(now_s)
            if self._unknown:
                return  # outcome still unknown: trading now could double the hedge
        await self._hedge_loop(now_s)
        if not may_rest:
            await self._renew_deadman(now_s)
        if not self._unknown and now_s >= self._next_reconcile_s:
            await self._reconcile(now_s)

    async def _hedge_loop(self, now_s: float) -> None:
        """Send up to ``max_orders_per_step`` orders toward the target."""
        for _ in range(self.config.max_orders_per_step):
            if not self._armed or self._closed:
                return  # no confirmed DEX position (yet, or any more): never trade
            if self._resting is not None or self._unknown:
                return  # a passive order is working the gap, or an outcome is unknown
            placed = await self._hedge_once(now_s)
            if not placed:
                return

    async def _renew_deadman(self, now_s: float) -> None:
        """Arm or renew the exchange's countdown cancel-all (the hedge leg's dead-man switch)."""
        cfg = self.config
        if cfg.deadman_countdown_s <= 0 or now_s < self._next_deadman_s:
            return
        try:
            await self._client.countdown_cancel_all(cfg.symbol, int(cfg.deadman_countdown_s * 1000))
        except ExchangeError as e:
            # The countdown armed before still runs; failing safe (the exchange cancelling our
            # orders) is the worst a missed renewal can do.
            _log.warning("hedge dead-man switch not renewed: %s", e)
            self._fail(e, now_s)
            # Soon, but not at every step: in an outage each try costs a full retry cycle.
            self._next_deadman_s = now_s + cfg.deadman_renew_s / 3
            return
        self._next_deadman_s = now_s + cfg.deadman_renew_s

    async def _hedge_once(self, now_s: float) -> bool:
        """Send one order toward the target; True if another may follow in this step."""
        cfg = self.config
        gap = self._target - self._cex_pos
        if abs(gap) <= self.band_base():
            self._intent = None
            self._gap_since_s = None
            self._misses = 0
            return False
        if self._gap_since_s is None:
            self._gap_since_s = now_s
        if self._urgency == 0:
            return False
        twap = abs(gap) > cfg.twap_threshold_base
        if twap and now_s < self._next_slice_s:
            return False
        if self._intent is None or self._intent.target_base != self._target:
            self._seq += 1
            created_ms = int(now_s * 1000)
            self._intent = _Intent(
                hedge_intent_id(cfg.symbol, self._seq, self._target, created_ms),
                self._target,
                created_ms,
            )
        intent = self._intent
        qty = min(abs(gap), cfg.twap_slice_base) if twap else abs(gap)
        side: Literal["BUY", "SELL"] = "BUY" if gap > 0 else "SELL"
        filters = self._client.filters(cfg.symbol)
        # The gap is a difference of floats: 0.1 − 0.121 is 0.020999999999999998, which the
        # step's floor would cut to 0.020 and leave the hedge one step over the DEX position.
        # Twelve decimals drop the float noise (far below any step), then the floor applies.
        qty_dec = filters.round_qty(Decimal(f"{qty:.12f}"))
        if qty_dec <= 0:
            return False
        ticker = await self._client.book_ticker(cfg.symbol)
        passive = self._passive_now(now_s)
        if passive:
            # Join our side of the book: a buy at the bid, a sell at the ask (post-only).
            cap = ticker.bid_price if side == "BUY" else ticker.ask_price
        else:
            slip = Decimal(str(self._slippage_bps())) / Decimal(10_000)
            touch = ticker.ask_price if side == "BUY" else ticker.bid_price
            cap = touch * (1 + slip) if side == "BUY" else touch * (1 - slip)
        # Reducing an existing CEX position is exempt from min notional on the exchange.
        reduces = (self._cex_pos > 0 and side == "SELL") or (self._cex_pos < 0 and side == "BUY")
        reduce_only = reduces and float(qty_dec) <= abs(self._cex_pos) + 1e-12
        coid = hedge_client_order_id(cfg.client_id_prefix, intent.intent_id, intent.slices)
        req = OrderRequest(
            symbol=cfg.symbol,
            side=side,
            quantity_base=qty_dec,
            client_order_id=coid,
            order_type="LIMIT",
            time_in_force="GTX" if passive else ("GTC" if cfg.order_style == "LIMIT" else "IOC"),
            price=cap,
            reduce_only=reduce_only,
        )
        try:
            self._client.prepare(req)
        except FilterRejected as e:
            # Below the exchange minimum: not an outage, and retrying would only churn.
            self._last_error, self._last_error_code, self._last_error_s = str(e), e.code, now_s
            return False
        intent.slices += 1
        self._journal.record_hedge_intent(
            intent.intent_id, coid, cfg.symbol, side, float(qty_dec), int(now_s * 1000)
        )
        log_event(
            _log,
            Event.HEDGE_ORDER,
            f"hedge order {coid} placing: {side} {qty_dec} {cfg.symbol} @ {req.price} "
            f"{req.time_in_force}{' reduce-only' if reduce_only else ''}",
            cloid=coid,
            status="placing",
            side=side,
            qty_base=str(qty_dec),
            price=str(req.price),
            tif=req.time_in_force,
            reduce_only=reduce_only,
        )
        try:
            state = await self._client.place_order(req, wait_rate_limited=False)
        except StatusUnknown as e:
            self._mark_unknown(coid, e.accept_until_ms, str(e), now_s)
            self._fail(e, now_s)
            return False
        except PostOnlyWouldTake as e:
            # The book moved through our price: nothing was placed; re-post at the next step.
            _order_line(coid, "not_placed", f"post-only would take ({e})")
            self._journal.update_hedge(coid, "REJECTED", 0.0, 0.0, int(now_s * 1000))
            return False
        except RateLimited as e:
            # Refused, nothing placed. Resending this order after the window would sell at a
            # price read before it; the next attempt reads the book after the window instead
            # (the client waits it out) and prices afresh, in this step if the wait is short.
            _order_line(coid, "not_placed", f"rate limited: {e}")
            self._journal.update_hedge(coid, "REJECTED", 0.0, 0.0, int(now_s * 1000))
            self._fail(e, now_s)
            return e.retry_after_s <= self._client.config.max_rate_limit_wait_s
        except ExchangeUnavailable as e:
            # Every send failed before reaching the exchange; nothing was placed.
            _order_line(coid, "not_sent", str(e))
            self._journal.update_hedge(coid, "NOT_SENT", 0.0, 0.0, int(now_s * 1000))
            self._fail(e, now_s)
            return False
        except ExchangeError as e:
            _order_line(coid, "rejected", str(e))
            self._journal.update_hedge(coid, "REJECTED", 0.0, 0.0, int(now_s * 1000))
            self._fail(e, now_s)
            return False
        except Exception as e:
            # Whatever broke after the send left (a bug, a parse error we did not foresee), the
            # order may exist: unknown, never "refused", or the next step would hedge again.
            self._mark_unknown(coid, None, f"{type(e).__name__}: {e}", now_s)
            raise
        self._ok()
        self._apply(state, now_s)
        if twap:
            self._next_slice_s = now_s + cfg.twap_interval_s
            return False
        if not state.is_final:
            self._resting = state
            return False
        if state.executed_qty_base >= state.orig_qty_base:
            self._misses = 0
            return True
        # The book moved past the cap between our read and the order's arrival (a fast market):
        # re-price the rest at once against a fresh read, wider at high urgency. At normal
        # urgency only once in a row: a book thin beyond the cap is not chased every step.
        self._misses += 1
        return self._urgency >= 2 or self._misses == 1

    def _slippage_bps(self) -> float:
        """The taker cap beyond the touch: the configured one, escalated at urgency 2."""
        cfg = self.config
        if self._urgency < 2 or cfg.max_slippage_bps <= 0:
            return cfg.max_slippage_bps
        escalated = cfg.max_slippage_bps * 2.0 ** min(1 + self._misses, 16)
        return min(cfg.max_escalated_slippage_bps, escalated)

    def _passive_now(self, now_s: float) -> bool:
        """Work the gap as maker: PASSIVE style, normal urgency, and within the timeout."""
        cfg = self.config
        since = now_s if self._gap_since_s is None else self._gap_since_s
        return (
            cfg.order_style == "PASSIVE"
            and self._urgency < 2
            and now_s - since < cfg.passive_timeout_s
        )

    def _keep_working(self, resting: OrderState, now_s: float) -> bool:
        """A passive order stays while it still serves the same target and has time left."""
        return (
            resting.time_in_force == "GTX"
            and self._intent is not None
            and self._intent.target_base == self._target
            and self._passive_now(now_s)
        )

    async def _refresh_resting(self, now_s: float) -> None:
        """Read a working passive order: book its new fills, forget it once final."""
        assert self._resting is not None
        resting = self._resting
        state = await self._client.query_order(
            resting.symbol, client_order_id=resting.client_order_id
        )
        self._book_progress(resting, state, now_s)
        if state.status != resting.status or state.executed_qty_base != resting.executed_qty_base:
            self._journal_state(state, now_s)
        self._resting = None if state.is_final else state

    async def _settle_resting(self, now_s: float) -> None:
        assert self._resting is not None
        resting = self._resting
        try:
            state = await self._client.cancel_order(
                resting.symbol, client_order_id=resting.client_order_id
            )
        except UnknownOrder:
            state = await self._client.query_order(
                resting.symbol, client_order_id=resting.client_order_id
            )
        self._resting = None
        self._book_progress(resting, state, now_s)
        self._journal_state(state, now_s)

    def _book_progress(self, before: OrderState, state: OrderState, now_s: float) -> None:
        """Book the fills between two reports of one order (only those move the position)."""
        delta = state.signed_filled_base - before.signed_filled_base
        self._cex_pos += float(delta)
        if delta != 0:
            # Price of just these fills: total cost now minus total cost at the last report.
            cost = state.avg_price * state.executed_qty_base
            cost -= before.avg_price * before.executed_qty_base
            # Fills after the order came to rest were against it: maker.
            maker = state.time_in_force in ("GTX", "GTC")
            self._record_fill(float(delta), float(cost / abs(delta)), now_s, maker=maker)

    def _mark_unknown(self, coid: str, accept_until_ms: int | None, why: str, now_s: float) -> None:
        # Without the client's figure, now + recvWindow + skew is later than any send's stamp.
        deadline = (
            accept_until_ms
            if accept_until_ms is not None
            else self._client.acceptance_deadline_ms()
        )
        self._unknown[coid] = max(deadline, self._unknown.get(coid, deadline))
        _order_line(
            coid,
            "unknown",
            f"{why}: looking it up until exchange time {deadline}; no hedging until resolved",
            level=logging.WARNING,
        )
        self._journal.update_hedge(coid, "UNKNOWN", 0.0, 0.0, int(now_s * 1000))

    async def _resolve_unknown(self, coid: str, deadline_ms: int, now_s: float) -> bool:
        """Look one unknown order up; True once its outcome is final and booked."""
        cfg = self.config
        try:
            state = await self._client.query_order(cfg.symbol, client_order_id=coid)
        except UnknownOrder:
            if self._client.exchange_time_ms() <= deadline_ms:
                return False  # may still be in transit: the exchange would still accept it
            # Past the deadline: only several lookups in a row (a read can lag) settle it.
            found = await self._client.lookup_order(cfg.symbol, coid)
            if found is None:
                _order_line(coid, "not_found", "not found after its acceptance deadline")
                self._journal.update_hedge(coid, "NOT_FOUND", 0.0, 0.0, int(now_s * 1000))
                return True
            state = found
        except ExchangeError as e:
            _log.info("hedge order %s lookup failed (%s); still unknown", coid, e)
            return False
        self._journal_state(state, now_s)
        if state.is_final:
            return True
        try:
            state = await self._client.cancel_order(cfg.symbol, client_order_id=coid)
        except ExchangeError:
            return False
        self._journal_state(state, now_s)
        return state.is_final

    async def _reconcile(self, now_s: float) -> None:
        """Re-read unresolved orders, the position and the mark: the exchange is the truth."""
        cfg = self.config
        still_unknown: dict[str, int] = {}
        for coid, deadline_ms in self._unknown.items():
            if not await self._resolve_unknown(coid, deadline_ms, now_s):
                still_unknown[coid] = deadline_ms
        # The position includes whatever the unknown orders did: adopt it, not our tally.
        position = await self._client.position(cfg.symbol)
        premium = await self._client.premium_index(cfg.symbol)
        self._unknown = still_unknown
        if self._resting is None:
            # With an order working, its fills arrive through its reports; adopting a position
            # read between two reports would count the fills in between twice.
            self._cex_pos = float(position)
        self._needs_reconcile = False
        self._next_reconcile_s = now_s + cfg.reconcile_interval_s
        self._cex_funding = float(premium.funding_rate_8h)
        if self._next_funding_ms is not None and now_s * 1000 >= self._next_funding_ms:
            self._funding_pnl -= self._cex_pos * float(premium.mark_price) * self._cex_funding
        self._next_funding_ms = premium.next_funding_time_ms
        self._mark(self._dex_mark, float(premium.mark_price))
        await self._book_commissions(now_s)
        self._ok()

    async def _book_commissions(self, now_s: float) -> None:
        """Replace the fee estimates with the commissions the exchange reports.

        The first call only sets the baseline: trades before it belong to an earlier run. After
        that, every new trade's commission minus its estimate (the configured maker or taker rate
        on its notional, exactly what the execution was booked with) is booked as a correction. A
        commission paid in another asset than the margin asset (e.g. a BNB discount) cannot be
        valued here and keeps its estimate.
        """
        cfg = self.config
        try:
            trades = await self._client.user_trades(
                cfg.symbol, from_id=self._trade_cursor, deferrable=True
            )
        except ExchangeError as e:
            # Bookkeeping, not safety: hedging never waits for it. The estimates stand until a
            # later reconciliation reads the trades (a missed baseline only means the trades
            # before it keep their estimates).
            _log.info("hedge commissions not read this time (%s); estimates stand", e)
            return
        if self._trade_cursor is None:
            self._trade_cursor = max((t.trade_id for t in trades), default=-1) + 1
            return
        margin_asset = self._client.filters(cfg.symbol).margin_asset
        correction = 0.0
        for t in trades:
            if t.trade_id < self._trade_cursor:
                continue  # a venue that ignores fromId must not make us book a trade twice
            self._trade_cursor = t.trade_id + 1
            bps = cfg.maker_fee_bps if t.maker else cfg.taker_fee_bps
            estimate = float(t.qty_base * t.price) * bps / 1e4
            if t.commission_asset == margin_asset:
                correction += float(t.commission) - estimate
                self._fees_paid += float(t.commission)
            else:
                self._fees_paid += estimate
                _log.warning(
                    "hedge trade %d paid commission in %s, not %s: kept the estimate",
                    t.trade_id,
                    t.commission_asset,
                    margin_asset,
                )
        if abs(correction) > 1e-12:
            self._fills.append(HedgeFill(0.0, 0.0, self._cex_mark, correction, now_s))

    def _apply(self, state: OrderState, now_s: float) -> None:
        self._cex_pos += float(state.signed_filled_base)
        # What fills in the answer to the send crossed the book: taker.
        self._record_fill(float(state.signed_filled_base), float(state.avg_price), now_s)
        self._journal_state(state, now_s)

    def _record_fill(
        self, signed_base: float, price: float, now_s: float, *, maker: bool = False
    ) -> None:
        if signed_base == 0.0 or not price > 0.0:
            return
        bps = self.config.maker_fee_bps if maker else self.config.taker_fee_bps
        fee = abs(signed_base) * price * bps / 1e4
        self._fills.append(HedgeFill(signed_base, price, self._cex_mark, fee, now_s))

    def drain_fills(self) -> list[HedgeFill]:
        """Return executions since the last call (each once), oldest first."""
        fills, self._fills = self._fills, []
        return fills

    def _journal_state(self, state: OrderState, now_s: float) -> None:
        status = _EVENT.get(state.status, state.status.lower())
        log_event(
            _log,
            Event.HEDGE_ORDER,
            f"hedge order {state.client_order_id} {status}: {state.side} "
            f"{state.executed_qty_base} of {state.orig_qty_base} at avg {state.avg_price} "
            f"({state.resolution})",
            cloid=state.client_order_id,
            status=status,
            side=state.side,
            qty_base=str(state.orig_qty_base),
            filled_base=str(state.executed_qty_base),
            price=str(state.avg_price),
        )
        self._journal.update_hedge(
            state.client_order_id,
            state.status,
            float(state.executed_qty_base),
            float(state.avg_price),
            int(now_s * 1000),
        )

    def _mark(self, dex_mark: float, cex_mark: float) -> None:
        """Attribute the mark-to-market move since the last marks to basis and delta."""
        d_dex = dex_mark - self._dex_mark
        d_cex = cex_mark - self._cex_mark
        if math.isfinite(d_dex) and math.isfinite(d_cex):
            self._basis_pnl += self._dex_pos * (d_dex - d_cex)
            self._delta_pnl += (self._dex_pos + self._cex_pos) * d_cex
        if math.isfinite(dex_mark):
            self._dex_mark = dex_mark
        if math.isfinite(cex_mark):
            self._cex_mark = cex_mark

    def _ok(self) -> None:
        self._reachable = True
        self._failures = 0

    def _fail(self, e: ExchangeError, now_s: float) -> None:
        self._failures += 1
        self._last_error, self._last_error_code, self._last_error_s = str(e), e.code, now_s
        if isinstance(e, ExchangeUnavailable | StatusUnknown):
            self._reachable = False
        if isinstance(e, Banned):
            self._note_banned(now_s)
        if isinstance(e, RateLimited):
            _log.warning("hedger rate limited: %s", e)

    def _note_banned(self, now_s: float) -> None:
        status = self._client.rate_limits()
        self._last_error = (
            f"exchange ban (418) in force for {status.ban_remaining_s:.0f}s more: hedging stopped"
        )
        self._last_error_code = -1003
        self._last_error_s = now_s
