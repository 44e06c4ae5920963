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
funding rate           fraction of mark paid at the next snapshot, per *interval* in the
                       contract's units (the 8-hour rate × interval / 8 h; +: longs pay)
fair value             the market's price (``agent.model.fairvalue``), never a mid containing
                       our own quotes; every distance and the reservation price centre on it
=====================  ==========================================================

Models
------
``AS``   Avellaneda & Stoikov (2008), eqs. (29)-(30): ``r = s - qγσ²τ`` and
         ``δa + δb = γσ²τ + (2/γ)ln(1 + γ/k)`` with τ = ``horizon_s`` (a rolling horizon live).
``GLFT`` Guéant, Lehalle & Fernandez-Tapia (2013) asymptotic quotes, in the form with order size
         Δ (Guéant 2017): ``δb = c1 + (2q + Δ)/2 · c2``, ``δa = c1 - (2q - Δ)/2 · c2`` with
         ``c1 = ln(1 + γΔ/k)/(γΔ)`` and ``c2 = √(γσ²/(2AΔk) · (1 + γΔ/k)^(1 + k/(γΔ)))``.

Both are written as a reservation price ``r`` and a half-spread ``h`` (bid = r - h, ask = r + h),
then shifted by the funding terms and the exchange momentum, floored, scaled by the risk directive
and laddered.

Funding is counted once. A unit bought now pays ``rate × mark`` at each snapshot it is still held
at; held for an exponential time of mean ``H`` (``expected_holding_s``) it pays in expectation
``pay · e^(−t/H) · (1 + e^(−I/H) + e^(−2I/H) + …)`` with ``t`` the time to the next snapshot and
``I`` the interval. The first term is ``snapshot_shift``, the rest ``funding_drift``; ``r`` moves
down by their sum. Later snapshots are weighed by the trust in the oracle the premium is read
against (``ModelEstimates.funding_trust``: a frozen or disagreeing oracle makes a premium that is
not there), the next one's unaccrued part already is.

Funding alone never sizes the position without bound. The carry is held hedged, so its risk is
the premium (DEX against index) moving over the holding horizon ``H``, variance ``V`` (price²: the
premium's increments × ``H``, at most twice its variance around its mean, since a premium mean-
reverts). Mean-variance on the DEX position ``q`` with the funding value ``F`` of a marginal unit
gives a marginal value ``F + κ·q`` with ``κ = γ·V``, i.e. a target ``q* = −F/κ``; ``κ`` is raised
to ``|F| / (funding_carry_max_cap_frac × cap)`` when that keeps ``|q*|`` inside its share of the
cap. The flat book's marginal unit is priced at its full funding value; each unit of the carry
held lowers it, linearly to zero at the target. Past the target the excess is a position held
against its variance for less funding than that costs, so the shift reverses and pulls back
toward the target: ``F·b·tanh((1 − q/q*)/b)``, with the slope of the line at the target (no kink,
no jump) and never more than ``b`` (``funding_carry_pullback_frac``, ½) times the carry ``|F|``
(``carry_shift``; ``carry_skew`` is what the target takes back, ``carry_target_base`` the
target). Without the target the funding shift had nothing to stop it: the skew is on the net
delta, which the hedge keeps flat, so a hedged carry grew until the cap; without the pull-back,
fills carried it past the target and nothing brought it back.

Inside the settlement window (``settlement_window_s``, at most ``settlement_window_frac`` of the
interval) the paying side is penalised further, in proportion to the dollars at stake
(``funding_material_quote``): a rate worth cents changes nothing.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.errors import ConfigError
from agent.model.costs import (
    BatchPricing,
    QuoteLeg,
    UpdateCost,
    UpdateValue,
    effective_gas_price_wei,
    gas_cost_quote,
    l1_data_fee_quote,
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
    "RefreshAction",
    "RiskDirective",
    "as_quotes",
    "carry_shift",
    "decide",
    "glft_quotes",
    "kept_quotes_expiring",
]


class QuoteModel(enum.StrEnum):
    """Which closed form sets the reservation price and spread."""

    AS = "as"
    GLFT = "glft"


class RefreshAction(enum.StrEnum):
    """Which update the gate priced and chose (the runtime sends its ``Decision.quotes``)."""

    FULL = "full"
    """The whole target ladder (the order diff still keeps a level that did not move)."""
    TOUCH = "touch"
    """Only the top level of one or both sides re-priced to the target's top; the deeper live
    levels stay where they rest, so no side ever holds more orders than it did."""


