"""The venue protocol: the only thing the runtime knows of a place it trades.

Every adapter implements :class:`Venue`: :class:`~agent.venue.dex.DexVenue` (the on-chain book,
live or forked) and :class:`sims.simvenue.SimVenue` (the event-driven simulator). The orchestrator
(:class:`agent.runtime.Agent`) is typed against the protocol, so one strategy object runs on both.

==========================  ======================================================================
method                      guarantee
==========================  ======================================================================
``connect(chain_id)``       verifies the venue is the one configured, loads static parameters
                            and starts the write path (resuming journaled transactions)
``market_info()``           static parameters: tick size, lot size, fees, keeper reward (no I/O)
``snapshot(head)``          one consistent read: head block, book, index, mark, funding, our
                            account and our open orders (:class:`~agent.types.VenueSnapshot`);
                            given a pushed ``head`` (:class:`~agent.types.HeadRef`) it is read
                            at that block, or, when the venue no longer has that block, at its
                            own head, never a mix of the two
``poll_events(snap)``       market events up to the snapshot's head, each exactly once, reorgs
                            undone with :class:`ReorgUndo`
``poll_outcomes()``         outcomes of our transactions since the last call, each once
``snapshot_current(snap)``  False while one of our order-changing transactions is known to have
                            landed after the snapshot's block: a decision made from it would
                            re-send what already rests
``replace_quotes(...)``     cancel ``cancel_ids`` and place ``quotes`` (post-only, expiring at
                            ``expiry_s``) atomically; at most one such batch in flight, a newer one
                            replaces the pending one; refuses (:class:`StaleSnapshot`) a decision
                            whose snapshot predates the last landed batch
``cancel_all()``            removes every resting order of ours; pre-empts a pending batch
``reduce(...)``             reduce-only, immediate-or-cancel: never rests, never adds exposure
``settle_funding()``        keeper call; the reward is the market's
``liquidate(account)``      keeper call
``account_health(acct)``    equity, maintenance margin and position of any account, or None
``quote_in_flight()``       the pending quote batch's handle, or None
``in_flight(handle)``       True while a transaction we sent is not yet final
``io_health()``             write-path health for risk: call and failure counts, oldest pending
                            send, the gas price a keeper call would pay, a cancel in flight
==========================  ======================================================================

Events are frozen dataclasses, one per kind; consumers handle them with an exhaustive ``match``
(``typing.assert_never`` makes a new kind a type error until every consumer handles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.errors import VenueError
from agent.types import (
    BookSnapshot,
    Fill,
    FundingState,
    HeadRef,
    PositionState,
    Quote,
    Side,
    VenueSnapshot,
)

__all__ = [
    "AccountHealthReading",
    "AllOrdersCancelled",
    "BookSnapshot",
    "FundingPaid",
    "FundingSettled",
    "FundingState",
    "HeadRef",
    "Liquidated",
    "MarketEvent",
    "MarketInfo",
    "OrderCancelled",
    "OrderExpired",
    "OrderPlaced",
    "OwnFill",
    "PositionState",
    "ReorgUndo",
    "StaleSnapshot",
    "Trade",
    "TxIncluded",
    "TxLost",
    "TxOutcome",
    "TxReverted",
    "Venue",
    "VenueIo",
    "VenueSnapshot",
]


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Static market parameters, as floats for the model."""

    tick_size: float
    """Price units (collateral per base unit) per tick."""
    lot_size: float
    """Base units per lot."""
    min_notional: float
    """Collateral units."""
    maker_fee_bps: float
    taker_fee_bps: float
    funding_interval_s: int
    collateral_decimals: int
    keeper_reward: float = 0.0
    """What the market pays a keeper per duty, collateral units."""
    market_id: str = ""
    """The market's identity in the journal (the contract address on chain)."""


# -- market events (from the venue's log) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trade:
    """Anyone's trade (feeds the fill-intensity estimator and the keeper's account list)."""

    block_number: int
    key: str
    """Unique id (tx hash + log index on chain) so consumers can deduplicate."""
    price: float
    size_base: float
    taker_side: Side
    maker: str
    taker: str


@dataclass(frozen=True, slots=True)
class OwnFill:
    """A fill of ours (maker or taker)."""

    block_number: int
    key: str
    fill: Fill
    maker: bool
    client_id: int


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """One of our orders came to rest."""

    block_number: int
    key: str
    order_id: int
    client_id: int
    side: Side
    price_ticks: int
    lots: int
    expiry_s: int


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """One of our orders was cancelled (by us)."""

    block_number: int
    key: str
    order_id: int
    client_id: int
    remaining_lots: int


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """One of our orders reached its expiry and was pruned."""

    block_number: int
    key: str
    order_id: int
    client_id: int
    remaining_lots: int


