"""Telemetry: JSON logs, a small Prometheus metrics registry, and the /metrics + /healthz server.

Logging
    `configure_logging` installs one handler on the root logger. With ``json=True`` each record is
    one JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, the fields
    passed through ``extra=``, and ``exc`` when there is an exception. The formatter prints only
    what the record carries; it never adds environment, config or arguments of its own.

Metrics
    `MetricsRegistry` holds counters, gauges and fixed-bucket histograms, optionally labelled, and
    renders them in the Prometheus text exposition format 0.0.4. It is written here rather than
    taken from ``prometheus_client`` because the agent needs ~150 lines of it, not a dependency
    with process-wide global state.

Server
    `TelemetryServer` is an asyncio HTTP/1.1 server on a loopback address serving ``GET /metrics``
    and ``GET /healthz``. Health is 200 while the loop's heartbeat is fresh and the risk state is
    not HALTED, else 503; the body is JSON from `Health.report`. Every response closes the
    connection, which keeps the server trivially correct for scrapers and probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import ipaddress
import json as _json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TextIO, TypeVar

from agent.errors import ConfigError
from agent.risk import RiskDirective, RiskState, Transition

__all__ = [
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Health",
    "Histogram",
    "JsonFormatter",
    "MetricsRegistry",
    "RiskTelemetry",
    "TelemetryServer",
    "configure_logging",
]

_log = logging.getLogger(__name__)

# -- logging ---------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON: ts, level, logger, msg, extra fields, and exc if any."""
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: a Decimal, Path or enum in ``extra`` must not make a log line vanish.
        return _json.dumps(out, default=str, ensure_ascii=False)


_HANDLER_NAME = "mm-agent"


def configure_logging(
    level: int | str = logging.INFO, *, json: bool = True, stream: TextIO | None = None
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
    handler.setFormatter(
        JsonFormatter()
        if json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


# -- metrics ---------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Latency buckets in seconds, from 0.5 ms (a decision) to 10 s (a slow inclusion)."""


def _fmt_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


_Child = TypeVar("_Child")
_M = TypeVar("_M", bound="_Metric[Any]")


class _Metric(Generic[_Child]):
    """A metric family: a name, help text, label names, and one child per label combination."""

    kind: ClassVar[str]

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], lock: threading.Lock):
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} for metric {name!r}")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"duplicate label names for metric {name!r}")
        self.name = name
        self.help_text = help_text
        self.labelnames = tuple(labelnames)
        self._lock = lock
        self._children: dict[tuple[str, ...], _Child] = {}
        if not self.labelnames:
            self._children[()] = self._new_child()

    def _new_child(self) -> _Child:
        raise NotImplementedError

    def labels(self, *values: object, **by_name: object) -> _Child:
        """Return the child for these label values (positional, or by name), creating it."""
        if values and by_name:
            raise ValueError("pass label values positionally or by name, not both")
        if by_name:
            if set(by_name) != set(self.labelnames):
                raise ValueError(
                    f"{self.name} takes labels {self.labelnames}, got {sorted(by_name)}"
                )
            values = tuple(by_name[n] for n in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {self.labelnames}, got {len(values)} values"
            )
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
        return child

    def _unlabelled(self) -> _Child:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels(...)")
        return self._children[()]

    def _samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        """Return the HELP and TYPE lines and every sample of this family."""
        head = [
            f"# HELP {self.name} {_escape_help(self.help_text)}",
            f"# TYPE {self.name} {self.kind}",
        ]
        with self._lock:
            samples = self._samples()
        return "\n".join(head + samples) + "\n"


class CounterChild:
    """One labelled series of a counter."""

    __slots__ = ("_lock", "_value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (must not be negative: counters only go up)."""
        if amount < 0:
            raise ValueError(f"counter increment must be >= 0, got {amount}")
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        """Return the current total."""
        return self._value


class Counter(_Metric[CounterChild]):
    """A monotonically increasing total (name it ``..._total``)."""

    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild(self._lock)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to an unlabelled counter."""
        self._unlabelled().inc(amount)

    def _samples(self) -> list[str]:
        return [
            f"{self.name}{_labels_text(zip(self.labelnames, k, strict=True))} {_fmt_value(c.value)}"
            for k, c in self._children.items()
        ]


class GaugeChild:
    """One labelled series of a gauge."""

    __slots__ = ("_lock", "_value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._value = 0.0

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (may be negative)."""
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.inc(-amount)

    @property
    def value(self) -> float:
        """Return the current value."""
        return self._value


class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down."""

    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild(self._lock)

    def set(self, value: float) -> None:
        """Set an unlabelled gauge."""
        self._unlabelled().set(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add to an unlabelled gauge."""
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract from an unlabelled gauge."""
        self._unlabelled().dec(amount)

    def _samples(self) -> list[str]:
        return [
            f"{self.name}{_labels_text(zip(self.labelnames, k, strict=True))} {_fmt_value(c.value)}"
            for k, c in self._children.items()
        ]


class HistogramChild:
    """One labelled series of a histogram: per-bucket counts, sum and count."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self._counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        i = next((i for i, b in enumerate(self._bounds) if value <= b), len(self._bounds))
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float]:
        """Return cumulative bucket counts (last is +Inf, i.e. the count) and the sum."""
        running, cumulative = 0, []
        for n in self._counts:
            running += n
            cumulative.append(running)
        return cumulative, self._sum


