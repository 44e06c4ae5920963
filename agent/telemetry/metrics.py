"""The agent's metrics: a per-agent ``prometheus_client`` registry and the catalog of its families.

Every family the agent exports is declared once, in `AgentMetrics`, with its help text and unit
(units are in the names, Prometheus style: ``_seconds``, ``_base``, ``_native``, ``_quote``).
The runtime and other components set them through ``registry.families``; the dashboard and the
alert rules under ``scripts/deploy/`` are tested against this catalog, so a name used there that
does not exist here fails the tests.

Readings that have no value until the runtime has seen one (positions, balances, the risk state)
start as NaN, not 0: "unknown" must not read as "flat" or "gas balance 0" to an alert rule (every
comparison with NaN is false) or to a person looking at a dashboard (NaN draws as a gap).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.registry import Collector

__all__ = [
    "CYCLE_BUCKETS",
    "DEFAULT_BUCKETS",
    "AgentMetrics",
    "Children",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsRegistry",
]

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

CYCLE_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.02, 0.1, 0.5, 2.0)
"""Decision cycle buckets in seconds (the runtime's ``mm_cycle_seconds``)."""

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

_M = TypeVar("_M", Counter, Gauge, Histogram)


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str
    labelnames: tuple[str, ...]
    buckets: tuple[float, ...] = ()


class MetricsRegistry:
    """One agent's metric families, on its own `prometheus_client.CollectorRegistry`.

    An agent owns its registry (no process-wide default registry), so several agents in one
    process, as the stress runner and the tests build them, never share or clash.

    Asking for a family that exists with the same kind, labels and buckets returns the existing
    one (the catalog in `AgentMetrics` declares every family up front, and a component may still
    ask for its family by name); any other clash is a ``ValueError``.

    Parameters
    ----------
    process_metrics
        Include the ``process_*`` (CPU, memory, open fds) and ``python_*`` collectors.
    """

    CONTENT_TYPE: ClassVar[str] = "text/plain; version=0.0.4; charset=utf-8"
    """Content type of `render`'s output (Prometheus text format 0.0.4)."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.collector_registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.collector_registry)
            PlatformCollector(registry=self.collector_registry)
        self._lock = threading.Lock()
        self._families: dict[str, tuple[_Shape, Counter | Gauge | Histogram]] = {}
        self._collectors: list[Collector] = []
        self.families = AgentMetrics(self)
        """The agent's declared families (see `AgentMetrics`)."""

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        """Return the counter ``name`` (which must end in ``_total``), registering it if new."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must be named ..._total")
        shape = _Shape("counter", tuple(labelnames))
        return self._get_or_add(
            name,
            shape,
            Counter,
            lambda: Counter(name, help_text, shape.labelnames, registry=self.collector_registry),
        )

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Return the gauge ``name``, registering it if new."""
        shape = _Shape("gauge", tuple(labelnames))
        return self._get_or_add(
            name,
            shape,
            Gauge,
            lambda: Gauge(name, help_text, shape.labelnames, registry=self.collector_registry),
        )

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Return the histogram ``name`` with upper bounds ``buckets`` (+Inf is added)."""
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)) or any(math.isnan(b) for b in bounds):
            raise ValueError(f"histogram {name!r} buckets must be distinct, sorted and finite")
        shape = _Shape("histogram", tuple(labelnames), bounds)
        return self._get_or_add(
            name,
            shape,
            Histogram,
            lambda: Histogram(
                name, help_text, shape.labelnames, registry=self.collector_registry, buckets=bounds
            ),
        )

    def register_collector(self, collector: Collector) -> None:
        """Add a custom collector (values computed at scrape time); adding it again is a no-op."""
        with self._lock:
            if any(c is collector for c in self._collectors):
                return
            self.collector_registry.register(collector)
            self._collectors.append(collector)

    def declared(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Return every family registered through this object: name → (kind, label names)."""
        with self._lock:
            return {n: (s.kind, s.labelnames) for n, (s, _) in self._families.items()}

    def names(self) -> frozenset[str]:
        """Return every sample name this registry exposes (``_bucket``, ``_total``, ... included).

        Histograms and counters are listed with all their sample names, so a query on
        ``mm_rpc_latency_seconds_bucket`` or ``mm_fills_total`` can be checked against this set.
        """
        out: set[str] = set()
        for family in self.collector_registry.collect():
            out.add(family.name)
            if family.type == "counter":
                out.add(family.name + "_total")
            elif family.type == "histogram":
                out.update(family.name + s for s in ("_bucket", "_sum", "_count"))
            out.update(s.name for s in family.samples)
        return frozenset(out)

    def render(self) -> str:
        """Return every family in the Prometheus text exposition format 0.0.4."""
        return generate_latest(self.collector_registry).decode()

    def _get_or_add(self, name: str, shape: _Shape, cls: type[_M], make: Callable[[], _M]) -> _M:
        # Classic names only: prometheus_client accepts UTF-8 names, which Prometheus 2 (and
        # PromQL without quoting) cannot query.
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}: use [a-zA-Z_:][a-zA-Z0-9_:]*")
        for label in shape.labelnames:
            if not _LABEL_NAME.match(label):
                raise ValueError(f"invalid label name {label!r} for metric {name!r}")
        with self._lock:
            found = self._families.get(name)
            if found is not None:
                have, metric = found
                if have != shape or not isinstance(metric, cls):
                    raise ValueError(
                        f"metric {name!r} is already registered as a {have.kind} with labels "
                        f"{have.labelnames}; asked for a {shape.kind} with labels "
                        f"{shape.labelnames}"
                    )
                return metric
            new = make()
            self._families[name] = (shape, new)
            return new


