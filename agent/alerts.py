"""Alert hook: post what an operator must act on to a webhook, without ever blocking the loop.

Use
    >>> alerter = Alerter(AlertSettings(format=PayloadFormat.SLACK), url, metrics=registry)
    >>> await alerter.start()
    >>> alerter.emit(AlertKind.RISK_HALTED, Severity.CRITICAL, "drawdown 6% > 5%", state="HALTED")
    >>> await alerter.aclose()   # at shutdown: sends what is queued (bounded), then stops

What is sent (`AlertKind`)
    escalation to WITHDRAWN or HALTED, gas over budget, an exchange ban, a low gas balance.

Guarantees
    - `Alerter.emit` never waits: it rate-limits, then puts the alert on a bounded queue and
      returns. A full queue drops the alert (``mm_alerts_total{outcome="dropped"}``, and one
      ``alert.dropped`` log line). Call it from the event loop's thread.
    - Rate limit per kind: after an alert of a kind is accepted, others of that kind within
      ``min_interval_s`` are suppressed and counted (``outcome="suppressed"``); the next one
      that goes out says how many were suppressed. Kinds do not limit each other, so a HALTED
      alert is never held back by a WITHDRAWN one.
    - One background task sends, one alert at a time, each with at most ``max_attempts``
      tries: transport errors, HTTP 429 and 5xx are retried with exponential backoff (a
      ``Retry-After`` is honoured up to ``retry_max_wait_s``); other 4xx answers are final.
      Every alert ends as ``outcome="sent"`` or ``"failed"``.

Payload shapes (`PayloadFormat`)
    ``json``      ``{"kind", "severity", "text", "agent", "ts", "fields", "suppressed"}``
    ``slack``     incoming webhook: ``{"text"}`` (``&``, ``<``, ``>`` escaped as Slack asks)
    ``discord``   webhook: ``{"content", "allowed_mentions": {"parse": []}}`` (no @everyone)
    ``telegram``  Bot API ``sendMessage`` (URL ``https://api.telegram.org/bot<TOKEN>/sendMessage``):
                  ``{"chat_id", "text", "disable_web_page_preview"}``

The URL is a secret for all of these (it embeds a token), so it is passed in, never stored in
settings: `AlertSettings.url_env` names the environment variable to read it from.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import enum
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from agent.errors import ConfigError
from agent.logs import Event, log_event
from agent.telemetry.metrics import MetricsRegistry

__all__ = [
    "Alert",
    "AlertKind",
    "AlertSettings",
    "Alerter",
    "PayloadFormat",
    "Severity",
    "render_payload",
]

_log = logging.getLogger(__name__)


class AlertKind(enum.StrEnum):
    """What happened; the rate limit is per kind."""

    RISK_WITHDRAWN = "risk_withdrawn"
    """The risk engine escalated to WITHDRAWN: no quotes rest."""
    RISK_HALTED = "risk_halted"
    """The risk engine HALTED the agent: an operator must resume it."""
    GAS_OVER_BUDGET = "gas_over_budget"
    """The base fee is above the fee ceiling: quotes cannot be updated."""
    EXCHANGE_BANNED = "exchange_banned"
    """The exchange banned the key or IP: the hedge leg is down."""
    GAS_BALANCE_LOW = "gas_balance_low"
    """The signer's native balance is below the configured minimum."""