class GateReason(enum.StrEnum):
    """Why the cost gate sent or held an update (for the decision log)."""

    GAIN_EXCEEDS_COST = "gain_exceeds_cost"
    COST_EXCEEDS_GAIN = "cost_exceeds_gain"
    UNCHANGED = "unchanged"
    RISK_CANCEL = "risk_cancel"
    RISK_SIDE = "risk_side"
    NOTHING_LIVE = "nothing_live"
    NO_GATE = "no_gate"
    CENTRE_DRIFT = "centre_drift"
    """The live tops' centre drifted past ``max_centre_drift_bps`` from the target's: a
    re-centre within ``centre_drift_max_cost_quote`` is sent whatever its modelled value."""
    """The cost gate is off (baseline strategies): any change is sent."""


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
    gas_units_per_refresh: int = 450_000
    """Gas of a full refresh: every level of a ``levels``-deep ladder cancelled and placed on
    both sides in one batch (460k measured for 3 levels on PerpMarket). The runtime learns it from
    its quote receipts; with ``gas_units_per_batch`` and ``gas_units_per_cancel`` it sets the gas
    of one place (:attr:`gas_units_per_place`), so any batch is priced by what it changes."""
    gas_units_per_batch: int = 50_000
    """Gas every quote batch pays whatever it changes: the transaction's 21k, the call, the
    account's load and save (53k fitted on PerpMarket receipts)."""
    gas_units_per_cancel: int = 5_000
    """Gas of one cancel in a batch, net of the storage refund (3k fitted)."""
    gas_units_per_level: int = 30_000
    """Marginal gas of one more ladder level; a level is quoted only if it is worth this."""
    calldata_bytes_per_batch: int = 132
    """Calldata every batch carries: ``batch``'s selector and its two array heads, bytes."""
    calldata_bytes_per_cancel: int = 32
    """Calldata of one cancelled order id, bytes (priced by an L2's L1 data fee per byte)."""
    calldata_bytes_per_place: int = 192
    """Calldata of one placed order (six ABI words), bytes."""
    calldata_bytes_per_level: int = 64
    """Marginal calldata of one more ladder level, bytes."""
    l1_data_fee_per_byte_gwei: float = 0.0
    """L2 only: the L1 data fee per calldata byte, gwei (0 on an L1). The runtime feeds it to
    the estimators (``Estimators.update_l1_fee``), so the gate prices a refresh's calldata."""
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
    settlement_window_frac: float = 0.03125
    """The settlement window is at most this fraction of the funding interval (900 s of 8 h)."""
    funding_material_quote: float = 5.0
    """Funding at stake (|rate × mark| × inventory cap, quote currency) at which the settlement
    penalties apply in full; they scale linearly below it."""
    funding_carry_max_cap_frac: float = 0.25
    """Largest DEX position funding alone may build, as a fraction of the (effective) inventory
    cap. The carry's target is mean-variance (expected funding against the premium's variance
    over ``expected_holding_s``, priced at ``gamma``); this bounds it when the premium looks
    riskless. A quarter leaves three quarters of the cap to market making, whose skew needs room
    on both sides, and to a premium that collapses or an oracle that turns out wrong."""
    funding_carry_pullback_frac: float = 0.5
    """Largest pull back toward the carry's target once the DEX position is past it, as a fraction
    of the carry's own funding value ``|F|`` (``carry_shift``; 0: the shift stays zero past the
    target, as before). The pull back sheds the excess a carry's fills leave, and gives up the
    funding and basis that excess would have earned. Half: paired over seeds 0-2 (README, "Past
    its target the carry pulls back"), 0.5 kept short_squeeze's gain of 1.0 (+10.3 against
    +10.9 a run) at a tenth of its cost in funding_flip (−0.2 against −2.3) and none in
    rich_premium (+0.6 against −0.3)."""
    min_depth_factor: float = 0.25
    """Floor of the book-depth size factor: a thin or empty book shrinks sizes, never to zero."""
    momentum_horizon_s: float = 5.0
    """The reservation price moves by exchange momentum × this horizon (adverse selection)."""
    momentum_z: float = 2.0
    """Momentum counts only beyond this many standard errors of a driftless price's drift
    estimate (``DecisionInputs.momentum_noise_per_s``), and only by its excess: a quiet market's
    measured drift is noise (on a random walk plus the exchange's mean-reverting basis it even
    predicts the next move backwards), while a crash's is tens of standard errors."""
    quote_expiry_s: float = 0.0
    """Life stamped on every new order, seconds (0: good till cancelled)."""
    skew_on_net_delta: bool = True
    """Skew for the net delta (DEX position plus the exchange hedge, ``DecisionInputs.hedge_base``)
    rather than the DEX position alone. The skew prices the inventory's price risk, and a hedged
    DEX position has none: skewing it away sells edge to remove no risk and leaves the hedge to
    be unwound at the exchange's fee (paying for the same inventory twice). The cap, the
    settlement window and funding stay on the DEX position, which is what the DEX charges."""
    cost_gate: bool = True
    """Send only updates whose gain exceeds their cost (False: send every change)."""
    price_gas: bool = True
    """Amortise gas in the spread floor and price it in the gate."""
    funding_terms: bool = True
    """Shift quotes for funding and apply the settlement window."""
    touch_refresh: bool = True
    """Let the gate re-price only the top level of a side (a *touch*: one cancel and one place)
    as well as the whole ladder, and send whichever pays more. The measured centre and the
    adverse selection live at the top of the book, and a touch costs well under half of a full
    refresh, so the top can follow fair value between the full refreshes the gate pays for."""
    max_centre_drift_bps: float = 0.9
    """Drift bound, bps of fair value (0: off). With ``size_skew_frac`` 1 (the defaults together)
    it buys issue 13's 1 bp centre target on an L2 (calm, 10 seeds: 1.34 → 0.85 bps) for about
    $2.40 more gas per 10 minutes (README, "Every scenario of the library"; 0.5 gave 0.81 bps for
    $4.50 and lost money in gas_spike, 0.7 gave 0.83 bps for $3.30, same seeds, "What moved the
    centre and the edge"). When the centre of the live tops
edge"). When the centre of the live tops
    (best bid and best ask) is further than this from the target's, the gate re-centres even
    though the modelled value does not pay for the gas: the best-in-net update (a touch of one
    or both tops, else the full ladder) that brings the centre back inside the bound, provided
    it costs at most ``centre_drift_max_cost_quote``. The value model sees a quote's fill rate
    and edge trade off flat near the optimum, so it tolerates a top 1-4 bps off; the bound is a
    quality target bought with gas, and its price is reported like any other refresh's."""
    centre_drift_max_cost_quote: float = 0.10
    """Most one forced re-centre may cost (gas and L1 data fee, quote currency). The bound's
    gas budget: a newer batch replaces a pending one at its nonce, so at most one batch of ours
    lands per block and forced spend is at most this per block; when gas is dear (an L1, a
    spike: even a touch of both tops costs more than this) the bound stands aside and the value
    gate alone decides. 0.10 admits a full refresh on an L2 at about twice its usual fee ($0.05
    at 0.03 gwei and 8 gwei of L1 data fee per byte; a touch of both tops $0.02), never an L1
    refresh (about $1.7 at 2 gwei) nor an L2 one in a 30x spike (about $0.5). At 0.03 only
    touches qualify, and they cannot follow fair value alone (a touch is refused when it would
    leave the other side stale inside its target): measured at a 0.5 bps bound (calm, L2,
    seeds 0-4), the centre fell 0.07 bps with 0.03 against 0.31 with 0.10."""
    size_skew_frac: float = 1.0
    """Share of the inventory skew taken by size instead of price, in [0, 1] (0: all price).
    The default takes it all by size: the quotes' centre is then fair value plus the funding and
    momentum shifts only, and the drift bound has less to correct (calm, 10 seeds, with the
    0.5 bps bound: centre 0.81 against 0.98 for a 0.3 bps bound alone, net +3.49 against +1.90,
    max |inventory| 0.09 against 0.08, max drawdown $4.81 against $4.27).
    The reservation price moves by ``(1 − f)`` of the closed form's inventory shift ``Δ``; the
    rest, ``f·Δ``, is applied to the sizes as the fill-rate change it would have caused: the
    side that adds inventory is scaled by ``exp(−k·f·|Δ|)`` and the reducing side by
    ``exp(+k·f·|Δ|)`` (at most ``size_skew_max_growth``), so the expected inventory flow
    (fill rate × size, rate ∝ e^(−k·distance)) is the same to first order while the quotes stay
    centred on fair value. Funding and momentum shifts stay in the price."""
    size_skew_max_growth: float = 1.5
    """Largest factor the size skew may grow the reducing side's sizes by (>= 1)."""

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
            (0.0 < self.settlement_window_frac <= 1.0, "settlement_window_frac must be in (0, 1]"),
            (self.funding_material_quote > 0.0, "funding_material_quote must be > 0"),
            (
                0.0 < self.funding_carry_max_cap_frac <= 1.0,
                "funding_carry_max_cap_frac must be in (0, 1]",
            ),
            (
                0.0 <= self.funding_carry_pullback_frac <= 1.0,
                "funding_carry_pullback_frac must be in [0, 1]",
            ),
            (0.0 < self.min_depth_factor <= 1.0, "min_depth_factor must be in (0, 1]"),
            (self.momentum_horizon_s >= 0.0, "momentum_horizon_s must be >= 0"),
            (self.momentum_z >= 0.0, "momentum_z must be >= 0"),
            (self.quote_expiry_s >= 0.0, "quote_expiry_s must be >= 0"),
            (self.max_centre_drift_bps >= 0.0, "max_centre_drift_bps must be >= 0 (0: off)"),
            (self.centre_drift_max_cost_quote >= 0.0, "centre_drift_max_cost_quote must be >= 0"),
            (0.0 <= self.size_skew_frac <= 1.0, "size_skew_frac must be in [0, 1]"),
            (self.size_skew_max_growth >= 1.0, "size_skew_max_growth must be >= 1"),
            (self.l1_data_fee_per_byte_gwei >= 0.0, "l1_data_fee_per_byte_gwei must be >= 0"),
            (
                min(
                    self.gas_units_per_level,
                    self.gas_units_per_batch,
                    self.gas_units_per_cancel,
                    self.calldata_bytes_per_batch,
                    self.calldata_bytes_per_cancel,
                    self.calldata_bytes_per_place,
                    self.calldata_bytes_per_level,
                )
                >= 0,
                "gas units and calldata bytes must be >= 0",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"model params: {message}")

    @property
    def gas_units_per_place(self) -> float:
        """Gas of one place in a batch: what a full refresh costs beyond its fixed part and its
        cancels, per placed order (``2 × levels`` of them)."""
        orders = 2 * self.levels
        rest = self.gas_units_per_refresh - self.gas_units_per_batch
        return max(0.0, (rest - orders * self.gas_units_per_cancel) / orders)


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
    max_bid_base: float = math.inf
    """Most the bids together may buy (base units); the ladder and the live bids stay within it."""
    max_ask_base: float = math.inf
    """Most the asks together may sell (base units), likewise."""
    force_cancel: bool = False
    """Cancel everything now; always passes the cost gate."""


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Everything one decision sees. Time is injected (``time_s``), never read from a clock.

    ``mid`` is the DEX mid (kept for callers that have nothing better); ``fair_value`` is what the
    model centres on and should always be given (``FairValueEstimator``): without it the model
    falls back to ``mid``, which contains our own quotes.
    """

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
    fair_value: float | None = None
    """Fair value of the perp (price units); None falls back to ``mid``."""
    momentum_per_s: float = 0.0
    """Exchange mid drift, price units per second (``ExchangeMomentum``)."""
    hedge_base: float = 0.0
    """The exchange hedge's position, signed base units (the model skews for DEX + hedge)."""
    momentum_noise_per_s: float = 0.0
    """Standard error of that drift estimate on a driftless price, price units per second
    (σ·√(ln 2 / (2·half-life)) for an EWMA of increments; 0: take the drift at face value)."""


