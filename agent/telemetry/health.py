"""Health: the loop's heartbeat plus named conditions with reasons, as ``/healthz`` reports them.

The rule
    The agent is healthy when all of these hold; ``/healthz`` answers 200, else 503:

    - the loop's heartbeat (`Health.beat`, once per cycle) is younger than ``max_heartbeat_age_s``;
    - the risk state last reported by `Health.beat` is not HALTED;
    - no `Condition` is raised.

    The JSON body always lists the failing reasons under ``"failing"`` (``[]`` when healthy), one
    object per reason: ``{"condition": NAME, "reason": TEXT}``, plus ``"since_s"`` (seconds it
    has been raised) for a `Condition`. The heartbeat and the risk state appear there as
    ``no_heartbeat`` / ``heartbeat_stale`` and ``risk_halted``.

Conditions
    Components raise a condition when they see a problem and clear it when it is gone; raising
    one that is already raised only updates its reason (``since_s`` keeps counting from the
    first time). The catalog is `Condition`; who sets each (once wired):

    ================== ==================================================================
    chain_stale        no successful chain read for ``chain_stale_s``, or no new block for
                       longer than the risk engine's block-age breach
    rpc_failing        the node's JSON-RPC is failing (the pipeline's RPC health is not ok)
    exchange_down      the exchange does not answer (market-data reads unanswered for longer
                       than the risk engine's CEX feed-age breach, or the hedger's last request
                       failed for want of an answer)
    exchange_auth      the exchange rejects the API key or signature
    exchange_banned    the exchange has banned the key or IP (HTTP 418 / Binance -1003)
    blind_cycles       cycles fail in a row: the agent cannot see the market
    gas_low            the signer's native balance is below the configured minimum
    gas_over_budget    the base fee is above the fee ceiling: nothing can be sent
    drawdown_withdrawn the drawdown withdraw level holds the agent out until an operator
                       resumes it (``mm-agent resume`` re-bases the drawdown peak)
    ================== ==================================================================

    ``/healthz`` is a readiness signal ("is this agent doing its job?"); an orchestrator should
    not restart the process on it (a restart does not fund a wallet or lift a ban).

Metrics
    `Health` is also a Prometheus collector (`TelemetryServer` registers it): ``mm_healthy``
    (1/0), ``mm_heartbeat_age_seconds`` (NaN before the first beat) and
    ``mm_health_condition{condition}`` (1 raised, 0 clear, every condition always present), all
    computed at scrape time.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client.core import GaugeMetricFamily, Metric

from agent.errors import ConfigError
from agent.logs import Event, log_event

__all__ = ["Condition", "Health"]

_log = logging.getLogger(__name__)


class Condition(enum.StrEnum):
    """A named reason for the agent to be unhealthy (see the module docstring's table)."""

    CHAIN_STALE = "chain_stale"
    RPC_FAILING = "rpc_failing"
    EXCHANGE_DOWN = "exchange_down"
    EXCHANGE_AUTH = "exchange_auth"
    EXCHANGE_BANNED = "exchange_banned"
    BLIND_CYCLES = "blind_cycles"
    GAS_LOW = "gas_low"
    GAS_OVER_BUDGET = "gas_over_budget"
    DRAWDOWN_WITHDRAWN = "drawdown_withdrawn"


@dataclass(frozen=True, slots=True)
class _Raised:
    reason: str
    since: float


class Health:
    """The loop's heartbeat, link status and raised conditions, as reported by ``/healthz``.

    Thread-safe: conditions may be raised from any thread (a hedger's worker, a signal handler).

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
        {"healthy", "failing", "heartbeat_age_s", "rpc_ok", "cex_ok", "risk_state"}
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
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        self._rpc_ok = False
        self._cex_ok = False
        self._risk_state = "UNKNOWN"
        self._raised: dict[Condition, _Raised] = {}

    # -- what components call ---------------------------------------------------------------

    def beat(
        self,
        *,
        rpc_ok: bool | None = None,
        cex_ok: bool | None = None,
        risk_state: str | None = None,
    ) -> None:
        """Record that the loop is alive; update any status passed (None leaves it as it was)."""
        with self._lock:
            self._last_beat = self._clock()
            if rpc_ok is not None:
                self._rpc_ok = rpc_ok
            if cex_ok is not None:
                self._cex_ok = cex_ok
            if risk_state is not None:
                self._risk_state = risk_state

    def set_condition(self, condition: Condition, reason: str) -> None:
        """Raise ``condition`` with a human-readable ``reason`` (what is wrong, what to do)."""
        with self._lock:
            old = self._raised.get(condition)
            since = old.since if old is not None else self._clock()
            self._raised[condition] = _Raised(reason, since)
        # One line when raised, one when cleared: a reason that changes every cycle (a falling
        # balance) must not write a line every cycle; /healthz shows the latest reason.
        if old is None:
            log_event(
                _log,
                Event.HEALTH_CONDITION,
                f"health condition {condition.value}: {reason}",
                level=logging.WARNING,
                condition=condition.value,
                active=True,
                reason=reason,
            )

    def clear_condition(self, condition: Condition) -> None:
        """Clear ``condition`` (a no-op when it is not raised)."""
        with self._lock:
            old = self._raised.pop(condition, None)
        if old is not None:
            log_event(
                _log,
                Event.HEALTH_CONDITION,
                f"health condition {condition.value} cleared",
                condition=condition.value,
                active=False,
                reason=old.reason,
            )

    def update_condition(self, condition: Condition, reason: str | None) -> None:
        """Raise ``condition`` when ``reason`` is a string, clear it when None."""
        if reason is None:
            self.clear_condition(condition)
        else:
            self.set_condition(condition, reason)

    def conditions(self) -> dict[Condition, str]:
        """Return the raised conditions and their reasons."""
        with self._lock:
            return {c: r.reason for c, r in self._raised.items()}

    # -- what /healthz and /metrics read -----------------------------------------------------

    def report(self) -> tuple[bool, dict[str, object]]:
        """Return (healthy, JSON-ready report with the ``failing`` reasons)."""
        with self._lock:
            now = self._clock()
            age = None if self._last_beat is None else max(0.0, now - self._last_beat)
            risk_state, rpc_ok, cex_ok = self._risk_state, self._rpc_ok, self._cex_ok
            raised = sorted(self._raised.items())
        failing: list[dict[str, object]] = []
        if age is None:
            failing.append(_reason("no_heartbeat", "the decision loop has not completed a cycle"))
        elif age > self._max_age_s:
            failing.append(
                _reason(
                    "heartbeat_stale",
                    f"last cycle {age:.1f} s ago (limit {self._max_age_s:g} s): the loop is stuck",
                )
            )
        if risk_state == "HALTED":
            failing.append(
                _reason("risk_halted", "risk state HALTED: an operator must `mm-agent resume`")
            )
        failing.extend(_reason(c.value, r.reason, max(0.0, now - r.since)) for c, r in raised)
        healthy = not failing
        body: dict[str, object] = {}
        if self._provider is not None:
            try:
                body.update(self._provider())
            except Exception as exc:  # a broken provider must not take the probe down
                _log.exception("health provider failed")
                body["provider_error"] = f"{type(exc).__name__}: {exc}"
        body.update(
            healthy=healthy,
            failing=failing,
            heartbeat_age_s=age,
            rpc_ok=rpc_ok,
            cex_ok=cex_ok,
            risk_state=risk_state,
        )
        return healthy, body

    def describe(self) -> Iterable[Metric]:
        """Describe the families `collect` yields (lets the registry check names up front)."""
        return self._families(None, math.nan, ())

    def collect(self) -> Iterable[Metric]:
        """Yield ``mm_healthy``, ``mm_heartbeat_age_seconds`` and ``mm_health_condition``."""
        healthy, report = self.report()
        age = report["heartbeat_age_s"]
        with self._lock:
            raised = set(self._raised)
        return self._families(healthy, age if isinstance(age, float) else math.nan, raised)

    @staticmethod
    def _families(healthy: bool | None, age_s: float, raised: Iterable[Condition]) -> list[Metric]:
        up = GaugeMetricFamily("mm_healthy", "1 when /healthz answers 200, 0 when it answers 503")
        age = GaugeMetricFamily(
            "mm_heartbeat_age_seconds", "Seconds since the decision loop last completed a cycle"
        )
        cond = GaugeMetricFamily(
            "mm_health_condition",
            "1 while a health condition is raised, 0 otherwise",
            labels=("condition",),
        )
        if healthy is not None:
            up.add_metric([], 1.0 if healthy else 0.0)
            age.add_metric([], age_s)
            on = set(raised)
            for c in Condition:
                cond.add_metric([c.value], 1.0 if c in on else 0.0)
        return [up, age, cond]


def _reason(condition: str, reason: str, since_s: float | None = None) -> dict[str, object]:
    out: dict[str, object] = {"condition": condition, "reason": reason}
    if since_s is not None:
        out["since_s"] = round(since_s, 3)
    return out
