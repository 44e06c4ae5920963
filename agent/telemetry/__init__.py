"""Telemetry: metrics on ``prometheus_client``, health with named conditions, the HTTP server.

==================  ===============================================================
`MetricsRegistry`   one agent's own registry (process and platform collectors in it);
                    ``registry.families`` is `AgentMetrics`, the catalog of every family
`Children`          a family's label children, looked up once (the loop's hot path)
`Health`            heartbeat + risk state + raised `Condition` s → ``/healthz`` 200/503
`RiskTelemetry`     the risk engine's state, transitions and trigger readings as metrics
`TelemetryServer`   aiohttp server for ``GET /metrics`` and ``GET /healthz``
`configure_logging` JSON logs (re-exported from `agent.logs`, where the schema lives)
==================  ===============================================================
"""

from agent.logs import JsonFormatter, configure_logging
from agent.telemetry.health import Condition, Health
from agent.telemetry.metrics import (
    CYCLE_BUCKETS,
    DEFAULT_BUCKETS,
    AgentMetrics,
    Children,
    Counter,
    Gauge,
    Histogram,
    MetricsRegistry,
)
from agent.telemetry.risk import RiskTelemetry
from agent.telemetry.server import TelemetryServer, is_loopback

__all__ = [
    "CYCLE_BUCKETS",
    "DEFAULT_BUCKETS",
    "AgentMetrics",
    "Children",
    "Condition",
    "Counter",
    "Gauge",
    "Health",
    "Histogram",
    "JsonFormatter",
    "MetricsRegistry",
    "RiskTelemetry",
    "TelemetryServer",
    "configure_logging",
    "is_loopback",
]
