"""The pure quoting brain: quotes, costs, online estimators. No I/O, no clock reads.

``decide(inputs, params, live) -> Decision`` is the one entry point; the live runtime and the
event simulator call the same function.
"""

from agent.model.costs import UpdateCost, UpdateValue
from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    ModelEstimates,
)
from agent.model.quoting import (
    Decision,
    DecisionInputs,
    GateReason,
    LadderLevel,
    LiveQuotes,
    ModelParams,
    QuoteModel,
    RiskDirective,
    decide,
)

__all__ = [
    "BaseFeeForecaster",
    "Decision",
    "DecisionInputs",
    "Estimators",
    "EwmaVolatility",
    "FillIntensity",
    "FundingPredictor",
    "GateReason",
    "InclusionDelay",
    "LadderLevel",
    "LiveQuotes",
    "ModelEstimates",
    "ModelParams",
    "QuoteModel",
    "RiskDirective",
    "UpdateCost",
    "UpdateValue",
    "decide",
]
