"""The venue adapter for our on-chain order book (contracts/src/PerpMarket.sol).

Reads
    The head block's header, then one JSON-RPC batch of everything a decision needs at that
    block, by hash (both book sides, index, mark, funding state, our account and our open
    orders; see :meth:`DexVenue.snapshot`). The batch carries what the cycle reads next: the
    event poll's reorg check, the head block's receipts (its logs) and the transaction
    pipeline's poll reads (nonces, fee history), so a quiet cycle costs two round trips, or one
    when the runtime passes the head its new-heads subscription pushed (no header read). A block
    the node does not have on its canonical chain is read again once at a fresh head (a pushed
    one: at the head the node reads then, as without it). What still fails: a view a decision
    needs (book, funding, open orders, account) fails the cycle; the mark, the index and the
    oracle's round read as missing (the last round read stands in for the oracle's age).
Events
    The market's logs of each new block. When exactly one block is new, they come from that
    block's receipts fetched with the snapshot, used only if they are the snapshot's head block's
    (same hash, every transaction of it answered); else one ``eth_getLogs`` over the range.
    Reorganisations are detected by block hash (the last processed block's hash is re-checked
    every poll); events from orphaned blocks are undone (a :class:`~agent.venue.base.ReorgUndo`
    carrying the original event) and the range is read again.
Writes
    A quote refresh is one ``batch(cancelIds, places)`` transaction whose places expire on chain
    at the given time. At most one quote transaction is in flight: a newer decision *replaces* the
    pending one at the same nonce (bumped fees) instead of queueing behind it, and ``cancel_all``
    pre-empts a pending quote the same way. Once a quote or cancel-all transaction of ours is known
    to have landed in block B, a batch decided from a snapshot of a block before B is refused
    (:class:`~agent.venue.base.StaleSnapshot`): it would place again what already rests. A place
    whose price a live order reached while the batch was in flight is skipped by the market
    (``PlaceSkipped``) while the rest of the batch lands; it is simply absent from the next
    snapshot's open orders (placed ids are never taken from receipts).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from eth_utils.address import to_checksum_address

from agent.chain.abi import AbiCodec, DecodedLog, order_id_side_tick
from agent.chain.rpc import AsyncRpc, RpcError
from agent.chain.txpipe import (
    Dropped,
    Failed,
    Included,
    PollReads,
    Replaced,
    Reverted,
    TxHandle,
    TxIntent,
    TxPipeline,
)
from agent.errors import ChainError, VenueError
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
    AllOrdersCancelled,
    FundingPaid,
    FundingSettled,
    Liquidated,
    MarketEvent,
    MarketInfo,
    OrderCancelled,
    OrderExpired,
    OrderPlaced,
    OwnFill,
    ReorgUndo,
    StaleSnapshot,
    Trade,
    TxIncluded,
    TxLost,
    TxOutcome,
    TxReverted,
    Venue,
    VenueIo,
)

__all__ = [
    "FLAG_POST_ONLY",
    "DexMarketParams",
    "DexVenue",
    "decode_account_state",
    "decode_book_levels",
    "decode_funding_state",
    "decode_open_orders",
    "encode_batch_call",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FLAG_POST_ONLY = 1
FLAG_IOC = 2
FLAG_REDUCE_ONLY = 4
_WAD = 10**18
_MAX_TICK = 2**24  # uint24 tick
_MAX_LOTS = 2**48  # uint48 lots
_DECIMALS_SELECTOR = "0x313ce567"  # decimals()
_LATEST_ROUND_SELECTOR = "0xfeaf968c"  # latestRoundData(); updatedAt is the 4th word
_CANCEL_EXPIRED = 1  # OrderCancelled.reason of an order pruned at its expiry
_METHOD_NOT_FOUND = -32601  # JSON-RPC: the node does not know the method
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
_ORACLE_REVERTS = frozenset({"StaleOracle", "InvalidOraclePrice"})
"""The market's reverts of an oracle read (PerpMarketBase._readOracle)."""
_ORDER_CHANGING = frozenset({"quote", "cancel_all"})
_VIEW_NAMES = (
    "bookLevels(bids)",
    "bookLevels(asks)",
    "indexPrice",
    "markPrice",
    "fundingState",
    "accountState",
    "openOrders",
    "latestRoundData",
)
"""The snapshot's views, in the order its batch reads them."""
_RESOURCE_NOT_FOUND = -32001  # EIP-1474; anvil's answer for a block hash it does not have
_UNKNOWN_BLOCK_WORDS = ("not found", "unknown block", "canonical")
"""In a node's error message for a block it does not have or not on its canonical chain (geth:
"header for hash not found", "hash ... is not currently canonical")."""
"""Purposes of our transactions that change our resting orders (a landed one makes older
snapshots stale for quoting)."""


# -- view answers, decoded by hand --------------------------------------------------------------
# The views a cycle reads have fixed ABI layouts, and eth_abi's generic decoder spent about 0.1-0.3
# ms of CPU per answer (a sizeable part of a lock-step stress step). These read the 32-byte words
# directly; tests/unit/test_dex_encode.py holds each one to eth_abi's decoding. A short or
# malformed answer raises ValueError (or IndexError), as eth_abi's decoder would raise.

_ACCOUNT_STATE_SIGNED = (True, True, True, True, True, True, False, False, False)
"""accountState's (int256 x 6, uint256 x 3): collateral, positionLots, entryNotional,
unrealizedPnl, fundingOwed, equity, initialMargin, maintenanceMargin, reservedMargin."""
_FUNDING_STATE_SIGNED = (False, False, True, True, True)
"""fundingState's (uint256 epoch, uint256 nextBoundary, int256 premiumTwap, int256 lastRate,
int256 cumulativeIndex)."""
_ORDER_VIEW_BITS = (256, 64, 8, 24, 48, 32)
"""openOrders' OrderView: orderId, clientId, side, tick, lots, expiry (all unsigned)."""


def _words(raw: str) -> list[int]:
    if not raw.startswith("0x") or (len(raw) - 2) % 64:
        raise ValueError(f"not an ABI answer: {raw[:80]!r}")
    return [int(raw[i : i + 64], 16) for i in range(2, len(raw), 64)]


def _signed(x: int) -> int:
    return x - (1 << 256) if x >> 255 else x


def _array_at(w: list[int], head: int) -> list[int]:
    """The elements of the dynamic ``uint256[]`` whose offset is word `head` (whole words)."""
    offset = w[head]
    if offset % 32:
        raise ValueError(f"unaligned offset {offset}")
    at = offset // 32
    n = w[at]
    if at + 1 + n > len(w):
        raise ValueError(f"array of {n} runs past the answer's {len(w)} words")
    return w[at + 1 : at + 1 + n]


