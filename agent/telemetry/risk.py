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
        self._exported: dict[str, tuple[int, float]] = {}
        """Each trigger's last exported (level, value): a gauge is set only when it changes
        (the same export, without a lock and a set per trigger per cycle on the hot path)."""
        self._state_exported: int | None = None

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
        state = int(directive.state)
        if state != self._state_exported:
            self._state.set(state)
            self._state_exported = state
        exported = self._exported
        active = {r.name: r for r in directive.readings}
        for name in self._seen - active.keys():
            if name in exported:
                del exported[name]
                self._level(name).set(0)
        for name, r in active.items():
            level, value = int(r.level), r.value
            last = exported.get(name)
            if last is None or last[0] != level:
                self._level(name).set(level)
            if last is None or last[1] != value:  # NaN != NaN: set again, as before
                self._value(name).set(value)
            exported[name] = (level, value)
        self._seen |= active.keys()
