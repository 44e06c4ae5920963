"""How wide the hedge band should be: inventory risk against what a hedge costs. Pure functions.

The unhedged inventory ``x`` (base units) moves as fills arrive: roughly a random walk with
variance rate ``v = λ s²`` (λ fills per second of typical size ``s``). Holding it costs risk, the
variance of its P&L priced at a risk aversion ``γ`` (per USD): ``a x²`` per second with
``a = ½ γ σ² S²`` (σ relative volatility per √s, S the price). Trading it away costs ``k = c S``
per unit (``c``: fee + half-spread + slippage as a fraction of notional).

Keeping ``x`` inside ``[−b, b]`` and trading only at the edge costs, per second, ``a b² / 3``
(``x`` is uniform in the band) plus ``k v / (2b)`` (how often the edge is pushed). The sum is
least at

    b* = (3 k v / (4 a))^(1/3) = (3 c λ s² / (2 γ σ² S))^(1/3)

the same cube-root law as Whalley and Wilmott's hedging band under proportional costs: dearer
hedges and faster inventory widen the band, more risk (γ, σ, S) narrows it. The hedger trades
the whole gap once outside the band (a hedge back to the target), which carries less risk than
the edge rule for the same band; the band is the part that pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = ["HedgeBandInputs", "hedge_band_base", "hedge_cost_per_second_usd", "urgent_band"]


@dataclass(frozen=True, slots=True)
class HedgeBandInputs:
    """What sets the band. Every field is finite and positive."""

    price_usd: float
    """Price of one base unit."""
    vol_per_sqrt_s: float
    """Relative volatility per √second (e.g. 60% a year ≈ 1.07e-4)."""
    fill_rate_per_s: float
    """DEX fills per second (both sides): how fast the unhedged inventory moves."""
    fill_size_base: float
    """Typical fill size, base units (root mean square if sizes vary)."""
    hedge_cost_bps: float
    """One hedge's cost in bps of notional: fee + half the spread + slippage (≈ 5 taker, ≈ 0-2
    passive)."""
    risk_aversion_per_usd: float
    """γ, the price of risk: carrying P&L variance ``V`` (USD²) costs ``½ γ V`` USD."""

    def __post_init__(self) -> None:
        for name in (
            "price_usd",
            "vol_per_sqrt_s",
            "fill_rate_per_s",
            "fill_size_base",
            "hedge_cost_bps",
            "risk_aversion_per_usd",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"hedge band: {name} must be finite and > 0, not {value}")


def hedge_band_base(
    x: HedgeBandInputs, *, min_base: float = 0.0, max_base: float = math.inf
) -> float:
    """Return the band half-width ``b*`` in base units, clipped to ``[min_base, max_base]``.

    ``min_base`` is typically the exchange's minimum order (a smaller band cannot be traded) and
    ``max_base`` the inventory the risk limits allow unhedged.
    """
    if not 0 <= min_base <= max_base:
        raise ValueError(f"need 0 ≤ min_base ≤ max_base (got {min_base}, {max_base})")
    c = x.hedge_cost_bps / 1e4
    v = x.fill_rate_per_s * x.fill_size_base**2
    b = math.cbrt(3 * c * v / (2 * x.risk_aversion_per_usd * x.vol_per_sqrt_s**2 * x.price_usd))
    return min(max(b, min_base), max_base)


def hedge_cost_per_second_usd(x: HedgeBandInputs, band_base: float) -> float:
    """Expected cost per second of keeping inventory in ``[−band, band]``: risk plus trading.

    ``hedge_band_base`` minimises this; the cost of any other band shows what it gives away.
    """
    if not band_base > 0:
        raise ValueError(f"band must be > 0, not {band_base}")
    a = 0.5 * x.risk_aversion_per_usd * (x.vol_per_sqrt_s * x.price_usd) ** 2
    k = x.hedge_cost_bps / 1e4 * x.price_usd
    v = x.fill_rate_per_s * x.fill_size_base**2
    return a * band_base**2 / 3 + k * v / (2 * band_base)


def urgent_band(band_base: float, urgency: int, *, urgent_mult: float = 0.25) -> float:
    """The band to use at a risk urgency: 0 or 1 (none, normal) keep it; 2 (aggressive,
    the risk engine's HEDGING) shrinks it to ``urgent_mult`` of itself."""
    if urgency not in (0, 1, 2):
        raise ValueError(f"urgency must be 0, 1 or 2, not {urgency}")
    if not 0 <= urgent_mult <= 1:
        raise ValueError(f"urgent_mult must be in [0, 1], not {urgent_mult}")
    return band_base * urgent_mult if urgency == 2 else band_base