@dataclass(frozen=True, slots=True)
class LiveQuotes:
    """The quotes resting (or in flight) on the venue, in chain units."""

    quotes: tuple[Quote, ...] = ()
    expires_at_s: float | None = None
    """When the live quotes expire on chain (same clock as ``time_s``); None: never."""
    resting: tuple[Quote, ...] | None = None
    """The orders on chain now, which a batch is diffed against, when they differ from
    ``quotes`` (a batch of ours is still in flight: ``quotes`` is what it will leave resting, and
    a newer batch replaces it, so its cost is what turns ``resting`` into the new ladder).
    None: ``quotes`` rest on chain."""


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
    fair_value: float = math.nan
    """The centre used (fair value, or the mid when none was given)."""
    momentum_shift: float = 0.0
    """Price shift of r from exchange momentum (added); ``r`` less it, plus the funding shifts
    (``funding_drift + snapshot_shift + carry_skew``), is the closed form's inventory-skewed
    reservation price."""
    expires_at_s: float | None = None
    """Expiry to stamp on the new orders (``time_s + quote_expiry_s``), None for none."""
    gas_price_wei: float = 0.0
    """Gas price the gate priced the refresh at."""
    carry_target_base: float = 0.0
    """DEX position the funding carry aims at (signed base units; 0 without funding terms)."""
    carry_skew: float = 0.0
    """Part of the funding shift the carry's target takes back as the DEX position nears it
    (subtracted with ``funding_drift + snapshot_shift``, of the opposite sign); past the target
    it takes back more than the whole shift, up to twice it, so the net shift pulls back toward
    the target (``carry_shift``)."""
    action: RefreshAction = RefreshAction.FULL
    """The update the gate valued (``value`` and ``cost`` are its own): the one sent when
    ``send``, else the best that did not pay."""
    touch_quotes: tuple[Quote, ...] = ()
    """For a touch: the whole ladder it leaves resting (the re-priced tops and the kept live
    levels), in chain units."""

    @property
    def target_quotes(self) -> tuple[Quote, ...]:
        """Target ladder in chain units."""
        return tuple(level.quote() for level in self.ladder)

    @property
    def quotes(self) -> tuple[Quote, ...]:
        """The ladder the chosen update leaves resting: the target, or the touched live ladder."""
        if self.action is RefreshAction.TOUCH:
            return self.touch_quotes
        return self.target_quotes


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


