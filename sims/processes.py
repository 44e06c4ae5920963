"""Seeded stochastic processes for the scenario engine and the event simulator.

Every function takes a numpy ``Generator`` from the caller (same seed → bit-identical output) and
a frozen spec whose fields carry their units.

============  ==============================================================================
process       model
============  ==============================================================================
mid price     GBM in log space with Markov volatility regimes, compound-Poisson jumps and
              scripted shocks (time, relative move)
funding       premium index: Ornstein-Uhlenbeck around ``±mean`` whose sign flips as a Poisson
              process (funding regimes that change hands)
base fee      EIP-1559: ``b' = b·(1 + (used − target)/target/8)`` with block fullness drawn
              around the target and demand shocks that fill blocks for a while
mempool       per block, our tx is included unless the block is full of higher tips; each
              block it may also be dropped; delay counts from submit to its block
taker flow    uninformed: Poisson arrivals reaching depth ``D ~ Exp(k)`` (so ``λ(δ) = A·e^(−kδ)``);
              informed: Poisson arrivals that know the next mid and trade toward it
============  ==============================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "BaseFeeSpec",
    "FundingSpec",
    "InclusionOutcome",
    "MempoolSpec",
    "MidPriceSpec",
    "TakerFlowSpec",
    "TakerTrade",
    "base_fee_path",
    "funding_premium_path",
    "mid_price_path",
    "sample_inclusion",
    "taker_trades",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MidPriceSpec:
    """Mid-price dynamics."""

    s0: float = 2000.0
    sigma_rel_per_sqrt_s: tuple[float, ...] = (3e-4,)
    """Volatility of each regime (relative, per √second)."""
    regime_switch_per_s: float = 0.0
    """Rate of leaving the current regime for a uniformly chosen other one."""
    jump_rate_per_s: float = 0.0
    jump_sd_rel: float = 0.0
    shocks: tuple[tuple[float, float], ...] = ()
    """Scripted moves as ``(time_s, relative move)``, e.g. ``(600.0, -0.05)`` for −5% at 10 min."""


def mid_price_path(
    rng: np.random.Generator, spec: MidPriceSpec, n_steps: int, dt_s: float
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Return ``n_steps + 1`` mids (starting at ``s0``) and the regime index of each step."""
    n_reg = len(spec.sigma_rel_per_sqrt_s)
    regimes = np.zeros(n_steps, dtype=np.int64)
    switches = rng.random(n_steps) < spec.regime_switch_per_s * dt_s
    offsets = rng.integers(1, max(n_reg, 2), size=n_steps)
    current = 0
    for i in range(n_steps):
        if switches[i] and n_reg > 1:
            current = int((current + offsets[i]) % n_reg)
        regimes[i] = current
    sig = np.asarray(spec.sigma_rel_per_sqrt_s, dtype=np.float64)[regimes]
    z = rng.standard_normal(n_steps)
    dlog = -0.5 * sig * sig * dt_s + sig * math.sqrt(dt_s) * z
    n_jumps = rng.poisson(spec.jump_rate_per_s * dt_s, size=n_steps)
    dlog += n_jumps * spec.jump_sd_rel * rng.standard_normal(n_steps)
    for time_s, move in spec.shocks:
        i = int(time_s / dt_s)
        if 0 <= i < n_steps:
            dlog[i] += math.log1p(move)
    path = np.empty(n_steps + 1)
    path[0] = spec.s0
    path[1:] = spec.s0 * np.exp(np.cumsum(dlog))
    return path, regimes


@dataclass(frozen=True, slots=True)
class FundingSpec:
    """Premium index ``(mark − index)/index`` dynamics."""

    mean_abs: float = 2e-4
    reversion_per_s: float = 1.0 / 1800.0
    vol_per_sqrt_s: float = 2e-6
    flip_rate_per_s: float = 1.0 / 28_800.0
    initial_sign: int = 1


def funding_premium_path(
    rng: np.random.Generator, spec: FundingSpec, n_steps: int, dt_s: float
) -> FloatArray:
    """Return ``n_steps + 1`` premium values (exact OU discretization around a flipping mean)."""
    decay = math.exp(-spec.reversion_per_s * dt_s)
    noise_sd = spec.vol_per_sqrt_s * math.sqrt((1.0 - decay * decay) / (2.0 * spec.reversion_per_s))
    flips = rng.random(n_steps) < spec.flip_rate_per_s * dt_s
    z = rng.standard_normal(n_steps)
    out = np.empty(n_steps + 1)
    sign = 1.0 if spec.initial_sign >= 0 else -1.0
    x = sign * spec.mean_abs
    out[0] = x
    for i in range(n_steps):
        if flips[i]:
            sign = -sign
        mean = sign * spec.mean_abs
        x = mean + (x - mean) * decay + noise_sd * z[i]
        out[i + 1] = x
    return out


