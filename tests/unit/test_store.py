"""The SQLite journal: durability settings, migrations, idempotent inserts, the hedge protocol."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.store import MIGRATIONS, SCHEMA_VERSION, DelaySample, IntentRow, Journal, TxRow
from agent.types import Fill, Lots, Side, Tick


def _intent(iid: str, nonce: int, status: str = "queued") -> IntentRow:
    return IntentRow(
        iid,
        "quote",
        "0xabc",
        b"\x01\x02",
        2**70,
        21_000,
        None,
        nonce,
        status,
        None,
        None,
        None,
        1.0,
        1.0,
    )


def _tx(h: str, iid: str, nonce: int, max_fee: int = 3 * 10**9) -> TxRow:
    return TxRow(
        h, iid, nonce, b"\xde\xad", "quote", max_fee, 10**9, "signed", 1.0, None, None, 1.0
    )


def test_file_journal_is_wal_with_full_sync_and_versioned(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j.schema_version == SCHEMA_VERSION == len(MIGRATIONS)


def test_migration_hook_runs_new_steps_once_and_refuses_newer_files(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()

    def v_next(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE orders ADD COLUMN venue TEXT NOT NULL DEFAULT 'dex'")

    with Journal(path, migrations=(*MIGRATIONS, v_next)) as j:
        assert j.schema_version == len(MIGRATIONS) + 1
        cols = [r[1] for r in j._db.execute("PRAGMA table_info(orders)")]
        assert "venue" in cols
    with Journal(path, migrations=(*MIGRATIONS, v_next)) as j:  # re-opening does not re-run it
        assert j.schema_version == len(MIGRATIONS) + 1
    with pytest.raises(ConfigError, match="newer than this agent"):
        Journal(path)


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Journal(tmp_path / "j.db", migrations=(*MIGRATIONS, broken))
    with Journal(tmp_path / "j.db") as j:
        assert j.schema_version == len(MIGRATIONS)
        assert j._db.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchone() is None


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage, not SQLite" * 400, b"hello\n", "foreign"],
    ids=["random bytes", "text", "another program's SQLite"],
)
def test_a_file_that_is_no_journal_is_one_named_error_and_left_alone(
    tmp_path: Path, content: bytes | str
) -> None:
    path = tmp_path / "journal.sqlite"
    if content == "foreign":
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE intents (x)")
            db.commit()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    before = path.read_bytes()
    # It was "DatabaseError: file is not a database" at `run`, a traceback at `cancel-all`.
    with pytest.raises(ConfigError, match=rf"^journal {path} is not a journal .*move it aside"):
        Journal(path)
    assert path.read_bytes() == before  # it may hold signed transactions: never rewritten


def test_a_journal_is_bound_to_its_chain_account_and_market(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    mine = {"chain_id": "31337", "account": "0xAbC", "market": "0xM1"}
    with Journal(path) as j:
        j.bind(**mine)
        j.record_signed(_intent("a", 4, "sent"), _tx("0x01", "a", 4))
    with Journal(path) as j:
        j.bind(**{**mine, "account": "0xabc"})  # the same account, checksum case or not
        for key, other in (("account", "0xdef"), ("market", "0xM2"), ("chain_id", "1")):
            with pytest.raises(ConfigError, match=rf"^storage\.data_dir: .*this config is {key} "):
                j.bind(**{**mine, key: other})
        assert [i.intent_id for i in j.open_intents()] == ["a"]  # nothing was adopted or lost


def test_signed_tx_survives_reopen_and_settles(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        j.record_signed(_intent("a", 4), _tx("0x01", "a", 4))
        j.record_signed(_intent("a", 4), _tx("0x02", "a", 4, max_fee=4 * 10**9))
        j.record_signed(_intent("b", 5), _tx("0x03", "b", 5))
        j.mark_tx("0x01", "sent", 2.0, sent_s=2.0, sent_block=7)
        j.mark_tx("0x01", "sent", 3.0, sent_s=3.0, sent_block=8)  # first send time is kept
        j.mark_intent("a", "sent", 2.0, tx_hash="0x01")
    with Journal(path) as j:
        assert [i.intent_id for i in j.open_intents()] == ["a", "b"]
        a = j.intent("a")
        assert a is not None and a.value_wei == 2**70 and a.data == b"\x01\x02"
        txs = j.txs_for("a")
        assert [t.tx_hash for t in txs] == ["0x01", "0x02"]
        assert (txs[0].sent_s, txs[0].sent_block, txs[0].raw) == (2.0, 7, b"\xde\xad")
        assert txs[1].max_fee_wei == 4 * 10**9
        sample = DelaySample("0x02", "a", "quote", 2.0, 5.5, 3.5, 2, 9, 21_000, 3 * 10**9)
        j.settle_nonce(
            [("a", "included", "0x02", None)],
            [("0x01", "replaced"), ("0x02", "included")],
            5.5,
            sample,
        )
        assert [i.intent_id for i in j.open_intents()] == ["b"]
        assert j.inclusion_delays() == [sample]
        assert j.inclusion_delays(since_s=6.0) == []
        assert [t.status for t in j.txs_at_nonce(4)] == ["replaced", "included"]
        assert j.count_txs() == 3


def test_tx_rows_need_their_intent(tmp_path: Path) -> None:
    with Journal(":memory:") as j, pytest.raises(sqlite3.IntegrityError):
        j._db.execute("BEGIN")
        j._db.execute(
            "INSERT INTO txs VALUES ('0x9','ghost',0,x'00','q','1','1','signed',0,NULL,NULL,0)"
        )


def test_fills_and_funding_are_idempotent() -> None:
    fill = Fill(3, Side.BID, Tick(1000), Lots(5), -12, 40, "0xfeed", 2)
    with Journal(":memory:") as j:
        assert j.insert_fill(fill, 1) is True
        assert j.insert_fill(fill, 2) is False
        assert j.fills() == [fill]
        assert j.fills(since_block=41) == []
        assert j.insert_funding("0xf", 0, "ETH-PERP", -(10**30), 1e-4, 50, 9) is True
        assert j.insert_funding("0xf", 0, "ETH-PERP", -(10**30), 1e-4, 50, 9) is False
        assert j.insert_funding("0xf", 1, "ETH-PERP", 7, 1e-4, 50, 9) is True
        assert j.funding_total_raw("ETH-PERP") == -(10**30) + 7


def test_orders_upsert_keeps_order_id_and_tx_hash() -> None:
    with Journal(":memory:") as j:
        j.upsert_order(11, Side.ASK, 1010, 3, "pending", 1, tx_hash="0xaa")
        j.upsert_order(11, Side.ASK, 1010, 3, "open", 2, order_id=77)
        j.upsert_order(12, Side.BID, 990, 2, "pending", 3)
        (o,) = j.orders("open")
        assert (o.client_id, o.order_id, o.side, o.tx_hash, o.updated_ms) == (
            11,
            77,
            Side.ASK,
            "0xaa",
            2,
        )
        assert [r.client_id for r in j.orders()] == [11, 12]


def test_decisions_risk_and_pnl() -> None:
    with Journal(":memory:") as j:
        j.record_decision(10, "quote", {"gas_cost": 0.4, "risk": "normal"})
        j.record_decision(20, "skip", {"reason": "cost gate"})
        assert j.decisions(since_ms=15) == [(20, "skip", {"reason": "cost gate"})]
        j.record_risk_transition(30, "normal", "reduce_only", "inventory cap")
        assert j.risk_transitions() == [(30, "normal", "reduce_only", "inventory cap")]
        assert j.latest_pnl() is None
        j.record_pnl(
            40, realized=1.5, unrealized=-0.5, fees=0.1, funding=0.0, gas=0.2, inventory_lots=3
        )
        pnl = j.latest_pnl()
        assert pnl is not None and pnl["realized"] == 1.5 and pnl["inventory_lots"] == 3


def test_hedge_store_protocol() -> None:
    with Journal(":memory:") as j:
        j.record_hedge_intent("i1", "c1", "ETHUSDT", "SELL", 0.5, 100)
        j.record_hedge_intent("i1", "c1", "ETHUSDT", "SELL", 0.5, 100)  # replay: no-op
        j.record_hedge_intent("i2", "c2", "ETHUSDT", "BUY", 0.2, 110)
        j.update_hedge("c1", "PARTIALLY_FILLED", 0.2, 2000.0, 120)
        j.update_hedge("c1", "NEW", 0.0, 0.0, 115)  # stale update: ignored
        j.update_hedge("c2", "FILLED", 0.2, 1999.0, 130)
        (h,) = j.open_hedge_intents()
        assert (h.intent_id, h.client_order_id, h.status, h.filled_qty, h.avg_price) == (
            "i1",
            "c1",
            "PARTIALLY_FILLED",
            0.2,
            2000.0,
        )
        assert (h.created_ms, h.qty, h.side) == (100, 0.5, "SELL")
        for status in ("NOT_SENT", "UNKNOWN", "NEW", "EXPIRED"):
            j.update_hedge("c1", status, 0.2, 2000.0, 200)
            assert [r.client_order_id for r in j.open_hedge_intents()] == (
                ["c1"] if status in ("UNKNOWN", "NEW") else []
            )


def test_journal_satisfies_the_hedger_protocol() -> None:
    from agent.hedge.hedger import HedgeJournal

    with Journal(":memory:") as j:
        journal: HedgeJournal = j
        journal.record_hedge_intent("i1", "c1", "ETHUSDT", "BUY", 1.0, 5)
        assert [r.intent_id for r in journal.open_hedge_intents()] == ["i1"]


def test_fsync_off_uses_normal_sync_and_survives_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", fsync=False)
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    j.record_decision(1, "send", {"why": "test"})
    j.close()
    with Journal(tmp_path / "j.sqlite") as k:
        assert k._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert k.decisions()[0][1] == "send"


def test_order_ids_above_2_pow_63_round_trip(tmp_path: Path) -> None:
    big = (1 << 112) + (1 << 64) + (300_000 << 40) + 7  # the market's id layout
    with Journal(tmp_path / "j.sqlite") as j:
        f = Fill(big, Side.ASK, Tick(300_000), Lots(5), -3, 10, "0x" + "aa" * 32, 1)
        assert j.insert_fill(f, 1)
        assert not j.insert_fill(f, 2)
        assert j.fills()[0].order_id == big
        j.upsert_order(9, Side.ASK, 300_000, 5, "open", 1, order_id=big)
        assert j.orders()[0].order_id == big


def test_risk_memory_survives_reopen_and_keeps_one_row(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        assert j.risk_memory() is None
        j.save_risk_memory(1, {"state": "WIDENED", "peak_equity": 100.0})
        j.save_risk_memory(2, {"state": "HALTED", "peak_equity": 120.0})
    with Journal(path) as j:
        assert j.risk_memory() == {"state": "HALTED", "peak_equity": 120.0}
        assert j._db.execute("SELECT COUNT(*) FROM risk_memory").fetchone()[0] == 1


def test_estimator_state_round_trips_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        assert j.load_estimator("quote_fills") is None
        j.save_estimator("quote_fills", {"version": 1, "fills": [1.0, 2.0]}, 1_000)
        j.save_estimator("quote_fills", {"version": 1, "fills": [3.0]}, 2_000)
    with Journal(path) as j:  # survives a reopen; the later save replaced the earlier
        assert j.load_estimator("quote_fills") == {"version": 1, "fills": [3.0]}


_COUNT = {t: f"SELECT COUNT(*) FROM {t}" for t in ("decisions", "hedges", "fills")}  # noqa: S608


def _rows(path: Path, table: str) -> int:
    """Rows of `table` as another process would see them (a second connection)."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return int(other.execute(_COUNT[table]).fetchone()[0])


