"""Event-driven simulation of the real model against a simulated on-chain venue.

Each step (one block) the simulator feeds the live estimators, calls ``agent.model.decide`` — the
same function the runtime calls — and acts on the verdict:

* a sent update is a transaction: its inclusion delay (and possible drop) comes from the mempool
  model, gas is charged at the base fee of its inclusion block plus the tip, and only one update is
  in flight at a time (the tx pipeline serializes them); the old quotes keep resting meanwhile;
* the venue keeps price-time priority: a quote joins the back of the queue at its price, a quote
  left unchanged by an update keeps its place, and a taker consumes the queue ahead before us;
* uninformed takers reach ``D ~ Exp(k)`` from mid; informed takers know the next mid and take
  every quote on the wrong side of it;
* maker fees are charged on fills; funding is paid on the inventory held at each snapshot.

P&L is split into spread capture (fill price vs mid at the fill), inventory (position × mid moves),
funding, fees and gas; the parts sum to the final mark-to-market P&L. Same seed → bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from agent.model.estimators import (
    BaseFeeForecaster,
    Estimators,
    EwmaVolatility,
    FillIntensity,
    FundingPredictor,
    InclusionDelay,
    QuoteLife,
)
from agent.model.quoting import (
    DecisionInputs,
    GateReason,
    LiveQuotes,
    ModelParams,
    decide,
)
from agent.types import Quote, Side
from sims.processes import (
    BaseFeeSpec,
    FundingSpec,
    MempoolSpec,
    MidPriceSpec,
    TakerFlowSpec,
    base_fee_path,
    funding_premium_path,
    mid_price_path,
    sample_inclusion,
    taker_trades,
)

__all__ = ["EventSimConfig", "EventSimResult", "RefreshPolicy", "run_event_sim"]

RefreshPolicy = Literal["cost", "every_tick"]
"""``"cost"``: send when the cost gate says so; ``"every_tick"``: send whenever the ladder changed
(the same model and ladder with the gate bypassed, the baseline the gate is judged against)."""

FUNDING_INTEREST = 1e-4
"""Interest component of the funding rate per interval (the common perp convention)."""
FUNDING_CLAMP = 5e-4


@dataclass(frozen=True, slots=True)
class EventSimConfig:
    """Scenario for one event-driven run."""

    duration_s: float = 3600.0
    params: ModelParams = field(default_factory=ModelParams)
    mid: MidPriceSpec = field(default_factory=MidPriceSpec)
    funding: FundingSpec = field(default_factory=FundingSpec)
    base_fee: BaseFeeSpec = field(default_factory=BaseFeeSpec)
    mempool: MempoolSpec = field(default_factory=MempoolSpec)
    takers: TakerFlowSpec = field(default_factory=TakerFlowSpec)
    tip_wei: float = 2e9
    book_half_spread_ticks: int = 5
    """Other makers' best bid/ask distance from mid."""
    book_depth_base: float = 50.0
    """Other makers' depth per side (feeds the model's depth sizing)."""
    queue_ahead_base: float = 1.0
    """Size resting ahead of a quote that joins a price level."""
    refresh: RefreshPolicy = "cost"


@dataclass(frozen=True, slots=True)
class EventSimResult:
    """P&L split, inventory path and gate statistics of one run (quote currency)."""

    pnl_spread: float
    pnl_inventory: float
    pnl_funding: float
    pnl_fees: float
    pnl_gas: float
    pnl_total: float
    """Cash + inventory × final mid − gas − funding: the parts above sum to it."""
    inventory_path: npt.NDArray[np.float64]
    decisions: int
    updates_sent: int
    updates_skipped: int
    """Decisions whose ladder changed but that the cost gate held back."""
    updates_dropped: int
    fills: int
    gas_units_spent: float


@dataclass(slots=True)
class _Resting:
    side: Side
    price_ticks: int
    lots: int
    remaining_base: float
    queue_ahead_base: float


