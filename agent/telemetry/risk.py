"""Export the risk engine's state, transitions and trigger readings; log every transition."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from agent.logs import Event, log_event
from agent.risk import RiskDirective, RiskState, Transition
from agent.telemetry.metrics import Children, MetricsRegistry

__all__ = ["RiskTelemetry"]


class RiskTelemetry:
    """Export the risk engine's state and transitions as metrics, and log every transition.

    Metrics (declared in `AgentMetrics`): ``mm_risk_state`` (0 NORMAL .. 5 HALTED),
    ``mm_risk_transitions_total{from_state, to_state}``, and per trigger ``mm_risk_trigger_level``
    (0 clear, 1 warn, 2 breach) and ``mm_risk_trigger_value`` (the last reading while active).
    Each transition is one ``risk.transition`` log line: ERROR into HALTED, WARNING for any
    other escalation, INFO for a de-escalation.
    """

    def __init__(self, registry: MetricsRegistry, logger: logging.Logger | None = None) -> None:
        self._log = logger if logger is not None else logging.getLogger("agent.risk")
        m = registry.families
        self._state = m.risk_state
        self._transitions = Children(m.risk_transitions)
        self._level = Children(m.risk_trigger_level)
        self._value = Children(m.risk_trigger_value)
        self._seen: set[str] = set()

    def record(self, directive: RiskDirective, transitions: Iterable[Transition]) -> None:
        """Log and count ``transitions``, then export the state and readings of ``directive``."""
        for t in transitions:
            self._transitions(t.from_state.name, t.to_state.name).inc()
            if t.to_state is RiskState.HALTED:
                level = logging.ERROR
            elif t.to_state > t.from_state:
                level = logging.WARNING
            else:
                level = logging.INFO
            detail = t.as_dict()
            log_event(
                self._log,
                Event.RISK_TRANSITION,
                f"risk {t.from_state.name} -> {t.to_state.name}: {t.reason}",
                level=level,
                from_state=t.from_state.name,
                to_state=t.to_state.name,
                reason=t.reason,
                readings=detail.get("readings", []),
            )
        self._state.set(int(directive.state))
        active = {r.name: r for r in directive.readings}
        for name in self._seen - active.keys():
            self._level(name).set(0)
        for name, r in active.items():
            self._level(name).set(int(r.level))
            self._value(name).set(r.value)
        self._seen |= active.keys()