class Severity(enum.StrEnum):
    """How urgent."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class PayloadFormat(enum.StrEnum):
    """The JSON shape the webhook expects."""

    JSON = "json"
    SLACK = "slack"
    DISCORD = "discord"
    TELEGRAM = "telegram"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """How alerts are shaped, limited and retried.

    Attributes
    ----------
    format
        Payload shape (see the module docstring).
    url_env
        Name of the environment variable that holds the webhook URL (a secret).
    telegram_chat_id
        Chat to post to; required for the Telegram format.
    agent_name
        Names this agent in every message (several agents may share a channel).
    min_interval_s
        At most one alert of a kind per this many seconds; the rest are counted and suppressed.
    queue_size
        Alerts waiting to be sent; more are dropped and counted.
    max_attempts
        Tries per alert, the first included.
    retry_base_s
        First backoff; it doubles per retry, up to ``retry_max_wait_s``.
    retry_max_wait_s
        Longest wait between tries, a server's ``Retry-After`` included.
    timeout_s
        Per-request timeout.
    """

    format: PayloadFormat = PayloadFormat.JSON
    url_env: str = "MM_ALERT_WEBHOOK_URL"
    telegram_chat_id: str | None = None
    agent_name: str = "mm-agent"
    min_interval_s: float = 300.0
    queue_size: int = 100
    max_attempts: int = 4
    retry_base_s: float = 1.0
    retry_max_wait_s: float = 30.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("min_interval_s", "retry_base_s", "retry_max_wait_s", "timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"alerts.{name} must be a finite number >= 0, got {value!r}")
        if self.timeout_s <= 0:
            raise ConfigError("alerts.timeout_s must be > 0")
        if not 1 <= self.queue_size <= 10_000:
            raise ConfigError(f"alerts.queue_size must be in 1..10000, got {self.queue_size}")
        if not 1 <= self.max_attempts <= 20:
            raise ConfigError(f"alerts.max_attempts must be in 1..20, got {self.max_attempts}")
        if self.format is PayloadFormat.TELEGRAM and not self.telegram_chat_id:
            raise ConfigError("alerts.telegram_chat_id is required for the telegram format")

    def url_from_env(self, env: Mapping[str, str] | None = None) -> str:
        """Return the webhook URL from the environment variable named by ``url_env``."""
        url = (os.environ if env is None else env).get(self.url_env, "")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"alerts: set {self.url_env} to the webhook URL (http:// or https://)"
            )
        return url


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as queued."""

    kind: AlertKind
    severity: Severity
    text: str
    fields: Mapping[str, object] = field(default_factory=dict)
    at_unix_s: float = 0.0
    suppressed: int = 0
    """Alerts of this kind suppressed by the rate limit since the last one accepted."""


_ICON = {Severity.INFO: "ℹ️", Severity.WARNING: "⚠️", Severity.CRITICAL: "🚨"}
_MAX_CHARS = {PayloadFormat.DISCORD: 2000, PayloadFormat.TELEGRAM: 4096, PayloadFormat.SLACK: 3000}


def _summary(alert: Alert, agent_name: str) -> str:
    lines = [f"{_ICON[alert.severity]} [{agent_name}] {alert.severity.upper()} {alert.kind}"]
    lines.append(alert.text)
    if alert.fields:
        lines.append(" ".join(f"{k}={v}" for k, v in alert.fields.items()))
    if alert.suppressed:
        lines.append(f"(+{alert.suppressed} more of this kind suppressed by the rate limit)")
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_payload(
    alert: Alert,
    fmt: PayloadFormat,
    *,
    agent_name: str = "mm-agent",
    telegram_chat_id: str | None = None,
) -> dict[str, Any]:
    """Return the JSON body for ``alert`` in the shape ``fmt`` expects."""
    if fmt is PayloadFormat.JSON:
        ts = _dt.datetime.fromtimestamp(alert.at_unix_s, tz=_dt.UTC)
        return {
            "kind": alert.kind.value,
            "severity": alert.severity.value,
            "text": alert.text,
            "agent": agent_name,
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "fields": {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                       for k, v in alert.fields.items()},
            "suppressed": alert.suppressed,
        }  # fmt: skip
    text = _clip(_summary(alert, agent_name), _MAX_CHARS[fmt])
    if fmt is PayloadFormat.SLACK:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return {"text": escaped}
    if fmt is PayloadFormat.DISCORD:
        return {"content": text, "allowed_mentions": {"parse": []}}
    return {"chat_id": telegram_chat_id, "text": text, "disable_web_page_preview": True}


