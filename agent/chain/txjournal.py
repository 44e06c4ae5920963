"""What the transaction pipeline needs from a journal, owned by the pipeline.

:class:`~agent.chain.txpipe.TxPipeline` writes every intent and signed transaction before it is
broadcast and settles them after; it depends on :class:`TxJournal`, not on the SQLite journal
(``agent.store``), so loading the pipeline never loads the store or what the store knows of
(the hedger's records). ``agent.store.Journal`` implements this protocol; the rows below are
its currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DelaySample", "IntentRow", "TxJournal", "TxRow"]


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A journaled intent (see :mod:`agent.chain.txpipe` for the lifecycle)."""

    intent_id: str
    purpose: str
    to: str
    data: bytes
    value_wei: int
    gas_limit: int
    max_fee_cap_wei: int | None
    nonce: int | None
    status: str
    replaces: str | None
    tx_hash: str | None
    error: str | None
    created_s: float
    updated_s: float


@dataclass(frozen=True, slots=True)
class TxRow:
    """A journaled signed transaction (one attempt at a nonce)."""

    tx_hash: str
    intent_id: str
    nonce: int
    raw: bytes
    purpose: str
    max_fee_wei: int
    tip_wei: int
    status: str
    created_s: float
    sent_s: float | None
    sent_block: int | None
    updated_s: float


@dataclass(frozen=True, slots=True)
class DelaySample:
    """Submit → inclusion delay of one included transaction."""

    tx_hash: str
    intent_id: str
    purpose: str
    submitted_s: float
    included_s: float
    delay_s: float
    delay_blocks: int
    block_number: int
    gas_used: int
    effective_gas_price_wei: int


class TxJournal(Protocol):
    """The pipeline's durable record: intents, their signed transactions, inclusion delays."""

    def record_signed(self, intent: IntentRow, tx: TxRow) -> None:
        """Durably write an intent and its new signed tx in one commit, before broadcast."""
        ...

    def mark_sent(self, tx_hash: str, intent_id: str | None, now_s: float, sent_block: int) -> None:
        """Record that the node accepted `tx_hash` (and its intent, when given)."""
        ...

    def mark_tx(
        self,
        tx_hash: str,
        status: str,
        now_s: float,
        *,
        sent_s: float | None = None,
        sent_block: int | None = None,
    ) -> None:
        """Set a tx's status (and its first send time/block when given)."""
        ...

    def mark_intent(
        self,
        intent_id: str,
        status: str,
        now_s: float,
        *,
        tx_hash: str | None = None,
        error: str | None = None,
        nonce: int | None = None,
    ) -> None:
        """Set an intent's status, and its final tx hash, error or nonce when given."""
        ...

    def settle_nonce(
        self,
        intents: Sequence[tuple[str, str, str | None, str | None]],
        txs: Sequence[tuple[str, str]],
        now_s: float,
        delay: DelaySample | None = None,
    ) -> None:
        """Record the outcome of a consumed nonce in one commit."""
        ...

    def intent(self, intent_id: str) -> IntentRow | None:
        """Return one intent, or None."""
        ...

    def open_intents(self) -> list[IntentRow]:
        """Return intents still queued or sent, by nonce."""
        ...

    def txs_for(self, intent_id: str) -> list[TxRow]:
        """Return an intent's signed transactions, oldest first."""
        ...
