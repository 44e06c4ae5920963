"""The transaction pipeline: nonces, EIP-1559 fees, replacement, recovery, journal.

Every transaction the agent sends goes through :class:`TxPipeline`. Keepers die of nonce and
stuck-transaction bugs; the rules below are how this one does not.

Lifecycle of an intent::

    queued ──► sent ──► included      receipt status 1 (a delay sample is recorded)
      │          ├────► reverted      receipt status 0 (custom error decoded from the ABIs)
      │          ├────► replaced      another transaction took the nonce (ours or not)
      │          └────► dropped       gone from the pool and could not be re-broadcast: its
      │                               nonce was re-used by a 0-value self-transfer
      └────────────────► failed       rejected by the node for good (e.g. insufficient funds)

``queued`` means signed and journaled but not yet accepted by the node. The signed bytes are
written to the journal (fsync'd) *before* every broadcast, so after a crash the exact bytes are
re-broadcast (idempotent: same bytes, same hash) and nothing is sent twice.

Rules
-----
- Nonces are local and monotonic, initialised from the pending count. A "nonce too low" answer
  first checks our own receipts (a retried broadcast may already be mined), then moves an intent
  the node never accepted to a fresh nonce. :meth:`TxPipeline.poll` follows the chain's pending
  count, so a transaction sent from the same key by someone else moves our next nonce past it.
- A sent intent whose nonce is consumed by a transaction we did not sign becomes ``replaced``
  (``by_intent_id=None``); it is not re-sent, because the runtime must re-decide on new state.
- Fees: ``max_fee = multiplier × next base fee + tip``; the tip is the median over recent blocks
  of a fee-history percentile, with a floor, leaving out the blocks that include our own
  transactions (otherwise the estimate feeds on itself: one L2 run paid 1 gwei on all 540 txs
  while the chain tipped 0.01). If the next base fee is above the ceiling (``max_fee_gwei``, per
  intent or global), :meth:`TxPipeline.submit` raises :class:`~agent.errors.GasOverBudget` and
  nothing is sent.
- Speed-up after ``speedup_after_blocks`` blocks or ``speedup_after_s`` seconds (or at once when
  the next base fee is above the tx's max fee): both fee fields rise by at least ``bump_pct``,
  never above the ceiling. :meth:`TxPipeline.replace` (a newer decision, e.g. risk's cancel-all
  pre-empting a quote) signs new data at the same nonce with the same bumps.
- A transaction missing from the pool is re-broadcast; if the node refuses it for good, its nonce
  is filled with a 0-value self-transfer so later nonces are never blocked by a gap. Nonces in a
  gap we did not cause (node state loss, an external tx that was dropped) are filled the same way.
- Only idempotent RPC calls are retried (reads, re-broadcasts of signed bytes). RPC outages show
  in :attr:`TxPipeline.health` and :meth:`poll` returns quietly; they never crash the loop.

Concurrency: one asyncio lock serialises submit / replace / cancel / poll, so nonce assignment
and journal writes never interleave. Use one pipeline per key.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import statistics
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from agent.chain.abi import DecodedError, ErrorDecoder
from agent.chain.rpc import AsyncRpc, RpcError, RpcHealth
from agent.chain.signer import Signer
from agent.chain.txjournal import DelaySample, IntentRow, TxJournal, TxRow
from agent.errors import ChainError, GasOverBudget, RpcUnavailable, TxError
from agent.errors import TxReverted as TxRevertedError

__all__ = [
    "Dropped",
    "Failed",
    "FeeQuote",
    "Included",
    "IntentStatus",
    "PendingTx",
    "PollReads",
    "Replaced",
    "Reverted",
    "Sent",
    "SpedUp",
    "StuckAtCeiling",
    "TxEvent",
    "TxHandle",
    "TxIntent",
    "TxPipeline",
    "TxPipelineConfig",
    "bump_fees",
    "quote_fees",
]

log = logging.getLogger(__name__)

_GWEI = 10**9
_SELF_TRANSFER_GAS = 21_000
_MAX_NONCES_AHEAD = 64
"""Most transactions of ours a node's pool can plausibly hold beyond the mined count. A pending
count further ahead, or behind the mined one, is a garbled answer: never a nonce to sign at, nor
a gap to fill one self-transfer at a time (a made-up 10^9 sent 229 fillers in seconds)."""
_START_NONCE_TRIES = 5
_START_NONCE_RETRY_S = 0.5
_MAX_RENONCE = 3


class IntentStatus(enum.StrEnum):
    """Where an intent is in its lifecycle (see the module docstring)."""

    QUEUED = "queued"
    SENT = "sent"
    INCLUDED = "included"
    REVERTED = "reverted"
    REPLACED = "replaced"
    DROPPED = "dropped"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True once the intent can no longer change."""
        return self not in (IntentStatus.QUEUED, IntentStatus.SENT)


@dataclass(frozen=True, slots=True)
class TxIntent:
    """What the caller wants on chain. `intent_id` is the idempotency key.

    Parameters
    ----------
    intent_id
        Chosen by the caller; submitting the same id twice returns the first handle.
    purpose
        Free label for journals and metrics: "quote", "cancel_all", "settle_funding", ...
    to, data, value_wei, gas_limit
        The call.
    max_fee_gwei
        Per-intent fee ceiling overriding the pipeline's (e.g. risk lets a cancel-all pay more).
    """

    intent_id: str
    purpose: str
    to: str
    data: bytes = b""
    value_wei: int = 0
    gas_limit: int = 200_000
    max_fee_gwei: float | None = None


@dataclass(frozen=True, slots=True)
class PollReads:
    """The chain reads a :meth:`TxPipeline.poll` starts with, for a caller to fetch them inside a
    batch of its own (one round trip less per cycle; see ``DexVenue.snapshot``).

    Take them with :meth:`TxPipeline.poll_reads`, send :attr:`calls`, and pass
    ``with_results(answers)`` to :meth:`TxPipeline.poll`. The poll uses them only while they
    are current: when no transaction was broadcast and no poll ran since they were taken, and
    every answer is a well-formed result; otherwise it reads again itself, as it always did.
    """

    calls: tuple[tuple[str, list[Any]], ...]
    epoch: int
    """The pipeline's broadcast/poll counter when the reads were taken."""
    results: tuple[Any, ...] | None = None

    def with_results(self, results: Sequence[Any]) -> PollReads:
        """The same reads with the node's answers (an element may be an RpcError)."""
        return PollReads(self.calls, self.epoch, tuple(results))


