"""What a quote update costs on a chain, what it gains, and the rule that weighs the two.

A refresh is a transaction. It costs

* **gas**: gas units × expected effective gas price, where the price leans toward the gas
  estimator's spike quantile by ``spike_weight`` (a refresh sent into a spike pays the spike),
  plus on an L2 the L1 data fee: calldata bytes × the L1 fee per byte;
* **funding**: the change in expected funding paid at the next snapshot caused by swapping the old
  quotes for the new ones (new quotes that are likelier to leave us on the paying side cost more).

A batch's gas and calldata grow with what it changes (:class:`BatchPricing`): a fixed part per
transaction plus a part per cancelled and per placed order, so re-pricing only the top of the
ladder (one cancel and one place a side) costs well under half of a full refresh.

It gains the expected edge of the new quotes over the old ones, each quote valued against the
reservation price as ``P(fill within the quote's life) × size × edge``, over the time the new
quotes would rest: from the update's inclusion to the end of the quote's life. The rule is
derived, not a fixed tolerance: send when the gain exceeds the cost; a cancel demanded by risk
always passes.

The **exposure** of the old quotes while an update waits for its block (``size × σ × √delay``
times the probability of being hit in that time) is reported but is *not* a cost of the update:
the old quotes rest through that delay whether the update is sent or not, and if it is not sent
they rest on, staler, after it too. Charging it to the refresh (as this module once did) made
the gate keep stale ladders longer the staler and likelier to be hit they were.

Everything here is plain float arithmetic (no numpy): it sits in the per-decision hot path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "WEI_PER_NATIVE",
    "BatchPricing",
    "QuoteLeg",
    "UpdateCost",
    "UpdateValue",
    "effective_gas_price_wei",
    "exposure_quote",
    "fill_probability",
    "gas_cost_quote",
    "l1_data_fee_quote",
    "ladder_value_quote",
    "should_send",
    "snapshot_fill_delta_base",
    "update_cost",
]

WEI_PER_NATIVE = 1e18
"""Wei in one unit of the chain's native currency."""

QuoteLeg = tuple[int, float, float]
"""One resting quote as ``(side_sign, price, size_base)``; side_sign is +1 bid, -1 ask."""


@dataclass(frozen=True, slots=True)
class UpdateCost:
    """The cost of one quote update, term by term, in quote currency."""

    gas_quote: float
    exposure_quote: float
    """The old quotes' exposure while the update lands: reported, not in ``total_quote`` (they
    rest through the delay whether or not the update is sent)."""
    funding_delta_quote: float
    gas_price_wei: float
    delay_s: float

    @property
    def total_quote(self) -> float:
        """What sending the update costs: gas (with an L2's data fee) and the funding change."""
        return self.gas_quote + self.funding_delta_quote


@dataclass(frozen=True, slots=True)
class UpdateValue:
    """Expected value of the new and the live quotes over one quote life, in quote currency."""

    new_quote: float
    old_quote: float

    @property
    def gain_quote(self) -> float:
        """What the update is expected to add."""
        return self.new_quote - self.old_quote