class Children(Generic[_M]):
    """The label children of one family, each looked up once: ``children("bid").set(3)``.

    ``family.labels(...)`` checks the label values and takes the family's lock on every call;
    the decision loop sets the same few children every cycle (P&L components, book sides, risk
    triggers), so it keeps them here. Values are positional, in the family's label order. A
    child the family later drops (``remove``, ``clear``) would go stale: the agent never does.
    """

    __slots__ = ("_family", "_kids")

    def __init__(self, family: _M) -> None:
        self._family: _M = family
        self._kids: dict[tuple[str, ...], _M] = {}

    def __call__(self, *values: str) -> _M:
        """Return the child for these label values (created on first use)."""
        kid = self._kids.get(values)
        if kid is None:
            kid = self._kids[values] = self._family.labels(*values)
        return kid


def _unknown(gauge: Gauge) -> Gauge:
    gauge.set(math.nan)
    return gauge


class AgentMetrics:
    """Every metric family the agent exports, with its help text and unit.

    Attributes are the families; set them with the ``prometheus_client`` API
    (``families.open_orders.labels(side="bid").set(3)``). Label values: ``side`` is ``bid`` or
    ``ask``; ``method`` is the JSON-RPC method; ``endpoint`` the exchange REST path.
    Gauges marked "NaN until known" start as NaN (see the module docstring).
    """

    def __init__(self, r: MetricsRegistry) -> None:
        # -- the decision loop ------------------------------------------------------------------
        self.cycle_seconds = r.histogram(
            "mm_cycle_seconds", "Decision cycle duration", buckets=CYCLE_BUCKETS
        )
        self.cycle_errors = r.counter("mm_cycle_errors_total", "Cycles that failed", ("kind",))
        self.blind_cycles = r.gauge(
            "mm_blind_cycles",
            "Failed cycles in a row (the agent cannot see the market); 0 after a good cycle",
        )
        self.quote_txs = r.counter("mm_quote_txs_total", "Quote batch transactions sent")
        self.quote_skips = r.counter("mm_quote_skips_total", "Refreshes skipped by cost")
        self.fills = r.counter("mm_fills_total", "Own fills on the DEX")
        self.open_orders = r.gauge(
            "mm_open_orders", "Own orders resting on the DEX, by side (bid, ask)", ("side",)
        )
        # -- positions and the hedge ------------------------------------------------------------
        self.inventory_base = _unknown(
            r.gauge("mm_inventory_base", "DEX position, base units (long > 0); NaN until known")
        )
        self.cex_position_base = _unknown(
            r.gauge(
                "mm_cex_position_base",
                "Exchange (hedge) position, base units (long > 0); NaN until known",
            )
        )
        self.hedge_gap_base = _unknown(
            r.gauge(
                "mm_hedge_gap_base",
                "Hedge gap: target hedge minus exchange position, base units; NaN until known",
            )
        )
        self.hedge_dead_band_base = _unknown(
            r.gauge(
                "mm_hedge_dead_band_base",
                "The hedger's dead band, base units (a gap inside it is not traded); from config",
            )
        )
        # -- transactions and gas ---------------------------------------------------------------
        self.pending_nonce = _unknown(
            r.gauge("mm_pending_nonce", "Next nonce the transaction pipeline will use")
        )
        self.pending_txs = r.gauge("mm_pending_txs", "Transactions sent and not yet mined")
        self.tx_outcomes = r.counter(
            "mm_tx_outcomes_total",
            "Transactions by outcome (mined, reverted, replaced, dropped)",
            ("outcome",),
        )
        self.tx_replacements = r.counter(
            "mm_tx_replacements_total",
            "Transactions re-signed at their nonce with higher fees, by reason (speedup)",
            ("reason",),
        )
        self.gas_fees_paid_native = r.counter(
            "mm_gas_fees_paid_native_total", "Gas fees paid, in the chain's native token (ETH)"
        )
        self.gas_balance_native = _unknown(
            r.gauge(
                "mm_gas_balance_native",
                "Signer wallet balance, in the chain's native token (ETH); NaN until known",
            )
        )
        self.gas_balance_min_native = _unknown(
            r.gauge(
                "mm_gas_balance_min_native",
                "Balance below which the gas wallet counts as low, native token; from config",
            )
        )
        self.gas_over_budget = r.counter(
            "mm_gas_over_budget_total",
            "Cycles in which the base fee was above the fee ceiling and nothing was sent",
        )
        # -- latencies and errors of the two links ----------------------------------------------
        self.rpc_latency_seconds = r.histogram(
            "mm_rpc_latency_seconds", "JSON-RPC request latency, by method", ("method",)
        )
        self.rpc_requests = r.counter(
            "mm_rpc_requests_total", "JSON-RPC requests, by method", ("method",)
        )
        self.rpc_errors = r.counter(
            "mm_rpc_errors_total", "JSON-RPC requests that failed, by method", ("method",)
        )
        self.exchange_latency_seconds = r.histogram(
            "mm_exchange_latency_seconds",
            "Exchange REST request latency, by endpoint",
            ("endpoint",),
        )
        self.exchange_errors = r.counter(
            "mm_exchange_errors_total",
            "Exchange requests that failed, by kind "
            "(timeout, rate_limited, auth, banned, rejected)",
            ("kind",),
        )
        # -- risk -------------------------------------------------------------------------------
        self.risk_state = _unknown(
            r.gauge(
                "mm_risk_state",
                "Risk state (0 NORMAL, 1 REDUCED, 2 WIDENED, 3 HEDGING, 4 WITHDRAWN, 5 HALTED)",
            )
        )
        self.risk_transitions = r.counter(
            "mm_risk_transitions_total", "Risk state transitions", ("from_state", "to_state")
        )
        self.risk_trigger_level = r.gauge(
            "mm_risk_trigger_level", "Risk trigger level (0 clear, 1 warn, 2 breach)", ("trigger",)
        )
        self.risk_trigger_value = r.gauge(
            "mm_risk_trigger_value",
            "Last reading of a risk trigger, in the trigger's own unit (its name says it)",
            ("trigger",),
        )
        # -- P&L --------------------------------------------------------------------------------
        self.pnl = r.gauge(
            "mm_pnl", "Cumulative P&L by component, quote units (USD)", ("component",)
        )
        # -- alerts -----------------------------------------------------------------------------
        self.alerts = r.counter(
            "mm_alerts_total",
            "Alerts by kind and outcome "
            "(sent, failed, dropped: queue full, suppressed: rate limit)",
            ("kind", "outcome"),
        )
