"""A simulated on-chain venue in process: the event simulator's :class:`~agent.venue.base.Venue`.

It plays the chain and the other market participants; the :class:`~agent.runtime.Agent` that
trades on it is the live one (same risk engine, order diff and cost gate). The driver
(:mod:`sims.eventsim`) calls :meth:`SimVenue.begin_block` with each block's prices, runs one agent
cycle, then lets takers trade with :meth:`SimVenue.take`.

Chain
    A sent batch is a transaction whose inclusion delay (and possible drop) comes from the
    mempool model; until it lands the old quotes rest. A newer batch replaces the pending one at
    the same nonce (it keeps the slot's landing block), like :class:`~agent.venue.dex.DexVenue`.
    Gas is charged at the base fee of the inclusion block plus the tip.
Book
    Other makers rest ``book_half_spread_ticks`` from mid with ``book_depth_base`` per side.
    Our orders keep price-time priority: an order joins the back of its level (behind
    ``queue_ahead_base``), an order the diff keeps keeps its place, and a taker consumes the
    queue ahead before us. Orders die at their expiry.
Money
    Fills are whole lots. P&L is split into spread capture (fill price vs mid at the fill),
    inventory (position × mid moves), funding, fees and gas; the parts sum to the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.types import (
    BookSnapshot,
    Fill,
    FundingState,
    HeadRef,
    Lots,
    Order,
    PositionState,
    Quote,
    Side,
    Tick,
    VenueSnapshot,
)
from agent.venue.base import (
    AccountHealthReading,
    FundingPaid,
    MarketEvent,
    MarketInfo,
    OrderExpired,
    OwnFill,
    StaleSnapshot,
    Trade,
    TxIncluded,
    TxLost,
    TxOutcome,
    Venue,
    VenueIo,
)
from sims.processes import MempoolSpec, TakerTrade, sample_inclusion

__all__ = ["SimLedger", "SimVenue"]

_ACCOUNT = "0x00000000000000000000000000000000000a6e17"
_TAKER = "0x000000000000000000000000000000000007a6e5"
_COLLATERAL = 1_000_000.0


@dataclass(slots=True)
class _Resting:
    order_id: int
    side: Side
    price_ticks: int
    lots: int
    remaining_lots: int
    queue_ahead_base: float
    expiry_s: int
    view: Order | None = None
    """The immutable :class:`Order` last shown in a snapshot; rebuilt when the lots change."""

    def order(self) -> Order:
        """This order as the agent sees it (the same object while nothing about it changed)."""
        v = self.view
        if v is None or v.remaining_lots != self.remaining_lots:
            v = self.view = Order(
                self.order_id,
                self.side,
                Tick(self.price_ticks),
                Lots(self.lots),
                Lots(self.remaining_lots),
            )
        return v


@dataclass(slots=True)
class _Pending:
    handle: str
    purpose: str
    land_block: int
    included: bool
    submitted_s: float
    sent_block: int
    cancel_ids: tuple[int, ...] = ()
    quotes: tuple[Quote, ...] = ()
    expiry_s: int = 0
    reduce: tuple[Side, int, int] | None = None


@dataclass(slots=True)
class SimLedger:
    """The simulated account's money, split by cause (quote currency)."""

    position_base: float = 0.0
    cash: float = 0.0
    spread: float = 0.0
    inventory: float = 0.0
    funding: float = 0.0
    fees: float = 0.0
    gas: float = 0.0
    gas_units: float = 0.0
    fills: int = 0

    def total(self, mid: float) -> float:
        """Cash + position × `mid` − gas − funding (fees are inside cash)."""
        return self.cash + self.position_base * mid + self.gas + self.funding