def carry_shift(carry: float, q: float, target: float, bound: float = 1.0) -> float:
    """Return the funding carry's shift of the reservation price (subtracted) at DEX position q.

    Parameters
    ----------
    carry
        Funding value ``F`` of a marginal unit to a flat book, price units (+: longs pay, so the
        carry is short and quotes move down).
    q
        DEX position, base units (signed).
    target
        The carry's target ``q* = −F/κ`` (module docstring), of the opposite sign to ``F``.
    bound
        Largest pull back past the target as a fraction ``b`` of ``|F|``
        (``ModelParams.funding_carry_pullback_frac``; 0: none).

    Returns
    -------
    float
        ``F`` on the paying side of flat; ``F·x`` with ``x = 1 − q/q*`` from flat to the target;
        ``F·b·tanh(x/b)`` past it. Past the target the excess's variance outweighs its funding,
        so the shift reverses and pulls toward the target, not merely toward zero funding: the
        mean-variance marginal value ``F + κq`` near the target (same slope: no jump or kink), and
        never more than ``b·|F|``: the pull back is worth at most what the push was, whatever
        ``κ`` (the premium's variance is measured noisily, and a premium that has moved tends to
        revert, so a hedged excess bought back at a rich premium gives up the basis; the
        unbounded line ``−κ(q − q*)`` cost funding_flip 5.7 ± 9.4 a run over 5 seeds). Zero with
        no carry.

        What it costs (L2, 600 s unless said, seeds 0-2, paired with the shift held at zero past
        the target, b = 1 / b = ½; README "Held-out crisis scenarios"): held-out
        funding_extreme_gas (3,900 s) mean |inventory| 0.270 → 0.151 / 0.178 BTC and net
        −68 ± 30 / −34 ± 26 a run (the scripted premium collapse pays the excess it no longer
        holds); short_squeeze (1,800 s) +10.9 ± 4.6 / +10.3 ± 5.0; funding_flip −2.3 ± 1.4 /
        −0.2 ± 0.2; rich_premium −0.3 ± 0.2 / +0.6 ± 0.9; calm identical.
    """
    if carry == 0.0 or target == 0.0:
        return 0.0
    x = 1.0 - q / target
    if x >= 1.0:
        return carry
    if x >= 0.0:
        return carry * x
    if bound <= 0.0:
        return 0.0
    return carry * bound * math.tanh(x / bound)


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
    mid = inputs.fair_value if inputs.fair_value is not None else inputs.mid
    q = inputs.inventory_base
    a = max(est.fill_a_per_s, 1e-9)
    k = max(est.fill_k_per_price, 1e-9)
    sigma = est.sigma_per_sqrt_s
    if est.sigma_implied_per_sqrt_s is not None and est.sigma_implied_per_sqrt_s > sigma:
        sigma = est.sigma_implied_per_sqrt_s

    # Sizing: shrink with volatility (realized or implied, the larger) and thin depth, down to a
    # floor: an empty side must still be quoted (sizes scaled by depth never start a market).
    sigma_rel = sigma / mid if mid > 0.0 else 0.0
    vol_factor = min(1.0, p.ref_sigma_rel_per_sqrt_s / sigma_rel) if sigma_rel > 0.0 else 1.0
    bid_depth_factor = _depth_factor(inputs.bid_depth_base, p)
    ask_depth_factor = _depth_factor(inputs.ask_depth_base, p)
    cap = p.inventory_cap_base * vol_factor * min(bid_depth_factor, ask_depth_factor)
    size_mult = min(max(risk.size_mult, 0.0), 1.0)
    bid_size = p.base_size_base * vol_factor * bid_depth_factor * size_mult
    ask_size = p.base_size_base * vol_factor * ask_depth_factor * size_mult

    # Funding, once (see the module docstring). The flip probability shrinks the next rate.
    rate = est.funding_rate * (1.0 - 2.0 * est.funding_flip_prob) if p.funding_terms else 0.0
    pay_per_unit = rate * inputs.mark
    t_snap = max(inputs.seconds_to_funding, 0.0)
    held_at_next = math.exp(-t_snap / p.expected_holding_s)
    later = math.exp(-p.funding_interval_s / p.expected_holding_s)
    snapshot_shift = pay_per_unit * held_at_next
    # Snapshots after the next rest wholly on the oracle staying as it is read now.
    funding_drift = snapshot_shift * later / (1.0 - later) * est.funding_trust
    # The carry's target (module docstring): funding's value to the marginal unit against the
    # premium's variance over the holding horizon, the risk a hedged DEX position still holds.
    carry_target = carry_skew = 0.0
    if p.funding_terms:
        carry = funding_drift + snapshot_shift
        var_h = min(
            est.funding_premium_var_per_s * p.expected_holding_s, 2.0 * est.funding_premium_var
        )
        kappa = max(
            p.gamma * var_h * inputs.mark * inputs.mark,
            abs(carry) / (p.funding_carry_max_cap_frac * cap),
        )
        if carry != 0.0:
            carry_target = -carry / kappa
            carry_skew = carry_shift(carry, q, carry_target, p.funding_carry_pullback_frac) - carry
    window_s = min(p.settlement_window_s, p.settlement_window_frac * p.funding_interval_s)
    in_window = p.funding_terms and t_snap <= window_s
    # The settlement penalties scale with the dollars at stake, up to full at the material level.
    weight = min(1.0, abs(pay_per_unit) * p.inventory_cap_base / p.funding_material_quote)
    paying = in_window and q * rate > 0.0
    q_risk = q + inputs.hedge_base if p.skew_on_net_delta else q
    # Inside the window the DEX position (the one funding is charged on) is skewed harder.
    q_skew = q_risk + ((p.settlement_skew_mult - 1.0) * weight * q if paying else 0.0)
    size_cut = 1.0 - (1.0 - p.settlement_size_mult) * weight
    if in_window and rate > 0.0:
        bid_size *= size_cut
    elif in_window and rate < 0.0:
        ask_size *= size_cut

    if p.model is QuoteModel.AS:
        r, h_model = as_quotes(mid, q_skew, p.gamma, sigma, p.horizon_s, k)
    else:
        r, h_model = glft_quotes(mid, q_skew, p.gamma, sigma, a, k, p.base_size_base)
    if p.size_skew_frac > 0.0:
        # Part of the inventory shift moves from the price to the sizes, as the fill-rate change
        # it stood for (``size_skew_frac``): the same expected flow, a centre nearer fair value.
        moved = p.size_skew_frac * (mid - r)
        r += moved
        bid_mult, ask_mult = size_skew_mults(moved, k, p.size_skew_max_growth)
        bid_size *= bid_mult
        ask_size *= ask_mult
    r -= funding_drift + snapshot_shift + carry_skew
    momentum_shift = _significant_drift(inputs, p) * p.momentum_horizon_s
    r += momentum_shift

    # Gas at what the pipeline pays (base + tip), leaning toward the spike quantile; on an L2
    # the refresh's calldata also pays the L1 data fee.
    if est.paid_gas_price_wei is not None:
        tail = max(0.0, est.base_fee_p99_wei - est.base_fee_wei)
        gas_price = est.paid_gas_price_wei + p.gas_spike_weight * tail
    else:
        gas_price = effective_gas_price_wei(
            est.base_fee_wei, est.base_fee_p99_wei, p.gas_spike_weight, est.tip_wei
        )
    native = p.native_price_quote
    pricing = BatchPricing(
        gas_price_wei=gas_price,
        native_price_quote=native,
        gas_units_per_batch=p.gas_units_per_batch,
        gas_units_per_cancel=p.gas_units_per_cancel,
        gas_units_per_place=p.gas_units_per_place,
        calldata_bytes_per_batch=p.calldata_bytes_per_batch,
        calldata_bytes_per_cancel=p.calldata_bytes_per_cancel,
        calldata_bytes_per_place=p.calldata_bytes_per_place,
        l1_fee_per_byte_wei=est.l1_fee_per_byte_wei,
    )
    # The floor amortises, over the top's fills, what keeping the top of both sides current
    # costs (one cancel and one place a side); a deeper level pays its own way in the pruning.
    # (A full refresh here priced a ladder pruned to one level as if it had all of them: at L1
    # the floor then pushed quotes out ~1.5% from fair.)
    gas_quote = pricing.quote(2, 2)
    level_cost = gas_cost_quote(p.gas_units_per_level, gas_price, native) + l1_data_fee_quote(
        p.calldata_bytes_per_level, est.l1_fee_per_byte_wei, native
    )
    if not p.price_gas:
        gas_quote = level_cost = 0.0

    # Spread floor: fees + gas amortized over expected fills + adverse selection.
    fills = max(p.min_expected_fills, 2.0 * a * math.exp(-k * h_model) * p.quote_life_s)
    unit_size = max(0.5 * (bid_size + ask_size), p.lot_size)
    h_floor = (
        mid * (p.maker_fee_bps + p.adverse_bps) * 1e-4
        + gas_quote / (fills * unit_size)
        + p.adverse_sigma_mult * sigma * math.sqrt(max(est.inclusion_delay_s, 0.0))
    )
    h = max(h_model, h_floor) * max(risk.spread_mult, 1.0)

    new_life = min(p.quote_life_s, p.quote_expiry_s) if p.quote_expiry_s > 0.0 else p.quote_life_s
    ladder: tuple[LadderLevel, ...] = ()
    bid_room = max(0.0, cap - q)
    ask_room = max(0.0, cap + q)
    if risk.reduce_only:
        bid_room = min(bid_room, max(-q, 0.0))
        ask_room = min(ask_room, max(q, 0.0))
    bid_room = min(bid_room, max(risk.max_bid_base, 0.0))
    ask_room = min(ask_room, max(risk.max_ask_base, 0.0))
    if not risk.force_cancel:
        allow_bid = risk.allow_bid and not (risk.reduce_only and q >= 0.0)
        allow_ask = risk.allow_ask and not (risk.reduce_only and q <= 0.0)
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
        ladder = _prune_levels(ladder, p, mid, r, a, k, new_life, level_cost)

    # Cost gate. Every candidate is valued from the update's inclusion on: until then the live
    # quotes rest whether it is sent or not. A new order then rests its life; a live one, kept,
    # rests as long but never past its expiry. Each candidate pays for the batch that turns the
    # orders on chain into it (its cancels and places), not a flat refresh.
    tick = p.tick_size
    lot = p.lot_size
    new_legs = _legs(ladder, tick, lot)
    old_legs = _legs(live.quotes, tick, lot)
    delay = max(est.inclusion_delay_s, 0.0)
    old_life = new_life
    if live.expires_at_s is not None:
        old_life = min(old_life, max(0.0, live.expires_at_s - inputs.time_s - delay))
    kept = _at_target_sizes(old_legs, new_legs)
    hold_value = ladder_value_quote(kept, mid, r, a, k, old_life, p.gamma)
    resting = live.quotes if live.resting is None else live.resting
    target = tuple(lv.quote() for lv in ladder)
    # A kept order past half its life is replaced with the rest (the runtime's rule), so a
    # touch is no candidate then and a full update replaces every order.
    expiring = kept_quotes_expiring(live.expires_at_s, inputs.time_s, p.quote_expiry_s)

    def priced(new: list[QuoteLeg], quotes: tuple[Quote, ...], replace_all: bool) -> UpdateCost:
        n_cancel, n_place = (
            (len(resting), len(quotes)) if replace_all else (_diff_counts(resting, quotes))
        )
        return update_cost(
            old_legs=old_legs,
            new_legs=new,
            mid=mid,
            sigma=sigma,
            a_per_s=a,
            k_per_price=k,
            gas_units=pricing.gas_units(n_cancel, n_place) if p.price_gas else 0.0,
            gas_price_wei=gas_price,
            native_price_quote=native,
            delay_s=est.inclusion_delay_s,
            funding_per_unit_quote=pay_per_unit,
            seconds_to_snapshot=t_snap,
            l1_data_fee_quote=pricing.data_fee_quote(n_cancel, n_place) if p.price_gas else 0.0,
        )

    value = UpdateValue(ladder_value_quote(new_legs, mid, r, a, k, new_life, p.gamma), hold_value)
    cost = priced(new_legs, target, expiring)
    reason = _gate(ladder, live, risk, q, value, cost, p.lot_size, cost_gate=p.cost_gate)
    action = RefreshAction.FULL
    touch_quotes: tuple[Quote, ...] = ()
    if reason in (GateReason.GAIN_EXCEEDS_COST, GateReason.COST_EXCEEDS_GAIN):
        # The full update against re-pricing only the top of one or both sides: whichever
        # pays more (gain − cost) is the candidate; it is sent if it pays at all.
        candidates: list[_Candidate] = []
        if _changes(resting, target):
            candidates.append(_Candidate(RefreshAction.FULL, (), value, cost, target))
        room = {Side.BID: bid_room, Side.ASK: ask_room}
        for sides in _TOUCH_SIDES if p.touch_refresh and not expiring else ():
            quotes = _touch_ladder(live.quotes, target, sides, p.levels, room, lot)
            if quotes is None or not _changes(resting, quotes):
                continue
            # Only the touched tops differ from holding: the kept levels add the same value.
            tops_old = [leg for side in sides if (leg := _top(kept, side)) is not None]
            tops_new = [leg for side in sides if (leg := _top(new_legs, side)) is not None]
            gain = ladder_value_quote(tops_new, mid, r, a, k, new_life, p.gamma) - (
                ladder_value_quote(tops_old, mid, r, a, k, old_life, p.gamma)
            )
            c = priced(_legs(quotes, tick, lot), quotes, False)
            touch_value = UpdateValue(hold_value + gain, hold_value)
            candidates.append(_Candidate(RefreshAction.TOUCH, quotes, touch_value, c, quotes))
        if candidates:
            best = max(candidates, key=_Candidate.net)
            action, touch_quotes, value, cost = best.action, best.touch, best.value, best.cost
            reason = _gate(ladder, live, risk, q, value, cost, lot, cost_gate=p.cost_gate)
        if reason is GateReason.COST_EXCEEDS_GAIN and p.max_centre_drift_bps > 0.0:
            forced = _drift_candidate(live.quotes, target, candidates, mid, tick, p)
            if forced is not None:
                reason = GateReason.CENTRE_DRIFT
                action, touch_quotes, value, cost = (
                    forced.action,
                    forced.touch,
                    forced.value,
                    forced.cost,
                )
    sending = (
        GateReason.GAIN_EXCEEDS_COST,
        GateReason.CENTRE_DRIFT,
        GateReason.RISK_CANCEL,
        GateReason.RISK_SIDE,
        GateReason.NO_GATE,
    )
    return Decision(
        send=reason in sending,
        reason=reason,
        ladder=ladder,
        reservation_price=r,
        half_spread=h,
        half_spread_model=h_model,
        half_spread_floor=h_floor,
        funding_drift=funding_drift,
        snapshot_shift=snapshot_shift,
        momentum_shift=momentum_shift,
        expected_snapshot_payment_quote=q * pay_per_unit,
        bid_size_base=bid_size,
        ask_size_base=ask_size,
        inventory_cap_base=cap,
        value=value,
        cost=cost,
        fair_value=mid,
        expires_at_s=inputs.time_s + p.quote_expiry_s if p.quote_expiry_s > 0.0 else None,
        gas_price_wei=gas_price,
        carry_target_base=carry_target,
        carry_skew=carry_skew,
        action=action,
        touch_quotes=touch_quotes,
    )