class _Retryable(Exception):
    """A failure worth another try (transport error, HTTP 429 or 5xx)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Final(Exception):
    """A failure another try would repeat (any other 4xx)."""


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if header is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(header))
    # Telegram says it in the body: {"parameters": {"retry_after": 3}}.
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return max(0.0, float(response.json()["parameters"]["retry_after"]))
    return None


class Alerter:
    """Rate-limited, queued, retried webhook alerts (see the module docstring).

    Parameters
    ----------
    settings
        Shape, limits and retries.
    url
        The webhook URL (see `AlertSettings.url_from_env`).
    metrics
        Where ``mm_alerts_total{kind, outcome}`` lives; a private registry when None.
    transport
        httpx transport (the seam for tests that need one; the real one by default).
    clock, wall_clock
        Monotonic seconds for the rate limit; Unix seconds for the alert's timestamp.
    """

    def __init__(
        self,
        settings: AlertSettings,
        url: str,
        *,
        metrics: MetricsRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._url = url
        self._outcomes = (metrics or MetricsRegistry(process_metrics=False)).families.alerts
        self._transport = transport
        self._clock = clock
        self._wall_clock = wall_clock
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=settings.queue_size)
        self._last_accepted: dict[AlertKind, float] = {}
        self._suppressed: dict[AlertKind, int] = {}
        self._worker: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._busy = False

    # -- the caller's side (never awaits) ------------------------------------------------------

    def emit(self, kind: AlertKind, severity: Severity, text: str, **fields: object) -> bool:
        """Queue an alert; return True if queued, False if rate-limited or dropped (queue full)."""
        now = self._clock()
        last = self._last_accepted.get(kind)
        if last is not None and now - last < self._settings.min_interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            self._outcomes.labels(kind.value, "suppressed").inc()
            return False
        alert = Alert(
            kind, severity, text, dict(fields), self._wall_clock(), self._suppressed.get(kind, 0)
        )
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._outcomes.labels(kind.value, "dropped").inc()
            log_event(
                _log,
                Event.ALERT_DROPPED,
                f"alert queue full ({self._settings.queue_size}): {kind} dropped",
                level=logging.WARNING,
                kind=kind.value,
            )
            return False
        self._last_accepted[kind] = now
        self._suppressed[kind] = 0
        return True

    @property
    def pending(self) -> int:
        """Return how many alerts are queued or being sent."""
        return self._queue.qsize() + (1 if self._busy else 0)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sender."""
        if self._worker is not None:
            raise RuntimeError("alerter is already started")
        self._client = httpx.AsyncClient(
            transport=self._transport, timeout=self._settings.timeout_s, follow_redirects=False
        )
        self._worker = asyncio.create_task(self._run(), name="alerts")

    async def aclose(self, drain_timeout_s: float = 10.0) -> None:
        """Send what is queued (for at most ``drain_timeout_s``), then stop (idempotent)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            async with asyncio.timeout(drain_timeout_s):
                await self._queue.join()
        except TimeoutError:
            _log.warning("alerts: %d alert(s) not sent at shutdown", self.pending)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Alerter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the sender ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            self._busy = True
            try:
                await self._deliver(alert)
            finally:
                self._busy = False
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        s = self._settings
        body = render_payload(
            alert, s.format, agent_name=s.agent_name, telegram_chat_id=s.telegram_chat_id
        )
        exponential = wait_exponential(multiplier=s.retry_base_s, max=s.retry_max_wait_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, _Retryable) and exc.retry_after_s is not None:
                return min(exc.retry_after_s, s.retry_max_wait_s)
            return float(exponential(state))

        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(s.max_attempts),
                wait=wait,
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    await self._post(body)
        except Exception as exc:  # every alert ends sent or failed; the sender never dies
            self._outcomes.labels(alert.kind.value, "failed").inc()
            log_event(
                _log,
                Event.ALERT_FAILED,
                f"alert {alert.kind} not delivered after {attempts} attempt(s): {exc}",
                level=logging.ERROR,
                kind=alert.kind.value,
                attempts=attempts,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        self._outcomes.labels(alert.kind.value, "sent").inc()
        log_event(
            _log,
            Event.ALERT_SENT,
            f"alert {alert.kind} sent",
            kind=alert.kind.value,
            severity=alert.severity.value,
            attempts=attempts,
            suppressed=alert.suppressed,
        )

    async def _post(self, body: Mapping[str, Any]) -> None:
        assert self._client is not None  # _run only runs after start()
        try:
            r = await self._client.post(self._url, json=body)
        except httpx.TransportError as exc:  # connect, read, timeouts: worth another try
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if r.is_success:
            return
        what = f"HTTP {r.status_code}: {r.text[:200]}"
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retryable(what, _retry_after(r))
        raise _Final(what)
