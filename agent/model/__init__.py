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
    QuoteFillIntensity,
)
from agent.model.fairvalue import FairValue, FairValueEstimator, FairValueParams, FairValueSource
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
from agent.model.signals import ExchangeMomentum, JumpDetector, JumpParams, JumpSignal, JumpState
from agent.model.strategies import Strategy, StrategyName, strategy

__all__ = [
    "BaseFeeForecaster",
    "Decision",
    "DecisionInputs",
    "Estimators",
    "EwmaVolatility",
    "ExchangeMomentum",
    "FairValue",
    "FairValueEstimator",
    "FairValueParams",
    "FairValueSource",
    "FillIntensity",
    "FundingPredictor",
    "GateReason",
    "InclusionDelay",
    "JumpDetector",
    "JumpParams",
    "JumpSignal",
    "JumpState",
    "LadderLevel",
    "LiveQuotes",
    "ModelEstimates",
    "ModelParams",
    "QuoteFillIntensity",
    "QuoteModel",
    "RiskDirective",
    "Strategy",
    "StrategyName",
    "UpdateCost",
    "UpdateValue",
    "decide",
    "strategy",
]