_TOUCH_SIDES: tuple[frozenset[Side], ...] = (
    frozenset({Side.BID}),
    frozenset({Side.ASK}),
    frozenset({Side.BID, Side.ASK}),
)
"""The touch candidates: the top of the bids, of the asks, or of both."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One update the gate can send: what it leaves resting, its value and its cost."""

    action: RefreshAction
    touch: tuple[Quote, ...]
    """The touched ladder (empty for the full update, whose quotes are the target)."""
    value: UpdateValue
    cost: UpdateCost
    leaves: tuple[Quote, ...]
    """What rests once it lands (the target, or the touched ladder)."""

    def net(self) -> float:
        return self.value.gain_quote - self.cost.total_quote


def size_skew_mults(moved: float, k_per_price: float, max_growth: float) -> tuple[float, float]:
    """The bid and ask size multipliers for an inventory shift ``moved`` taken by size.

    ``moved`` is the part of the reservation price's inventory shift (price units, + when the
    position is long: the price would have moved down) that the sizes carry instead. A quote
    ``moved`` further from fair value fills ``exp(−k·moved)`` as often, so the side that adds
    to the position is scaled by that and the reducing side by its inverse, capped at
    ``max_growth``: the expected inventory flow is the price skew's, the centre stays put.

    Returns
    -------
    tuple[float, float]
        (bid multiplier, ask multiplier), each in ``(0, max_growth]``.
    """
    x = k_per_price * moved
    if math.isnan(x):
        return 1.0, 1.0
    # exp() overflows past ~709 (a huge inventory against a steep k); the cap binds long before.
    bid = min(math.exp(-x), max_growth) if x > -700.0 else max_growth
    ask = min(math.exp(x), max_growth) if x < 700.0 else max_growth
    return bid, ask


