"""Structured logs: the JSON schema, event names, correlation ids, quiet third-party loggers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from agent.logs import QUIET_LOGGERS, Event, JsonFormatter, bind, configure_logging, log_event


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_log_line_has_core_and_extra_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    logging.getLogger("agent.test").info("placed %d orders", 3, extra={"block": 17, "tx": "0xab"})
    (record,) = _records(stream)
    assert record["msg"] == "placed 3 orders"
    assert (record["level"], record["logger"]) == ("INFO", "agent.test")
    assert (record["block"], record["tx"]) == (17, "0xab")
    ts = record["ts"]
    assert isinstance(ts, str) and ts.endswith("Z") and "T" in ts
    # Only what the record carries: no args, no process internals.
    assert set(record) == {"ts", "level", "logger", "msg", "block", "tx"}


def test_json_log_includes_exception_and_survives_odd_extra_values() -> None:
    formatter = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "failed\nline two", (), exc_info,
        extra={"amount": complex(1, 2)},
    )  # fmt: skip
    line = formatter.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "failed\nline two"
    assert "RuntimeError: boom" in parsed["exc"]
    assert parsed["amount"] == "(1+2j)"


def test_events_carry_their_name_bound_ids_and_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("agent.runtime")
    with bind(cycle=812):
        log_event(log, Event.QUOTE_SENT, intent="q-812", tx="0xab", nonce=7, orders=6)
        with bind(intent="c-813", cloid=None):
            # An explicit field wins over a bound one; "msg" and "name" are not clobbered.
            log_event(log, Event.CANCEL_ALL, "pulled", cycle=813, msg="x", name="y")
    log_event(log, Event.HEDGE_ORDER, level=logging.DEBUG, cloid="h-1")  # below the level
    first, second = _records(stream)
    assert first == {
        "ts": first["ts"],
        "level": "INFO",
        "logger": "agent.runtime",
        "msg": "quote.sent",
        "event": "quote.sent",
        "cycle": 812,
        "intent": "q-812",
        "tx": "0xab",
        "nonce": 7,
        "orders": 6,
    }
    assert (second["event"], second["msg"], second["cycle"], second["intent"]) == (
        "orders.cancel_all",
        "pulled",
        813,
        "c-813",
    )
    assert (second["field_msg"], second["field_name"]) == ("x", "y")


@pytest.mark.asyncio
async def test_bound_ids_follow_tasks_and_do_not_leak_between_them(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("agent.test")

    async def cycle(n: int) -> None:
        with bind(cycle=n):
            await asyncio.sleep(0)
            log_event(log, Event.CYCLE_FAILED, error_kind="RpcError")

    await asyncio.gather(cycle(1), cycle(2))
    log_event(log, Event.CYCLE_FAILED)
    assert [r.get("cycle") for r in _records(stream)] == [1, 2, None]


def test_plain_format_shows_event_and_ids(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, json=False, stream=stream)
    with bind(cycle=5):
        log_event(logging.getLogger("agent.test"), Event.TX_OUTCOME, "tx mined", tx="0x1")
    assert stream.getvalue().rstrip().endswith("agent.test: tx mined [event=tx.outcome cycle=5]")


def test_configure_logging_replaces_its_own_handler(restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(logging.INFO, stream=first)
    configure_logging(logging.INFO, json=False, stream=second)
    logging.getLogger("agent.test").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("WARNING agent.test: once")


def test_http_client_and_server_access_logs_are_held_at_warning(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    for name in ("httpx", "httpcore.connection", "web3.providers.HTTPProvider", "aiohttp.access"):
        logging.getLogger(name).info("HTTP Request: POST http://127.0.0.1:8545 200 OK")
    logging.getLogger("httpx").warning("retrying")
    logging.getLogger("agent.x").debug("ours")
    assert [(r["logger"], r["msg"]) for r in _records(stream)] == [
        ("httpx", "retrying"),
        ("agent.x", "ours"),
    ]