class Histogram(_Metric[HistogramChild]):
    """Observations counted into fixed buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        lock: threading.Lock,
        buckets: Sequence[float],
    ) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)) or any(math.isnan(b) for b in bounds):
            raise ValueError(f"histogram {name!r} buckets must be distinct, sorted and finite")
        self.buckets = bounds
        super().__init__(name, help_text, labelnames, lock)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets, self._lock)

    def observe(self, value: float) -> None:
        """Record one observation on an unlabelled histogram."""
        self._unlabelled().observe(value)

    def _samples(self) -> list[str]:
        lines = []
        for key, child in self._children.items():
            pairs = list(zip(self.labelnames, key, strict=True))
            cumulative, total = child.snapshot()
            bounds = [*(_fmt_value(b) for b in self.buckets), "+Inf"]
            for le, n in zip(bounds, cumulative, strict=True):
                lines.append(f"{self.name}_bucket{_labels_text([*pairs, ('le', le)])} {n}")
            lines.append(f"{self.name}_sum{_labels_text(pairs)} {_fmt_value(total)}")
            lines.append(f"{self.name}_count{_labels_text(pairs)} {cumulative[-1]}")
        return lines


class MetricsRegistry:
    """Own a set of metric families and render them for Prometheus."""

    CONTENT_TYPE: ClassVar[str] = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric[Any]] = {}

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        """Register and return a counter."""
        return self._add(Counter(name, help_text, labelnames, threading.Lock()))

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Register and return a gauge."""
        return self._add(Gauge(name, help_text, labelnames, threading.Lock()))

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Register and return a histogram with fixed upper bounds ``buckets`` (+Inf is added)."""
        return self._add(Histogram(name, help_text, labelnames, threading.Lock(), buckets))

    def _add(self, metric: _M) -> _M:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name!r} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def render(self) -> str:
        """Return every family in the Prometheus text exposition format, sorted by name."""
        with self._lock:
            metrics = sorted(self._metrics.values(), key=lambda m: m.name)
        return "".join(m.render() for m in metrics)


class RiskTelemetry:
    """Export the risk engine's state and transitions as metrics, and log every transition.

    Metrics: ``mm_risk_state`` (0 NORMAL .. 5 HALTED), ``mm_risk_transitions_total{from_state,
    to_state}``, and per trigger ``mm_risk_trigger_level`` (0 clear, 1 warn, 2 breach) and
    ``mm_risk_trigger_value`` (the last reading while active).
    """

    def __init__(self, registry: MetricsRegistry, logger: logging.Logger | None = None) -> None:
        self._log = logger if logger is not None else logging.getLogger("agent.risk")
        self._state = registry.gauge("mm_risk_state", "Risk state (0 NORMAL .. 5 HALTED)")
        self._transitions = registry.counter(
            "mm_risk_transitions_total", "Risk state transitions", ("from_state", "to_state")
        )
        self._level = registry.gauge(
            "mm_risk_trigger_level", "Risk trigger level (0 clear, 1 warn, 2 breach)", ("trigger",)
        )
        self._value = registry.gauge(
            "mm_risk_trigger_value", "Last reading of a risk trigger while active", ("trigger",)
        )
        self._seen: set[str] = set()

    def record(self, directive: RiskDirective, transitions: Iterable[Transition]) -> None:
        """Log and count ``transitions``, then export the state and readings of ``directive``."""
        for t in transitions:
            self._transitions.labels(t.from_state.name, t.to_state.name).inc()
            if t.to_state is RiskState.HALTED:
                level = logging.ERROR
            elif t.to_state > t.from_state:
                level = logging.WARNING
            else:
                level = logging.INFO
            self._log.log(
                level,
                "risk %s -> %s: %s",
                t.from_state.name,
                t.to_state.name,
                t.reason,
                extra={"risk_transition": t.as_dict()},
            )
        self._state.set(int(directive.state))
        active = {r.name: r for r in directive.readings}
        for name in self._seen - active.keys():
            self._level.labels(name).set(0)
        for name, r in active.items():
            self._level.labels(name).set(int(r.level))
            self._value.labels(name).set(r.value)
        self._seen |= active.keys()


# -- health ----------------------------------------------------------------------------------


class Health:
    """The loop's heartbeat and link status, as reported by ``/healthz``.

    Parameters
    ----------
    max_heartbeat_age_s
        A heartbeat older than this makes the agent unhealthy (503).
    clock
        Monotonic seconds; injected so tests control time.
    provider
        Returns extra fields for the report (positions, block number, ...). Its keys never
        override the core fields, and an exception in it is reported, not raised.
    """

    CORE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"healthy", "heartbeat_age_s", "rpc_ok", "cex_ok", "risk_state"}
    )

    def __init__(
        self,
        *,
        max_heartbeat_age_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        provider: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        if not max_heartbeat_age_s > 0:
            raise ConfigError("telemetry max_heartbeat_age_s must be > 0")
        self._max_age_s = max_heartbeat_age_s
        self._clock = clock
        self._provider = provider
        self._last_beat: float | None = None
        self._rpc_ok = False
        self._cex_ok = False
        self._risk_state = "UNKNOWN"

    def beat(
        self,
        *,
        rpc_ok: bool | None = None,
        cex_ok: bool | None = None,
        risk_state: str | None = None,
    ) -> None:
        """Record that the loop is alive; update any status passed (None leaves it as it was)."""
        self._last_beat = self._clock()
        if rpc_ok is not None:
            self._rpc_ok = rpc_ok
        if cex_ok is not None:
            self._cex_ok = cex_ok
        if risk_state is not None:
            self._risk_state = risk_state

    def report(self) -> tuple[bool, dict[str, object]]:
        """Return (healthy, JSON-ready report)."""
        age = None if self._last_beat is None else max(0.0, self._clock() - self._last_beat)
        healthy = age is not None and age <= self._max_age_s and self._risk_state != "HALTED"
        body: dict[str, object] = {}
        if self._provider is not None:
            try:
                body.update(self._provider())
            except Exception as exc:  # a broken provider must not take the probe down
                _log.exception("health provider failed")
                body["provider_error"] = f"{type(exc).__name__}: {exc}"
        body.update(
            healthy=healthy,
            heartbeat_age_s=age,
            rpc_ok=self._rpc_ok,
            cex_ok=self._cex_ok,
            risk_state=self._risk_state,
        )
        return healthy, body


# -- HTTP server -----------------------------------------------------------------------------

_MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT_S = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    503: "Service Unavailable",
}


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"telemetry host {host!r} is not a loopback address: bind 127.0.0.1 (or ::1) and "
            "expose /metrics through a reverse proxy or sidecar if it must be reached remotely"
        )


class TelemetryServer:
    """Serve ``GET /metrics`` and ``GET /healthz`` on a loopback address.

    Parameters
    ----------
    registry
        Metrics to render on ``/metrics``.
    health
        Source of the ``/healthz`` report.
    host, port
        Loopback address to bind; port 0 picks a free port (read it back from `port`).
    """

    def __init__(
        self, registry: MetricsRegistry, health: Health, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        _require_loopback(host)
        self._registry = registry
        self._health = health
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """Return the bound port (valid after `start`)."""
        if self._server is None:
            raise RuntimeError("telemetry server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start serving."""
        if self._server is not None:
            raise RuntimeError("telemetry server is already started")
        self._server = await asyncio.start_server(
            self._on_conn, self._host, self._port, limit=_MAX_REQUEST_BYTES
        )
        _log.info("telemetry listening", extra={"host": self._host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting, end open connections, and wait until all are gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> TelemetryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a stream callback always runs in a task
        self._conns.add(task)
        try:
            status, ctype, body = await self._respond(reader)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
        except TimeoutError:
            return 408, "text/plain; charset=utf-8", b"request timeout\n"
        except asyncio.LimitOverrunError:
            return 400, "text/plain; charset=utf-8", b"request head too large\n"
        parts = raw.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain; charset=utf-8", b"bad request line\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if target not in ("/metrics", "/healthz"):
            return 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"
        if method != "GET":
            return 405, "text/plain; charset=utf-8", b"method not allowed: use GET\n"
        if target == "/metrics":
            return 200, MetricsRegistry.CONTENT_TYPE, self._registry.render().encode()
        healthy, report = self._health.report()
        body = _json.dumps(report, default=str).encode()
        return (200 if healthy else 503), "application/json", body