def centre_drift_bps(
    live: Iterable[Quote], target: Iterable[Quote], fair: float, tick: float
) -> float | None:
    """Distance between the centres of two ladders' tops, bps of ``fair``.

    A centre is the midpoint of the best bid and the best ask; None when either ladder lacks a
    side (a one-sided book has no centre to bound: the gate's own rules re-quote an empty side).
    """
    a, b = _top_centre_ticks(live), _top_centre_ticks(target)
    if a is None or b is None or fair <= 0.0:
        return None
    return abs(a - b) * tick / fair * 1e4


def _top_centre_ticks(quotes: Iterable[Quote]) -> float | None:
    bids = [qt.price_ticks for qt in quotes if qt.side is Side.BID]
    asks = [qt.price_ticks for qt in quotes if qt.side is Side.ASK]
    if not bids or not asks:
        return None
    return 0.5 * (max(bids) + min(asks))


def _drift_candidate(
    live: tuple[Quote, ...],
    target: tuple[Quote, ...],
    candidates: list[_Candidate],
    fair: float,
    tick: float,
    p: ModelParams,
) -> _Candidate | None:
    """The re-centre the drift bound forces, or None (see ``ModelParams.max_centre_drift_bps``).

    Among the updates that leave the tops' centre within the bound of the target's, the one
    with the best gain − cost whose cost is within ``centre_drift_max_cost_quote``.
    """
    drift = centre_drift_bps(live, target, fair, tick)
    if drift is None or drift <= p.max_centre_drift_bps:
        return None
    ok = [
        c
        for c in candidates
        if c.cost.gas_quote <= p.centre_drift_max_cost_quote
        and (d := centre_drift_bps(c.leaves, target, fair, tick)) is not None
        and d <= p.max_centre_drift_bps
    ]
    return max(ok, key=_Candidate.net) if ok else None


