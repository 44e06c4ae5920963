"""The agent's crash-safe journal: one SQLite file in WAL mode.

What lives here, and why it must survive a ``kill -9``:

==================  ==========================================================================
``intents``         every transaction intent (idempotency key chosen by the caller) and its state
``txs``             every signed transaction, raw bytes included, written *before* broadcast
``inclusion``       submit → inclusion delay samples, for the model's delay estimator
``orders``          our on-chain orders (client id, order id, side, tick, lots, status, tx hash)
``fills``           confirmed fills, unique by (tx hash, log index): inserting twice is a no-op
``funding``         funding payments, unique by (tx hash, log index)
``decisions``       each quoting decision as JSON (cost terms, risk state)
``risk``            risk-state transitions
``pnl``             P&L snapshots
``hedges``          CEX hedge orders (implements ``agent.hedge.hedger.HedgeJournal``)
``risk_memory``     the risk engine's memory (state, drawdown peak, escalations): one row
``estimators``      learnt estimator state by name (the quote fill-intensity fit), JSON
``identity``        the chain, account and market this journal belongs to (:meth:`Journal.bind`)
==================  ==========================================================================

Durability: WAL journal mode with ``synchronous=FULL``, so a committed write (in particular the
signed transaction written before it is broadcast) is on disk when :meth:`Journal` returns.
``Journal(path, fsync=False)`` uses ``synchronous=NORMAL`` instead: a commit is in the WAL (in the
OS page cache) when it returns, which survives the agent being killed (``kill -9``) but not a power
loss or kernel crash; it removes the 2-8 ms fsync from the broadcast path. After such a loss the
pipeline sees the lost transaction's nonce as taken by "someone else" and the runtime re-decides, so
nothing is sent twice; only the journal's record of that transaction is missing.
Decision records (``decisions``: the audit trail of what the model decided and why) are buffered
in memory and written with the next commit of any kind, by :meth:`Journal.flush`, by
:meth:`Journal.checkpoint` or :meth:`Journal.close`, or once :data:`DECISION_BUFFER_ROWS` wait: a
``kill -9`` loses at most those rows. Nothing that guards against sending twice is ever deferred:
intents, signed transactions, orders, fills, funding, hedges, risk transitions and estimator state
are committed before their method returns, as before. Measured need: one commit per decision was
about 5% of an event-simulator decision.
Big integers (wei, and order ids, which encode side, tick and a sequence in 113 bits) are stored
as decimal TEXT: SQLite integers stop at 2**63.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds one step per
version and runs in a transaction on open. Use the journal from one thread (the asyncio loop).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.chain.txjournal import DelaySample, IntentRow, TxRow
from agent.errors import ConfigError
from agent.hedge.hedger import HedgeRecord
from agent.types import Fill, Lots, Side, Tick

__all__ = [
    "DECISION_BUFFER_ROWS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DelaySample",
    "IntentRow",
    "Journal",
    "OrderRow",
    "TxRow",
]

Migration = Callable[[sqlite3.Connection], None]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, which would break the migration's transaction.
    for stmt in script.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE intents (
            intent_id   TEXT PRIMARY KEY,
            purpose     TEXT NOT NULL,
            to_addr     TEXT NOT NULL,
            data        BLOB NOT NULL,
            value_wei   TEXT NOT NULL,
            gas_limit   INTEGER NOT NULL,
            max_fee_cap_wei TEXT,
            nonce       INTEGER,
            status      TEXT NOT NULL,
            replaces    TEXT,
            tx_hash     TEXT,
            error       TEXT,
            created_s   REAL NOT NULL,
            updated_s   REAL NOT NULL
        );
        CREATE INDEX intents_open ON intents(status) WHERE status IN ('queued', 'sent');
        CREATE TABLE txs (
            tx_hash     TEXT PRIMARY KEY,
            intent_id   TEXT NOT NULL REFERENCES intents(intent_id),
            nonce       INTEGER NOT NULL,
            raw         BLOB NOT NULL,
            purpose     TEXT NOT NULL,
            max_fee_wei TEXT NOT NULL,
            tip_wei     TEXT NOT NULL,
            status      TEXT NOT NULL,
            created_s   REAL NOT NULL,
            sent_s      REAL,
            sent_block  INTEGER,
            updated_s   REAL NOT NULL
        );
        CREATE INDEX txs_intent ON txs(intent_id);
        CREATE TABLE inclusion (
            tx_hash     TEXT PRIMARY KEY,
            intent_id   TEXT NOT NULL,
            purpose     TEXT NOT NULL,
            submitted_s REAL NOT NULL,
            included_s  REAL NOT NULL,
            delay_s     REAL NOT NULL,
            delay_blocks INTEGER NOT NULL,
            block_number INTEGER NOT NULL,
            gas_used    INTEGER NOT NULL,
            effective_gas_price_wei TEXT NOT NULL
        );
        CREATE TABLE orders (
            client_id   INTEGER PRIMARY KEY,
            order_id    TEXT UNIQUE,
            side        INTEGER NOT NULL,
            tick        INTEGER NOT NULL,
            lots        INTEGER NOT NULL,
            status      TEXT NOT NULL,
            tx_hash     TEXT,
            updated_ms  INTEGER NOT NULL
        );
        CREATE TABLE fills (
            tx_hash     TEXT NOT NULL,
            log_index   INTEGER NOT NULL,
            order_id    TEXT NOT NULL,
            side        INTEGER NOT NULL,
            tick        INTEGER NOT NULL,
            lots        INTEGER NOT NULL,
            fee_raw     TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            recorded_ms INTEGER NOT NULL,
            PRIMARY KEY (tx_hash, log_index)
        );
        CREATE TABLE funding (
            tx_hash     TEXT NOT NULL,
            log_index   INTEGER NOT NULL,
            market      TEXT NOT NULL,
            amount_raw  TEXT NOT NULL,
            rate        REAL NOT NULL,
            block_number INTEGER NOT NULL,
            ts_ms       INTEGER NOT NULL,
            PRIMARY KEY (tx_hash, log_index)
        );
        CREATE TABLE decisions (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_ms       INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            payload     TEXT NOT NULL
        );
        CREATE TABLE risk (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_ms       INTEGER NOT NULL,
            from_state  TEXT NOT NULL,
            to_state    TEXT NOT NULL,
            reason      TEXT NOT NULL,
            payload     TEXT NOT NULL
        );
        CREATE TABLE pnl (
            ts_ms       INTEGER PRIMARY KEY,
            realized    REAL NOT NULL,
            unrealized  REAL NOT NULL,
            fees        REAL NOT NULL,
            funding     REAL NOT NULL,
            gas         REAL NOT NULL,
            inventory_lots INTEGER NOT NULL
        );
        CREATE TABLE hedges (
            client_order_id TEXT PRIMARY KEY,
            intent_id   TEXT NOT NULL,
            symbol      TEXT NOT NULL,
            side        TEXT NOT NULL,
            qty         REAL NOT NULL,
            status      TEXT NOT NULL,
            filled_qty  REAL NOT NULL,
            avg_price   REAL NOT NULL,
            created_ms  INTEGER NOT NULL,
            updated_ms  INTEGER NOT NULL
        );
        """,
    )


