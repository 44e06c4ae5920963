"""Quotes: reservation price, spread, funding drift, sizing, ladder, and the cost gate.

``decide`` is the one pure entry point the live runtime and the event simulator both call.

Units (all floats at this boundary; ticks and lots only in the rounded ladder):

=====================  ==========================================================
price, mid, mark       quote currency per base unit
inventory, size        base units (signed inventory: + long)
σ (``sigma``)          price units per √second (absolute, not relative)
A (``fill_a_per_s``)   taker arrivals per second reaching mid
k (``fill_k_per_price``) decay of arrivals per price unit of distance from mid
γ (``gamma``)          risk aversion per (price unit × base unit)
funding rate           fraction of mark paid per funding interval (+: longs pay)
=====================  ==========================================================

Models
------
``AS``   Avellaneda & Stoikov (2008), eqs. (29)-(30): ``r = s - qγσ²τ`` and
         ``δa + δb = γσ²τ + (2/γ)ln(1 + γ/k)`` with τ = ``horizon_s`` (a rolling horizon live).
``GLFT`` Guéant, Lehalle & Fernandez-Tapia (2013) asymptotic quotes, in the form with order size
         Δ (Guéant 2017): ``δb = c1 + (2q + Δ)/2 · c2``, ``δa = c1 - (2q - Δ)/2 · c2`` with
         ``c1 = ln(1 + γΔ/k)/(γΔ)`` and ``c2 = √(γσ²/(2AΔk) · (1 + γΔ/k)^(1 + k/(γΔ)))``.

Both are written as a reservation price ``r`` and a half-spread ``h`` (bid = r - h, ask = r + h),
then shifted by the funding terms, floored, scaled by the risk directive and laddered.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from agent.errors import ConfigError
from agent.model.costs import (
    QuoteLeg,
    UpdateCost,
    UpdateValue,
    effective_gas_price_wei,
    gas_cost_quote,
    ladder_value_quote,
    should_send,
    update_cost,
)
from agent.model.estimators import ModelEstimates
from agent.types import Lots, Quote, Side, Tick

__all__ = [
    "Decision",
    "DecisionInputs",
    "GateReason",
    "LadderLevel",
    "LiveQuotes",
    "ModelParams",
    "QuoteModel",
    "RiskDirective",
    "as_quotes",
    "decide",
    "glft_quotes",
]


class QuoteModel(enum.StrEnum):
    """Which closed form sets the reservation price and spread."""

    AS = "as"
    GLFT = "glft"


class GateReason(enum.StrEnum):
    """Why the cost gate sent or held an update (for the decision log)."""

    GAIN_EXCEEDS_COST = "gain_exceeds_cost"
    COST_EXCEEDS_GAIN = "cost_exceeds_gain"
    UNCHANGED = "unchanged"
    RISK_CANCEL = "risk_cancel"
    RISK_SIDE = "risk_side"
    NOTHING_LIVE = "nothing_live"


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Quoting, market and cost settings. Every field carries its unit.

    The defaults suit a liquid perp quoted in USD around 2,000 with 1-second-ish decisions.
    """

    model: QuoteModel = QuoteModel.GLFT
    gamma: float = 0.05
    """Risk aversion per (price unit × base unit)."""
    horizon_s: float = 60.0
    """A-S ``T - t``: the rolling horizon over which inventory risk is priced."""
    tick_size: float = 0.01
    """Price units per tick."""
    lot_size: float = 0.001
    """Base units per lot."""
    min_notional: float = 10.0
    """Smallest order notional the venue accepts, quote currency."""
    maker_fee_bps: float = 1.0
    taker_fee_bps: float = 5.0
    gas_units_per_refresh: int = 180_000
    native_price_quote: float = 2000.0
    """Quote currency per unit of the chain's native token (prices gas)."""
    gas_spike_weight: float = 0.25
    """Weight on the base fee's p99 when pricing gas (0 = forecast only, 1 = price the spike)."""
    levels: int = 3
    level_step_ticks: int = 2
    """Minimum distance between ladder levels."""
    level_step_frac: float = 0.5
    """Distance between ladder levels as a fraction of the half-spread (the larger step wins)."""
    level_size_growth: float = 1.5
    """Size of level i+1 over level i."""
    base_size_base: float = 1.0
    """Top-of-ladder size at reference volatility and full depth, base units."""
    inventory_cap_base: float = 10.0
    """Inventory cap at reference volatility and full depth, base units."""
    ref_sigma_rel_per_sqrt_s: float = 1.2e-4
    """Relative volatility (σ/mid per √s) at and below which sizes and the cap are not shrunk."""
    ref_depth_base: float = 20.0
    """Book depth per side at and above which sizes and the cap are not shrunk."""
    adverse_bps: float = 0.5
    """Adverse-selection premium in the spread floor, bps of mid."""
    adverse_sigma_mult: float = 1.0
    """Extra floor per side: this many σ·√(inclusion delay) (quotes are stale while they land)."""
    quote_life_s: float = 30.0
    """Expected rest time of a quote before the next refresh (values quotes, amortizes gas)."""
    min_expected_fills: float = 0.05
    """Floor on expected fills per quote life when amortizing gas (keeps the floor finite)."""
    funding_interval_s: float = 28_800.0
    expected_holding_s: float = 600.0
    """Expected time a unit of inventory is held (funding drift horizon)."""
    settlement_window_s: float = 900.0
    """Seconds before a funding snapshot in which the paying side is penalised harder."""
    settlement_skew_mult: float = 2.0
    """Inventory-skew multiplier on the paying side inside the settlement window."""
    settlement_size_mult: float = 0.5
    """Size multiplier inside the window on the side that adds to the paying position."""

    def __post_init__(self) -> None:
        checks = (
            (self.gamma > 0.0, "gamma must be > 0"),
            (self.horizon_s >= 0.0, "horizon_s must be >= 0"),
            (self.tick_size > 0.0 and self.lot_size > 0.0, "tick_size and lot_size must be > 0"),
            (self.levels >= 1, "levels must be >= 1"),
            (self.level_step_ticks >= 1, "level_step_ticks must be >= 1"),
            (self.base_size_base > 0.0, "base_size_base must be > 0"),
            (self.inventory_cap_base > 0.0, "inventory_cap_base must be > 0"),
            (self.quote_life_s > 0.0, "quote_life_s must be > 0"),
            (self.min_expected_fills > 0.0, "min_expected_fills must be > 0"),
            (self.funding_interval_s > 0.0, "funding_interval_s must be > 0"),
            (self.expected_holding_s > 0.0, "expected_holding_s must be > 0"),
            (0.0 <= self.gas_spike_weight <= 1.0, "gas_spike_weight must be in [0, 1]"),
            (0.0 < self.settlement_size_mult <= 1.0, "settlement_size_mult must be in (0, 1]"),
            (self.settlement_skew_mult >= 1.0, "settlement_skew_mult must be >= 1"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"model params: {message}")


@dataclass(frozen=True, slots=True)
class RiskDirective:
    """Knobs the risk engine sets on each decision."""

    size_mult: float = 1.0
    """In [0, 1]: scales every quote size."""
    spread_mult: float = 1.0
    """At least 1: widens the half-spread."""
    allow_bid: bool = True
    allow_ask: bool = True
    reduce_only: bool = False
    """Quote only the side that reduces inventory, never more than the inventory."""
    force_cancel: bool = False
    """Cancel everything now; always passes the cost gate."""


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Everything one decision sees. Time is injected (``time_s``), never read from a clock."""

    time_s: float
    mid: float
    index: float
    mark: float
    best_bid: float | None
    best_ask: float | None
    bid_depth_base: float
    ask_depth_base: float
    inventory_base: float
    estimates: ModelEstimates
    seconds_to_funding: float
    risk: RiskDirective = field(default_factory=RiskDirective)


@dataclass(frozen=True, slots=True)
class LiveQuotes:
    """The quotes resting (or in flight) on the venue, in chain units."""

    quotes: tuple[Quote, ...] = ()


@dataclass(frozen=True, slots=True)
class LadderLevel:
    """One target quote: model float price/size and its rounded chain form."""

    side: Side
    price: float
    size_base: float
    price_ticks: Tick
    size_lots: Lots

    def quote(self) -> Quote:
        """Return the chain-unit quote."""
        return Quote(self.side, self.price_ticks, self.size_lots)


@dataclass(frozen=True, slots=True)
class Decision:
    """The model's answer: target ladder, whether to send it, and why."""

    send: bool
    reason: GateReason
    ladder: tuple[LadderLevel, ...]
    reservation_price: float
    half_spread: float
    """Half-spread used (after floor and risk multiplier), price units."""
    half_spread_model: float
    """Half-spread from the closed form before the floor."""
    half_spread_floor: float
    funding_drift: float
    """Price shift of r from expected funding over the holding horizon (subtracted)."""
    snapshot_shift: float
    """Price shift of r from the expected payment at the next snapshot (subtracted)."""
    expected_snapshot_payment_quote: float
    """Expected payment at the next snapshot on current inventory (+: we pay)."""
    bid_size_base: float
    ask_size_base: float
    inventory_cap_base: float
    value: UpdateValue
    cost: UpdateCost

    @property
    def quotes(self) -> tuple[Quote, ...]:
        """Target ladder in chain units."""
        return tuple(level.quote() for level in self.ladder)


def as_quotes(
    mid: float, q: float, gamma: float, sigma: float, tau: float, k: float
) -> tuple[float, float]:
    """Return the Avellaneda-Stoikov reservation price and half-spread.

    Implements ``r = s - qγσ²τ`` and ``δa + δb = γσ²τ + (2/γ)ln(1 + γ/k)`` (the paper's
    eqs. 29-30); the half-spread is half the latter.
    """
    risk = gamma * sigma * sigma * tau
    return mid - q * risk, 0.5 * (risk + 2.0 / gamma * math.log1p(gamma / k))


def glft_quotes(
    mid: float, q: float, gamma: float, sigma: float, a: float, k: float, delta: float
) -> tuple[float, float]:
    """Return the GLFT asymptotic reservation price and half-spread for order size ``delta``.

    ``bid = r - h`` and ``ask = r + h`` reproduce ``δb = c1 + (2q+Δ)/2·c2`` and
    ``δa = c1 - (2q-Δ)/2·c2`` exactly: ``r = s - q·c2`` and ``h = c1 + Δ·c2/2``.
    """
    gd = gamma * delta
    c1 = math.log1p(gd / k) / gd
    c2 = math.sqrt(gamma * sigma * sigma / (2.0 * a * delta * k) * (1.0 + gd / k) ** (1.0 + k / gd))
    return mid - q * c2, c1 + 0.5 * delta * c2


def _round_size_lots(size_base: float, lot_size: float) -> int:
    # A hair of slack so 0.3 / 0.1 does not floor to 2 lots.
    return math.floor(size_base / lot_size + 1e-9)


def decide(inputs: DecisionInputs, params: ModelParams, live: LiveQuotes) -> Decision:
    """Compute the target ladder and whether sending it is worth its cost.

    Parameters
    ----------
    inputs
        Market state, estimator snapshot, time and the risk directive.
    params
        Model and market settings.
    live
        What currently rests on the venue (to value and price the update).

    Returns
    -------
    Decision
        Target ladder (float and chain units), gate verdict with every cost and value term, and the
        reservation price and spreads used.
    """
    p = params
    est = inputs.estimates
    risk = inputs.risk
    mid = inputs.mid
    q = inputs.inventory_base
    a = max(est.fill_a_per_s, 1e-9)
    k = max(est.fill_k_per_price, 1e-9)
    sigma = est.sigma_per_sqrt_s
    if est.sigma_implied_per_sqrt_s is not None and est.sigma_implied_per_sqrt_s > sigma:
        sigma = est.sigma_implied_per_sqrt_s

    # Funding. The flip probability shrinks the expected rate toward (and past) zero.
    rate = est.funding_rate * (1.0 - 2.0 * est.funding_flip_prob)
    pay_per_unit = rate * inputs.mark
    funding_drift = pay_per_unit * p.expected_holding_s / p.funding_interval_s
    t_snap = inputs.seconds_to_funding
    in_window = 0.0 <= t_snap <= p.settlement_window_s
    # Inside the window a unit bought now is still held at the snapshot with prob exp(-t/H).
    snapshot_shift = pay_per_unit * math.exp(-t_snap / p.expected_holding_s) if in_window else 0.0
    paying = in_window and q * rate > 0.0
    q_skew = q * p.settlement_skew_mult if paying else q

    # Sizing: shrink with volatility (realized or implied, the larger) and thin depth.
    sigma_rel = sigma / mid if mid > 0.0 else 0.0
    vol_factor = min(1.0, p.ref_sigma_rel_per_sqrt_s / sigma_rel) if sigma_rel > 0.0 else 1.0
    bid_depth_factor = min(1.0, max(inputs.bid_depth_base, 0.0) / p.ref_depth_base)
    ask_depth_factor = min(1.0, max(inputs.ask_depth_base, 0.0) / p.ref_depth_base)
    cap = p.inventory_cap_base * vol_factor * min(bid_depth_factor, ask_depth_factor)
    size_mult = min(max(risk.size_mult, 0.0), 1.0)
    bid_size = p.base_size_base * vol_factor * bid_depth_factor * size_mult
    ask_size = p.base_size_base * vol_factor * ask_depth_factor * size_mult
    if in_window and rate > 0.0:
        bid_size *= p.settlement_size_mult
    elif in_window and rate < 0.0:
        ask_size *= p.settlement_size_mult

    if p.model is QuoteModel.AS:
        r, h_model = as_quotes(mid, q_skew, p.gamma, sigma, p.horizon_s, k)
    else:
        r, h_model = glft_quotes(mid, q_skew, p.gamma, sigma, a, k, p.base_size_base)
    r -= funding_drift + snapshot_shift

    # Spread floor: fees + gas amortized over expected fills + adverse selection.
    gas_price = effective_gas_price_wei(
        est.base_fee_wei, est.base_fee_p99_wei, p.gas_spike_weight, est.tip_wei
    )
    gas_quote = gas_cost_quote(p.gas_units_per_refresh, gas_price, p.native_price_quote)
    fills = max(p.min_expected_fills, 2.0 * a * math.exp(-k * h_model) * p.quote_life_s)
    unit_size = max(0.5 * (bid_size + ask_size), p.lot_size)
    h_floor = (
        mid * (p.maker_fee_bps + p.adverse_bps) * 1e-4
        + gas_quote / (fills * unit_size)
        + p.adverse_sigma_mult * sigma * math.sqrt(max(est.inclusion_delay_s, 0.0))
    )
    h = max(h_model, h_floor) * max(risk.spread_mult, 1.0)

    ladder: tuple[LadderLevel, ...] = ()
    if not risk.force_cancel:
        allow_bid = risk.allow_bid and not (risk.reduce_only and q >= 0.0)
        allow_ask = risk.allow_ask and not (risk.reduce_only and q <= 0.0)
        bid_room = max(0.0, cap - q)
        ask_room = max(0.0, cap + q)
        if risk.reduce_only:
            bid_room = min(bid_room, max(-q, 0.0))
            ask_room = min(ask_room, max(q, 0.0))
        ladder = _ladder(
            p,
            inputs,
            r - h,
            r + h,
            h,
            bid_size if allow_bid else 0.0,
            ask_size if allow_ask else 0.0,
            bid_room,
            ask_room,
        )

    # Cost gate.
    tick = p.tick_size
    lot = p.lot_size
    new_legs: list[QuoteLeg] = [
        (lv.side.sign, lv.price_ticks * tick, lv.size_lots * lot) for lv in ladder
    ]
    old_legs: list[QuoteLeg] = [
        (qt.side.sign, qt.price_ticks * tick, qt.size_lots * lot) for qt in live.quotes
    ]
    value = UpdateValue(
        ladder_value_quote(new_legs, mid, r, a, k, p.quote_life_s, p.gamma),
        ladder_value_quote(old_legs, mid, r, a, k, p.quote_life_s, p.gamma),
    )
    cost = update_cost(
        old_legs=old_legs,
        new_legs=new_legs,
        mid=mid,
        sigma=sigma,
        a_per_s=a,
        k_per_price=k,
        gas_units=p.gas_units_per_refresh,
        gas_price_wei=gas_price,
        native_price_quote=p.native_price_quote,
        delay_s=est.inclusion_delay_s,
        funding_per_unit_quote=pay_per_unit,
        seconds_to_snapshot=t_snap,
    )
    reason = _gate(ladder, live, risk, q, value, cost)
    return Decision(
        send=reason in (GateReason.GAIN_EXCEEDS_COST, GateReason.RISK_CANCEL, GateReason.RISK_SIDE),
        reason=reason,
        ladder=ladder,
        reservation_price=r,
        half_spread=h,
        half_spread_model=h_model,
        half_spread_floor=h_floor,
        funding_drift=funding_drift,
        snapshot_shift=snapshot_shift,
        expected_snapshot_payment_quote=q * pay_per_unit,
        bid_size_base=bid_size,
        ask_size_base=ask_size,
        inventory_cap_base=cap,
        value=value,
        cost=cost,
    )


def _gate(
    ladder: tuple[LadderLevel, ...],
    live: LiveQuotes,
    risk: RiskDirective,
    q: float,
    value: UpdateValue,
    cost: UpdateCost,
) -> GateReason:
    if risk.force_cancel:
        return GateReason.RISK_CANCEL if live.quotes else GateReason.NOTHING_LIVE
    # A live quote the directive now forbids must go whatever the gas: risk outranks cost.
    for qt in live.quotes:
        is_bid = qt.side is Side.BID
        if (is_bid and not risk.allow_bid) or (not is_bid and not risk.allow_ask):
            return GateReason.RISK_SIDE
        if risk.reduce_only and ((is_bid and q >= 0.0) or (not is_bid and q <= 0.0)):
            return GateReason.RISK_SIDE
    if tuple(lv.quote() for lv in ladder) == live.quotes:
        return GateReason.UNCHANGED
    if should_send(value, cost, forced=False):
        return GateReason.GAIN_EXCEEDS_COST
    return GateReason.COST_EXCEEDS_GAIN


def _ladder(
    p: ModelParams,
    inputs: DecisionInputs,
    bid_top: float,
    ask_top: float,
    h: float,
    bid_size: float,
    ask_size: float,
    bid_room: float,
    ask_room: float,
) -> tuple[LadderLevel, ...]:
    tick = p.tick_size
    lot = p.lot_size
    # Post-only: a bid must rest strictly below the best ask, an ask strictly above the best bid.
    bid_ticks = math.floor(bid_top / tick + 1e-9)
    ask_ticks = math.ceil(ask_top / tick - 1e-9)
    if inputs.best_ask is not None:
        bid_ticks = min(bid_ticks, round(inputs.best_ask / tick) - 1)
    if inputs.best_bid is not None:
        ask_ticks = max(ask_ticks, round(inputs.best_bid / tick) + 1)
    # Never lock or cross ourselves; moving the bid down is the conservative choice.
    bid_ticks = min(bid_ticks, ask_ticks - 1)
    step_ticks = max(p.level_step_ticks, math.ceil(h * p.level_step_frac / tick))

    levels: list[LadderLevel] = []
    for side, top_ticks, top_price, size0, room, direction in (
        (Side.BID, bid_ticks, bid_top, bid_size, bid_room, -1),
        (Side.ASK, ask_ticks, ask_top, ask_size, ask_room, 1),
    ):
        used = 0.0
        size = size0
        for i in range(p.levels):
            ticks = top_ticks + direction * i * step_ticks
            want = min(size, room - used)
            size *= p.level_size_growth
            lots = _round_size_lots(want, lot)
            if ticks <= 0 or lots <= 0:
                break
            if ticks * tick * lots * lot < p.min_notional:
                continue
            used += lots * lot
            price = top_price + direction * i * step_ticks * tick
            levels.append(LadderLevel(side, price, want, Tick(ticks), Lots(lots)))
    return tuple(levels)
