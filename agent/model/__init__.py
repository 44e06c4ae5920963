"""The pure quoting brain: quotes, costs, online estimators. No I/O, no clock reads.

``decide(inputs, params, live) -> Decision`` is the one entry point; the live runtime and the
event simulator call the same function.

Wiring, once per cycle (``t`` the injected clock)::

    fv.update_cex(t, cex_mid); fv.update_oracle(oracle_t, index)      # FairValueEstimator
    fv.update_dex(t, best_other_bid, best_other_ask)                  # book WITHOUT our orders
    fair = fv.value(t)                                                # .stale -> do not quote
    momentum.update(t, cex_mid); jump = jumps.update(t, cex_mid, sigma_rel)
    est.update_paid_fee(pipe.last_fees.base_fee_wei, pipe.last_fees.tip_wei)
    est.update_l1_fee(l1_fee_per_byte_wei)                            # L2 profiles only
    est.quote_fills.update_quotes(t, distances of resting quotes from fair.price)
    est.quote_fills.update_fill(t_fill, |fill price - fair at fill|)  # our fills only
    risk = engine.evaluate(RiskInputs(..., fair_value=fair.price,
                                      fair_value_divergence_bps=fair.divergence_bps,
                                      cex_jump=jump.state is JumpState.PULLED, ...))
    decision = decide(DecisionInputs(..., fair_value=fair.price,
                                     momentum_per_s=momentum.drift_per_s()),
                      params, LiveQuotes(quotes, expires_at_s=...))
    # stamp decision.expires_at_s on the new orders; hedge with risk.hedge_band_mult/hedge_taker

``FundingPredictor`` takes the market's interval, 8-hour interest and clamp, and cap (its rate is
per interval, in the contract's units). ``strategy(name).params(configured)`` gives the baseline
presets.
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
from agent.model.fairvalue import (
    FairValue,
    FairValueEstimator,
    FairValueParams,
    FairValueSource,
    PremiumFreshness,
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
from agent.model.signals import (
    ExchangeMomentum,
    JumpDetector,
    JumpParams,
    JumpSignal,
    JumpState,
    SweepGuard,
    SweepParams,
)
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
    "PremiumFreshness",
    "QuoteFillIntensity",
    "QuoteModel",
    "RiskDirective",
    "Strategy",
    "StrategyName",
    "SweepGuard",
    "SweepParams",
    "UpdateCost",
    "UpdateValue",
    "decide",
    "strategy",
]