def kept_quotes_expiring(expires_at_s: float | None, now_s: float, quote_expiry_s: float) -> bool:
    """Whether live quotes are past half their life on chain (an update then replaces them all).

    A refresh that kept them would leave the book to expire soon after the gas was paid; the
    runtime replaces every order then, and the gate prices it that way.
    """
    if quote_expiry_s <= 0.0 or expires_at_s is None:
        return False
    return expires_at_s - now_s < 0.5 * quote_expiry_s


def _legs(quotes: Iterable[LadderLevel | Quote], tick: float, lot: float) -> list[QuoteLeg]:
    return [(qt.side.sign, qt.price_ticks * tick, qt.size_lots * lot) for qt in quotes]


def _top(legs: list[QuoteLeg], side: Side) -> QuoteLeg | None:
    """The best-priced leg of ``side`` in ``legs`` (None when the side is empty)."""
    on_side = [leg for leg in legs if leg[0] == side.sign]
    return max(on_side, key=lambda g: side.sign * g[1]) if on_side else None


def _changes(resting: tuple[Quote, ...], quotes: tuple[Quote, ...]) -> bool:
    """Whether turning ``resting`` into ``quotes`` needs a batch at all."""
    return _diff_counts(resting, quotes) != (0, 0)


def _diff_counts(resting: Iterable[Quote], target: Iterable[Quote]) -> tuple[int, int]:
    """The cancels and places of the batch that turns ``resting`` into ``target``.

    The order diff's rule (``agent.orders.diff_orders``, which the model may not import): a
    resting order at a target's side and price is kept when it has between half of the target's
    size and all of it left; every other target is placed and every unmatched order cancelled.
    """
    pool: dict[tuple[Side, int], list[int]] = {}
    for qt in resting:
        pool.setdefault((qt.side, int(qt.price_ticks)), []).append(int(qt.size_lots))
    places = 0
    for qt in target:
        lots = pool.get((qt.side, int(qt.price_ticks)), [])
        want = int(qt.size_lots)
        match = next((x for x in lots if 0.5 * want <= x <= want), None)
        if match is None:
            places += 1
        else:
            lots.remove(match)
    return sum(len(v) for v in pool.values()), places


def _touch_ladder(
    live: tuple[Quote, ...],
    target: tuple[Quote, ...],
    sides: frozenset[Side],
    levels: int,
    room_base: dict[Side, float],
    lot: float,
) -> tuple[Quote, ...] | None:
    """The live ladder with the top of each side in ``sides`` replaced by the target's top.

    None when that is no ladder to send: the target or the live ladder has nothing on a touched
    side, the new top would not be strictly better than the live levels it keeps, the side would
    hold more than ``levels`` orders or more than the inventory room the target respects, our
    bids would reach our asks, or a side left alone rests inside its target (nearer fair value
    than the target's top there), rests where the target quotes nothing, or is empty where the
    target quotes (a swept side: only the full update re-quotes it).

    That last rule is why a one-sided touch exists at all: to re-quote a side whose top filled
    or lagged outside, never to move one side after fair value and leave the other one stale in
    front of it. The gate values a quote by its fill rate and its edge against the reservation
    price, and near the optimum the two trade off flat, so it saw little loss in such a stale
    quote; the takers who lift it know fair value moved (measured on gas_spike: the resting
    spread sat 0.43 bps inside the target and the edge per fill fell 0.30 bps).
    """
    out: list[Quote] = []
    for side in (Side.BID, Side.ASK):
        key = -side.sign  # best first: bids by descending ticks, asks by ascending
        have = sorted((qt for qt in live if qt.side is side), key=lambda g: key * g.price_ticks)
        want = sorted((qt for qt in target if qt.side is side), key=lambda g: key * g.price_ticks)
        if side in sides:
            if not want or not have:
                return None  # a touch re-prices a live top; an empty side is quoted whole
            top, rest = want[0], have[1:]
            if rest and side.sign * (top.price_ticks - rest[0].price_ticks) <= 0:
                return None
            have = [top, *rest]
        elif bool(have) != bool(want) or (
            have and side.sign * (have[0].price_ticks - want[0].price_ticks) > 0
        ):
            # Left alone, it would rest inside its target, or where the target quotes nothing,
            # or stay empty where the target quotes (a swept side is re-quoted whole).
            return None
        if sum(qt.size_lots for qt in have) * lot > room_base[side] + 1e-9 * lot:
            return None
        if len(have) > levels:
            return None
        out.extend(have)
    bids = [qt.price_ticks for qt in out if qt.side is Side.BID]
    asks = [qt.price_ticks for qt in out if qt.side is Side.ASK]
    if bids and asks and max(bids) >= min(asks):
        return None
    return tuple(out)


