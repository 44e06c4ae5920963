"""``GET /metrics`` and ``GET /healthz`` on aiohttp.

Bind address
    Loopback (127.0.0.1, ::1, localhost) by default. Any other address needs
    ``allow_external_bind=True`` (``telemetry.allow_external_bind = true`` in the config): the
    metrics carry positions and P&L, so exposing them is a decision, not a default. Behind a
    container's network or a reverse proxy is where such a bind belongs.

/metrics
    Content negotiation by ``prometheus_client``: the Prometheus text format 0.0.4 by default,
    OpenMetrics when the scraper asks for it (Prometheus does).

/healthz
    200 or 503 with the JSON report of `Health.report` (see `agent.telemetry.health`).
"""

from __future__ import annotations

import ipaddress
import json
import logging

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from agent.errors import ConfigError
from agent.logs import Event, log_event
from agent.telemetry.health import Health
from agent.telemetry.metrics import MetricsRegistry

__all__ = ["TelemetryServer", "is_loopback"]

_log = logging.getLogger(__name__)

# How long stop() lets an in-flight scrape finish before closing its connection.
_SHUTDOWN_TIMEOUT_S = 1.0


def is_loopback(host: str) -> bool:
    """Return True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TelemetryServer:
    """Serve ``GET /metrics`` and ``GET /healthz``.

    Parameters
    ----------
    registry
        Metrics to render on ``/metrics``; ``health`` is registered in it as a collector.
    health
        Source of the ``/healthz`` report.
    host, port
        Address to bind; port 0 picks a free port (read it back from `port`).
    allow_external_bind
        Allow a non-loopback ``host`` (e.g. ``0.0.0.0`` in a container).

    Raises
    ------
    ConfigError
        For a non-loopback host without ``allow_external_bind``.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        health: Health,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_external_bind: bool = False,
    ) -> None:
        if not allow_external_bind and not is_loopback(host):
            raise ConfigError(
                f"telemetry host {host!r} is not a loopback address: bind 127.0.0.1 (or ::1), or "
                "set telemetry.allow_external_bind = true to expose /metrics and /healthz"
            )
        self._registry = registry
        self._health = health
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        registry.register_collector(health)

    @property
    def port(self) -> int:
        """Return the bound port (valid after `start`)."""
        if self._bound_port is None:
            raise RuntimeError("telemetry server is not started")
        return self._bound_port

    async def start(self) -> None:
        """Bind and start serving."""
        if self._runner is not None:
            raise RuntimeError("telemetry server is already started")
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        # access_log=None: a scrape every few seconds is not worth a log line each.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])
        log_event(
            _log,
            Event.TELEMETRY_LISTENING,
            f"telemetry listening on {self._host}:{self._bound_port}",
            host=self._host,
            port=self._bound_port,
        )

    async def stop(self) -> None:
        """Stop accepting, end open connections, and wait until all are gone (idempotent)."""
        runner, self._runner = self._runner, None
        self._bound_port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> TelemetryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self._registry.collector_registry)
        # Set the header directly: aiohttp's content_type= refuses parameters such as version=.
        return web.Response(
            body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, report = self._health.report()
        return web.Response(
            status=200 if healthy else 503,
            text=json.dumps(report, default=str),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