def decode_book_levels(raw: str) -> tuple[list[int], list[int]]:
    """``bookLevels(side, depth)``'s (ticks, lots)."""
    w = _words(raw)
    ticks, lots = _array_at(w, 0), _array_at(w, 1)
    if len(ticks) != len(lots):
        raise ValueError(f"{len(ticks)} ticks but {len(lots)} lots")
    return ticks, lots


def decode_open_orders(raw: str) -> list[tuple[int, int, int, int, int, int]]:
    """``openOrders(account)``'s (orderId, clientId, side, tick, lots, expiry) per order."""
    w = _words(raw)
    offset = w[0]
    if offset % 32:
        raise ValueError(f"unaligned offset {offset}")
    at = offset // 32
    n, k = w[at], len(_ORDER_VIEW_BITS)
    if at + 1 + n * k > len(w):
        raise ValueError(f"{n} orders run past the answer's {len(w)} words")
    out = []
    for i in range(at + 1, at + 1 + n * k, k):
        o = w[i : i + k]
        for v, bits in zip(o, _ORDER_VIEW_BITS, strict=True):
            if v >> bits:
                raise ValueError(f"value {v} does not fit uint{bits}")
        out.append((o[0], o[1], o[2], o[3], o[4], o[5]))
    return out


def _static(raw: str, signed: tuple[bool, ...]) -> tuple[int, ...]:
    w = _words(raw)
    if len(w) != len(signed):
        raise ValueError(f"{len(w)} words where {len(signed)} were expected")
    return tuple(_signed(v) if s else v for v, s in zip(w, signed, strict=True))


def decode_account_state(raw: str) -> tuple[int, ...]:
    """``accountState(account)``'s nine fields, in ABI order (see ``_ACCOUNT_STATE_SIGNED``)."""
    return _static(raw, _ACCOUNT_STATE_SIGNED)


def decode_funding_state(raw: str) -> tuple[int, ...]:
    """``fundingState()``'s five fields, in ABI order (see ``_FUNDING_STATE_SIGNED``)."""
    return _static(raw, _FUNDING_STATE_SIGNED)


_PLACE_BITS = (8, 8, 24, 48, 64, 32)
"""A place's (side, flags, tick, lots, clientId, expiry) widths in ``batch``'s ABI."""


def encode_batch_call(
    selector: bytes, cancel_ids: Sequence[int], places: Sequence[Sequence[int]]
) -> bytes:
    """Calldata of ``batch(uint256[] cancelIds, (uint8,uint8,uint24,uint48,uint64,uint32)[])``.

    Encoded directly (eth_abi's generic encoder is the quote path's hot spot): the head (two
    offsets), the ids array (length + words), the places array (length + six static words each).
    A unit test holds it byte-for-byte to eth_abi's encoding. Raises ValueError for a value that
    does not fit its field.

    Parameters
    ----------
    selector
        ``batch``'s 4-byte function selector.
    cancel_ids
        Order ids to cancel.
    places
        (side, flags, tick, lots, client id, expiry) per order to place.
    """
    word = 32
    out = bytearray(selector)
    out += (2 * word).to_bytes(word, "big")
    out += ((3 + len(cancel_ids)) * word).to_bytes(word, "big")
    out += len(cancel_ids).to_bytes(word, "big")
    for i in cancel_ids:
        if not 0 <= i < 1 << 256:
            raise ValueError(f"order id {i} does not fit uint256")
        out += i.to_bytes(word, "big")
    out += len(places).to_bytes(word, "big")
    for place in places:
        if len(place) != len(_PLACE_BITS):
            raise ValueError(f"a place has six fields, got {place}")
        for v, bits in zip(place, _PLACE_BITS, strict=True):
            if not 0 <= v < 1 << bits:
                raise ValueError(f"{v} does not fit uint{bits} in place {place}")
            out += v.to_bytes(word, "big")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class DexMarketParams:
    """The market's immutable parameters, raw (as published in ``MarketCreated``)."""

    collateral: str
    oracle: str
    tick_size_raw: int
    lot_size_wei: int
    min_notional_raw: int
    initial_margin_bps: int
    maintenance_margin_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
    max_fills: int
    funding_interval_s: int
    oracle_max_age_s: int
    keeper_reward_raw: int
    collateral_decimals: int

    @property
    def unit(self) -> float:
        """Raw collateral units per 1.0 of collateral (1e6 for a 6-decimal USD token)."""
        return float(10**self.collateral_decimals)

    def price(self, tick: int) -> float:
        """Price of a tick, collateral per base unit."""
        return tick * self.tick_size_raw / self.unit

    def base(self, lots: int) -> float:
        """Base units of `lots`."""
        return lots * self.lot_size_wei / _WAD


@dataclass(frozen=True, slots=True)
class _ReorgPrefetch:
    """The event poll's reorg check (our last block, read again) as fetched with a snapshot."""

    last_block: int
    last_hash: str
    block_now: Any  # eth_getBlockByNumber(last_block) result, or an RpcError
    snapshot_head: int  # the head the snapshot read: the check is only good for that poll

    def no_reorg(self, last_block: int | None, last_hash: str | None, head: int) -> bool:
        """True when this poll follows the snapshot that made the check, the cursor has not
        moved since, and the chain still had our last block then."""
        return (
            head == self.snapshot_head
            and last_block == self.last_block
            and last_hash == self.last_hash
            and isinstance(self.block_now, dict)
            and str(self.block_now.get("hash")) == last_hash
        )


@dataclass(frozen=True, slots=True)
class _HeadLogs:
    """The head block's receipts as fetched with a snapshot (its logs, for the event poll)."""

    cursor: int | None  # the event cursor when fetched: the logs serve only the poll that follows
    head: int
    head_hash: str
    tx_hashes: tuple[str, ...] | None  # the head block's transactions, when its header listed them
    gas_used: int  # the head block's header's
    receipts: Any  # eth_getBlockReceipts(head hash) result, or an RpcError

    def logs_for(self, cursor: int | None, start: int, head: int, head_hash: str) -> list[Any]:
        """The head block's logs when they are exactly the range the poll needs, else raise.

        Raises ValueError (or TypeError/KeyError/AttributeError on a malformed answer) when the
        receipts are not usable: a different cursor, head or range, an error answer, receipts
        of another block, or not all of the block's. Without the header's transaction list (a
        pushed head), "all" is checked by the receipts' indices (0 to n-1, each once) and the
        last one's cumulative gas equal to the header's ``gasUsed``: a receipt missing at the
        end is gas missing from the sum (every transaction costs at least 21,000).
        """
        if cursor != self.cursor or head != self.head or head_hash != self.head_hash:
            raise ValueError("fetched for another poll")
        if start != head:
            raise ValueError(f"{head - start + 1} new blocks, the receipts cover one")
        rs = self.receipts
        if not isinstance(rs, list):
            raise ValueError(f"no receipts: {rs}")
        if self.tx_hashes is not None:
            if sorted(str(r["transactionHash"]) for r in rs) != sorted(self.tx_hashes):
                raise ValueError("the receipts are not the head block's transactions")
        else:
            indices = sorted(int(str(r["transactionIndex"]), 16) for r in rs)
            if indices != list(range(len(rs))):
                raise ValueError(f"receipts of transactions {indices}: not one block's, whole")
            gas = max((int(str(r["cumulativeGasUsed"]), 16) for r in rs), default=0)
            if gas != self.gas_used:
                raise ValueError(f"receipts add up to {gas} gas, the header says {self.gas_used}")
        logs: list[Any] = []
        for r in rs:
            if str(r["blockHash"]) != head_hash:
                raise ValueError("receipts of another block")
            logs += r["logs"]
        return logs