def _apply_update(
    resting: list[_Resting], target: tuple[Quote, ...], lot: float, queue_ahead: float
) -> list[_Resting]:
    """Diff the book like the venue adapter does: unchanged quotes keep their queue place."""
    kept: dict[tuple[Side, int, int], _Resting] = {
        (r.side, r.price_ticks, r.lots): r for r in resting if r.remaining_base > 0.0
    }
    out: list[_Resting] = []
    for q in target:
        old = kept.pop((q.side, int(q.price_ticks), int(q.size_lots)), None)
        if old is not None:
            out.append(old)
        else:
            size = q.size_lots * lot
            out.append(_Resting(q.side, int(q.price_ticks), int(q.size_lots), size, queue_ahead))
    return out


def run_event_sim(config: EventSimConfig, seed: int) -> EventSimResult:
    """Run one scenario with the real model and return its P&L split and gate statistics."""
    p = config.params
    tick = p.tick_size
    lot = p.lot_size
    dt = config.mempool.block_time_s
    n = max(1, int(config.duration_s / dt))
    rng = np.random.default_rng(seed)
    index_path, _ = mid_price_path(rng, config.mid, n, dt)
    premium = funding_premium_path(rng, config.funding, n, dt)
    fees_wei, fullness = base_fee_path(rng, config.base_fee, n + config.mempool.max_blocks + 1)
    mark_path = index_path * (1.0 + premium)

    est = Estimators(
        EwmaVolatility(
            halflife_s=300.0, prior_sigma_rel_per_sqrt_s=config.mid.sigma_rel_per_sqrt_s[0]
        ),
        FillIntensity(
            bin_width=0.25 / config.takers.k_per_price,
            prior_a_per_s=config.takers.a_per_s,
            prior_k_per_price=config.takers.k_per_price,
        ),
        BaseFeeForecaster(),
        InclusionDelay(prior_delay_s=dt),
        FundingPredictor(
            interval_s=p.funding_interval_s, interest_rate=FUNDING_INTEREST, clamp=FUNDING_CLAMP
        ),
        tip_wei=config.tip_wei,
    )
    gas_limit = config.base_fee.gas_limit
    # As in the live runtime: the model values quotes over their measured life, not a constant.
    life = QuoteLife(prior_s=p.quote_life_s)

    q = 0.0
    cash = 0.0
    pnl_spread = pnl_inventory = pnl_funding = pnl_fees = pnl_gas = 0.0
    resting: list[_Resting] = []
    live_quotes: tuple[Quote, ...] = ()
    # (landing step, quotes, included?, submit time)
    in_flight: tuple[int, tuple[Quote, ...], bool, float] | None = None
    inventory_path = np.empty(n + 1)
    inventory_path[0] = 0.0
    decisions = sent = skipped = dropped = n_fills = 0
    gas_units = 0.0
    half_book = config.book_half_spread_ticks * tick

    for i in range(n):
        t = i * dt
        mid = float(mark_path[i])
        next_mid = float(mark_path[i + 1])
        index = float(index_path[i])

        # 1. Chain: the block at this step lands any in-flight update.
        if in_flight is not None and in_flight[0] <= i:
            _, quotes, ok, submit_t = in_flight
            if ok:
                resting = _apply_update(resting, quotes, lot, config.queue_ahead_base)
                live_quotes = quotes
                est.delay.update_inclusion(submit_t, t, max(1, round((t - submit_t) / dt)))
                base = float(fees_wei[i])
                pnl_gas -= (
                    p.gas_units_per_refresh
                    * (base + config.tip_wei)
                    / 1e18
                    * (p.native_price_quote)
                )
                gas_units += p.gas_units_per_refresh
            else:
                est.delay.update_dropped(submit_t)
                dropped += 1
            in_flight = None
        est.base_fee.update_block(t, float(fees_wei[i]), int(fullness[i] * gas_limit), gas_limit)
        est.vol.update_price(t, mid)
        est.funding.update_premium(t, float(premium[i]))

        # 2. Decide with the real model.
        snap = est.snapshot(t)
        best_bid = round((mid - half_book) / tick) * tick
        best_ask = round((mid + half_book) / tick) * tick
        t_next_funding = (math.floor(t / p.funding_interval_s) + 1) * p.funding_interval_s
        inputs = DecisionInputs(
            time_s=t,
            mid=mid,
            index=index,
            mark=mid,
            best_bid=best_bid,
            best_ask=best_ask,
            bid_depth_base=config.book_depth_base,
            ask_depth_base=config.book_depth_base,
            inventory_base=q,
            estimates=snap,
            seconds_to_funding=t_next_funding - t,
        )
        live = LiveQuotes(in_flight[1] if in_flight is not None else live_quotes)
        decision = decide(inputs, replace(p, quote_life_s=life.expected_s(t)), live)
        decisions += 1
        changed = decision.reason not in (GateReason.UNCHANGED, GateReason.NOTHING_LIVE)
        want = (changed or decision.send) if config.refresh == "every_tick" else decision.send
        if in_flight is None and want:
            outcome = sample_inclusion(
                rng, config.mempool, config.tip_wei, fullness, i + 1, float(rng.random())
            )
            land = i + max(1, math.ceil(outcome.delay_s / dt))
            in_flight = (land, decision.quotes, outcome.included, t)
            life.update_send(t)
            sent += 1
        elif changed and not want:
            skipped += 1

        # 3. Takers trade against the book during the step.
        for trade in taker_trades(rng, config.takers, dt, mid, next_mid):
            est.fills.update_trade(t, trade.reach)
            volume = trade.size_base
            book_side = Side.ASK if trade.side_sign > 0 else Side.BID
            levels = sorted(
                (r for r in resting if r.side is book_side and r.remaining_base > 0.0),
                key=lambda r: r.price_ticks * trade.side_sign,
            )
            for r in levels:
                price = r.price_ticks * tick
                distance = (price - mid) * trade.side_sign
                if trade.informed:
                    # Takes every quote on the wrong side of where the price is going.
                    if (next_mid - price) * trade.side_sign <= 0.0:
                        break
                    fill = r.remaining_base
                else:
                    if distance > trade.reach or volume <= 0.0:
                        break
                    ahead = min(volume, r.queue_ahead_base)
                    r.queue_ahead_base -= ahead
                    volume -= ahead
                    fill = min(volume, r.remaining_base)
                    volume -= fill
                if fill <= 0.0:
                    continue
                r.remaining_base -= fill
                n_fills += 1
                signed = -trade.side_sign * fill  # taker buys → we sell
                q += signed
                cash -= signed * price
                fee = price * fill * p.maker_fee_bps * 1e-4
                cash -= fee
                pnl_fees -= fee
                pnl_spread += (mid - price) * signed

        # 4. Price moves; funding is paid on the inventory held at the snapshot.
        pnl_inventory += q * (next_mid - mid)
        t_end = t + dt
        if math.floor(t_end / p.funding_interval_s) > math.floor(t / p.funding_interval_s):
            rate = _realized_rate(premium, i + 1, p.funding_interval_s, dt)
            payment = q * rate * next_mid
            pnl_funding -= payment
        inventory_path[i + 1] = q

    final_mid = float(mark_path[n])
    total = cash + q * final_mid + pnl_gas + pnl_funding
    return EventSimResult(
        pnl_spread=pnl_spread,
        pnl_inventory=pnl_inventory,
        pnl_funding=pnl_funding,
        pnl_fees=pnl_fees,
        pnl_gas=pnl_gas,
        pnl_total=total,
        inventory_path=inventory_path,
        decisions=decisions,
        updates_sent=sent,
        updates_skipped=skipped,
        updates_dropped=dropped,
        fills=n_fills,
        gas_units_spent=gas_units,
    )


def _realized_rate(
    premium: npt.NDArray[np.float64], end: int, interval_s: float, dt: float
) -> float:
    """Funding rate of the interval ending at step ``end``: TWAP premium + clamped interest."""
    start = max(0, end - round(interval_s / dt))
    twap = float(premium[start:end].mean()) if end > start else float(premium[end])
    return twap + max(-FUNDING_CLAMP, min(FUNDING_CLAMP, FUNDING_INTEREST - twap))