@dataclass(frozen=True, slots=True)
class BatchPricing:
    """What one quote batch costs, by the orders it cancels and places, in quote currency.

    Gas is ``gas_units_per_batch + n_cancel × gas_units_per_cancel + n_place ×
    gas_units_per_place`` at ``gas_price_wei``; an L2 adds its L1 data fee on the calldata,
    ``calldata_bytes_per_batch + n_cancel × calldata_bytes_per_cancel + n_place ×
    calldata_bytes_per_place`` bytes at ``l1_fee_per_byte_wei``. A batch that changes nothing is
    not sent and costs nothing.
    """

    gas_price_wei: float
    native_price_quote: float
    gas_units_per_batch: float
    gas_units_per_cancel: float
    gas_units_per_place: float
    calldata_bytes_per_batch: float = 0.0
    calldata_bytes_per_cancel: float = 0.0
    calldata_bytes_per_place: float = 0.0
    l1_fee_per_byte_wei: float = 0.0

    def gas_units(self, n_cancel: int, n_place: int) -> float:
        """Gas units of a batch that cancels ``n_cancel`` orders and places ``n_place``."""
        if n_cancel == 0 and n_place == 0:
            return 0.0
        return (
            self.gas_units_per_batch
            + n_cancel * self.gas_units_per_cancel
            + n_place * self.gas_units_per_place
        )

    def data_fee_quote(self, n_cancel: int, n_place: int) -> float:
        """The L1 data fee of that batch's calldata (0 on an L1)."""
        if (n_cancel == 0 and n_place == 0) or self.l1_fee_per_byte_wei <= 0.0:
            return 0.0
        size = (
            self.calldata_bytes_per_batch
            + n_cancel * self.calldata_bytes_per_cancel
            + n_place * self.calldata_bytes_per_place
        )
        return l1_data_fee_quote(size, self.l1_fee_per_byte_wei, self.native_price_quote)

    def quote(self, n_cancel: int, n_place: int) -> float:
        """Everything that batch costs: gas plus the data fee."""
        gas = gas_cost_quote(
            self.gas_units(n_cancel, n_place), self.gas_price_wei, self.native_price_quote
        )
        return gas + self.data_fee_quote(n_cancel, n_place)


def effective_gas_price_wei(
    base_fee_wei: float, spike_quantile_wei: float, spike_weight: float, tip_wei: float
) -> float:
    """Return the gas price a refresh is expected to pay.

    Parameters
    ----------
    base_fee_wei
        Forecast base fee for the inclusion block.
    spike_quantile_wei
        A high quantile (p99) of the base fee from the gas estimator.
    spike_weight
        Weight in [0, 1] put on the spike quantile (how much tail the caller prices in).
    tip_wei
        Priority fee offered.
    """
    tail = max(0.0, spike_quantile_wei - base_fee_wei)
    return base_fee_wei + spike_weight * tail + tip_wei


def gas_cost_quote(gas_units: float, gas_price_wei: float, native_price_quote: float) -> float:
    """Convert gas units at a gas price into quote currency."""
    return gas_units * gas_price_wei / WEI_PER_NATIVE * native_price_quote


def l1_data_fee_quote(
    calldata_bytes: float, l1_fee_per_byte_wei: float, native_price_quote: float
) -> float:
    """Return an L2 transaction's L1 data fee in quote currency (0 on an L1: fee per byte 0)."""
    return calldata_bytes * l1_fee_per_byte_wei / WEI_PER_NATIVE * native_price_quote


def fill_probability(
    a_per_s: float, k_per_price: float, distance: float, horizon_s: float
) -> float:
    """Return the probability that a quote ``distance`` from mid fills within ``horizon_s``.

    Arrivals reaching the quote are Poisson with intensity ``A·exp(-k·δ)``; a quote at or through
    mid (``δ ≤ 0``) gets the full intensity ``A``.
    """
    if horizon_s <= 0.0:
        return 0.0
    rate = a_per_s * math.exp(-k_per_price * distance) if distance > 0.0 else a_per_s
    return 1.0 - math.exp(-rate * horizon_s)


