"""Keeper duties: settle funding at each boundary, liquidate under-margined accounts.

Both are permissionless calls that pay a reward; the agent performs them only when the reward beats
the gas they cost by a configured margin. The decision rules here are pure; the runtime supplies the
numbers (from chain views and the gas estimator) and sends the transactions.

Liquidation candidates are discovered from the market's events (every account that ever traded),
then checked with the account-state view; the check is cheap and done only for accounts whose last
known margin ratio is near maintenance, so a market with many accounts does not cost a view per
account per block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "AccountHealth",
    "DutyDecision",
    "KeeperPolicy",
    "liquidation_candidates",
    "should_liquidate",
    "should_settle_funding",
]


@dataclass(frozen=True, slots=True)
class KeeperPolicy:
    """When duties are worth doing."""

    settle_funding: bool = True
    liquidate: bool = True
    min_profit_usd: float = 0.0
    """Reward minus gas cost must exceed this."""
    watch_margin_ratio: float = 1.5
    """Re-check accounts whose equity / maintenance margin was below this at the last look."""


@dataclass(frozen=True, slots=True)
class DutyDecision:
    """Whether to act, and the numbers behind it (for the decision log)."""

    act: bool
    reason: str
    reward_usd: float
    gas_cost_usd: float

    @property
    def profit_usd(self) -> float:
        """Reward minus gas cost."""
        return self.reward_usd - self.gas_cost_usd


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """An account's margin state as read from the market."""

    account: str
    equity: float
    maintenance_margin: float
    position_lots: int

    @property
    def liquidatable(self) -> bool:
        """True when the market would accept ``liquidate(account)``."""
        return self.position_lots != 0 and self.equity < self.maintenance_margin

    @property
    def margin_ratio(self) -> float:
        """Equity over maintenance margin (inf without a position)."""
        if self.position_lots == 0 or self.maintenance_margin <= 0:
            return float("inf")
        return self.equity / self.maintenance_margin


def should_settle_funding(
    policy: KeeperPolicy,
    now_s: float,
    next_boundary_s: float,
    reward_usd: float,
    gas_units: int,
    gas_price_wei: int,
    native_usd: float,
) -> DutyDecision:
    """Decide whether to call ``settleFunding()`` now.

    Parameters
    ----------
    now_s
        Chain time of the latest block (the call lands in a later one).
    next_boundary_s
        The funding boundary the market is waiting for.
    reward_usd
        The keeper reward the market pays, in collateral units.
    gas_units, gas_price_wei, native_usd
        Expected gas of the call, the expected effective gas price, and the native token's price.
    """
    gas_usd = gas_units * gas_price_wei / 1e18 * native_usd
    if not policy.settle_funding:
        return DutyDecision(False, "disabled", reward_usd, gas_usd)
    if now_s < next_boundary_s:
        return DutyDecision(
            False, f"boundary in {next_boundary_s - now_s:.0f} s", reward_usd, gas_usd
        )
    if reward_usd - gas_usd <= policy.min_profit_usd:
        return DutyDecision(
            False,
            f"unprofitable: reward {reward_usd:.4f} − gas {gas_usd:.4f} ≤ {policy.min_profit_usd}",
            reward_usd,
            gas_usd,
        )
    return DutyDecision(True, "boundary passed and reward beats gas", reward_usd, gas_usd)


def should_liquidate(
    policy: KeeperPolicy,
    health: AccountHealth,
    reward_usd: float,
    gas_units: int,
    gas_price_wei: int,
    native_usd: float,
) -> DutyDecision:
    """Decide whether to call ``liquidate(account)`` now."""
    gas_usd = gas_units * gas_price_wei / 1e18 * native_usd
    if not policy.liquidate:
        return DutyDecision(False, "disabled", reward_usd, gas_usd)
    if not health.liquidatable:
        return DutyDecision(
            False, f"healthy (margin ratio {health.margin_ratio:.2f})", reward_usd, gas_usd
        )
    if reward_usd - gas_usd <= policy.min_profit_usd:
        return DutyDecision(False, "unprofitable after gas", reward_usd, gas_usd)
    return DutyDecision(True, "equity below maintenance margin", reward_usd, gas_usd)


def liquidation_candidates(
    known: Iterable[AccountHealth], policy: KeeperPolicy, exclude: str | None = None
) -> list[str]:
    """Return accounts worth re-checking, the closest to liquidation first."""
    near = [
        h
        for h in known
        if h.account != exclude
        and h.position_lots != 0
        and h.margin_ratio < policy.watch_margin_ratio
    ]
    return [h.account for h in sorted(near, key=lambda h: h.margin_ratio)]
