"""The hedge band: inventory risk against hedge cost, with plain numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from agent.errors import ConfigError
from agent.hedge import HedgeBandInputs, hedge_band_base, hedge_cost_per_second_usd
from agent.hedge.band import urgent_band

# ETH at 2000, 60%/yr vol, a fill of 0.1 every 20 s, a 5 bps taker hedge.
X = HedgeBandInputs(
    price_usd=2000.0,
    vol_per_sqrt_s=0.6 / math.sqrt(365 * 86_400),
    fill_rate_per_s=0.05,
    fill_size_base=0.1,
    hedge_cost_bps=5.0,
    risk_aversion_per_usd=1.0,
)


def test_band_is_the_cheapest_band() -> None:
    b = hedge_band_base(X)
    best = hedge_cost_per_second_usd(X, b)
    for f in (0.5, 0.8, 0.95, 1.05, 1.25, 2.0):
        assert hedge_cost_per_second_usd(X, b * f) > best, f


def test_band_matches_the_closed_form() -> None:
    c, v = 5e-4, 0.05 * 0.1**2
    expected = (3 * c * v / (2 * 1.0 * X.vol_per_sqrt_s**2 * 2000.0)) ** (1 / 3)
    assert hedge_band_base(X) == pytest.approx(expected, rel=1e-12)
    assert 0.2 < hedge_band_base(X) < 0.3  # ~0.25: the band the study found paid (issue 13)


@pytest.mark.parametrize(
    ("field", "mult", "band_mult"),
    [
        ("hedge_cost_bps", 8.0, 2.0),  # dearer hedges: wider band (cube root)
        ("risk_aversion_per_usd", 8.0, 0.5),  # more risk-averse: narrower
        ("vol_per_sqrt_s", 2.0, 2 ** (-2 / 3)),  # more volatile: narrower
        ("fill_rate_per_s", 8.0, 2.0),  # inventory moves faster: wider
    ],
)
def test_band_scales_with_cost_and_risk(field: str, mult: float, band_mult: float) -> None:
    changed = replace(X, **{field: getattr(X, field) * mult})
    assert hedge_band_base(changed) == pytest.approx(hedge_band_base(X) * band_mult, rel=1e-9)


def test_passive_hedging_affords_a_narrower_band() -> None:
    maker = replace(X, hedge_cost_bps=1.0)
    assert hedge_band_base(maker) < hedge_band_base(X)


def test_band_is_clipped_to_what_can_be_traded_and_what_risk_allows() -> None:
    assert hedge_band_base(X, min_base=5.0, max_base=10.0) == 5.0
    assert hedge_band_base(X, max_base=0.01) == 0.01
    with pytest.raises(ValueError, match="min_base"):
        hedge_band_base(X, min_base=2.0, max_base=1.0)


def test_urgency_shrinks_the_band_only_when_aggressive() -> None:
    assert urgent_band(0.4, 1) == 0.4 and urgent_band(0.4, 0) == 0.4
    assert urgent_band(0.4, 2) == pytest.approx(0.1)
    assert urgent_band(0.4, 2, urgent_mult=0.0) == 0.0
    with pytest.raises(ValueError, match="urgency"):
        urgent_band(0.4, 3)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_inputs_must_be_finite_and_positive(bad: float) -> None:
    with pytest.raises(ConfigError, match="hedge_cost_bps"):
        replace(X, hedge_cost_bps=bad)
