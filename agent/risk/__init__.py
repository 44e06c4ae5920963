"""The graded risk engine (pure): limits and a snapshot in, a quoting posture out."""

from agent.risk.engine import (
    Band,
    HedgeUrgency,
    Level,
    RiskDirective,
    RiskEngine,
    RiskInputs,
    RiskLimits,
    RiskState,
    Transition,
    TriggerReading,
    UnloadPlan,
    book_equity_quote,
    marked_equity_quote,
    strategy_capital,
)

__all__ = [
    "Band",
    "HedgeUrgency",
    "Level",
    "RiskDirective",
    "RiskEngine",
    "RiskInputs",
    "RiskLimits",
    "RiskState",
    "Transition",
    "TriggerReading",
    "UnloadPlan",
    "book_equity_quote",
    "marked_equity_quote",
    "strategy_capital",
]