@dataclass(frozen=True, slots=True)
class BaseFeeSpec:
    """EIP-1559 base-fee dynamics."""

    base_fee0_wei: float = 20e9
    gas_limit: int = 30_000_000
    fullness_mean: float = 0.5
    fullness_concentration: float = 20.0
    """Beta concentration of block fullness around its mean (higher = calmer)."""
    demand_elasticity: float = 0.2
    """Drop of mean fullness per unit of ``ln(base fee / base_fee0)``: demand shies away from
    expensive blocks, which is what pulls the base fee back after a spike."""
    shock_rate_per_block: float = 0.0
    shock_blocks: int = 20
    shock_fullness: float = 1.0
    min_base_fee_wei: float = 7.0


def base_fee_path(
    rng: np.random.Generator, spec: BaseFeeSpec, n_blocks: int
) -> tuple[FloatArray, FloatArray]:
    """Return base fees (wei) and gas-used fractions for ``n_blocks`` blocks.

    Block ``i``'s base fee follows from block ``i − 1``'s fullness by the 12.5% rule.
    """
    c = spec.fullness_concentration
    shocks = rng.random(n_blocks) < spec.shock_rate_per_block
    fullness = np.empty(n_blocks)
    fees = np.empty(n_blocks)
    fee = spec.base_fee0_wei
    ln_ref = math.log(spec.base_fee0_wei)
    remaining = 0
    for i in range(n_blocks):
        fees[i] = fee
        if shocks[i]:
            remaining = spec.shock_blocks
        if remaining > 0:
            full = spec.shock_fullness
            remaining -= 1
        else:
            mean = spec.fullness_mean - spec.demand_elasticity * (math.log(fee) - ln_ref)
            mean = min(0.95, max(0.05, mean))
            full = float(rng.beta(mean * c, (1.0 - mean) * c))
        fullness[i] = full
        fee = max(spec.min_base_fee_wei, fee * (1.0 + (full - 0.5) / 0.5 / 8.0))
    return fees, fullness


@dataclass(frozen=True, slots=True)
class MempoolSpec:
    """Inclusion of our transactions."""

    block_time_s: float = 2.0
    competing_tip_wei: float = 1e9
    """Median tip of competing demand."""
    competing_tip_log_sd: float = 0.5
    drop_prob_per_block: float = 0.002
    max_blocks: int = 50


@dataclass(frozen=True, slots=True)
class InclusionOutcome:
    """What happened to one submitted transaction."""

    included: bool
    blocks: int
    delay_s: float


def sample_inclusion(
    rng: np.random.Generator,
    spec: MempoolSpec,
    tip_wei: float,
    fullness: FloatArray,
    first_block: int,
    phase: float,
) -> InclusionOutcome:
    """Sample the inclusion of a tx submitted ``phase`` (0..1) of a block time before block
    ``first_block``.

    A block excludes us with probability ``fullness × P(competing tip > our tip)``: full blocks of
    higher-tipping demand push us back. Each block the tx may also be dropped.
    """
    ln_ratio = math.log(max(tip_wei, 1.0) / spec.competing_tip_wei)
    p_outbid = 0.5 * math.erfc(ln_ratio / (spec.competing_tip_log_sd * math.sqrt(2.0)))
    wait = phase * spec.block_time_s
    for n in range(spec.max_blocks):
        block = min(first_block + n, len(fullness) - 1)
        if rng.random() < spec.drop_prob_per_block:
            return InclusionOutcome(False, n + 1, wait + n * spec.block_time_s)
        if rng.random() >= fullness[block] * p_outbid:
            return InclusionOutcome(True, n + 1, wait + n * spec.block_time_s)
    return InclusionOutcome(False, spec.max_blocks, wait + spec.max_blocks * spec.block_time_s)


@dataclass(frozen=True, slots=True)
class TakerFlowSpec:
    """Taker flow against the book."""

    a_per_s: float = 0.5
    """Uninformed arrivals per side per second (reaching mid)."""
    k_per_price: float = 1.0
    """Reach decay: an arrival reaches at least δ from mid with probability exp(−kδ)."""
    mean_size_base: float = 1.0
    informed_rate_per_s: float = 0.02
    informed_size_base: float = 2.0


@dataclass(frozen=True, slots=True)
class TakerTrade:
    """One taker order: +1 buys (lifts asks), −1 sells (hits bids)."""

    side_sign: int
    reach: float
    """Distance from mid the order reaches (price units); informed orders: up to the next mid."""
    size_base: float
    informed: bool


def taker_trades(
    rng: np.random.Generator, spec: TakerFlowSpec, dt_s: float, mid: float, next_mid: float
) -> list[TakerTrade]:
    """Sample the taker orders of one step of ``dt_s`` seconds."""
    trades: list[TakerTrade] = []
    n_buy, n_sell, n_inf = rng.poisson(
        (spec.a_per_s * dt_s, spec.a_per_s * dt_s, spec.informed_rate_per_s * dt_s)
    )
    for sign, n in ((1, int(n_buy)), (-1, int(n_sell))):
        for _ in range(n):
            reach = float(rng.exponential(1.0 / spec.k_per_price))
            size = float(rng.exponential(spec.mean_size_base))
            trades.append(TakerTrade(sign, reach, size, False))
    move = next_mid - mid
    if move != 0.0:
        for _ in range(int(n_inf)):
            # Informed takers trade ahead of the move, at any price better than where it lands.
            trades.append(
                TakerTrade(1 if move > 0 else -1, abs(move), spec.informed_size_base, True)
            )
    return trades
