"""Strategy presets for baselines on the same world (``mm-agent stress --strategy``).

A preset is a pure mapping from the configured ``ModelParams`` to the params of the named
strategy, plus the one flag ``decide`` cannot carry (how often the runtime decides):

==============  ==============================================================================
preset          what it is
==============  ==============================================================================
``shipped``     the configured model as is: cost gate, gas floor, funding terms, settlement window
``plain``       the textbook A-S/GLFT quoter: no cost gate (any change is sent), no gas in the
                spread floor, no funding terms, no settlement window, no adverse-selection floor
                and no momentum skew; its inventory skew is on the DEX position alone (the
                textbook knows no hedge); the maker fee stays in the floor (no quoter quotes inside
                its own fee) and the ladder, sizes, cap and closed form stay the configured ones;
                like the textbook it re-quotes continuously (every block)
``every-block`` the shipped model with the cost gate off, deciding every block
==============  ==============================================================================

The runtime applies ``Strategy.params(configured)`` once at start and, when
``decide_every_block`` is set, runs a decision on every new head (the gate then sends any change).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from agent.errors import ConfigError
from agent.model.quoting import ModelParams

__all__ = ["Strategy", "StrategyName", "strategy"]


class StrategyName(enum.StrEnum):
    """The preset names the CLI accepts."""

    SHIPPED = "shipped"
    PLAIN = "plain"
    EVERY_BLOCK = "every-block"


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named preset: how it transforms the model params, and how often to decide."""

    name: StrategyName
    decide_every_block: bool

    def params(self, configured: ModelParams) -> ModelParams:
        """Return the params this strategy quotes with, from the configured ones."""
        if self.name is StrategyName.SHIPPED:
            return configured
        if self.name is StrategyName.EVERY_BLOCK:
            return replace(configured, cost_gate=False)
        return replace(
            configured,
            cost_gate=False,
            price_gas=False,
            funding_terms=False,
            adverse_bps=0.0,
            adverse_sigma_mult=0.0,
            momentum_horizon_s=0.0,
            skew_on_net_delta=False,
        )


def strategy(name: str) -> Strategy:
    """Return the preset called ``name`` (``shipped``, ``plain`` or ``every-block``).

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    try:
        key = StrategyName(name)
    except ValueError:
        known = ", ".join(n.value for n in StrategyName)
        raise ConfigError(f"unknown strategy {name!r}: choose one of {known}") from None
    return Strategy(key, decide_every_block=key is not StrategyName.SHIPPED)
