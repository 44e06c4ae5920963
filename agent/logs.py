"""Structured logs: one JSON object per line, named events, correlation ids carried by context.

Schema
    Every line has ``ts`` (UTC, ISO 8601, milliseconds, ``Z``), ``level``, ``logger`` and ``msg``.
    A line written through `log_event` also has ``event`` (a name from `Event`, dotted
    ``area.what``). Correlation ids bound with `bind` (``cycle``, ``intent``, ``cloid``, ``tx``)
    appear on every line written inside the ``with`` block, in any task started from it, and win
    over nothing: a field passed explicitly to the call takes precedence. Other fields come from
    the call's keyword arguments (or ``extra=``) and are printed as they are; values JSON cannot
    hold (Decimal, Path, enums) are printed as their ``str``. ``exc`` holds a traceback.

    The formatter prints only what a record carries: never the environment, config or arguments.

Third-party loggers
    ``httpx``, ``httpcore``, ``web3``, ``urllib3``, ``asyncio`` and ``aiohttp`` (including
    ``aiohttp.access``) are held at WARNING by `configure_logging`: at INFO, httpx alone wrote
    943 of 951 lines in two minutes of a running agent, one per JSON-RPC request.

Example
    >>> with bind(cycle=812):
    ...     log_event(log, Event.TX_OUTCOME, intent="q-812", tx="0xab..", outcome="mined")
    {"ts": "...", "level": "INFO", "logger": "agent.runtime", "msg": "tx.outcome",
     "event": "tx.outcome", "cycle": 812, "intent": "q-812", "tx": "0xab..", "outcome": "mined"}
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import enum
import json as _json
import logging
import types
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

__all__ = [
    "CORRELATION_FIELDS",
    "QUIET_LOGGERS",
    "Event",
    "JsonFormatter",
    "bind",
    "configure_logging",
    "log_event",
]


class Event(enum.StrEnum):
    """Event names, one per kind of line an operator may search or alert on.

    The README's log reference lists each with its fields; add a member there too.
    """

    TELEMETRY_LISTENING = "telemetry.listening"
    """The /metrics and /healthz server is up: ``host``, ``port``."""
    HEALTH_CONDITION = "health.condition"
    """A health condition was raised or cleared: ``condition``, ``active``, ``reason``."""
    RISK_TRANSITION = "risk.transition"
    """The risk state changed: ``from_state``, ``to_state``, ``reason``, ``readings``."""
    ALERT_SENT = "alert.sent"
    """A webhook accepted an alert: ``kind``, ``severity``, ``attempts``, ``suppressed``."""
    ALERT_FAILED = "alert.failed"
    """An alert was given up after its retries: ``kind``, ``attempts``, ``error``."""
    ALERT_DROPPED = "alert.dropped"
    """An alert was not queued (queue full): ``kind``."""
    CYCLE_FAILED = "cycle.failed"
    """A decision cycle failed: ``cycle``, ``error_kind``, ``error``."""
    QUOTE_SENT = "quote.sent"
    """A quote batch transaction was sent: ``cycle``, ``intent``, ``tx``, ``nonce``, ``orders``."""
    TX_OUTCOME = "tx.outcome"
    """A transaction reached an outcome: ``intent``, ``tx``, ``nonce``, ``outcome``
    (mined, reverted, replaced, dropped), ``gas_used``, ``fee_native``."""
    HEDGE_ORDER = "hedge.order"
    """A hedge order was placed or ended on the exchange: ``cloid``, ``side``, ``qty_base``,
    ``price``, ``status``, ``filled_base``."""
    CANCEL_ALL = "orders.cancel_all"
    """Every resting order was cancelled: ``cycle``, ``intent``, ``reason``."""


CORRELATION_FIELDS: tuple[str, ...] = ("cycle", "intent", "cloid", "tx")
"""Ids that tie lines together: decision cycle number, transaction intent id, exchange client
order id, transaction hash."""

QUIET_LOGGERS: tuple[str, ...] = (
    "httpx",
    "httpcore",
    "web3",
    "urllib3",
    "asyncio",
    "aiohttp",
    "aiohttp.access",
)
"""Libraries whose INFO/DEBUG lines are per-request noise; held at WARNING."""

# The default is an immutable empty mapping: bind() always sets a new dict, never mutates one.
_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "mm_log_context", default=types.MappingProxyType({})
)


@contextlib.contextmanager
def bind(**fields: object) -> Iterator[None]:
    """Attach correlation ids (e.g. ``cycle=812``) to every line logged inside the block.

    Bindings nest (inner values win) and follow asyncio tasks created inside the block, because
    they live in a `contextvars.ContextVar`. A value of None removes that field for the block.
    """
    merged = {**_context.get(), **fields}
    token = _context.set({k: v for k, v in merged.items() if v is not None})
    try:
        yield
    finally:
        _context.reset(token)


def log_event(
    logger: logging.Logger,
    event: Event,
    msg: str | None = None,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log one line named ``event`` with ``fields`` as structured fields.

    Parameters
    ----------
    logger
        Where to log (the caller's module logger).
    event
        The event name; it is also the message when ``msg`` is None.
    msg
        Human-readable text; not parsed by anything, so keep the facts in ``fields``.
    level
        Log level.
    exc_info
        Attach the exception being handled.
    **fields
        Structured fields; names clashing with the record's own attributes (``msg``, ``args``,
        ``name``, ...) are prefixed with ``field_`` instead of raising, so a log call can never
        crash its caller.
    """
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, object] = {"event": event.value}
    for key, value in fields.items():
        extra[f"field_{key}" if key in _RECORD_ATTRS else key] = value
    logger.log(level, msg if msg is not None else event.value, exc_info=exc_info, extra=extra)


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line (see the module docstring for the schema)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON: ts, level, logger, msg, event, ids, fields, exc."""
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Private attributes are other libraries' bookkeeping (a log-record factory, e.g. Ray's
        # `_ray_timestamp_ns`), never a field of ours: our fields come from `extra=` by name.
        own = {
            k: v
            for k, v in vars(record).items()
            if k not in _RECORD_ATTRS and k not in out and not k.startswith("_")
        }
        if "event" in own:
            out["event"] = own.pop("event")
        # Bound ids first (a stable order for readers), then the call's own fields override them.
        for key, value in _context.get().items():
            out.setdefault(key, value)
        out.update(own)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: a Decimal, Path or enum in a field must not make a log line vanish.
        return _json.dumps(out, default=str, ensure_ascii=False)


class _ContextFormatter(logging.Formatter):
    """The human-readable format, with bound correlation ids and the event name appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = {**_context.get()}
        event = getattr(record, "event", None)
        if event is not None and record.getMessage() != event:
            ids = {"event": event, **ids}
        if ids:
            line += " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]"
        return line


_HANDLER_NAME = "mm-agent"


def configure_logging(
    level: int | str = logging.INFO,
    *,
    json: bool = True,
    stream: TextIO | None = None,
    quiet_libraries: bool = True,
) -> logging.Handler:
    """Install the agent's log handler on the root logger, replacing one installed before.

    Parameters
    ----------
    level
        Root level, as a number or a name such as ``"DEBUG"``.
    json
        One JSON object per line when true; a plain human-readable line otherwise.
    stream
        Where to write; standard error by default.
    quiet_libraries
        Hold the loggers in `QUIET_LOGGERS` at WARNING (their INFO lines are per request).

    Returns
    -------
    logging.Handler
        The installed handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json else _ContextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if quiet_libraries:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    return handler