def ladder_value_quote(
    legs: Iterable[QuoteLeg],
    mid: float,
    reservation: float,
    a_per_s: float,
    k_per_price: float,
    horizon_s: float,
    gamma: float,
) -> float:
    """Return the value of quotes over ``horizon_s`` under the model's own objective.

    Each leg earns, per fill, the CARA certainty equivalent of its edge against the reservation
    price, ``(1 − exp(−γ·size·edge)) / γ`` (a bid at ``p`` has edge ``r − p``, an ask ``p − r``),
    times its expected number of fills, ``A·exp(−k·δ)·horizon`` with ``δ`` its distance from mid.
    For one leg this is maximised exactly at the GLFT/A-S distance ``ln(1 + γ·size/k)/(γ·size)``
    from ``r``, so the model's fresh quotes are worth at least as much as stale ones and the gate
    compares like with like. (A risk-neutral edge × fill-probability value would instead favour
    wide stale quotes over the model's optimum, and the gate would almost never refresh.) A stale
    quote on the wrong side of ``r`` has a negative, convexly growing value.
    """
    total = 0.0
    for sign, price, size in legs:
        distance = (mid - price) * sign
        rate = a_per_s * math.exp(-k_per_price * distance) if distance > 0.0 else a_per_s
        edge = (reservation - price) * sign
        x = gamma * size * edge
        # (1 − e^(−x))/γ, with the γ → 0 limit size·edge; expm1 keeps small x exact.
        gain = -math.expm1(-x) / gamma if gamma > 0.0 else size * edge
        total += rate * horizon_s * gain
    return total


def exposure_quote(
    legs: Iterable[QuoteLeg],
    mid: float,
    sigma: float,
    a_per_s: float,
    k_per_price: float,
    delay_s: float,
) -> float:
    """Return the exposure of live quotes while an update waits ``delay_s`` for inclusion.

    Each quote contributes ``size × σ × √delay × P(hit within delay)``; σ is in price units per
    √second.
    """
    if delay_s <= 0.0:
        return 0.0
    scale = sigma * math.sqrt(delay_s)
    total = 0.0
    for sign, price, size in legs:
        p_hit = fill_probability(a_per_s, k_per_price, (mid - price) * sign, delay_s)
        total += size * scale * p_hit
    return total


def snapshot_fill_delta_base(
    legs: Iterable[QuoteLeg], mid: float, a_per_s: float, k_per_price: float, horizon_s: float
) -> float:
    """Return the expected signed inventory change from fills of ``legs`` within ``horizon_s``."""
    total = 0.0
    for sign, price, size in legs:
        total += (
            sign * size * fill_probability(a_per_s, k_per_price, (mid - price) * sign, horizon_s)
        )
    return total


def update_cost(
    *,
    old_legs: list[QuoteLeg],
    new_legs: list[QuoteLeg],
    mid: float,
    sigma: float,
    a_per_s: float,
    k_per_price: float,
    gas_units: float,
    gas_price_wei: float,
    native_price_quote: float,
    delay_s: float,
    funding_per_unit_quote: float,
    seconds_to_snapshot: float,
    l1_data_fee_quote: float = 0.0,
) -> UpdateCost:
    """Price one refresh: gas + funding change (and the old quotes' exposure during the delay,
    reported only: see the module docstring).

    ``funding_per_unit_quote`` is the expected payment per unit of long inventory held at the next
    snapshot (positive when longs pay). The funding term compares the inventory the new and old
    quotes are expected to add before the snapshot; it is signed (a refresh that moves us off the
    paying side lowers the cost). ``l1_data_fee_quote`` (an L2's data fee for the refresh's
    calldata) is part of the gas term.
    """
    gas = gas_cost_quote(gas_units, gas_price_wei, native_price_quote) + l1_data_fee_quote
    exposure = exposure_quote(old_legs, mid, sigma, a_per_s, k_per_price, delay_s)
    funding = 0.0
    if funding_per_unit_quote != 0.0 and seconds_to_snapshot > delay_s:
        # The new quotes only rest after inclusion; the old ones keep resting until then.
        window = seconds_to_snapshot - delay_s
        dq_new = snapshot_fill_delta_base(new_legs, mid, a_per_s, k_per_price, window)
        dq_old = snapshot_fill_delta_base(old_legs, mid, a_per_s, k_per_price, window)
        funding = (dq_new - dq_old) * funding_per_unit_quote
    return UpdateCost(gas, exposure, funding, gas_price_wei, delay_s)


def should_send(value: UpdateValue, cost: UpdateCost, *, forced: bool) -> bool:
    """Return True when the update pays for itself, or when risk forces it."""
    return forced or value.gain_quote > cost.total_quote