class SimVenue:
    """:class:`~agent.venue.base.Venue` over a simulated book and mempool (no I/O).

    Parameters
    ----------
    market
        Static parameters the agent reads (tick and lot size, fees, funding interval).
    mempool, tip_wei, fullness
        Inclusion model inputs: per-block fullness and our tip.
    base_fee_wei
        Base fee per block (wei).
    rng
        The run's generator (inclusion draws).
    gas_units_per_tx, native_price_quote
        What a landed transaction costs in gas and what gas costs in quote currency.
    book_half_spread_ticks, book_depth_base, queue_ahead_base
        Other makers' quotes and the queue ahead of a newly placed order.
    epoch_s
        Chain time of simulated second 0 (a funding boundary): block timestamps, funding
        boundaries and the agent's clock are ``epoch_s + t``, so a timestamp is never the 0 that
        means "unreadable" to the risk engine.
    """

    def __init__(
        self,
        market: MarketInfo,
        *,
        mempool: MempoolSpec,
        tip_wei: float,
        fullness: npt.NDArray[np.float64],
        base_fee_wei: npt.NDArray[np.float64],
        gas_limit: int,
        rng: np.random.Generator,
        gas_units_per_tx: int,
        native_price_quote: float,
        book_half_spread_ticks: int,
        book_depth_base: float,
        queue_ahead_base: float,
        epoch_s: int = 0,
    ) -> None:
        self.market = market
        self.epoch_s = epoch_s
        self.mempool = mempool
        self.tip_wei = tip_wei
        self.fullness = fullness
        self.base_fee_wei = base_fee_wei
        self.gas_limit = gas_limit
        self.rng = rng
        self.gas_units_per_tx = gas_units_per_tx
        self.native_price_quote = native_price_quote
        self.book_half_spread_ticks = book_half_spread_ticks
        self.book_depth_lots = max(1, round(book_depth_base / market.lot_size))
        self.queue_ahead_base = queue_ahead_base
        self.ledger = SimLedger()
        self.block = -1
        self.t_s = 0.0
        self.mid = math.nan
        self.index = math.nan
        self.mark = math.nan
        self.next_funding_s = 0
        self.funding_epoch = 0
        self.quotes_sent = 0
        self.dropped = 0
        self._orders: list[_Resting] = []
        self._pending: list[_Pending] = []
        self._pending_version = 0
        """Bumped on every change of ``_pending``: keys the cached :meth:`io_health`."""
        self._io: tuple[int, int, VenueIo] | None = None
        self._events: list[MarketEvent] = []
        self._outcomes: list[TxOutcome] = []
        self._ids = 0
        self._handles = 0
        self._log = 0
        self._orders_changed_block = -1

    # -- the driver's side -----------------------------------------------------------------------

    def begin_block(
        self, block: int, t_s: float, mid: float, index: float, mark: float | None = None
    ) -> None:
        """Open `block` at `t_s` with these prices: land due transactions, expire orders.

        `mid` centres the other makers' quotes; `mark` (default `mid`) is the market's mark.
        """
        self.block, self.t_s, self.mid, self.index = block, t_s, mid, index
        self.mark = mid if mark is None else mark
        interval = self.market.funding_interval_s
        self.next_funding_s = self.epoch_s + (math.floor(t_s / interval) + 1) * interval
        still: list[_Pending] = []
        for p in self._pending:
            if p.land_block <= block:
                self._land(p)
            else:
                still.append(p)
        self._pending = still
        self._pending_version += 1
        now = self._block_time()
        for o in [o for o in self._orders if o.expiry_s and o.expiry_s <= now]:
            self._orders.remove(o)
            self._events.append(OrderExpired(block, self._key(), o.order_id, 0, o.remaining_lots))

    def take(self, trades: Sequence[TakerTrade], next_mid: float) -> None:
        """Let this block's takers trade against the book (ours after the queue ahead)."""
        lot, tick = self.market.lot_size, self.market.tick_size
        mid = self.mid
        fee_rate = self.market.maker_fee_bps * 1e-4
        led = self.ledger
        # Our orders by price priority per book side, sorted once per block: a stable sort of
        # the same list by the same key, filtered per trade below, orders them exactly as
        # sorting the filtered list per trade did.
        by_side = {
            Side.ASK: sorted((o for o in self._orders if o.side is Side.ASK), key=_ask_priority),
            Side.BID: sorted((o for o in self._orders if o.side is Side.BID), key=_bid_priority),
        }
        for trade in trades:
            taker_side = Side.BID if trade.side_sign > 0 else Side.ASK
            self._events.append(
                Trade(
                    self.block,
                    self._key(),
                    mid + trade.side_sign * trade.reach,
                    trade.size_base,
                    taker_side,
                    "other-maker",
                    _TAKER,
                )
            )
            volume = trade.size_base
            book_side = Side.ASK if trade.side_sign > 0 else Side.BID
            for o in by_side[book_side]:
                if o.remaining_lots <= 0:
                    continue
                price = o.price_ticks * tick
                if trade.informed:
                    # Takes every quote on the wrong side of where the price is going.
                    if (next_mid - price) * trade.side_sign <= 0.0:
                        break
                    fill_lots = o.remaining_lots
                else:
                    if (price - mid) * trade.side_sign > trade.reach or volume <= 0.0:
                        break
                    ahead = min(volume, o.queue_ahead_base)
                    o.queue_ahead_base -= ahead
                    volume -= ahead
                    fill_lots = min(int(volume / lot + 1e-9), o.remaining_lots)
                    volume -= fill_lots * lot
                if fill_lots <= 0:
                    continue
                o.remaining_lots -= fill_lots
                size = fill_lots * lot
                signed = -trade.side_sign * size  # taker buys → we sell
                fee = price * size * fee_rate
                led.position_base += signed
                led.cash -= signed * price + fee
                led.fees -= fee
                led.spread += (mid - price) * signed
                led.fills += 1
                self._events.append(
                    OwnFill(
                        self.block,
                        self._key(),
                        Fill(
                            o.order_id,
                            o.side,
                            Tick(o.price_ticks),
                            Lots(fill_lots),
                            round(fee * 10**self.market.collateral_decimals),
                            self.block,
                            f"0xsim{self.block:x}",
                            self._log,
                        ),
                        True,
                        0,
                    )
                )
        self._orders = [o for o in self._orders if o.remaining_lots > 0]

    def end_block(self, next_mid: float, funding_rate: float | None) -> None:
        """Move the mark to `next_mid`; pay funding when an interval ended (rate given)."""
        led = self.ledger
        led.inventory += led.position_base * (next_mid - self.mid)
        if funding_rate is not None:
            payment = led.position_base * funding_rate * next_mid
            led.funding -= payment
            self.funding_epoch += 1
            self._events.append(FundingPaid(self.block, self._key(), -payment))

    # -- the Venue protocol --------------------------------------------------------------------

    @property
    def account(self) -> str:
        """The simulated account's address."""
        return _ACCOUNT

    async def connect(self, expected_chain_id: int | None = None) -> None:
        """Nothing to connect to."""

    def market_info(self) -> MarketInfo:
        """The simulated market's parameters."""
        return self.market

    async def snapshot(self, head: HeadRef | None = None) -> VenueSnapshot:
        """The book (other makers plus our orders), prices, funding clock and our account.

        `head` is ignored: the simulated chain has one block at a time, the current one.
        """
        tick = self.market.tick_size
        half = self.book_half_spread_ticks
        other_bid = round(self.mid / tick) - half
        other_ask = round(self.mid / tick) + half
        bids: dict[int, int] = {other_bid: self.book_depth_lots}
        asks: dict[int, int] = {other_ask: self.book_depth_lots}
        for o in self._orders:
            side = bids if o.side is Side.BID else asks
            side[o.price_ticks] = side.get(o.price_ticks, 0) + o.remaining_lots
        led = self.ledger
        upnl = led.position_base * self.mid + led.cash
        equity = _COLLATERAL + upnl
        block_time = self._block_time()
        return VenueSnapshot(
            block_number=self.block,
            block_hash=f"0x{self.block:064x}",
            block_time_s=block_time,
            base_fee_wei=int(self.base_fee_wei[self.block]),
            gas_used=int(self.fullness[self.block] * self.gas_limit),
            gas_limit=self.gas_limit,
            oracle_updated_s=block_time,
            book=BookSnapshot(
                tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())), self.block
            ),
            index=self.index,
            index_error=None,
            mark=self.mark,
            funding=FundingState(self.funding_epoch, self.next_funding_s, 0.0, 0.0, 0.0),
            position=PositionState(
                size_lots=round(led.position_base / self.market.lot_size),
                entry_notional=0.0,
                collateral=_COLLATERAL,
                unrealized_pnl=upnl,
                funding_owed=0.0,
                equity=equity,
                initial_margin=0.0,
                maintenance_margin=0.0,
                reserved_margin=0.0,
            ),
            # Each resting order's view is built once per change of its lots, not per snapshot
            # (event-sim bench: six frozen dataclasses a decision for orders that rarely change).
            open_orders=tuple(o.order() for o in self._orders),
        )

    async def poll_events(self, head: int, head_hash: str) -> list[MarketEvent]:
        """Events since the last call (no reorgs in this simulation)."""
        out, self._events = self._events, []
        return out

    async def poll_outcomes(self) -> list[TxOutcome]:
        """Outcomes of our transactions since the last call."""
        out, self._outcomes = self._outcomes, []
        return out

    def snapshot_current(self, snap: VenueSnapshot) -> bool:
        """False when an order change of ours landed after `snap`'s block."""
        return snap.block_number >= self._orders_changed_block

    async def replace_quotes(
        self,
        cancel_ids: Sequence[int],
        quotes: Sequence[Quote],
        expiry_s: int = 0,
        based_on_block: int | None = None,
    ) -> str:
        """Send a batch; a pending quote or cancel transaction is replaced at its nonce."""
        if based_on_block is not None and based_on_block < self._orders_changed_block:
            raise StaleSnapshot(f"decided from block {based_on_block}: not sent")
        self.quotes_sent += 1
        p = self._send("quote")
        p.cancel_ids, p.quotes, p.expiry_s = tuple(cancel_ids), tuple(quotes), expiry_s
        return p.handle

    async def cancel_all(self) -> str:
        """Cancel every order of ours; pre-empts a pending quote transaction."""
        return self._send("cancel_all").handle

    async def reduce(self, side: Side, lots: int, limit_tick: int) -> str:
        """Reduce-only IOC against the other makers' best price, when it is within the limit."""
        p = self._new("unload")
        p.reduce = (side, lots, limit_tick)
        self._pending.append(p)
        self._pending_version += 1
        return p.handle

    async def settle_funding(self) -> str:
        """Funding settles by itself here (the driver pays it)."""
        return self._outcome_now("settle_funding")

    async def liquidate(self, account: str) -> str:
        """There are no other accounts to liquidate here."""
        return self._outcome_now("liquidate")

    async def account_health(self, account: str) -> AccountHealthReading | None:
        """Other accounts are not modelled."""
        return None

    def quote_in_flight(self) -> str | None:
        """The pending quote or cancel transaction, if any."""
        for p in self._pending:
            if p.purpose in ("quote", "cancel_all"):
                return p.handle
        return None

    def in_flight(self, handle: str) -> bool:
        """True while `handle` has not landed or been dropped."""
        return any(p.handle == handle for p in self._pending)

    def io_health(self) -> VenueIo:
        """No RPC here: always reachable.

        The agent asks several times a cycle; the answer depends only on the block and the
        pending transactions, so it is built once per change of either.
        """
        cached = self._io
        if cached is not None and cached[0] == self.block and cached[1] == self._pending_version:
            return cached[2]
        oldest = min((self.epoch_s + p.submitted_s for p in self._pending), default=None)
        io = VenueIo(
            ok=True,
            total_calls=0,
            total_failures=0,
            oldest_pending_sent_s=oldest,
            pending=len(self._pending),
            cancel_pending=any(p.purpose == "cancel_all" for p in self._pending),
            gas_price_wei=int(self.base_fee_wei[max(self.block, 0)] + self.tip_wei),
        )
        self._io = (self.block, self._pending_version, io)
        return io

    # -- internals -----------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Chain time now (the agent's clock)."""
        return self.epoch_s + self.t_s

    def _block_time(self) -> int:
        return self.epoch_s + int(self.t_s)

    def _key(self) -> str:
        self._log += 1
        return f"0xsim{self.block:x}:{self._log}"

    def _new(self, purpose: str) -> _Pending:
        self._handles += 1
        outcome = sample_inclusion(
            self.rng, self.mempool, self.tip_wei, self.fullness, self.block + 1, self.rng.random()
        )
        land = self.block + max(1, math.ceil(outcome.delay_s / self.mempool.block_time_s))
        return _Pending(
            f"{purpose}-{self._handles}", purpose, land, outcome.included, self.t_s, self.block
        )

    def _send(self, purpose: str) -> _Pending:
        pending = next((p for p in self._pending if p.purpose in ("quote", "cancel_all")), None)
        p = self._new(purpose)
        if pending is not None:
            # Same nonce, bumped fee: the slot keeps its landing block; the old intent is lost.
            self._pending.remove(pending)
            self._outcomes.append(TxLost(pending.handle, pending.purpose, "replaced", True, False))
            p.land_block, p.included = pending.land_block, pending.included
        self._pending.append(p)
        self._pending_version += 1
        return p

    def _outcome_now(self, purpose: str) -> str:
        self._handles += 1
        return f"{purpose}-{self._handles}"

    def _land(self, p: _Pending) -> None:
        if not p.included:
            self.dropped += 1
            self._outcomes.append(TxLost(p.handle, p.purpose, "dropped", False, True))
            return
        base = float(self.base_fee_wei[self.block])
        gas_native = self.gas_units_per_tx * (base + self.tip_wei) / 1e18
        self.ledger.gas -= gas_native * self.native_price_quote
        self.ledger.gas_units += self.gas_units_per_tx
        if p.purpose == "quote":
            gone = set(p.cancel_ids)
            self._orders = [o for o in self._orders if o.order_id not in gone]
            for q in p.quotes:
                self._ids += 1
                lots = int(q.size_lots)
                self._orders.append(
                    _Resting(
                        self._ids,
                        q.side,
                        int(q.price_ticks),
                        lots,
                        lots,
                        self.queue_ahead_base,
                        p.expiry_s,
                    )
                )
            self._orders_changed_block = self.block
        elif p.purpose == "cancel_all":
            self._orders = []
            self._orders_changed_block = self.block
        elif p.reduce is not None:
            self._reduce(*p.reduce)
        self._outcomes.append(
            TxIncluded(
                handle=p.handle,
                purpose=p.purpose,
                block_number=self.block,
                submitted_s=self.epoch_s + p.submitted_s,
                included_s=self.now_s,
                delay_blocks=self.block - p.sent_block,
                gas_used=self.gas_units_per_tx,
                gas_cost_native=gas_native,
            )
        )

    def _reduce(self, side: Side, lots: int, limit_tick: int) -> None:
        led = self.ledger
        tick, lot = self.market.tick_size, self.market.lot_size
        have = round(led.position_base / lot)
        # Reduce-only: never more than the position, never in its direction.
        lots = min(lots, -have if side is Side.BID else have)
        if lots <= 0:
            return
        half = self.book_half_spread_ticks
        best = round(self.mid / tick) + (half if side is Side.BID else -half)
        if (side is Side.BID and best > limit_tick) or (side is Side.ASK and best < limit_tick):
            return  # IOC: nothing at the limit or better
        price = best * tick
        size = lots * lot
        signed = size if side is Side.BID else -size
        fee = price * size * self.market.taker_fee_bps * 1e-4
        led.position_base += signed
        led.cash -= signed * price + fee
        led.fees -= fee
        led.spread += (self.mid - price) * signed


def _ask_priority(o: _Resting) -> int:
    return o.price_ticks


def _bid_priority(o: _Resting) -> int:
    return -o.price_ticks


if TYPE_CHECKING:  # mypy checks SimVenue against the protocol the runtime is typed against

    def _conforms(v: SimVenue) -> Venue:
        return v
