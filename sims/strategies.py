"""Strategies a stress table compares on the same world, by name.

A strategy is a set of ``[quoting]`` (and ``[risk]``) overrides applied on top of the run's
config (``--config`` or the stress defaults), so every strategy meets the same seeds, blocks,
takers and exchange.

=============  ====================================================================================
``shipped``    the model as configured (no override)
``plain``      the textbook A-S/GLFT quoter: no cost gate, no gas in the spread floor, no funding
               terms, no adverse-selection floor, no momentum skew, inventory skew on the DEX
               position alone (``agent.model.strategies``); no sweep guard (``risk.sweep_fills``
               0: a swept side is re-quoted at once, the residual hedged by the band alone)
``every-block`` the shipped model with the cost gate off: any change of the ladder is sent
=============  ====================================================================================

The baselines are the presets of :mod:`agent.model.strategies`; each is registered here as the
``[quoting]`` fields its preset changes, so the preset stays the one definition. The stress
runner decides on every block for every strategy; with the gate off a preset sends every change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError
from agent.model.quoting import ModelParams
from agent.model.strategies import StrategyName
from agent.model.strategies import strategy as model_preset
from agent.risk.engine import RiskLimits

__all__ = ["STRATEGIES", "Strategy", "get_strategy", "register", "strategy_names"]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named strategy: overrides of the agent's ``[quoting]`` table."""

    name: str
    description: str
    quoting: Mapping[str, Any] = field(default_factory=dict)
    risk: Mapping[str, Any] = field(default_factory=dict)
    """``[risk]`` overrides: the runtime's toxic-flow posture is a risk rule, not a model one."""

    def apply_risk(self, risk: Mapping[str, Any] | RiskLimits) -> dict[str, Any] | RiskLimits:
        """The ``[risk]`` table (raw, or validated) with this strategy's overrides."""
        if isinstance(risk, RiskLimits):
            return dataclasses.replace(risk, **self.risk)
        return {**risk, **self.risk}

    def apply(self, quoting: Mapping[str, Any] | ModelParams) -> dict[str, Any] | ModelParams:
        """The ``[quoting]`` table (raw, or validated) with this strategy's overrides."""
        if isinstance(quoting, ModelParams):
            return dataclasses.replace(quoting, **self.quoting)
        return {**quoting, **self.quoting}


STRATEGIES: dict[str, Strategy] = {}
"""The registry, in registration order (the order of a table's rows)."""


def register(strategy: Strategy) -> Strategy:
    """Add `strategy` to the registry (a name may be registered once)."""
    if strategy.name in STRATEGIES or strategy.name == "all":
        raise ValueError(f"strategy {strategy.name!r} is already registered or reserved")
    STRATEGIES[strategy.name] = strategy
    return strategy


def strategy_names() -> list[str]:
    """Every registered name."""
    return list(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The strategy called `name`.

    Raises
    ------
    ConfigError
        For a name not registered (the message lists the registered ones).
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}: registered are {', '.join(STRATEGIES)} "
            "(add one in sims/strategies.py)"
        ) from None


register(Strategy("shipped", "the model as configured"))


def _preset_overrides(name: StrategyName) -> dict[str, Any]:
    """The ``[quoting]`` fields the model preset `name` changes from the defaults."""
    base = ModelParams()
    preset = model_preset(name.value).params(base)
    return {
        f.name: getattr(preset, f.name)
        for f in dataclasses.fields(ModelParams)
        if getattr(preset, f.name) != getattr(base, f.name)
    }


register(
    Strategy(
        "plain",
        "textbook A-S/GLFT: no cost gate, gas, funding terms or adverse floor",
        _preset_overrides(StrategyName.PLAIN),
        # The textbook quoter re-quotes whatever was swept and hedges by its band alone.
        risk={"sweep_fills": 0},
    )
)
register(
    Strategy(
        "every-block",
        "the shipped model with the cost gate off (sends every change)",
        _preset_overrides(StrategyName.EVERY_BLOCK),
    )
)