def _v2(db: sqlite3.Connection) -> None:
    # One row: the latest risk memory replaces the previous one (history is in ``risk``).
    _run_script(
        db,
        """
        CREATE TABLE risk_memory (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            ts_ms       INTEGER NOT NULL,
            payload     TEXT NOT NULL
        );
        """,
    )


def _v3(db: sqlite3.Connection) -> None:
    # What the model learnt must outlive a restart: an hour of fills is worth keeping.
    db.execute(
        """
        CREATE TABLE estimators (
            name        TEXT PRIMARY KEY,
            state       TEXT NOT NULL,
            updated_ms  INTEGER NOT NULL
        )
        """
    )


def _v4(db: sqlite3.Connection) -> None:
    # A journal holds one key's nonces and orders on one market: what it belongs to is kept, so
    # another account or market started on it is refused instead of adopting its intents.
    db.execute("CREATE TABLE identity (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


MIGRATIONS: tuple[Migration, ...] = (_v1, _v2, _v3, _v4)
"""Step ``i`` moves the schema from version ``i`` to ``i + 1``; append, never edit."""
SCHEMA_VERSION = len(MIGRATIONS)

DECISION_BUFFER_ROWS = 64
"""Decision records held in memory at most before they are written (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One of our on-chain orders as last journaled."""

    client_id: int
    order_id: int | None
    side: Side
    tick: int
    lots: int
    status: str
    tx_hash: str | None
    updated_ms: int


class Journal:
    """The SQLite journal. Open one per process; use it from the event-loop thread.

    Parameters
    ----------
    path
        Database file, or ``":memory:"`` for unit tests.
    migrations
        Schema steps to apply (the hook for tests and future versions).

    Raises
    ------
    ConfigError
        The file was written by a newer agent (schema version above what this code knows).
    """

    def __init__(
        self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS, *, fsync: bool = True
    ) -> None:
        self.path = str(path)
        self.fsync = fsync
        self._decisions_buf: list[tuple[int, str, str]] = []
        """Decision rows not yet written (see the module docstring); go in the next commit."""
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so write boundaries are explicit.
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"storage.journal_file: cannot open {self.path} ({exc}): check storage.data_dir "
                "and storage.journal_file"
            ) from None
        try:
            # Read before anything is written: a file that is no journal is left as it was.
            fresh = int(self._db.execute("PRAGMA user_version").fetchone()[0]) == 0
            if fresh and self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                raise sqlite3.DatabaseError("an SQLite file of another program")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Checkpoints copy the WAL into the database file and fsync it. SQLite runs one
            # inside whichever commit crosses 1000 pages, which would land on the broadcast path;
            # the owner calls checkpoint() when it has time (the runtime: after each cycle's send).
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate(migrations)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            # Not deleted or rewritten here: a damaged journal may still hold signed transactions.
            raise ConfigError(
                f"journal {self.path} is not a journal this agent can open ({exc}): move it "
                "aside (keep it: it may hold signed transactions) and start on an empty "
                "storage.data_dir, or restore it from a backup"
            ) from None
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(migrations):
            raise ConfigError(
                f"journal {self.path} has schema version {version}, newer than this agent's "
                f"{len(migrations)}: upgrade the agent or point it at another data dir"
            )
        for step in range(version, len(migrations)):
            with self._tx():
                migrations[step](self._db)
                self._db.execute(f"PRAGMA user_version={step + 1}")

    def bind(self, **identity: str) -> None:
        """Record what this journal belongs to on first use; refuse anything else afterwards.

        Parameters
        ----------
        identity
            ``chain_id``, ``account``, ``market``... as text (addresses compared lower-case).

        Raises
        ------
        ConfigError
            The journal was written for another value of one of them.
        """
        want = {k: v.lower() for k, v in identity.items()}
        have = dict(self._db.execute("SELECT key, value FROM identity").fetchall())
        differ = [k for k, v in want.items() if k in have and have[k] != v]
        if differ:
            was = ", ".join(f"{k} {have[k]}" for k in want if k in have)
            now = ", ".join(f"{k} {want[k]}" for k in differ)
            raise ConfigError(
                f"storage.data_dir: journal {self.path} belongs to {was}; this config is {now}: "
                "give each account and market its own storage.data_dir (a journal holds one "
                "key's nonces and orders; started on another it would re-send them)"
            )
        new = [(k, v) for k, v in want.items() if k not in have]
        if new:
            with self._tx():
                self._db.executemany("INSERT INTO identity (key, value) VALUES (?, ?)", new)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def checkpoint(self) -> None:
        """Write buffered decisions, then fold the WAL into the database file (call off the
        latency-critical path)."""
        self.flush()
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def flush(self) -> None:
        """Write the buffered decision records now (one commit, not fsync'd)."""
        if self._decisions_buf:
            with self._tx(durable=False):
                pass  # _tx writes the buffer inside the transaction

    def close(self) -> None:
        """Write buffered decisions and close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
            self.flush()
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        # durable=False skips the fsync for writes a crash may lose harmlessly; the WAL keeps
        # them ordered, and the next durable commit syncs them too.
        relax = not durable and self.fsync
        if relax:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            # Buffered decision rows ride in this commit; kept until it succeeds.
            pending = len(self._decisions_buf)
            try:
                if pending:
                    self._db.executemany(
                        "INSERT INTO decisions (ts_ms, kind, payload) VALUES (?,?,?)",
                        self._decisions_buf[:pending],
                    )
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if pending:
                del self._decisions_buf[:pending]
        finally:
            if relax:
                self._db.execute("PRAGMA synchronous=FULL")

    # -- intents and transactions ----------------------------------------------------------

    def record_signed(self, intent: IntentRow, tx: TxRow) -> None:
        """Durably write an intent (inserted or updated) and its new signed tx, in one commit.

        Called before the tx is broadcast: after a crash the bytes are here to re-broadcast.
        """
        with self._tx() as db:
            db.execute(
                "INSERT INTO intents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(intent_id) DO UPDATE SET nonce=excluded.nonce, "
                "status=excluded.status, updated_s=excluded.updated_s",
                _intent_params(intent),
            )
            db.execute(
                "INSERT INTO txs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    tx.tx_hash,
                    tx.intent_id,
                    tx.nonce,
                    tx.raw,
                    tx.purpose,
                    str(tx.max_fee_wei),
                    str(tx.tip_wei),
                    tx.status,
                    tx.created_s,
                    tx.sent_s,
                    tx.sent_block,
                    tx.updated_s,
                ),
            )

    def mark_sent(self, tx_hash: str, intent_id: str | None, now_s: float, sent_block: int) -> None:
        """Record that the node accepted `tx_hash` (and its intent, when given), in one commit.

        Not fsync'd: if a crash loses this, recovery re-broadcasts the same bytes, which the
        node answers with "already known" (or the receipt settles it). One fsync per send is
        the price of durability; two would be waste.
        """
        with self._tx(durable=False) as db:
            db.execute(
                "UPDATE txs SET status='sent', updated_s=?, sent_s=COALESCE(sent_s, ?), "
                "sent_block=COALESCE(sent_block, ?) WHERE tx_hash=?",
                (now_s, now_s, sent_block, tx_hash),
            )
            if intent_id is not None:
                db.execute(
                    "UPDATE intents SET status='sent', updated_s=?, tx_hash=? WHERE intent_id=?",
                    (now_s, tx_hash, intent_id),
                )

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
        with self._tx() as db:
            db.execute(
                "UPDATE txs SET status=?, updated_s=?, sent_s=COALESCE(sent_s, ?), "
                "sent_block=COALESCE(sent_block, ?) WHERE tx_hash=?",
                (status, now_s, sent_s, sent_block, tx_hash),
            )

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
        with self._tx() as db:
            db.execute(
                "UPDATE intents SET status=?, updated_s=?, tx_hash=COALESCE(?, tx_hash), "
                "error=COALESCE(?, error), nonce=COALESCE(?, nonce) WHERE intent_id=?",
                (status, now_s, tx_hash, error, nonce, intent_id),
            )

    def settle_nonce(
        self,
        intents: Sequence[tuple[str, str, str | None, str | None]],
        txs: Sequence[tuple[str, str]],
        now_s: float,
        delay: DelaySample | None = None,
    ) -> None:
        """Record the outcome of a consumed nonce in one commit.

        `intents` are (intent id, status, final tx hash, error); `txs` are (tx hash, status).
        """
        with self._tx() as db:
            for intent_id, status, tx_hash, error in intents:
                db.execute(
                    "UPDATE intents SET status=?, updated_s=?, tx_hash=COALESCE(?, tx_hash), "
                    "error=COALESCE(?, error) WHERE intent_id=?",
                    (status, now_s, tx_hash, error, intent_id),
                )
            db.executemany(
                "UPDATE txs SET status=?, updated_s=? WHERE tx_hash=?",
                [(status, now_s, h) for h, status in txs],
            )
            if delay is not None:
                db.execute(
                    "INSERT OR IGNORE INTO inclusion VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        delay.tx_hash,
                        delay.intent_id,
                        delay.purpose,
                        delay.submitted_s,
                        delay.included_s,
                        delay.delay_s,
                        delay.delay_blocks,
                        delay.block_number,
                        delay.gas_used,
                        str(delay.effective_gas_price_wei),
                    ),
                )

    def intent(self, intent_id: str) -> IntentRow | None:
        """Return one intent, or None."""
        row = self._db.execute("SELECT * FROM intents WHERE intent_id=?", (intent_id,)).fetchone()
        return _intent_row(row) if row is not None else None

    def open_intents(self) -> list[IntentRow]:
        """Return intents still queued or sent, by nonce (what a restart must resume)."""
        rows = self._db.execute(
            "SELECT * FROM intents WHERE status IN ('queued', 'sent') ORDER BY nonce, created_s"
        ).fetchall()
        return [_intent_row(r) for r in rows]

    def txs_for(self, intent_id: str) -> list[TxRow]:
        """Return an intent's signed transactions, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM txs WHERE intent_id=? ORDER BY created_s, rowid", (intent_id,)
        ).fetchall()
        return [_tx_row(r) for r in rows]

    def txs_at_nonce(self, nonce: int) -> list[TxRow]:
        """Return every signed transaction at `nonce`, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM txs WHERE nonce=? ORDER BY created_s, rowid", (nonce,)
        ).fetchall()
        return [_tx_row(r) for r in rows]

    def count_txs(self) -> int:
        """Return how many signed transactions were ever journaled."""
        return int(self._db.execute("SELECT COUNT(*) FROM txs").fetchone()[0])

    def inclusion_delays(self, since_s: float = 0.0) -> list[DelaySample]:
        """Return delay samples included at or after `since_s`, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM inclusion WHERE included_s >= ? ORDER BY included_s", (since_s,)
        ).fetchall()
        return [
            DelaySample(
                tx_hash=r[0],
                intent_id=r[1],
                purpose=r[2],
                submitted_s=r[3],
                included_s=r[4],
                delay_s=r[5],
                delay_blocks=r[6],
                block_number=r[7],
                gas_used=r[8],
                effective_gas_price_wei=int(r[9]),
            )
            for r in rows
        ]

    # -- orders, fills, funding ------------------------------------------------------------

    def upsert_order(
        self,
        client_id: int,
        side: Side,
        tick: int,
        lots: int,
        status: str,
        updated_ms: int,
        *,
        order_id: int | None = None,
        tx_hash: str | None = None,
    ) -> None:
        """Insert or update one of our orders, keyed by the client id we chose."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(client_id) DO UPDATE SET "
                "order_id=COALESCE(excluded.order_id, order_id), side=excluded.side, "
                "tick=excluded.tick, lots=excluded.lots, status=excluded.status, "
                "tx_hash=COALESCE(excluded.tx_hash, tx_hash), updated_ms=excluded.updated_ms",
                (
                    client_id,
                    None if order_id is None else str(order_id),
                    int(side),
                    tick,
                    lots,
                    status,
                    tx_hash,
                    updated_ms,
                ),
            )

    def orders(self, status: str | None = None) -> list[OrderRow]:
        """Return our orders (only those with `status` when given), by client id."""
        if status is None:
            rows = self._db.execute("SELECT * FROM orders ORDER BY client_id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM orders WHERE status=? ORDER BY client_id", (status,)
            ).fetchall()
        return [
            OrderRow(r[0], None if r[1] is None else int(r[1]), Side(r[2]), *r[3:8]) for r in rows
        ]

    def insert_fill(self, fill: Fill, recorded_ms: int) -> bool:
        """Record a fill; return False when (tx hash, log index) was already recorded."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    fill.tx_hash,
                    fill.log_index,
                    str(fill.order_id),
                    int(fill.side),
                    int(fill.price_ticks),
                    int(fill.size_lots),
                    str(fill.fee_raw),
                    fill.block_number,
                    recorded_ms,
                ),
            )
        return cur.rowcount == 1

    def remove_fill(self, tx_hash: str, log_index: int) -> bool:
        """Delete a fill a chain reorganisation removed; False when it was not recorded."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM fills WHERE tx_hash=? AND log_index=?", (tx_hash, log_index)
            )
        return cur.rowcount == 1

    def fills(self, since_block: int = 0) -> list[Fill]:
        """Return recorded fills from `since_block` on, in chain order."""
        rows = self._db.execute(
            "SELECT order_id, side, tick, lots, fee_raw, block_number, tx_hash, log_index "
            "FROM fills WHERE block_number >= ? ORDER BY block_number, log_index",
            (since_block,),
        ).fetchall()
        return [
            Fill(int(r[0]), Side(r[1]), Tick(r[2]), Lots(r[3]), int(r[4]), r[5], r[6], r[7])
            for r in rows
        ]

    def insert_funding(
        self,
        tx_hash: str,
        log_index: int,
        market: str,
        amount_raw: int,
        rate: float,
        block_number: int,
        ts_ms: int,
    ) -> bool:
        """Record a funding payment (signed raw amount); False when already recorded."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO funding VALUES (?,?,?,?,?,?,?)",
                (tx_hash, log_index, market, str(amount_raw), rate, block_number, ts_ms),
            )
        return cur.rowcount == 1

    def funding_total_raw(self, market: str) -> int:
        """Return the sum of funding payments recorded for `market` (raw units, signed)."""
        rows = self._db.execute("SELECT amount_raw FROM funding WHERE market=?", (market,))
        return sum(int(r[0]) for r in rows)

    # -- decisions, risk, P&L ---------------------------------------------------------------

    def record_decision(self, ts_ms: int, kind: str, payload: dict[str, Any]) -> None:
        """Append a decision (cost terms, risk state...) as JSON.

        Buffered, not committed here (an audit record: losing the last few to a crash adds no
        exposure); written in order with the next commit, see the module docstring.
        """
        self._decisions_buf.append((ts_ms, kind, json.dumps(payload, sort_keys=True)))
        if len(self._decisions_buf) >= DECISION_BUFFER_ROWS:
            self.flush()

    def decisions(self, since_ms: int = 0, limit: int = 1000) -> list[tuple[int, str, Any]]:
        """Return (ts_ms, kind, payload) decisions from `since_ms` on, oldest first."""
        self.flush()
        rows = self._db.execute(
            "SELECT ts_ms, kind, payload FROM decisions WHERE ts_ms >= ? ORDER BY id LIMIT ?",
            (since_ms, limit),
        ).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def record_risk_transition(
        self,
        ts_ms: int,
        from_state: str,
        to_state: str,
        reason: str,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Append a risk-state transition."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO risk (ts_ms, from_state, to_state, reason, payload) "
                "VALUES (?,?,?,?,?)",
                (ts_ms, from_state, to_state, reason, json.dumps(payload or {}, sort_keys=True)),
            )

    def save_risk_memory(self, ts_ms: int, memory: dict[str, Any]) -> None:
        """Replace the stored risk memory (``RiskEngine.memory()``); cheap, not fsynced."""
        with self._tx(durable=False) as db:
            db.execute(
                "INSERT OR REPLACE INTO risk_memory (id, ts_ms, payload) VALUES (1, ?, ?)",
                (ts_ms, json.dumps(memory, sort_keys=True)),
            )

    def risk_memory(self) -> dict[str, Any] | None:
        """Return the last saved risk memory, or None when none was saved."""
        row = self._db.execute("SELECT payload FROM risk_memory WHERE id = 1").fetchone()
        if row is None:
            return None
        out = json.loads(row[0])
        return out if isinstance(out, dict) else None

    def save_estimator(self, name: str, state: dict[str, Any], ts_ms: int) -> None:
        """Store (replace) the state of the estimator called `name` as JSON."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO estimators (name, state, updated_ms) VALUES (?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET state=excluded.state, "
                "updated_ms=excluded.updated_ms",
                (name, json.dumps(state, sort_keys=True), ts_ms),
            )

    def load_estimator(self, name: str) -> dict[str, Any] | None:
        """Return the stored state of the estimator called `name` (None when never saved)."""
        row = self._db.execute("SELECT state FROM estimators WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        return state if isinstance(state, dict) else None

    def risk_transitions(self, since_ms: int = 0) -> list[tuple[int, str, str, str]]:
        """Return (ts_ms, from, to, reason) transitions from `since_ms` on, oldest first."""
        rows = self._db.execute(
            "SELECT ts_ms, from_state, to_state, reason FROM risk WHERE ts_ms >= ? ORDER BY id",
            (since_ms,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def record_pnl(
        self,
        ts_ms: int,
        *,
        realized: float,
        unrealized: float,
        fees: float,
        funding: float,
        gas: float,
        inventory_lots: int,
    ) -> None:
        """Write a P&L snapshot (quote-currency floats); a second one at `ts_ms` replaces it."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO pnl VALUES (?,?,?,?,?,?,?)",
                (ts_ms, realized, unrealized, fees, funding, gas, inventory_lots),
            )

    def latest_pnl(self) -> dict[str, float] | None:
        """Return the latest P&L snapshot as a dict, or None."""
        cur = self._db.execute("SELECT * FROM pnl ORDER BY ts_ms DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        return {d[0]: float(v) for d, v in zip(cur.description, row, strict=True)}

    # -- hedges (the hedger's store protocol) ---------------------------------------------

    def record_hedge_intent(
        self,
        intent_id: str,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: float,
        created_ms: int,
    ) -> None:
        """Record a hedge order before it is sent; recording the same order again is a no-op."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO hedges VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    client_order_id,
                    intent_id,
                    symbol,
                    side,
                    qty,
                    "new",
                    0.0,
                    0.0,
                    created_ms,
                    created_ms,
                ),
            )

    def update_hedge(
        self,
        client_order_id: str,
        status: str,
        filled_qty: float,
        avg_price: float,
        updated_ms: int,
    ) -> None:
        """Update a hedge order's status and fills (older updates never overwrite newer ones)."""
        with self._tx() as db:
            db.execute(
                "UPDATE hedges SET status=?, filled_qty=?, avg_price=?, updated_ms=? "
                "WHERE client_order_id=? AND updated_ms <= ?",
                (status, filled_qty, avg_price, updated_ms, client_order_id, updated_ms),
            )

    def open_hedge_intents(self) -> list[HedgeRecord]:
        """Return hedge orders whose final outcome is not known yet, oldest first.

        That is: recorded but unanswered ("new"), ``UNKNOWN``, or still working on the
        exchange (``NEW``, ``PARTIALLY_FILLED``). Terminal: filled, canceled, rejected,
        expired, never sent, not found.
        """
        rows = self._db.execute(
            "SELECT intent_id, client_order_id, symbol, side, qty, created_ms, status, "
            "filled_qty, avg_price FROM hedges WHERE upper(status) NOT IN "
            "('FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'EXPIRED_IN_MATCH', 'NOT_SENT', "
            "'NOT_FOUND') ORDER BY created_ms, client_order_id"
        ).fetchall()
        return [
            HedgeRecord(
                intent_id=r[0],
                client_order_id=r[1],
                symbol=r[2],
                side=r[3],
                qty=r[4],
                created_ms=r[5],
                status=r[6],
                filled_qty=r[7],
                avg_price=r[8],
            )
            for r in rows
        ]


def _intent_params(i: IntentRow) -> tuple[Any, ...]:
    return (
        i.intent_id,
        i.purpose,
        i.to,
        i.data,
        str(i.value_wei),
        i.gas_limit,
        None if i.max_fee_cap_wei is None else str(i.max_fee_cap_wei),
        i.nonce,
        i.status,
        i.replaces,
        i.tx_hash,
        i.error,
        i.created_s,
        i.updated_s,
    )


def _intent_row(r: sqlite3.Row | tuple[Any, ...]) -> IntentRow:
    return IntentRow(
        intent_id=r[0],
        purpose=r[1],
        to=r[2],
        data=bytes(r[3]),
        value_wei=int(r[4]),
        gas_limit=r[5],
        max_fee_cap_wei=None if r[6] is None else int(r[6]),
        nonce=r[7],
        status=r[8],
        replaces=r[9],
        tx_hash=r[10],
        error=r[11],
        created_s=r[12],
        updated_s=r[13],
    )


def _tx_row(r: sqlite3.Row | tuple[Any, ...]) -> TxRow:
    return TxRow(
        tx_hash=r[0],
        intent_id=r[1],
        nonce=r[2],
        raw=bytes(r[3]),
        purpose=r[4],
        max_fee_wei=int(r[5]),
        tip_wei=int(r[6]),
        status=r[7],
        created_s=r[8],
        sent_s=r[9],
        sent_block=r[10],
        updated_s=r[11],
    )