def _significant_drift(inputs: DecisionInputs, p: ModelParams) -> float:
    """The momentum beyond ``momentum_z`` standard errors of noise (soft threshold), signed."""
    m = inputs.momentum_per_s
    excess = abs(m) - p.momentum_z * max(inputs.momentum_noise_per_s, 0.0)
    return math.copysign(excess, m) if excess > 0.0 else 0.0


def _at_target_sizes(old_legs: list[QuoteLeg], new_legs: list[QuoteLeg]) -> list[QuoteLeg]:
    """The live legs with each size capped at the target's size for the same side and rank.

    The gate compares where the quotes rest. A size the sizing rule has since cut (for risk:
    volatility, thin depth, the settlement window) is not value to keep: the one-fill value
    grows with size, so left uncapped a live ladder sized before a cut out-values the re-centred
    one at any distance from fair value, and the gate kept a ladder 1-2 bps off-centre for tens
    of seconds (calm, L2: most refusals were such size cuts, at a gain of about -0.6 against a
    refresh's 0.03). A level the target does not have keeps its live size: dropping a level is
    not a reason to pay for a refresh.
    """
    out: list[QuoteLeg] = []
    for sign in (1, -1):
        # Best first: bids by descending price, asks by ascending.
        live = sorted((leg for leg in old_legs if leg[0] == sign), key=lambda g: -sign * g[1])
        want = sorted((leg for leg in new_legs if leg[0] == sign), key=lambda g: -sign * g[1])
        for rank, (side, price, size) in enumerate(live):
            cap = want[rank][2] if rank < len(want) else size
            out.append((side, price, min(size, cap)))
    return out


def _depth_factor(depth_base: float, p: ModelParams) -> float:
    return max(p.min_depth_factor, min(1.0, max(depth_base, 0.0) / p.ref_depth_base))


def _prune_levels(
    ladder: tuple[LadderLevel, ...],
    p: ModelParams,
    centre: float,
    r: float,
    a: float,
    k: float,
    life_s: float,
    level_cost_quote: float,
) -> tuple[LadderLevel, ...]:
    """Drop ladder levels past the top whose expected value does not pay their marginal cost.

    Depth is chosen by what a refresh costs on this chain: on an L1 at 2 gwei deep levels that
    rarely fill are not worth their gas; at L2 gas they are kept.
    """
    if level_cost_quote <= 0.0:
        return ladder
    out: list[LadderLevel] = []
    for side in (Side.BID, Side.ASK):
        levels = [lv for lv in ladder if lv.side is side]
        for i, lv in enumerate(levels):
            leg = (side.sign, lv.price_ticks * p.tick_size, lv.size_lots * p.lot_size)
            if i > 0 and ladder_value_quote([leg], centre, r, a, k, life_s, p.gamma) < (
                level_cost_quote
            ):
                break
            out.append(lv)
    return tuple(out)


def _gate(
    ladder: tuple[LadderLevel, ...],
    live: LiveQuotes,
    risk: RiskDirective,
    q: float,
    value: UpdateValue,
    cost: UpdateCost,
    lot: float,
    *,
    cost_gate: bool = True,
) -> GateReason:
    if risk.force_cancel:
        return GateReason.RISK_CANCEL if live.quotes else GateReason.NOTHING_LIVE
    # A live quote the directive now forbids must go whatever the gas: risk outranks cost.
    resting = {Side.BID: 0.0, Side.ASK: 0.0}
    for qt in live.quotes:
        is_bid = qt.side is Side.BID
        if (is_bid and not risk.allow_bid) or (not is_bid and not risk.allow_ask):
            return GateReason.RISK_SIDE
        if risk.reduce_only and ((is_bid and q >= 0.0) or (not is_bid and q <= 0.0)):
            return GateReason.RISK_SIDE
        resting[qt.side] += qt.size_lots * lot
    # So must a side that could fill past the room the directive leaves it (half a lot: noise).
    if resting[Side.BID] > risk.max_bid_base + 0.5 * lot:
        return GateReason.RISK_SIDE
    if resting[Side.ASK] > risk.max_ask_base + 0.5 * lot:
        return GateReason.RISK_SIDE
    if tuple(lv.quote() for lv in ladder) == live.quotes:
        return GateReason.UNCHANGED
    if not cost_gate:
        return GateReason.NO_GATE
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
            if i == 0 and size0 > 0.0 and ticks > 0:
                # The top level is never shrunk below the venue's minimum order: a thin book or
                # a small size multiplier must not empty the side (a swept side is re-quoted).
                min_lots = math.ceil(p.min_notional / (ticks * tick * lot) - 1e-9)
                if lots < min_lots <= _round_size_lots(room - used, lot):
                    lots, want = min_lots, min_lots * lot
            if ticks <= 0 or lots <= 0:
                break
            if ticks * tick * lots * lot < p.min_notional:
                continue
            used += lots * lot
            price = top_price + direction * i * step_ticks * tick
            levels.append(LadderLevel(side, price, want, Tick(ticks), Lots(lots)))
    return tuple(levels)