@dataclass(frozen=True, slots=True)
class TxPipelineConfig:
    """Fee and lifecycle policy."""

    max_fee_gwei: float = 200.0
    """Ceiling on the max fee per gas; a next base fee above it means "gas over budget"."""
    base_fee_multiplier: float = 2.0
    """max fee = multiplier × next base fee + tip: room for the base fee to rise while pending."""
    tip_percentile: float = 50.0
    tip_floor_gwei: float = 0.01
    fee_history_blocks: int = 10
    fee_max_age_s: float = 2.0
    """Reuse the last fee quote this long on the submit path (poll refreshes it every call)."""
    bump_pct: float = 12.5
    """Minimum rise of both fee fields per replacement (nodes require 10%; 12.5% is safe)."""
    speedup_after_blocks: int = 3
    speedup_after_s: float = 30.0
    speedup_when_underpriced: bool = True
    """Speed up at once when the next base fee is above the pending tx's max fee."""
    max_in_flight: int = 16
    """Refuse new intents while this many nonces are unconfirmed."""
    external_after_polls: int = 2
    """Polls a consumed nonce must show no receipt of ours before it counts as taken by others
    (tolerates load-balanced RPCs whose receipt lags the nonce)."""


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """EIP-1559 fees for the next block, in wei."""

    base_fee_wei: int
    tip_wei: int
    max_fee_wei: int
    block: int
    fetched_s: float


@dataclass(frozen=True, slots=True)
class TxHandle:
    """What :meth:`TxPipeline.submit` and friends return."""

    intent_id: str
    nonce: int | None
    tx_hash: str | None
    status: IntentStatus
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingTx:
    """An unconfirmed intent, as :meth:`TxPipeline.pending` reports it."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    status: IntentStatus
    max_fee_wei: int
    tip_wei: int
    sent_s: float | None
    attempts: int


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """The node accepted an intent's first transaction."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    max_fee_wei: int
    tip_wei: int


@dataclass(frozen=True, slots=True)
class SpedUp:
    """A pending intent was re-signed at the same nonce with higher fees."""

    intent_id: str
    purpose: str
    nonce: int
    old_tx_hash: str
    tx_hash: str
    max_fee_wei: int
    tip_wei: int


@dataclass(frozen=True, slots=True)
class StuckAtCeiling:
    """A pending intent needs a speed-up that the fee ceiling does not allow."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    max_fee_wei: int
    ceiling_wei: int


@dataclass(frozen=True, slots=True)
class Included:
    """The intent's transaction was mined and succeeded."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    receipt: Mapping[str, Any]
    delay: DelaySample


@dataclass(frozen=True, slots=True)
class Reverted:
    """The intent's transaction was mined and reverted; `error` is decoded when possible."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    receipt: Mapping[str, Any]
    error: DecodedError


@dataclass(frozen=True, slots=True)
class Replaced:
    """Another transaction took the intent's nonce; `by_intent_id` None means not ours."""

    intent_id: str
    purpose: str
    nonce: int
    by_intent_id: str | None
    by_tx_hash: str | None