class DexVenue:
    """:class:`~agent.venue.base.Venue` for PerpMarket, through the transaction pipeline.

    Parameters
    ----------
    rpc
        JSON-RPC client for reads.
    pipe
        Transaction pipeline of the signing account (writes).
    codec
        ABI codec of the market (``IPerpMarket``).
    market
        Market contract address.
    start_block
        Where to look for ``MarketCreated`` and where event polling starts (the deployment block).
    session
        A short tag that makes intent ids unique across restarts.
    """

    def __init__(
        self,
        *,
        rpc: AsyncRpc,
        pipe: TxPipeline,
        codec: AbiCodec,
        market: str,
        start_block: int = 0,
        book_depth: int = 10,
        quote_gas_limit: int = 1_200_000,
        cancel_all_gas_limit: int = 150_000,
        keeper_gas_limit: int = 1_500_000,
        cancel_max_fee_gwei: float | None = None,
        reorg_window_blocks: int = 64,
        session: str = "s",
    ) -> None:
        self.rpc = rpc
        self.pipe = pipe
        self.codec = codec
        self.market_address = to_checksum_address(market)
        self.account = to_checksum_address(pipe.address)
        self._acct_lower = self.account.lower()
        self._market_lower = self.market_address.lower()
        self._acct_topic = "0x" + "00" * 12 + self._acct_lower[2:]
        self._public_topics = frozenset(
            codec.topic(name).lower() for name in ("Fill", "FundingSettled", "Liquidation")
        )
        """Events routed whoever they concern (the others only when the account is ours)."""
        self.start_block = start_block
        self.book_depth = book_depth
        self.quote_gas_limit = quote_gas_limit
        self.cancel_all_gas_limit = cancel_all_gas_limit
        self.keeper_gas_limit = keeper_gas_limit
        self.cancel_max_fee_gwei = cancel_max_fee_gwei
        self.reorg_window_blocks = reorg_window_blocks
        self.session = session
        self.params: DexMarketParams | None = None
        self._batch_selector = codec.encode_call("batch", [], [])[:4]
        self._seq = itertools.count(1)
        self._quote_intent: str | None = None
        self._last_block: int | None = None
        self._last_hash: str | None = None
        # The event poll's reorg check, the head block's receipts and the pipeline's poll reads,
        # fetched inside the snapshot's batch (see `snapshot`).
        self._prefetch: _ReorgPrefetch | None = None
        self._head_logs: _HeadLogs | None = None
        self._poll_reads: PollReads | None = None
        self._receipts_supported = True
        self._snapshot_requests: tuple[tuple[str, tuple[Any]], ...] | None = None
        """False once the node said it has no ``eth_getBlockReceipts`` (then logs are read)."""
        self._seen: dict[int, list[MarketEvent]] = {}
        """Events delivered per block, kept for the reorg window so they can be undone."""
        self._block_hashes: dict[int, str] = {}
        self._orders_changed_block = -1
        """The block of our last landed order-changing transaction (see `snapshot_current`)."""
        self._started = False
        self.places_skipped = 0
        """Our batches' post-only places the market skipped (``PlaceSkipped``: they met a live
        order; the rest of the batch landed)."""
        self._oracle_updated_s = 0
        """The newest oracle ``updatedAt`` read (a failed read falls back to it)."""

    # -- set-up --------------------------------------------------------------------------------

    async def connect(self, expected_chain_id: int | None = None) -> None:
        """Check chain id and code at the market, load its parameters, start the pipeline."""
        if expected_chain_id is not None:
            chain_id = int(await self.rpc.call("eth_chainId"), 16)
            if chain_id != expected_chain_id:
                raise VenueError(
                    f"RPC is chain {chain_id}, config says {expected_chain_id}: point "
                    "chain.rpc_url at the right network or fix chain.chain_id"
                )
        code = await self.rpc.call("eth_getCode", [self.market_address, "latest"])
        if code in (None, "0x", "0x0"):
            raise VenueError(
                f"no contract code at market address {self.market_address}: check the deployment "
                "record or chain.market_address (and that the RPC is the chain it was deployed on)"
            )
        logs = await self.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.market_address,
                    "fromBlock": hex(self.start_block),
                    "toBlock": "latest",
                    "topics": [self.codec.topic("MarketCreated")],
                }
            ],
        )
        if not logs:
            raise VenueError(
                f"MarketCreated not found for {self.market_address} from block {self.start_block}: "
                "set the deployment record's block (or 0) correctly"
            )
        decoded = self.codec.decode_log(logs[0])
        assert decoded is not None
        p = decoded.args["params"]
        dec_raw = await self.rpc.call(
            "eth_call", [{"to": p[0], "data": _DECIMALS_SELECTOR}, "latest"]
        )
        self.params = DexMarketParams(
            collateral=to_checksum_address(p[0]),
            oracle=to_checksum_address(p[1]),
            tick_size_raw=int(p[3]),
            lot_size_wei=int(p[4]),
            min_notional_raw=int(p[5]),
            initial_margin_bps=int(p[6]),
            maintenance_margin_bps=int(p[7]),
            maker_fee_bps=int(p[8]),
            taker_fee_bps=int(p[9]),
            max_fills=int(p[10]),
            funding_interval_s=int(p[11]),
            oracle_max_age_s=int(p[12]),
            keeper_reward_raw=int(p[18]),
            collateral_decimals=int(dec_raw, 16),
        )
        if self._last_block is None:
            self._last_block = max(self.start_block - 1, int(logs[0]["blockNumber"], 16) - 1)
        if not self._started:
            # The write path resumes what the journal holds (re-broadcasts, settles) only once
            # the market is known to be the configured one.
            await self.pipe.start()
            self._started = True
            # A quote batch of an earlier run still in flight (the journal reloaded it, the
            # node will mine it) is ours to track: a cancel-all pre-empts it at its nonce, and a
            # decision from a book that does not show it yet would place a second ladder.
            quotes = [p for p in self.pipe.pending() if p.purpose == "quote"]
            if quotes and self._quote_intent is None:
                self._quote_intent = quotes[-1].intent_id

    def market_info(self) -> MarketInfo:
        """Static parameters as floats for the model."""
        p = self._params()
        return MarketInfo(
            tick_size=p.tick_size_raw / p.unit,
            lot_size=p.lot_size_wei / _WAD,
            min_notional=p.min_notional_raw / p.unit,
            maker_fee_bps=float(p.maker_fee_bps),
            taker_fee_bps=float(p.taker_fee_bps),
            funding_interval_s=p.funding_interval_s,
            collateral_decimals=p.collateral_decimals,
            keeper_reward=p.keeper_reward_raw / p.unit,
            market_id=self.market_address,
        )

    def _params(self) -> DexMarketParams:
        if self.params is None:
            raise VenueError("DexVenue.connect() has not been called")
        return self.params

    # -- reads ---------------------------------------------------------------------------------

    async def snapshot(self, head: HeadRef | None = None) -> VenueSnapshot:
        """Read everything a decision needs, every view at one block.

        Two round trips: the head block's header (``eth_getBlockByNumber("latest")``), then one
        batch of every view at that block's hash (EIP-1898 ``{"blockHash", "requireCanonical"}``).
        Each ``"latest"`` of a batch is resolved on its own (anvil while mining; a load-balanced
        RPC answers one batch from nodes at different heights), so views read at ``"latest"``
        can come from different blocks: a fill in the position with its order still open is a
        duplicate replacement. A hash names one block of one chain, so a reorg cannot mix two.
        The header first costs one round trip: on local anvil a snapshot's median went from
        1.0 ms to 1.4 ms (300 back to back, the calmest of 3 rounds); on a remote RPC it is one
        network round trip (tens of ms).

        Given `head` (the runtime's new-heads subscription pushed it), the header read is
        skipped: one round trip, the views at `head`'s hash, and the block's number, time and
        fees taken from `head`. When the node does not have that block on its canonical chain
        (reorged out, or a backend behind the one that pushed it), the snapshot falls back to
        the header read, as without `head`.

        When the node does not have the header's block on its canonical chain (reorged away
        between the header and the calls, or a backend behind the one that answered the header),
        the snapshot is read again once at a fresh head; a second miss fails the cycle with a
        :class:`~agent.errors.ChainError` naming the block. A view that fails otherwise is read
        again once at the same block (anvil, see ``_reread_failed_views``). Then the policy per
        view: a view a decision cannot do without fails the cycle; the mark and the index read as
        missing; a lost oracle round keeps the last ``updatedAt`` read.

        On anvil alone a residue remains: anvil answers a read at its head block's hash from its
        live state, so while the next block is being mined a view can see that block's state
        without failing. Measured with a block every ~130 ms and snapshots back to back: 6 in
        3,620 snapshots had the next block's book under the header's hash, against 10 in 2,145
        with ``"latest"`` reads; a check that the next block exists by the end of the batch did
        not catch them (8 in 1,670: the state changes before the block is added). Geth and reth
        answer a block hash from that block's state root.
        """
        p = self._params()
        self._prefetch, self._head_logs, self._poll_reads = None, None, None
        block = head
        header_reads = 0
        while True:
            if block is None:
                block = await self._read_head()
                header_reads += 1
            res, extra, poll_reads = await self._read_at(p, block)
            unknown = _unknown_block(res[:8])
            if unknown is None:
                break
            if header_reads >= 2:
                i, err = unknown
                raise ChainError(
                    f"{_VIEW_NAMES[i]} view failed at block {block.number} {block.hash}: the node "
                    f"does not have that block on its canonical chain (reorged away, or a lagging "
                    f"backend), after a read at a fresh head: {err}"
                )
            log.info(
                "snapshot: %s block %d %s is not on the node's canonical chain; reading the head",
                "pushed" if header_reads == 0 else "head",
                block.number,
                block.hash,
            )
            block = None
        number = block.number
        views = await self._reread_failed_views(p, block, res[:8])
        bids_r, asks_r, index_r, mark_r, fund_r, acct_r, orders_r, round_r = views
        last_block, last_hash = self._last_block, self._last_hash
        if "reorg" in extra:
            assert last_block is not None and last_hash is not None
            self._prefetch = _ReorgPrefetch(last_block, last_hash, res[extra["reorg"]], number)
        if "receipts" in extra:
            receipts = res[extra["receipts"]]
            if isinstance(receipts, RpcError) and receipts.code == _METHOD_NOT_FOUND:
                log.info("the node has no eth_getBlockReceipts: events come from eth_getLogs")
                self._receipts_supported = False
            self._head_logs = _HeadLogs(
                last_block, number, block.hash, block.tx_hashes, block.gas_used, receipts
            )
        self._poll_reads = poll_reads.with_results(res[extra["poll"] :])
        # A view a decision cannot do without fails the cycle (nothing is sent; a few in a row
        # pull the quotes, see Agent._after_failed_cycle); an optional one reads as missing.
        bids = self._required(number, "bookLevels(bids)", bids_r, self._levels)
        asks = self._required(number, "bookLevels(asks)", asks_r, self._levels)
        f = self._required(number, "fundingState", fund_r, decode_funding_state)
        raw_orders = self._required(number, "openOrders", orders_r, decode_open_orders)
        index, index_error = self._optional_price(number, "indexPrice", index_r, p)
        mark, _ = self._optional_price(number, "markPrice", mark_r, p)
        position = None
        acct_error = self._oracle_revert(acct_r)
        if acct_error is not None:
            # The account's valuation reads the oracle, which reverted at this block: the
            # position is the last one read, and the index is missing too, so the runtime
            # pulls its quotes instead of deciding on a position it could not read.
            index, index_error = None, index_error or acct_error
        else:
            a = self._required(number, "accountState", acct_r, decode_account_state)
            position = PositionState(
                size_lots=int(a[1]),
                entry_notional=int(a[2]) / p.unit,
                collateral=int(a[0]) / p.unit,
                unrealized_pnl=int(a[3]) / p.unit,
                funding_owed=int(a[4]) / p.unit,
                equity=int(a[5]) / p.unit,
                initial_margin=int(a[6]) / p.unit,
                maintenance_margin=int(a[7]) / p.unit,
                reserved_margin=int(a[8]) / p.unit,
            )
        funding = FundingState(
            epoch=int(f[0]),
            next_boundary_s=int(f[1]),
            running_premium=int(f[2]) / _WAD,
            last_rate=int(f[3]) / _WAD,
            cumulative_index=int(f[4]) / p.unit,
        )
        orders = tuple(
            Order(
                order_id=int(o[0]),
                side=Side(int(o[2])),
                price_ticks=Tick(int(o[3])),
                size_lots=Lots(int(o[4])),
                remaining_lots=Lots(int(o[4])),
                client_id=int(o[1]),
            )
            for o in raw_orders
        )
        return VenueSnapshot(
            block_number=number,
            block_hash=block.hash,
            block_time_s=block.timestamp_s,
            base_fee_wei=block.base_fee_wei,
            gas_used=block.gas_used,
            gas_limit=block.gas_limit,
            oracle_updated_s=self._oracle_updated(number, round_r),
            book=BookSnapshot(bids=bids, asks=asks, block_number=number),
            index=index,
            index_error=index_error,
            mark=mark,
            funding=funding,
            position=position,
            open_orders=orders,
        )

    async def _read_head(self) -> HeadRef:
        """The latest block's header, or a ChainError."""
        block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or not block.get("hash"):
            raise ChainError(f"could not read the latest block: {block}")
        try:
            return HeadRef.from_rpc(block)
        except ValueError as exc:
            raise ChainError(f"could not read the latest block: {exc}") from exc

    async def _read_at(
        self, p: DexMarketParams, block: HeadRef
    ) -> tuple[list[Any], dict[str, int], PollReads]:
        """One batch: the snapshot's views at `block` (by hash), then what the cycle reads next.

        Returns the answers (the 8 views first, in ``_VIEW_NAMES`` order), where each extra
        read's answer is, and the pipeline's poll reads the batch carried.
        """
        at = {"blockHash": block.hash, "requireCanonical": True}
        requests: list[tuple[str, list[Any]]] = [
            (method, [call, at]) for method, (call,) in self._snapshot_calls(p)
        ]
        # What the cycle reads next rides along (a quiet cycle is this round trip, after the
        # header's unless the head was pushed):
        # - the event poll's reorg check: it reads a fixed block number, so where the node runs
        #   it inside the batch does not matter;
        # - the head block's receipts, for its logs, by the head's hash. The poll still checks
        #   that they are that block's (hash, every transaction) and reads the logs on its own
        #   otherwise (a node answering from elsewhere, an error);
        # - the pipeline's poll reads (nonces, fee history), used only while still current.
        last_block, last_hash = self._last_block, self._last_hash
        extra: dict[str, int] = {}
        if last_block is not None and last_hash is not None:
            extra["reorg"] = len(requests)
            requests.append(("eth_getBlockByNumber", [hex(last_block), False]))
        if self._receipts_supported:
            extra["receipts"] = len(requests)
            requests.append(("eth_getBlockReceipts", [block.hash]))
        poll_reads = self.pipe.poll_reads()
        extra["poll"] = len(requests)
        requests += poll_reads.calls
        return await self.rpc.batch(requests), extra, poll_reads

    async def _reread_failed_views(
        self, p: DexMarketParams, block: HeadRef, views: list[Any]
    ) -> list[Any]:
        """Read the failed views again at the same block (by hash); return all the views.

        A read at a block hash is that block's state on geth and reth, but anvil answers a read
        at its head block from its live state, which the next block's transactions change while
        it is being mined (before the head moves): the call runs on the new state with the
        head's timestamp, and ``markPrice`` and ``accountState`` revert with an arithmetic panic
        (0x11) in the mark's premium TWAP, ``block.timestamp - book.lastTouch``. Measured with a
        block every ~130 ms, without this re-read: 2 snapshots in 1,679 lost the account or the
        mark that way. Read again one round trip later, the block is no longer the head and
        answers from its own state, so what fails again is a real answer at that block (e.g. a
        stale oracle).
        """
        failed = [i for i, r in enumerate(views) if isinstance(r, RpcError)]
        if not failed:
            return views
        at = {"blockHash": block.hash, "requireCanonical": True}
        calls = self._snapshot_calls(p)
        again = await self.rpc.batch([(calls[i][0], [calls[i][1][0], at]) for i in failed])
        views = list(views)
        for i, r in zip(failed, again, strict=True):
            log.debug(
                "snapshot view %s failed at block %s (%s); read again: %s",
                _VIEW_NAMES[i],
                block.hash,
                self._error_name(views[i]),
                self._error_name(r) if isinstance(r, RpcError) else "ok",
            )
            views[i] = r
        return views

    def _snapshot_calls(self, p: DexMarketParams) -> tuple[tuple[str, tuple[Any]], ...]:
        """The snapshot's eth_calls without their block (encoded once: the same every cycle)."""
        if self._snapshot_requests is None:
            c, mk = self.codec, self.market_address

            def call(data: bytes) -> tuple[str, tuple[Any]]:
                return ("eth_call", ({"to": mk, "data": "0x" + data.hex()},))

            self._snapshot_requests = (
                call(c.encode_call("bookLevels", 0, self.book_depth)),
                call(c.encode_call("bookLevels", 1, self.book_depth)),
                call(c.encode_call("indexPrice")),
                call(c.encode_call("markPrice")),
                call(c.encode_call("fundingState")),
                call(c.encode_call("accountState", self.account)),
                call(c.encode_call("openOrders", self.account)),
                ("eth_call", ({"to": p.oracle, "data": _LATEST_ROUND_SELECTOR},)),
            )
        return self._snapshot_requests

    def _levels(self, raw: str) -> tuple[tuple[int, int], ...]:
        ticks, lots = decode_book_levels(raw)
        return tuple((t, n) for t, n in zip(ticks, lots, strict=True) if n > 0)

    def _required(self, block: int, name: str, raw: Any, decode: Callable[[str], _T]) -> _T:
        """`raw` decoded, or a ChainError naming the view, the block and what went wrong."""
        if isinstance(raw, RpcError):
            raise ChainError(f"{name} view failed at block {block}: {self._error_name(raw)}")
        try:
            return decode(raw)
        except (ValueError, IndexError, TypeError, AttributeError) as exc:
            raise ChainError(f"{name} view answered garbage at block {block}: {exc}") from exc

    def _optional_price(
        self, block: int, name: str, raw: Any, p: DexMarketParams
    ) -> tuple[float | None, str | None]:
        """A price view's value, or None and why (a revert's error name, or "garbage")."""
        if isinstance(raw, RpcError):
            return None, self._error_name(raw)
        try:
            (word,) = _static(raw, (False,))
        except (ValueError, IndexError, TypeError, AttributeError):
            log.debug("%s answered garbage at block %d: %r", name, block, str(raw)[:80])
            return None, "garbage"
        # The market reverts rather than price at 0 (_readOracle): a 0 is not an answer.
        return (word / p.unit, None) if word > 0 else (None, "zero")

    def _oracle_updated(self, block: int, raw: Any) -> int:
        """The oracle round's ``updatedAt``; when the read fails, the last one read.

        Rounds only move forward, so the last ``updatedAt`` read is never newer than the true
        one: the oracle's age it gives can only be too old (the risk engine's oracle-age band
        then withdraws after its breach, as for a stale feed), never too young. A failed read
        before any good one is 0: age unknown.
        """
        if not isinstance(raw, RpcError):
            try:
                updated = _static(raw, (False, True, False, False, False))[3]
            except (ValueError, IndexError, TypeError, AttributeError):
                log.debug("latestRoundData answered garbage at block %d: %r", block, str(raw)[:80])
            else:
                self._oracle_updated_s = max(self._oracle_updated_s, updated)
                return updated
        return self._oracle_updated_s

    def _oracle_revert(self, raw: Any) -> str | None:
        """The oracle error's name when `raw` is a revert of the market's oracle read."""
        if not isinstance(raw, RpcError):
            return None
        name = self._error_name(raw)
        return name if name in _ORACLE_REVERTS else None

    def _error_name(self, err: RpcError) -> str:
        """A revert's decoded error (with a panic's code), else the node's error message."""
        data = _revert_bytes(err)
        if not data:
            return str(err)
        if data[:4] == _PANIC_SELECTOR:
            return f"Panic(0x{int.from_bytes(data[4:36], 'big'):02x})"
        return self._revert_name(err)

    def _revert_name(self, err: RpcError) -> str:
        decoded = self.pipe.decode_revert(_revert_bytes(err))
        return decoded.name or decoded.message

    # -- writes --------------------------------------------------------------------------------

    def quote_in_flight(self) -> str | None:
        """The intent id of the pending quote transaction, if any."""
        if self._quote_intent is None:
            return None
        st = self.pipe.status(self._quote_intent)
        if st is None or st.terminal:
            self._quote_intent = None
        return self._quote_intent

    def in_flight(self, handle: str) -> bool:
        """True while the transaction behind `handle` (an intent id) is not final."""
        st = self.pipe.status(handle)
        return st is not None and not st.terminal

    def io_health(self) -> VenueIo:
        """The pipeline's and the RPC's health, as the risk engine and keeper read it."""
        h = self.pipe.health
        pending = self.pipe.pending()
        fees = self.pipe.last_fees
        return VenueIo(
            ok=h.ok,
            total_calls=h.total_calls,
            total_failures=h.total_failures,
            oldest_pending_sent_s=min(
                (p.sent_s for p in pending if p.sent_s is not None), default=None
            ),
            pending=len(pending),
            cancel_pending=any(p.purpose == "cancel_all" for p in pending),
            gas_price_wei=fees.base_fee_wei + fees.tip_wei if fees is not None else None,
        )

    def snapshot_current(self, snap: VenueSnapshot) -> bool:
        """False when an order-changing transaction of ours landed after `snap`'s block."""
        return snap.block_number >= self._orders_changed_block

    async def poll_outcomes(self) -> list[TxOutcome]:
        """Outcomes of our transactions since the last call (the pipeline's receipts)."""
        out: list[TxOutcome] = []
        reads, self._poll_reads = self._poll_reads, None
        for ev in await self.pipe.poll(reads):
            if isinstance(ev, Included):
                d = ev.delay
                if ev.purpose in _ORDER_CHANGING:
                    self._orders_changed_block = max(self._orders_changed_block, d.block_number)
                out.append(
                    TxIncluded(
                        handle=ev.intent_id,
                        purpose=ev.purpose,
                        block_number=d.block_number,
                        submitted_s=d.submitted_s,
                        included_s=d.included_s,
                        delay_blocks=d.delay_blocks,
                        gas_used=d.gas_used,
                        gas_cost_native=_gas_cost_native(ev.receipt),
                    )
                )
            elif isinstance(ev, Reverted):
                block = int(str(ev.receipt.get("blockNumber", "0x0")), 16)
                out.append(
                    TxReverted(
                        handle=ev.intent_id,
                        purpose=ev.purpose,
                        block_number=block,
                        reason=ev.error.name or ev.error.message,
                        gas_cost_native=_gas_cost_native(ev.receipt),
                    )
                )
            elif isinstance(ev, Dropped):
                taken = ev.action == "nonce_reused"
                out.append(TxLost(ev.intent_id, ev.purpose, ev.action, taken, not taken))
            elif isinstance(ev, Replaced):
                out.append(TxLost(ev.intent_id, ev.purpose, "replaced", True, False))
            elif isinstance(ev, Failed):
                out.append(TxLost(ev.intent_id, ev.purpose, ev.reason, False, False))
        return out

    def _intent_id(self, purpose: str) -> str:
        return f"{purpose}-{self.session}-{next(self._seq)}"

    def encode_batch(
        self, cancel_ids: Sequence[int], quotes: Sequence[Quote], expiry_s: int = 0
    ) -> bytes:
        """Calldata of ``batch(cancelIds, places)``: post-only places, client ids from `seq`."""
        # Refuse a quote the market cannot represent with a VenueError (the
        # runtime counts it as a failed cycle) instead of an eth_abi ValueOutOfBounds crash.
        for q in quotes:
            if not 1 <= int(q.price_ticks) < _MAX_TICK or not 1 <= int(q.size_lots) < _MAX_LOTS:
                raise VenueError(
                    f"quote {q.side.name} {int(q.size_lots)} lots @ tick {int(q.price_ticks)} is "
                    f"outside the market's range (ticks 1..{_MAX_TICK - 1}, "
                    f"lots 1..{_MAX_LOTS - 1}): not sent; check the model's spread inputs"
                )
        # The quote path's hot spot: encoded directly (see `encode_batch_call`).
        ids = [int(i) for i in cancel_ids]
        if any(not 0 <= i < 1 << 256 for i in ids):
            raise VenueError(f"order id out of range in cancel list: {ids}")
        if not 0 <= expiry_s < 1 << 32:
            raise VenueError(f"expiry {expiry_s} does not fit the market's uint32 timestamp")
        places = [
            (
                int(q.side),
                FLAG_POST_ONLY,
                int(q.price_ticks),
                int(q.size_lots),
                next(self._seq) & ((1 << 64) - 1),
                expiry_s,
            )
            for q in quotes
        ]
        return encode_batch_call(self._batch_selector, ids, places)

    async def replace_quotes(
        self,
        cancel_ids: Sequence[int],
        quotes: Sequence[Quote],
        expiry_s: int = 0,
        based_on_block: int | None = None,
    ) -> str:
        """Send one batch transaction; replace the pending quote tx rather than queue behind it.

        Parameters
        ----------
        cancel_ids, quotes
            The order diff: ids to cancel and post-only quotes to place.
        expiry_s
            Chain timestamp at which the placed quotes die on their own (0: never).
        based_on_block
            The block of the snapshot the diff was computed from. A batch of ours that landed
            after it is not in that snapshot, so the diff would place its orders again:
            :class:`~agent.venue.base.StaleSnapshot` is raised and nothing is sent.

        Returns
        -------
        str
            The intent id. Raises :class:`~agent.errors.GasOverBudget` when the base fee is above
            the pipeline's ceiling (nothing is sent).
        """
        if based_on_block is not None and based_on_block < self._orders_changed_block:
            raise StaleSnapshot(
                f"decided from block {based_on_block}, but our order change landed in block "
                f"{self._orders_changed_block}: not sent (decide again from a fresh snapshot)"
            )
        intent = TxIntent(
            intent_id=self._intent_id("quote"),
            purpose="quote",
            to=self.market_address,
            data=self.encode_batch(cancel_ids, quotes, expiry_s),
            gas_limit=self.quote_gas_limit,
        )
        pending = self.quote_in_flight()
        handle: TxHandle
        if pending is not None:
            handle = await self.pipe.replace(pending, intent)
        else:
            handle = await self.pipe.submit(intent)
        self._quote_intent = handle.intent_id if not handle.status.terminal else None
        return handle.intent_id

    async def cancel_all(self) -> str:
        """Cancel every order of ours (O(1) on chain); pre-empts a pending quote transaction."""
        intent = TxIntent(
            intent_id=self._intent_id("cancel_all"),
            purpose="cancel_all",
            to=self.market_address,
            data=self.codec.encode_call("cancelAll"),
            gas_limit=self.cancel_all_gas_limit,
            max_fee_gwei=self.cancel_max_fee_gwei,
        )
        pending = self.quote_in_flight()
        if pending is not None:
            handle = await self.pipe.replace(pending, intent)
        else:
            handle = await self.pipe.submit(intent)
        self._quote_intent = None
        return handle.intent_id

    async def reduce(self, side: Side, lots: int, limit_tick: int) -> str:
        """Send a reduce-only order (IOC by the market's rules): unload inventory up to `lots`,
        at `limit_tick` or better; what cannot fill at that price is dropped, never rests."""
        handle = await self.pipe.submit(
            TxIntent(
                intent_id=self._intent_id("unload"),
                purpose="unload",
                to=self.market_address,
                data=self.codec.encode_call(
                    "place", (int(side), FLAG_REDUCE_ONLY, limit_tick, lots, next(self._seq), 0)
                ),
                gas_limit=self.keeper_gas_limit,
                max_fee_gwei=self.cancel_max_fee_gwei,
            )
        )
        return handle.intent_id

    async def settle_funding(self) -> str:
        """Send ``settleFunding()`` (keeper duty)."""
        handle = await self.pipe.submit(
            TxIntent(
                intent_id=self._intent_id("settle_funding"),
                purpose="settle_funding",
                to=self.market_address,
                data=self.codec.encode_call("settleFunding"),
                gas_limit=self.keeper_gas_limit,
            )
        )
        return handle.intent_id

    async def liquidate(self, account: str) -> str:
        """Send ``liquidate(account)`` (keeper duty)."""
        handle = await self.pipe.submit(
            TxIntent(
                intent_id=self._intent_id("liquidate"),
                purpose="liquidate",
                to=self.market_address,
                data=self.codec.encode_call("liquidate", to_checksum_address(account)),
                gas_limit=self.keeper_gas_limit,
            )
        )
        return handle.intent_id

    async def account_health(self, account: str) -> AccountHealthReading | None:
        """Equity, maintenance margin and position lots of any account; None if unreadable."""
        p = self._params()
        data = self.codec.encode_call("accountState", to_checksum_address(account))
        try:
            raw = await self.rpc.call(
                "eth_call", [{"to": self.market_address, "data": "0x" + data.hex()}, "latest"]
            )
        except RpcError:
            return None
        a = decode_account_state(raw)
        return AccountHealthReading(a[5] / p.unit, a[7] / p.unit, a[1])

    async def account_health_many(
        self, accounts: Sequence[str]
    ) -> list[AccountHealthReading | None]:
        """:meth:`account_health` of every account in `accounts`, in one JSON-RPC batch.

        The keeper's liquidation scan reads up to ``scan_per_round`` accounts at once; one round
        trip instead of one per account. A reading the node refused is None, as for
        :meth:`account_health`; an unreachable node raises as there.
        """
        if not accounts:
            return []
        p = self._params()
        mk = self.market_address
        calls: list[tuple[str, list[Any]]] = [
            (
                "eth_call",
                [
                    {
                        "to": mk,
                        "data": "0x"
                        + self.codec.encode_call("accountState", to_checksum_address(a)).hex(),
                    },
                    "latest",
                ],
            )
            for a in accounts
        ]
        raws = await self.rpc.batch(calls)
        out: list[AccountHealthReading | None] = []
        for raw in raws:
            if raw is None or isinstance(raw, RpcError):
                out.append(None)
                continue
            a = decode_account_state(raw)
            out.append(AccountHealthReading(a[5] / p.unit, a[7] / p.unit, a[1]))
        return out

    # -- events --------------------------------------------------------------------------------

    async def poll_events(
        self, head: int | None = None, head_hash: str | None = None
    ) -> list[MarketEvent]:
        """Return new events since the last poll, each once; undo events of orphaned blocks.

        Parameters
        ----------
        head, head_hash
            The latest block (from a snapshot) to read up to; fetched when not given.
        """
        if head is None or head_hash is None:
            blk = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            head, head_hash = int(blk["number"], 16), str(blk["hash"])
        prefetch, self._prefetch = self._prefetch, None
        head_logs, self._head_logs = self._head_logs, None
        out: list[MarketEvent] = []
        if prefetch is None or not prefetch.no_reorg(self._last_block, self._last_hash, head):
            out += await self._check_reorg()
        start = (self._last_block if self._last_block is not None else self.start_block - 1) + 1
        if head < start:
            return out
        decoded = None
        if head_logs is not None:
            try:
                decoded = self._decode_logs(
                    head_logs.logs_for(self._last_block, start, head, head_hash)
                )
            except Exception as exc:
                # Not this block's, or malformed in any way (a bad log fails in the ABI
                # decoder): nothing is applied yet, and the range read below is the authority.
                log.debug("head receipts not used (%s): reading the logs", exc)
        if decoded is None:
            logs = await self.rpc.call(
                "eth_getLogs",
                [{"address": self.market_address, "fromBlock": hex(start), "toBlock": hex(head)}],
            )
            decoded = self._decode_logs(logs)
        for block, block_hash, d in decoded:
            self._block_hashes[block] = block_hash
            if d is None:
                continue
            for ev in self._route(d):
                self._seen.setdefault(d.block_number, []).append(ev)
                out.append(ev)
        self._last_block, self._last_hash = head, head_hash
        self._block_hashes[head] = head_hash
        floor = head - self.reorg_window_blocks
        for b in [b for b in self._block_hashes if b < floor]:
            self._block_hashes.pop(b, None)
            self._seen.pop(b, None)
        return out

    def _decode_logs(self, logs: Sequence[Any]) -> list[tuple[int, str, DecodedLog | None]]:
        """(block, block hash, decoded or None) per log of the market, in order.

        Only what :meth:`_route` can use is decoded: trades, funding settlements, liquidations,
        and events whose indexed account (the first topic after the signature) is ours. The rest
        (mostly other makers' order churn) would be dropped by it anyway; their blocks' hashes
        are still recorded for the reorg check.
        """
        mk, public, mine = self._market_lower, self._public_topics, self._acct_topic
        out: list[tuple[int, str, DecodedLog | None]] = []
        for raw in logs:
            if raw.get("removed") or str(raw.get("address", "")).lower() != mk:
                continue
            topics = raw["topics"]
            relevant = bool(topics) and (
                str(topics[0]).lower() in public
                or (len(topics) > 1 and str(topics[1]).lower() == mine)
            )
            d = self.codec.decode_log(raw) if relevant else None
            out.append((int(raw["blockNumber"], 16), str(raw["blockHash"]), d))
        return out

    async def _check_reorg(self) -> list[MarketEvent]:
        if self._last_block is None or self._last_hash is None:
            return []
        blk = await self.rpc.call("eth_getBlockByNumber", [hex(self._last_block), False])
        if blk is not None and str(blk["hash"]) == self._last_hash:
            return []
        # Walk back through the blocks we know until the chain agrees with us.
        fork_point = self._last_block - self.reorg_window_blocks
        for b in sorted(self._block_hashes, reverse=True):
            if b >= self._last_block:
                continue
            cur = await self.rpc.call("eth_getBlockByNumber", [hex(b), False])
            if cur is not None and str(cur["hash"]) == self._block_hashes[b]:
                fork_point = b
                break
        undo: list[MarketEvent] = []
        for b in sorted((b for b in self._seen if b > fork_point), reverse=True):
            undo.extend(ReorgUndo(b, ev.key, ev) for ev in reversed(self._seen.pop(b)))
        for b in [b for b in self._block_hashes if b > fork_point]:
            self._block_hashes.pop(b)
        log.warning(
            "chain reorganisation: rolled back to block %d, undid %d events", fork_point, len(undo)
        )
        self._last_block = max(fork_point, self.start_block - 1)
        self._last_hash = self._block_hashes.get(self._last_block)
        return undo

    def _route(self, d: DecodedLog) -> list[MarketEvent]:
        p = self._params()
        a = d.args
        me = self._acct_lower
        b, key = d.block_number, d.key
        if d.name == "Fill":
            maker, taker = str(a["maker"]).lower(), str(a["taker"]).lower()
            maker_side, tick = order_id_side_tick(int(a["makerOrderId"]))
            taker_side = Side(1 - maker_side)
            evs: list[MarketEvent] = [
                Trade(
                    b,
                    key,
                    price=p.price(tick),
                    size_base=p.base(int(a["lots"])),
                    taker_side=taker_side,
                    maker=maker,
                    taker=taker,
                )
            ]
            if maker == me or taker == me:
                ours_maker = maker == me
                fill = Fill(
                    order_id=int(a["makerOrderId"]) if ours_maker else 0,
                    side=Side(1 - taker_side) if ours_maker else taker_side,
                    price_ticks=Tick(tick),
                    size_lots=Lots(int(a["lots"])),
                    fee_raw=int(a["makerFee"]) if ours_maker else int(a["takerFee"]),
                    block_number=b,
                    tx_hash=d.tx_hash,
                    log_index=d.log_index,
                )
                evs.append(OwnFill(b, key + ":own", fill, ours_maker, int(a["makerClientId"])))
            return evs
        if d.name == "FundingSettled":
            rate, index = int(a["rate"]) / _WAD, int(a["indexPrice"]) / p.unit
            return [FundingSettled(b, key, int(a["epoch"]), rate, index)]
        if d.name == "Liquidation":
            return [Liquidated(b, key, str(a["account"]), str(a["keeper"]))]
        if str(a.get("account", "")).lower() != me:
            return []
        if d.name == "FundingPaid":
            return [FundingPaid(b, key, -int(a["amount"]) / p.unit)]
        if d.name == "OrderPlaced":
            return [
                OrderPlaced(
                    b,
                    key,
                    order_id=int(a["orderId"]),
                    client_id=int(a["clientId"]),
                    side=Side(int(a["side"])),
                    price_ticks=int(a["tick"]),
                    lots=int(a["lots"]),
                    expiry_s=int(a["expiry"]),
                )
            ]
        if d.name == "OrderCancelled":
            kind = OrderExpired if int(a["reason"]) == _CANCEL_EXPIRED else OrderCancelled
            oid, cid, rem = int(a["orderId"]), int(a["clientId"]), int(a["remainingLots"])
            return [kind(b, key, oid, cid, rem)]
        if d.name == "AllOrdersCancelled":
            return [AllOrdersCancelled(b, key)]
        if d.name == "PlaceSkipped":
            # A post-only place of our batch met a live order that arrived after the snapshot
            # it was decided from: the market skipped it (nothing rests, nothing is reserved)
            # and landed the rest of the batch. Nothing to track: the next snapshot's open
            # orders lack it, and the next cycle re-quotes the level if the gate wants.
            self.places_skipped += 1
            log.info(
                "post-only %s %d lots @ tick %d skipped in block %d: crossed the opposite best %d",
                Side(int(a["side"])).name,
                int(a["lots"]),
                int(a["tick"]),
                b,
                int(a["bestOpposite"]),
            )
        return []


def _gas_cost_native(receipt: Mapping[str, Any]) -> float:
    used = int(str(receipt.get("gasUsed", "0x0")), 16)
    price = int(str(receipt.get("effectiveGasPrice", "0x0")), 16)
    return used * price / 1e18


def _unknown_block(views: Sequence[Any]) -> tuple[int, RpcError] | None:
    """The first view the node refused for not having the block (index, error), or None.

    A revert is an answer at the block and never counts, whatever its message says.
    """
    for i, r in enumerate(views):
        if not isinstance(r, RpcError) or r.code == 3 or _revert_bytes(r):
            continue
        message = r.rpc_message.lower()
        if r.code == _RESOURCE_NOT_FOUND or any(w in message for w in _UNKNOWN_BLOCK_WORDS):
            return i, r
    return None


def _revert_bytes(err: RpcError) -> bytes:
    data = err.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


if TYPE_CHECKING:
    # mypy checks that DexVenue conforms to the Venue protocol the runtime is typed against.
    def _conforms(v: DexVenue) -> Venue:
        return v