def test_decisions_are_buffered_but_money_records_are_committed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, fsync=False) as j:
        j.record_decision(1, "send", {"why": "a"})
        j.record_decision(2, "skip", {"why": "b"})
        assert _rows(path, "decisions") == 0  # an audit record may wait (a crash loses it)
        # A hedge intent guards against sending twice: on disk when the call returns, and the
        # decisions waiting before it ride in the same commit, in order.
        j.record_hedge_intent("i1", "c1", "ETHUSDT", "BUY", 1.0, 5)
        assert _rows(path, "hedges") == 1
        assert _rows(path, "decisions") == 2
        j.record_decision(3, "send", {"why": "c"})
        f = Fill(7, Side.BID, Tick(100), Lots(1), 0, 10, "0x" + "bb" * 32, 0)
        assert j.insert_fill(f, 5)
        assert _rows(path, "fills") == 1
        assert [d[0] for d in j.decisions()] == [1, 2, 3]


def test_decision_buffer_is_bounded_and_written_on_checkpoint_and_close(tmp_path: Path) -> None:
    from agent.store import DECISION_BUFFER_ROWS

    path = tmp_path / "j.sqlite"
    j = Journal(path, fsync=False)
    for i in range(DECISION_BUFFER_ROWS - 1):
        j.record_decision(i, "skip", {})
    assert _rows(path, "decisions") == 0
    j.record_decision(DECISION_BUFFER_ROWS, "skip", {})
    assert _rows(path, "decisions") == DECISION_BUFFER_ROWS
    j.record_decision(1000, "send", {})
    j.checkpoint()
    assert _rows(path, "decisions") == DECISION_BUFFER_ROWS + 1
    j.record_decision(1001, "send", {})
    j.close()
    j.close()  # idempotent
    assert _rows(path, "decisions") == DECISION_BUFFER_ROWS + 2


def test_a_failed_commit_keeps_the_buffered_decisions(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite", fsync=False) as j:
        j.record_decision(1, "send", {"why": "kept"})
        with pytest.raises(sqlite3.Error), j._tx() as db:
            db.execute("INSERT INTO no_such_table VALUES (1)")
        assert j.decisions() == [(1, "send", {"why": "kept"})]