@dataclass(frozen=True, slots=True)
class Dropped:
    """The intent's transaction left the pool. `action` is what the pipeline did about it:
    "rebroadcast" (the intent lives on) or "nonce_reused" (terminal; a self-transfer fills it)."""

    intent_id: str
    purpose: str
    nonce: int
    tx_hash: str
    action: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The node refused the intent for good; nothing of it will be mined."""

    intent_id: str
    purpose: str
    nonce: int | None
    reason: str


TxEvent = Sent | SpedUp | StuckAtCeiling | Included | Reverted | Replaced | Dropped | Failed

# -- pure fee logic ------------------------------------------------------------------------


def gwei_to_wei(gwei: float) -> int:
    """Convert gwei to integer wei (rounded to the nearest wei)."""
    return round(gwei * _GWEI)


def quote_fees(
    fee_history: Mapping[str, Any],
    config: TxPipelineConfig,
    ceiling_wei: int,
    now_s: float,
    own_blocks: Collection[int] = frozenset(),
) -> FeeQuote:
    """Compute next-block EIP-1559 fees from an ``eth_feeHistory`` answer.

    The history must be requested with ``[config.tip_percentile]``; its last ``baseFeePerGas``
    entry is the next block's base fee. Blocks with no transactions report a zero reward and are
    skipped, so an idle chain yields the floor rather than a zero tip. Blocks in ``own_blocks``
    (those that include one of our transactions) are skipped too: their percentile may be our own
    tip, and a tip estimated from our own tips never comes down.

    Raises
    ------
    GasOverBudget
        The next base fee is above `ceiling_wei`.
    """
    base_fees = [int(x, 16) for x in fee_history["baseFeePerGas"]]
    next_base = base_fees[-1]
    if next_base > ceiling_wei:
        raise GasOverBudget(next_base, ceiling_wei)
    oldest = int(fee_history["oldestBlock"], 16)
    rewards = [
        int(r[0], 16)
        for i, r in enumerate(fee_history.get("reward") or [])
        if r and int(r[0], 16) > 0 and oldest + i not in own_blocks
    ]
    floor = gwei_to_wei(config.tip_floor_gwei)
    tip = max(floor, int(statistics.median(rewards))) if rewards else floor
    max_fee = math.ceil(config.base_fee_multiplier * next_base) + tip
    # Below the ceiling the base fee can still be paid; cap the headroom, not the inclusion.
    max_fee = min(max_fee, ceiling_wei)
    tip = min(tip, max_fee)
    return FeeQuote(next_base, tip, max_fee, oldest + len(base_fees) - 2, now_s)


def _bump(x: int, bump_bps: int) -> int:
    # At least one wei, so a zero field still strictly rises.
    return x + max(1, -(-x * bump_bps // 10_000))


def bump_fees(
    prev_max_fee_wei: int,
    prev_tip_wei: int,
    fresh: FeeQuote | None,
    bump_pct: float,
    ceiling_wei: int,
) -> tuple[int, int] | None:
    """Return (max fee, tip) for a replacement, or None when the ceiling forbids the bump.

    Each field rises by at least `bump_pct` over the previous attempt and is at least the fresh
    quote; the max fee never exceeds `ceiling_wei`.
    """
    bps = round(bump_pct * 100)
    min_max, min_tip = _bump(prev_max_fee_wei, bps), _bump(prev_tip_wei, bps)
    max_fee = max(min_max, fresh.max_fee_wei if fresh else 0)
    tip = max(min_tip, fresh.tip_wei if fresh else 0)
    max_fee = min(max_fee, ceiling_wei)
    tip = min(tip, max_fee)
    if max_fee < min_max or tip < min_tip:
        return None
    return max_fee, tip


# -- revert decoding -----------------------------------------------------------------------


def _revert_bytes(err: RpcError) -> bytes | None:
    data = err.data
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


# -- internal state ------------------------------------------------------------------------


class _Outcome(enum.Enum):
    OK = "ok"
    NONCE_CONSUMED = "nonce consumed"
    UNDERPRICED = "replacement underpriced"
    FEE_TOO_LOW = "max fee below base fee"
    UNREACHABLE = "rpc unreachable"
    REFUSED = "refused"


@dataclass(slots=True)
class _Attempt:
    tx_hash: str
    intent_id: str
    raw: bytes
    max_fee_wei: int
    tip_wei: int
    created_s: float
    sent_s: float | None = None
    sent_block: int | None = None


@dataclass(slots=True)
class _Live:
    intent: TxIntent
    status: IntentStatus
    nonce: int
    created_s: float
    replaces: str | None = None
    first_sent_s: float | None = None
    first_sent_block: int | None = None


@dataclass(slots=True)
class _Slot:
    nonce: int
    attempts: list[_Attempt] = field(default_factory=list)
    missing_receipt_polls: int = 0
    dropped_since: float | None = None
    stuck_reported: bool = False

    @property
    def latest(self) -> _Attempt:
        return self.attempts[-1]

    def intent_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in self.attempts:
            seen[a.intent_id] = None
        return list(seen)


def _classify(err: RpcError) -> _Outcome:
    m = err.rpc_message.lower()
    if "already known" in m or "already imported" in m or "alreadyknown" in m:
        return _Outcome.OK
    if "nonce too low" in m or "nonce has already been used" in m or "oldnonce" in m:
        return _Outcome.NONCE_CONSUMED
    if "underpriced" in m or "replacement" in m:
        return _Outcome.UNDERPRICED
    if "less than block base fee" in m or "fee cap less than" in m or "feecap" in m:
        return _Outcome.FEE_TOO_LOW
    return _Outcome.REFUSED


def _plausible_nonces(latest: object, pending: object) -> tuple[int, int]:
    """Parse the mined and pending transaction counts of one account, read together.

    Raises
    ------
    ChainError
        An answer is an error, not a hex count, or the pair is implausible: pending behind the
        mined count, or more than :data:`_MAX_NONCES_AHEAD` ahead of it.
    """
    for answer in (latest, pending):
        if isinstance(answer, RpcError):
            raise answer
    if not (isinstance(latest, str) and isinstance(pending, str)):
        raise ChainError(f"transaction counts are not hex strings: {latest!r}, {pending!r}")
    try:
        mined, counted = int(latest, 16), int(pending, 16)
    except ValueError:
        raise ChainError(f"transaction counts are not hex: {latest!r}, {pending!r}") from None
    if not 0 <= mined <= counted <= mined + _MAX_NONCES_AHEAD:
        raise ChainError(f"implausible transaction counts: mined {mined}, pending {counted}")
    return mined, counted


class TxPipeline:
    """Sign, journal, send and shepherd transactions for one key.

    Parameters
    ----------
    rpc
        The node connection (its health is exported as :attr:`health`).
    signer
        The key; the pipeline never sees key material, only signatures.
    journal
        The crash-safe store; every signed tx is written to it before broadcast.
    config
        Fee and lifecycle policy.
    error_abis
        ABIs whose custom errors revert decoding should know.
    clock
        Wall-clock seconds; journal timestamps must survive a restart, so not monotonic.
    on_event
        Called synchronously for every lifecycle event (also returned by :meth:`poll`).
    fault_hook
        Test seam for crash injection: called with "journaled" (signed bytes durable, not yet
        broadcast) and "broadcast" (node accepted, not yet journaled as sent).
    """

    def __init__(
        self,
        rpc: AsyncRpc,
        signer: Signer,
        journal: TxJournal,
        config: TxPipelineConfig | None = None,
        *,
        error_abis: Iterable[Sequence[Mapping[str, Any]]] = (),
        clock: Callable[[], float] = time.time,
        on_event: Callable[[TxEvent], None] | None = None,
        fault_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or TxPipelineConfig()
        self._rpc = rpc
        self._signer = signer
        self._journal = journal
        self._decoder = ErrorDecoder(error_abis)
        self._clock = clock
        self._on_event = on_event
        self._fault = fault_hook
        self._lock = asyncio.Lock()
        self._slots: dict[int, _Slot] = {}
        self._live: dict[str, _Live] = {}
        self._next_nonce: int | None = None
        self._fees: FeeQuote | None = None
        self._own_blocks: set[int] = set()
        """Recent blocks that include one of our transactions (left out of the tip estimate)."""
        self._block = 0
        self._events: list[TxEvent] = []
        self._ceiling_wei = gwei_to_wei(self.config.max_fee_gwei)
        self._started = False
        self._epoch = 0
        """Counts broadcasts and polls: reads taken before a change are not the chain's now."""

    # -- public surface --------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The sending address."""
        return self._signer.address

    @property
    def health(self) -> RpcHealth:
        """Live RPC health (consecutive failures, last error); export it as a gauge."""
        return self._rpc.health

    @property
    def last_fees(self) -> FeeQuote | None:
        """The latest fee quote (refreshed by :meth:`poll`), for the model's gas-cost term."""
        return self._fees

    async def start(self) -> None:
        """Initialise nonces and resume every open journal entry.

        Intents the journal holds as queued or sent are reloaded with their signed bytes; ones
        never accepted by the node are broadcast (the same bytes, so exactly once). Call once
        before anything else.

        Raises
        ------
        RpcUnavailable
            The node cannot be reached, so the nonce cannot be initialised; retry later.
        """
        async with self._lock:
            for row in self._journal.open_intents():
                self._reload(row)
            pending = await self._start_nonce()
            highest = max(self._slots, default=-1)
            self._next_nonce = max(pending, highest + 1)
            await self._refresh_fees()
            self._started = True
            for slot in sorted(self._slots.values(), key=lambda s: s.nonce):
                if slot.latest.sent_s is None:
                    await self._broadcast_slot(slot, fresh=True)
            log.info(
                "tx pipeline started for %s: next nonce %d, %d open intents",
                self.address,
                self._next_nonce,
                sum(1 for v in self._live.values() if not v.status.terminal),
            )

    async def _start_nonce(self) -> int:
        """The pending nonce to start from, read with the mined one and checked against it.

        A node (or the balancer in front of it) that answers garbage is asked again a few times
        (:data:`_START_NONCE_TRIES`, :data:`_START_NONCE_RETRY_S` apart); an unreachable node
        raises at once, as before.

        Raises
        ------
        ChainError
            The answers stayed unusable: nothing can be signed safely.
        """
        calls: list[tuple[str, list[Any]]] = [
            ("eth_getTransactionCount", [self.address, "latest"]),
            ("eth_getTransactionCount", [self.address, "pending"]),
        ]
        for attempt in range(_START_NONCE_TRIES):
            try:
                return _plausible_nonces(*await self._rpc.batch(calls))[1]
            except RpcUnavailable:
                raise
            except (ChainError, TypeError, ValueError) as exc:
                why = exc
            log.warning("start: unusable nonce answer from the node (%s); asking again", why)
            if attempt + 1 < _START_NONCE_TRIES:
                await asyncio.sleep(_START_NONCE_RETRY_S)
        raise ChainError(
            f"the node's transaction counts for {self.address} stayed unusable after "
            f"{_START_NONCE_TRIES} reads ({why}): nothing can be signed at a made-up nonce; "
            "check chain.rpc_url"
        )

    async def submit(self, intent: TxIntent) -> TxHandle:
        """Sign, journal and send `intent` at the next nonce.

        Idempotent by ``intent_id``: a known id returns its current handle, sends nothing.
        A broadcast the RPC could not deliver leaves the intent ``queued``; :meth:`poll` sends it.

        Raises
        ------
        GasOverBudget
            The next base fee is above the ceiling; nothing was journaled or sent.
        TxError
            Too many intents in flight, or the pipeline was not started.
        RpcUnavailable
            No fee quote could be fetched (nothing was journaled or sent).
        """
        async with self._lock:
            known = self._handle(intent.intent_id)
            if known is not None:
                return known
            self._check_started()
            in_flight = len(self._slots)
            if in_flight >= self.config.max_in_flight:
                raise TxError(
                    f"{in_flight} transactions in flight (max_in_flight): wait for inclusions"
                )
            fees = await self._fees_for(intent)
            nonce = self._take_nonce()
            live = _Live(intent, IntentStatus.QUEUED, nonce, self._clock())
            self._live[intent.intent_id] = live
            slot = _Slot(nonce)
            self._slots[nonce] = slot
            self._sign_into(slot, live, fees.max_fee_wei, fees.tip_wei)
            await self._broadcast_slot(slot, fresh=True)
            return self._handle_of(live)

    async def replace(self, intent_id: str, new: TxIntent) -> TxHandle:
        """Send `new` at the nonce of pending intent `intent_id`, with bumped fees.

        A newer decision replaces the pending one; whichever of the two is mined wins and the
        other ends ``replaced``. When `intent_id` is no longer pending (already mined, say), `new`
        is submitted at a fresh nonce instead, so a cancel-all is never lost.

        Raises
        ------
        GasOverBudget
            The bump needed for replacement would exceed the ceiling (the old tx stays pending).
        """
        async with self._lock:
            known = self._handle(new.intent_id)
            if known is not None:
                return known
            self._check_started()
            old = self._live.get(intent_id)
            slot = self._slots.get(old.nonce) if old is not None else None
            if old is None or old.status.terminal or slot is None:
                fees = await self._fees_for(new)
                nonce = self._take_nonce()
                slot = _Slot(nonce)
                self._slots[nonce] = slot
                live = _Live(new, IntentStatus.QUEUED, nonce, self._clock())
            else:
                live = _Live(
                    new, IntentStatus.QUEUED, slot.nonce, self._clock(), replaces=intent_id
                )
                fees = await self._fees_for(new)
                bumped = self._bumped(slot, new, fees)
                if bumped is None:
                    raise GasOverBudget(fees.base_fee_wei, self._ceiling_for(new))
                fees = FeeQuote(fees.base_fee_wei, bumped[1], bumped[0], fees.block, fees.fetched_s)
            self._live[new.intent_id] = live
            self._sign_into(slot, live, fees.max_fee_wei, fees.tip_wei)
            await self._broadcast_slot(slot, fresh=slot.attempts[0] is slot.latest)
            return self._handle_of(live)

    async def cancel(self, intent_id: str) -> TxHandle:
        """Cancel pending `intent_id` with a 0-value self-transfer at its nonce (bumped fees).

        Raises
        ------
        TxError
            The intent is not pending.
        GasOverBudget
            The ceiling does not allow the bump a replacement needs.
        """
        live = self._live.get(intent_id)
        if live is None or live.status.terminal:
            raise TxError(f"intent {intent_id!r} is not pending: nothing to cancel")
        return await self.replace(
            intent_id,
            TxIntent(
                intent_id=f"{intent_id}:cancel",
                purpose="cancel",
                to=self.address,
                gas_limit=_SELF_TRANSFER_GAS,
                max_fee_gwei=live.intent.max_fee_gwei,
            ),
        )

    def poll_reads(self) -> PollReads:
        """The reads the next :meth:`poll` starts with (see :class:`PollReads`)."""
        return PollReads(self._poll_calls(), self._epoch)

    async def poll(self, reads: PollReads | None = None) -> list[TxEvent]:
        """Advance every pending intent; return the events since the last call.

        Checks receipts of consumed nonces, re-broadcasts dropped transactions, speeds up stale
        ones, follows external nonce use and fills nonce gaps. An unreachable RPC is recorded in
        :attr:`health` and the poll ends early; it never raises for that.

        Parameters
        ----------
        reads
            The poll's first reads, already fetched by the caller (:meth:`poll_reads`); used
            only while still current, else read again.
        """
        async with self._lock:
            if self._started:
                try:
                    await self._poll_locked(reads)
                except RpcUnavailable as exc:
                    log.warning("poll skipped: %s", exc)
            events, self._events = self._events, []
            return events

    def status(self, intent_id: str) -> IntentStatus | None:
        """Return an intent's status (from memory or the journal), or None if unknown."""
        handle = self._handle(intent_id)
        return handle.status if handle is not None else None

    def pending(self) -> list[PendingTx]:
        """Return every unconfirmed intent, by nonce."""
        out = []
        for nonce in sorted(self._slots):
            slot = self._slots[nonce]
            for iid in slot.intent_ids():
                live = self._live[iid]
                if live.status.terminal:
                    continue
                mine = [a for a in slot.attempts if a.intent_id == iid]
                last = mine[-1]
                out.append(
                    PendingTx(
                        iid,
                        live.intent.purpose,
                        nonce,
                        last.tx_hash,
                        live.status,
                        last.max_fee_wei,
                        last.tip_wei,
                        live.first_sent_s,
                        len(mine),
                    )
                )
        return out

    async def preflight(self, intent: TxIntent) -> None:
        """Simulate `intent` with ``eth_call`` on the pending state.

        Raises
        ------
        agent.errors.TxReverted
            The call would revert; ``error_name`` is the decoded custom error when known.
        """
        try:
            await self._rpc.call("eth_call", [self._call_obj(intent), "pending"])
        except RpcError as exc:
            data = _revert_bytes(exc)
            if data is None:
                raise TxRevertedError(f"{intent.purpose} would fail: {exc.rpc_message}") from exc
            decoded = self._decoder.decode(data)
            raise TxRevertedError(
                f"{intent.purpose} would revert: {decoded.message}", decoded.name
            ) from exc

    def decode_revert(self, data: bytes) -> DecodedError:
        """Decode a revert payload against the configured ABIs."""
        return self._decoder.decode(data)

    # -- nonce and fee helpers -------------------------------------------------------------

    def _check_started(self) -> None:
        if not self._started or self._next_nonce is None:
            raise TxError("tx pipeline not started: await pipeline.start() first")

    def _take_nonce(self) -> int:
        assert self._next_nonce is not None
        nonce = self._next_nonce
        self._next_nonce += 1
        return nonce

    def _ceiling_for(self, intent: TxIntent) -> int:
        if intent.max_fee_gwei is not None:
            return gwei_to_wei(intent.max_fee_gwei)
        return self._ceiling_wei

    async def _refresh_fees(self) -> FeeQuote:
        history = await self._rpc.call(
            "eth_feeHistory",
            [hex(self.config.fee_history_blocks), "latest", [self.config.tip_percentile]],
        )
        # Quote against an unreachable ceiling so the cache holds the market, not a verdict.
        fees = quote_fees(history, self.config, 2**255, self._clock(), self._own_blocks)
        self._fees, self._block = fees, max(self._block, fees.block)
        return fees

    async def _fees_for(self, intent: TxIntent) -> FeeQuote:
        fees = self._fees
        blind = False
        if fees is None or self._clock() - fees.fetched_s > self.config.fee_max_age_s:
            try:
                fees = await self._refresh_fees()
            except RpcUnavailable:
                if intent.purpose != "cancel_all" or fees is None:
                    raise
                # The node's answers are lost or garbled, yet it may still take a transaction:
                # the fail-safe cancel-all goes out on the last fees known, its max fee at its
                # own ceiling (only base fee + tip is paid), rather than not at all.
                blind = True
        ceiling = self._ceiling_for(intent)
        if fees.base_fee_wei > ceiling:
            raise GasOverBudget(fees.base_fee_wei, ceiling)
        max_fee = ceiling if blind else min(fees.max_fee_wei, ceiling)
        return FeeQuote(
            fees.base_fee_wei, min(fees.tip_wei, max_fee), max_fee, fees.block, fees.fetched_s
        )

    def _bumped(
        self, slot: _Slot, intent: TxIntent, fresh: FeeQuote | None
    ) -> tuple[int, int] | None:
        prev_max = max(a.max_fee_wei for a in slot.attempts)
        prev_tip = max(a.tip_wei for a in slot.attempts)
        return bump_fees(prev_max, prev_tip, fresh, self.config.bump_pct, self._ceiling_for(intent))

    # -- signing, journaling, broadcasting -------------------------------------------------

    def _sign_into(self, slot: _Slot, live: _Live, max_fee_wei: int, tip_wei: int) -> _Attempt:
        """Sign `live` at the slot's nonce and journal it durably; return the new attempt."""
        i = live.intent
        signed = self._signer.sign(
            {
                "type": 2,
                "nonce": slot.nonce,
                # Addresses from logs and receipts come lower-case; the signer wants checksums.
                "to": to_checksum_address(i.to),
                "value": i.value_wei,
                "data": i.data,
                "gas": i.gas_limit,
                "maxFeePerGas": max_fee_wei,
                "maxPriorityFeePerGas": tip_wei,
            }
        )
        now = self._clock()
        attempt = _Attempt(signed.tx_hash, i.intent_id, signed.raw, max_fee_wei, tip_wei, now)
        live.nonce = slot.nonce
        self._journal.record_signed(
            self._intent_row(live, now), self._tx_row(slot.nonce, attempt, i.purpose)
        )
        slot.attempts.append(attempt)
        if self._fault is not None:
            self._fault("journaled")
        return attempt

    async def _send_raw(self, raw: bytes) -> tuple[_Outcome, str]:
        self._epoch += 1  # reads taken before this no longer show our nonces
        try:
            # Re-sending the same signed bytes is idempotent, so transport failures may retry.
            await self._rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        except RpcUnavailable as exc:
            return _Outcome.UNREACHABLE, str(exc)
        except RpcError as exc:
            return _classify(exc), exc.rpc_message
        return _Outcome.OK, ""

    async def _broadcast_slot(self, slot: _Slot, *, fresh: bool) -> None:
        """Broadcast the slot's latest attempt and handle the node's answer.

        `fresh` means no earlier attempt at this nonce was accepted by the node, so a nonce or
        pricing conflict is ours to resolve by moving to another nonce.
        """
        for _ in range(_MAX_RENONCE):
            attempt = slot.latest
            live = self._live[attempt.intent_id]
            outcome, why = await self._send_raw(attempt.raw)
            if self._fault is not None and outcome is _Outcome.OK:
                self._fault("broadcast")
            if outcome is _Outcome.OK:
                self._mark_sent(slot, attempt, live)
                return
            if outcome is _Outcome.UNREACHABLE:
                return  # journaled; poll re-broadcasts once the node is back
            if outcome is _Outcome.NONCE_CONSUMED:
                if await self._settle_if_ours(slot) or not fresh:
                    return
                await self._move_to_fresh_nonce(slot, live)
                continue
            if outcome is _Outcome.UNDERPRICED and fresh:
                # A tx we did not sign sits at this nonce in the pool: step past it.
                await self._move_to_fresh_nonce(slot, live)
                continue
            if outcome is _Outcome.FEE_TOO_LOW:
                fees = await self._refresh_fees()
                bumped = self._bumped(slot, live.intent, fees)
                if bumped is None:
                    self._report_stuck(slot, live)
                    return
                self._sign_into(slot, live, *bumped)
                continue
            if outcome is _Outcome.UNDERPRICED:
                return  # a replacement lost to a pricier pool tx; poll settles the nonce
            await self._refused(slot, live, why)
            return
        self._fail(slot, live, f"could not find a free nonce after {_MAX_RENONCE} tries")

    def _mark_sent(self, slot: _Slot, attempt: _Attempt, live: _Live) -> None:
        now = self._clock()
        attempt.sent_s, attempt.sent_block = now, self._block
        slot.dropped_since = None
        first = live.first_sent_s is None
        if first:
            live.first_sent_s, live.first_sent_block = now, self._block
        promote = live.status is IntentStatus.QUEUED
        if promote:
            live.status = IntentStatus.SENT
        self._journal.mark_sent(
            attempt.tx_hash, live.intent.intent_id if promote else None, now, self._block
        )
        log.debug(
            "sent %s %s nonce=%d tx=%s max_fee=%d tip=%d",
            live.intent.purpose,
            live.intent.intent_id,
            slot.nonce,
            attempt.tx_hash,
            attempt.max_fee_wei,
            attempt.tip_wei,
        )
        if first:
            self._emit(
                Sent(
                    live.intent.intent_id,
                    live.intent.purpose,
                    slot.nonce,
                    attempt.tx_hash,
                    attempt.max_fee_wei,
                    attempt.tip_wei,
                )
            )

    async def _move_to_fresh_nonce(self, slot: _Slot, live: _Live) -> None:
        """Re-sign a never-accepted intent at the next free nonce after a resync."""
        now = self._clock()
        for a in slot.attempts:
            self._journal.mark_tx(a.tx_hash, "failed", now)
        del self._slots[slot.nonce]
        _, pending = _plausible_nonces(
            *await self._rpc.batch(
                [
                    ("eth_getTransactionCount", [self.address, "latest"]),
                    ("eth_getTransactionCount", [self.address, "pending"]),
                ]
            )
        )
        assert self._next_nonce is not None
        self._next_nonce = max(self._next_nonce, pending)
        new_nonce = self._take_nonce()
        log.info(
            "nonce %d was taken outside this pipeline: %s moves to nonce %d",
            slot.nonce,
            live.intent.intent_id,
            new_nonce,
        )
        prev = slot.latest
        slot.nonce, slot.attempts = new_nonce, []
        self._slots[new_nonce] = slot
        self._sign_into(slot, live, prev.max_fee_wei, prev.tip_wei)

    async def _refused(self, slot: _Slot, live: _Live, why: str) -> None:
        """The node refused the intent for good: fail it and keep the nonce sequence whole."""
        accepted_before = any(a.sent_s is not None for a in slot.attempts)
        if accepted_before:
            return  # an earlier attempt is still in the pool; let poll settle the nonce
        self._fail(slot, live, why)
        assert self._next_nonce is not None
        if slot.nonce == self._next_nonce - 1:
            del self._slots[slot.nonce]
            self._next_nonce -= 1
        else:
            await self._fill_nonce(slot.nonce, slot)

    def _fail(self, slot: _Slot, live: _Live, why: str) -> None:
        now = self._clock()
        live.status = IntentStatus.FAILED
        for a in slot.attempts:
            if a.intent_id == live.intent.intent_id:
                self._journal.mark_tx(a.tx_hash, "failed", now)
        self._journal.mark_intent(live.intent.intent_id, "failed", now, error=why)
        log.warning("intent %s failed: %s", live.intent.intent_id, why)
        self._emit(Failed(live.intent.intent_id, live.intent.purpose, slot.nonce, why))

    async def _fill_nonce(self, nonce: int, slot: _Slot | None = None) -> None:
        """Occupy `nonce` with a 0-value self-transfer so later nonces are not blocked."""
        filler = TxIntent(
            intent_id=f"gap-fill:{self.address}:{nonce}:{self._clock():.6f}",
            purpose="gap_fill",
            to=self.address,
            gas_limit=_SELF_TRANSFER_GAS,
        )
        fees = self._fees or await self._refresh_fees()
        live = _Live(filler, IntentStatus.QUEUED, nonce, self._clock())
        self._live[filler.intent_id] = live
        if slot is None:
            slot = _Slot(nonce)
            self._slots[nonce] = slot
        if slot.attempts:
            bumped = bump_fees(
                max(a.max_fee_wei for a in slot.attempts),
                max(a.tip_wei for a in slot.attempts),
                fees,
                self.config.bump_pct,
                2**255,  # a filler unblocks the queue; it is 21k gas, so the ceiling is moot
            )
            assert bumped is not None
            max_fee, tip = bumped
        else:
            max_fee, tip = fees.max_fee_wei, fees.tip_wei
        log.info("filling nonce %d with a self-transfer", nonce)
        self._sign_into(slot, live, max_fee, tip)
        outcome, why = await self._send_raw(slot.latest.raw)
        if outcome is _Outcome.OK:
            self._mark_sent(slot, slot.latest, live)
        elif outcome is not _Outcome.UNREACHABLE:
            log.warning("gap filler at nonce %d not accepted: %s", nonce, why)

    def _report_stuck(self, slot: _Slot, live: _Live) -> None:
        if slot.stuck_reported:
            return
        slot.stuck_reported = True
        log.warning(
            "intent %s at nonce %d needs a speed-up above the fee ceiling",
            live.intent.intent_id,
            slot.nonce,
        )
        self._emit(
            StuckAtCeiling(
                live.intent.intent_id,
                live.intent.purpose,
                slot.nonce,
                slot.latest.tx_hash,
                slot.latest.max_fee_wei,
                self._ceiling_for(live.intent),
            )
        )

    # -- the poll ----------------------------------------------------------------------------

    def _poll_calls(self) -> tuple[tuple[str, list[Any]], ...]:
        return (
            ("eth_blockNumber", []),
            ("eth_getTransactionCount", [self.address, "latest"]),
            ("eth_getTransactionCount", [self.address, "pending"]),
            (
                "eth_feeHistory",
                [hex(self.config.fee_history_blocks), "latest", [self.config.tip_percentile]],
            ),
        )

    def _parse_poll_reads(self, res: Sequence[Any]) -> tuple[int, int, int, Any, FeeQuote]:
        """(block, latest nonce, pending nonce, fee history, fees) from the poll's four answers.

        Raises the answer's RpcError, or TypeError/ValueError/KeyError on a malformed answer.
        """
        for r in res:
            if isinstance(r, RpcError):
                raise r
        block_hex, latest_hex, pending_hex, history = res
        latest, pending = _plausible_nonces(latest_hex, pending_hex)
        fees = quote_fees(history, self.config, 2**255, self._clock(), self._own_blocks)
        return int(block_hex, 16), latest, pending, history, fees

    async def _poll_locked(self, reads: PollReads | None = None) -> None:
        parsed = None
        if (
            reads is not None
            and reads.results is not None
            and reads.epoch == self._epoch
            and reads.calls == self._poll_calls()
            and len(reads.results) == len(reads.calls)
        ):
            try:
                parsed = self._parse_poll_reads(reads.results)
            except (
                ChainError,
                TypeError,
                ValueError,
                KeyError,
                IndexError,
                ArithmeticError,
            ) as exc:
                # An error or a malformed answer inside the caller's batch: read again on our
                # own, where it is handled as it always was.
                log.debug("poll: prefetched reads unusable (%s); reading again", exc)
        self._epoch += 1
        if parsed is None:
            parsed = self._parse_poll_reads(await self._rpc.batch(list(self._poll_calls())))
        self._block, latest, pending, history, self._fees = parsed
        own_before = len(self._own_blocks)
        for nonce in sorted(self._slots):
            slot = self._slots.get(nonce)
            if slot is None:
                continue
            if nonce < latest:
                await self._settle(slot)
            else:
                await self._advance(slot)
        if len(self._own_blocks) != own_before:
            # Receipts just placed our transactions in blocks of this history: quote without them.
            self._fees = quote_fees(history, self.config, 2**255, self._clock(), self._own_blocks)
        horizon = self._block - 4 * self.config.fee_history_blocks
        self._own_blocks = {b for b in self._own_blocks if b > horizon}
        assert self._next_nonce is not None
        if not self._slots:
            # Nothing of ours in flight: the chain is the truth (external txs, node state loss).
            if pending != self._next_nonce:
                log.info("nonce resync: %d -> %d", self._next_nonce, pending)
            self._next_nonce = pending
            return
        if pending > self._next_nonce:
            log.info(
                "external transactions from %s: next nonce %d -> %d",
                self.address,
                self._next_nonce,
                pending,
            )
            self._next_nonce = pending
        for gap in range(max(latest, pending), max(self._slots)):
            if gap not in self._slots:
                await self._fill_nonce(gap)

    async def _receipts(self, slot: _Slot) -> dict[str, Any]:
        hashes = [a.tx_hash for a in slot.attempts]
        results = await self._rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        return {
            h: r
            for h, r in zip(hashes, results, strict=True)
            if r is not None and not isinstance(r, RpcError)
        }

    async def _settle_if_ours(self, slot: _Slot) -> bool:
        """Settle the slot if one of our attempts holds a receipt; True when settled."""
        receipts = await self._receipts(slot)
        if not receipts:
            return False
        await self._settle_with(slot, receipts)
        return True

    async def _settle(self, slot: _Slot) -> None:
        receipts = await self._receipts(slot)
        if receipts:
            await self._settle_with(slot, receipts)
            return
        slot.missing_receipt_polls += 1
        if slot.missing_receipt_polls < self.config.external_after_polls:
            return
        now = self._clock()
        intents = []
        for iid in slot.intent_ids():
            live = self._live[iid]
            if live.status.terminal:
                continue
            live.status = IntentStatus.REPLACED
            intents.append(
                (iid, "replaced", None, "nonce taken by a transaction not from this pipeline")
            )
            self._emit(Replaced(iid, live.intent.purpose, slot.nonce, None, None))
        log.warning("nonce %d was consumed by a transaction this pipeline did not sign", slot.nonce)
        self._journal.settle_nonce(intents, [(a.tx_hash, "replaced") for a in slot.attempts], now)
        del self._slots[slot.nonce]

    async def _settle_with(self, slot: _Slot, receipts: dict[str, Any]) -> None:
        tx_hash, receipt = next(iter(receipts.items()))
        winner = next(a for a in slot.attempts if a.tx_hash == tx_hash)
        live = self._live[winner.intent_id]
        now = self._clock()
        block = int(receipt["blockNumber"], 16)
        self._block = max(self._block, block)
        self._own_blocks.add(block)
        ok = int(receipt.get("status", "0x1"), 16) == 1
        sent_s = live.first_sent_s if live.first_sent_s is not None else winner.created_s
        sent_block = live.first_sent_block if live.first_sent_block is not None else block
        delay = DelaySample(
            tx_hash=tx_hash,
            intent_id=winner.intent_id,
            purpose=live.intent.purpose,
            submitted_s=sent_s,
            included_s=now,
            delay_s=max(0.0, now - sent_s),
            delay_blocks=max(0, block - sent_block),
            block_number=block,
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price_wei=int(receipt.get("effectiveGasPrice", "0x0"), 16),
        )
        intents: list[tuple[str, str, str | None, str | None]] = []
        event: TxEvent
        if ok:
            live.status = IntentStatus.INCLUDED
            intents.append((winner.intent_id, "included", tx_hash, None))
            event = Included(
                winner.intent_id, live.intent.purpose, slot.nonce, tx_hash, receipt, delay
            )
        else:
            decoded = await self._decode_mined_revert(live.intent, block)
            live.status = IntentStatus.REVERTED
            intents.append((winner.intent_id, "reverted", tx_hash, decoded.message))
            event = Reverted(
                winner.intent_id, live.intent.purpose, slot.nonce, tx_hash, receipt, decoded
            )
        losers: list[TxEvent] = []
        for iid in slot.intent_ids():
            other = self._live[iid]
            if iid == winner.intent_id or other.status.terminal:
                continue
            other.status = IntentStatus.REPLACED
            intents.append((iid, "replaced", None, f"nonce taken by {winner.intent_id}"))
            losers.append(
                Replaced(iid, other.intent.purpose, slot.nonce, winner.intent_id, tx_hash)
            )
        txs = [
            (a.tx_hash, "included" if ok else "reverted")
            if a is winner
            else (a.tx_hash, "replaced")
            for a in slot.attempts
        ]
        self._journal.settle_nonce(intents, txs, now, delay if ok else None)
        del self._slots[slot.nonce]
        self._emit(event)
        for e in losers:
            self._emit(e)

    async def _decode_mined_revert(self, intent: TxIntent, block: int) -> DecodedError:
        # Replay on the state before the block: exact unless an earlier tx in the same block
        # changed what the call depends on.
        call = self._call_obj(intent)
        try:
            await self._rpc.call("eth_call", [call, hex(max(0, block - 1))])
        except RpcError as exc:
            data = _revert_bytes(exc)
            if data is not None:
                return self._decoder.decode(data)
            return DecodedError(None, (), "0x", f"reverted: {exc.rpc_message}")
        return DecodedError(None, (), "0x", "reverted (the replay succeeded: state-dependent)")

    def _call_obj(self, intent: TxIntent) -> dict[str, Any]:
        return {
            "from": self.address,
            "to": intent.to,
            "data": "0x" + intent.data.hex(),
            "value": hex(intent.value_wei),
            "gas": hex(intent.gas_limit),
        }

    async def _advance(self, slot: _Slot) -> None:
        latest = slot.latest
        live = self._live[latest.intent_id]
        if latest.sent_s is None:
            await self._broadcast_slot(slot, fresh=all(a.sent_s is None for a in slot.attempts))
            return
        seen = await self._rpc.call("eth_getTransactionByHash", [latest.tx_hash])
        now = self._clock()
        if seen is None:
            await self._handle_drop(slot, live)
            return
        fees = self._fees
        stale = (
            self._block - (latest.sent_block or self._block) >= self.config.speedup_after_blocks
            or now - (latest.sent_s or now) >= self.config.speedup_after_s
            or (
                self.config.speedup_when_underpriced
                and fees is not None
                and latest.max_fee_wei < fees.base_fee_wei
            )
        )
        if stale:
            await self._speed_up(slot, live)

    async def _handle_drop(self, slot: _Slot, live: _Live) -> None:
        latest = slot.latest
        if slot.dropped_since is None:
            slot.dropped_since = self._clock()
            log.warning(
                "tx %s (nonce %d) left the pool: re-broadcasting", latest.tx_hash, slot.nonce
            )
            self._emit(
                Dropped(
                    live.intent.intent_id,
                    live.intent.purpose,
                    slot.nonce,
                    latest.tx_hash,
                    "rebroadcast",
                )
            )
        outcome, why = await self._send_raw(latest.raw)
        if outcome is _Outcome.OK:
            slot.dropped_since = None
            return
        if outcome is _Outcome.FEE_TOO_LOW:
            await self._speed_up(slot, live)
            return
        if outcome in (_Outcome.UNREACHABLE, _Outcome.NONCE_CONSUMED, _Outcome.UNDERPRICED):
            return  # next poll: retry, settle the nonce, or see who holds it
        # The node will not take it back (funds, gas rules): re-use the nonce for a filler.
        now = self._clock()
        live.status = IntentStatus.DROPPED
        self._journal.mark_intent(live.intent.intent_id, "dropped", now, error=why)
        for a in slot.attempts:
            self._journal.mark_tx(a.tx_hash, "dropped", now)
        self._emit(
            Dropped(
                live.intent.intent_id,
                live.intent.purpose,
                slot.nonce,
                latest.tx_hash,
                "nonce_reused",
            )
        )
        await self._fill_nonce(slot.nonce, slot)

    async def _speed_up(self, slot: _Slot, live: _Live) -> None:
        old = slot.latest
        bumped = self._bumped(slot, live.intent, self._fees)
        if bumped is None:
            self._report_stuck(slot, live)
            return
        attempt = self._sign_into(slot, live, *bumped)
        log.info(
            "speeding up %s nonce=%d: max fee %d -> %d, tip %d -> %d",
            live.intent.intent_id,
            slot.nonce,
            old.max_fee_wei,
            attempt.max_fee_wei,
            old.tip_wei,
            attempt.tip_wei,
        )
        await self._broadcast_slot(slot, fresh=False)
        if attempt.sent_s is not None:
            self._emit(
                SpedUp(
                    live.intent.intent_id,
                    live.intent.purpose,
                    slot.nonce,
                    old.tx_hash,
                    attempt.tx_hash,
                    attempt.max_fee_wei,
                    attempt.tip_wei,
                )
            )

    # -- recovery, handles, events ---------------------------------------------------------

    def _reload(self, row: IntentRow) -> None:
        intent = TxIntent(
            intent_id=row.intent_id,
            purpose=row.purpose,
            to=row.to,
            data=row.data,
            value_wei=row.value_wei,
            gas_limit=row.gas_limit,
            max_fee_gwei=None if row.max_fee_cap_wei is None else row.max_fee_cap_wei / _GWEI,
        )
        txs = [t for t in self._journal.txs_for(row.intent_id) if t.status in ("signed", "sent")]
        if row.nonce is None or not txs:
            return
        live = _Live(intent, IntentStatus(row.status), row.nonce, row.created_s, row.replaces)
        sent = [t for t in txs if t.sent_s is not None]
        if sent:
            live.first_sent_s, live.first_sent_block = sent[0].sent_s, sent[0].sent_block
        self._live[row.intent_id] = live
        slot = self._slots.setdefault(row.nonce, _Slot(row.nonce))
        for t in txs:
            slot.attempts.append(
                _Attempt(
                    t.tx_hash,
                    t.intent_id,
                    t.raw,
                    t.max_fee_wei,
                    t.tip_wei,
                    t.created_s,
                    t.sent_s,
                    t.sent_block,
                )
            )
        slot.attempts.sort(key=lambda a: a.created_s)

    def _handle(self, intent_id: str) -> TxHandle | None:
        live = self._live.get(intent_id)
        if live is not None:
            return self._handle_of(live)
        row = self._journal.intent(intent_id)
        if row is None:
            return None
        return TxHandle(row.intent_id, row.nonce, row.tx_hash, IntentStatus(row.status), row.error)

    def _handle_of(self, live: _Live) -> TxHandle:
        slot = self._slots.get(live.nonce)
        tx_hash = None
        if slot is not None:
            mine = [a for a in slot.attempts if a.intent_id == live.intent.intent_id]
            tx_hash = mine[-1].tx_hash if mine else None
        if tx_hash is None:
            row = self._journal.intent(live.intent.intent_id)
            tx_hash = row.tx_hash if row is not None else None
        return TxHandle(live.intent.intent_id, live.nonce, tx_hash, live.status)

    def _intent_row(self, live: _Live, now: float) -> IntentRow:
        i = live.intent
        return IntentRow(
            intent_id=i.intent_id,
            purpose=i.purpose,
            to=i.to,
            data=i.data,
            value_wei=i.value_wei,
            gas_limit=i.gas_limit,
            max_fee_cap_wei=None if i.max_fee_gwei is None else gwei_to_wei(i.max_fee_gwei),
            nonce=live.nonce,
            status=str(live.status),
            replaces=live.replaces,
            tx_hash=None,
            error=None,
            created_s=live.created_s,
            updated_s=now,
        )

    @staticmethod
    def _tx_row(nonce: int, a: _Attempt, purpose: str) -> TxRow:
        return TxRow(
            tx_hash=a.tx_hash,
            intent_id=a.intent_id,
            nonce=nonce,
            raw=a.raw,
            purpose=purpose,
            max_fee_wei=a.max_fee_wei,
            tip_wei=a.tip_wei,
            status="signed",
            created_s=a.created_s,
            sent_s=None,
            sent_block=None,
            updated_s=a.created_s,
        )

    def _emit(self, event: TxEvent) -> None:
        self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)