@dataclass(frozen=True, slots=True)
class AllOrdersCancelled:
    """Every order of ours was cancelled at once."""

    block_number: int
    key: str


@dataclass(frozen=True, slots=True)
class FundingPaid:
    """Funding paid (negative) or received (positive) by us, collateral units."""

    block_number: int
    key: str
    amount: float


@dataclass(frozen=True, slots=True)
class FundingSettled:
    """The market settled a funding interval."""

    block_number: int
    key: str
    epoch: int
    rate: float
    index: float


@dataclass(frozen=True, slots=True)
class Liquidated:
    """An account was liquidated."""

    block_number: int
    key: str
    account: str
    keeper: str


@dataclass(frozen=True, slots=True)
class ReorgUndo:
    """A chain reorganisation removed `original` (delivered earlier): reverse its effects."""

    block_number: int
    key: str
    original: MarketEvent


MarketEvent = (
    Trade
    | OwnFill
    | OrderPlaced
    | OrderCancelled
    | OrderExpired
    | AllOrdersCancelled
    | FundingPaid
    | FundingSettled
    | Liquidated
    | ReorgUndo
)
"""Everything :meth:`Venue.poll_events` delivers."""


# -- outcomes of our own transactions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxIncluded:
    """A transaction of ours landed and succeeded."""

    handle: str
    purpose: str
    block_number: int
    submitted_s: float
    included_s: float
    delay_blocks: int
    gas_used: int
    gas_cost_native: float
    """gas used × effective gas price, native units."""


@dataclass(frozen=True, slots=True)
class TxReverted:
    """A transaction of ours landed and reverted (its gas is spent)."""

    handle: str
    purpose: str
    block_number: int
    reason: str
    gas_cost_native: float


@dataclass(frozen=True, slots=True)
class TxLost:
    """A transaction of ours will never land: replaced, dropped, its nonce taken, or refused."""

    handle: str
    purpose: str
    reason: str
    nonce_taken: bool
    """Its nonce went to another transaction (ours, mined first): the intent did not happen."""
    dropped: bool
    """The node forgot it (a mempool drop, not a decision of ours)."""


TxOutcome = TxIncluded | TxReverted | TxLost
"""Everything :meth:`Venue.poll_outcomes` delivers."""


@dataclass(frozen=True, slots=True)
class AccountHealthReading:
    """Any account's margin state, collateral units."""

    equity: float
    maintenance_margin: float
    position_lots: int


@dataclass(frozen=True, slots=True)
class VenueIo:
    """The write path's health, for the risk engine and the keeper."""

    ok: bool
    total_calls: int
    total_failures: int
    oldest_pending_sent_s: float | None
    pending: int
    cancel_pending: bool
    gas_price_wei: int | None
    """What a keeper call would pay per gas now (None before the first fee quote)."""


class StaleSnapshot(VenueError):
    """A quote batch was decided from a snapshot older than our last landed order change.

    Sending it would place again what already rests (two batches at consecutive nonces, twice
    the orders). Nothing was sent; decide again from a fresh snapshot.
    """


class Venue(Protocol):
    """The operations the orchestrator needs from a venue; see the module table."""

    @property
    def account(self) -> str:
        """Our account's address (as the venue spells it)."""
        ...

    async def connect(self, expected_chain_id: int | None = None) -> None: ...

    def market_info(self) -> MarketInfo: ...

    async def snapshot(self, head: HeadRef | None = None) -> VenueSnapshot: ...

    async def poll_events(self, head: int, head_hash: str) -> list[MarketEvent]: ...

    async def poll_outcomes(self) -> list[TxOutcome]: ...

    def snapshot_current(self, snap: VenueSnapshot) -> bool: ...

    async def replace_quotes(
        self,
        cancel_ids: Sequence[int],
        quotes: Sequence[Quote],
        expiry_s: int = 0,
        based_on_block: int | None = None,
    ) -> str: ...

    async def cancel_all(self) -> str: ...

    async def reduce(self, side: Side, lots: int, limit_tick: int) -> str: ...

    async def settle_funding(self) -> str: ...

    async def liquidate(self, account: str) -> str: ...

    async def account_health(self, account: str) -> AccountHealthReading | None: ...

    def quote_in_flight(self) -> str | None: ...

    def in_flight(self, handle: str) -> bool: ...

    def io_health(self) -> VenueIo: ...
