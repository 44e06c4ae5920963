"""Graded risk engine: numbers in, a quoting posture out (pure: no I/O, no clock reads).

The engine turns a `RiskInputs` snapshot into a `RiskDirective` that the runtime applies to the
model's quotes before the order diff. Time comes from ``inputs.now_s``; given the same sequence of
inputs the engine makes the same decisions.

States, mildest first (each one keeps the restrictions of the ones before it)::

    NORMAL     full size, model spread, normal hedging
    REDUCED    smaller size
    WIDENED    smaller size, wider spread
    HEDGING    smallest size, widest spread, aggressive hedge of inventory
    WITHDRAWN  cancel all, reduce-only quotes, aggressive hedge
    HALTED     kill switch: cancel all, no quotes, no automated hedging; only an operator resumes

Escalation is immediate, to the highest state any trigger demands. De-escalation goes one state at a
time, and only after every trigger demanding the current state has been below its release level (the
threshold moved back by the band's ``release_frac``) for that state's cooldown. HALTED never
de-escalates on its own: `RiskEngine.operator_resume` moves it to WITHDRAWN, from which the normal
one-step cooldowns apply. The drawdown withdraw level (below) is the other state only an operator
leaves: `RiskEngine.drawdown_latched` says so, and the same resume re-bases the drawdown peak.

Triggers and the states they demand (defaults of `RiskLimits`)::

    trigger (reading, unit)                           warn            breach
    ------------------------------------------------  --------------  ---------------
    realized_vol_annual   σ, annualized fraction      1.0  REDUCED    2.0   WIDENED
    index_jump_bps        high-low range in window    150  WIDENED    400   WITHDRAWN
    quote_collar_ratio    worst quote dist / collar   1.0  REDUCED    2.0   WITHDRAWN
    funding_adverse_prob  P(we pay at next snapshot)  0.5  WIDENED    0.8   HEDGING
                          (only with ≥ funding_min_stake_quote at stake)
    fair_value_divergence fair value vs oracle, bps   100  WIDENED    300   WITHDRAWN
    base_fee_budget_ratio base fee / fee budget       1.0  WIDENED    2.0   WITHDRAWN
    pending_tx_age_s      oldest unconfirmed tx       15   WIDENED    60    WITHDRAWN
    inclusion_delay_s     measured send → inclusion   6    REDUCED    20    WIDENED
    oracle_age_s          oracle price age            10   WIDENED    30    WITHDRAWN
                          (1.5 / 3 heartbeats when oracle_heartbeat_s is set)
    block_age_s           latest block age            15   WIDENED    45    WITHDRAWN
    cex_feed_age_s        CEX market data age         3    WIDENED    10    WITHDRAWN
    rpc_error_rate        failed / all RPC calls      0.05 REDUCED    0.25  WITHDRAWN
    drawdown_frac         (peak - equity) / strategy  0.02 REDUCED    0.05  HALTED
                          capital (see below)
    drawdown_withdraw_frac  the same reading          0.035 WITHDRAWN (flatten before the halt)
    margin_ratio          maint. margin / equity      0.5  HEDGING    0.8   WITHDRAWN
    liq_distance_bps      mark to liquidation (low    1500 HEDGING    500   WITHDRAWN
                          is worse)
    inventory_cap_ratio   |inventory| / eff. cap      1.0  REDUCED    1.5   HEDGING
    orders_per_min        orders sent, last 60 s      120  WIDENED    240   WITHDRAWN
    gas_refreshes_left    native balance / cost of    200  WIDENED    50    WITHDRAWN
                          one refresh (low is worse:
                          keep the gas for cancels)
    cex_unreachable       flag                        -               WIDENED, cap x 0.5
    cex_banned            flag                        -               REDUCED, cap x 0.5
    cex_rate_limited      flag                        -               REDUCED
    cex_jump              flag (JumpDetector PULLED)  -               WIDENED, and while raised:
                                                                      cancel all, hedge it all;
                                                                      collar and fair-value
                                                                      divergence read 0
    hedge_blocked         flag: the hedge cannot be   -               no state change; while
                          placed now (exchange banned,                raised, only the side that
                          unreachable, rate limited or                reduces the unhedged
                          its feed older than the                     exposure (DEX + hedge) is
                          cex_feed_age_s warn)                        quoted (both when flat)
    swept_bid/ask         flag (SweepGuard: risk.     -               no state change; while
                          sweep_fills own fills on                    raised: that side is not
                          one side in sweep_window_s)                 quoted, the residual is
                                                                      hedged at once as taker

Posture of each state (multipliers are `RiskLimits` fields)::

    state      size  spread  hedge       sides                      cancel_all  reduce_only
    NORMAL     1     1       normal      both, unless at the cap    no          no
    REDUCED    0.5   1       normal      both, unless at the cap    no          no
    WIDENED    0.5   2       normal      both, unless at the cap    no          no
    HEDGING    0.25  3       aggressive  both, unless at the cap    no          no
    WITHDRAWN  0.25  3       aggressive  only the reducing side     yes         yes
    HALTED     0     3       none        none                       yes         yes

The hedger reads ``hedge_band_mult`` (its dead band times this: 1, 1, 1, 0.5, 0, 1 down the
states above; in WITHDRAWN the whole residual is hedged at once) and ``hedge_taker`` (cross the
spread now; set in HEDGING and WITHDRAWN).

A reading that is NaN counts as a breach: a broken feed must not look like a calm one.

Over the (effective) inventory cap the side that adds inventory is blocked, and a time-weighted
unload plan asks the hedger/quoter to bring inventory back to ``unload_target_frac`` of the cap by a
deadline, catching up if behind schedule. Inside the funding window, over the cap on the side that
pays at the coming snapshot, the deadline is that snapshot: the cap holds at every snapshot.

Consistency and hysteresis
--------------------------
* The collar centres on fair value (``RiskInputs.fair_value``, the index when absent) and its
  half-width is multiplied by the current state's spread multiplier: the widening a state orders
  never trips the collar into a harsher state (it used to: HEDGING's ×3 spread read as a collar
  breach, WITHDRAWN cancelled, the collar cleared, and the two flipped 70 times in 4 hours).
* Every escalation episode within the last ``flap_window_s`` after the first multiplies the
  cooldowns by ``flap_backoff`` (an episode: escalations with no de-escalation between them, so a
  crash stepping through REDUCED, WIDENED and WITHDRAWN in seconds is one event, and a posture
  that comes back after a release is a flap): a trigger that keeps coming back holds the state
  longer each time (30 s, 60 s,
  120 s, ...), which bounds the flips per hour to a handful while escalation stays immediate.

Drawdown
--------
The drawdown reading is ``(session peak equity − equity) / strategy capital``. Equity is both legs
marked fresh (`marked_equity_quote`: the DEX leg at fair value, the hedge at the exchange mid now;
`book_equity_quote`: the DEX leg as the account reads while either is missing) less the gas
spent, so the engine judges the same money the run's net P&L counts. The capital is what the
strategy uses, not the account it sits in: ``RiskLimits.strategy_capital_quote`` when
set, else `strategy_capital` — the margin a position at the inventory cap takes on both legs
(``capital_margin_frac`` × cap × price; the position held then instead, when it is larger), fixed
at the first priced evaluation so a crash does not move the limit. A 1-unit cap at $60,000 on
10x legs is $12,000 of capital: the 2% / 3.5% / 5% levels are $240 / $420 / $600, where 5% of a
$250,000 account ($12,500) never bound. At ``drawdown_withdraw_frac`` (3.5%) the engine withdraws
and hedges the whole residual before the halt. That level releases only under 3.5% × (1 −
release_frac), which a flat, withdrawn agent cannot earn back: it is a latch
(`RiskEngine.drawdown_latched`, kept in the memory across restarts) that `operator_resume` clears by
re-basing the peak to the equity now (the operator accepts the loss); the agent then steps down
through the usual cooldowns. A restart derives the capital again from the price then; the peak it
is measured from is restored from the journal.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, fields

from agent.errors import ConfigError
from agent.types import Side

__all__ = [
    "Band",
    "HedgeUrgency",
    "Level",
    "RiskDirective",
    "RiskEngine",
    "RiskInputs",
    "RiskLimits",
    "RiskState",
    "Transition",
    "TriggerReading",
    "UnloadPlan",
    "book_equity_quote",
    "marked_equity_quote",
    "strategy_capital",
]

_SECONDS_PER_YEAR = 365.25 * 24 * 3600.0
_BPS = 1e4
_FLATTEN_TRIGGER = "drawdown_withdraw_frac"
"""The drawdown withdraw level's trigger name (the latch `RiskEngine.operator_resume` clears)."""
_FLAT_BASE = 1e-9
"""Unhedged exposure below this (base units, float noise of a hedged pair) counts as flat."""


class RiskState(enum.IntEnum):
    """Graded risk states; a higher value is a more defensive posture."""

    NORMAL = 0
    REDUCED = 1
    WIDENED = 2
    HEDGING = 3
    WITHDRAWN = 4
    HALTED = 5


class Level(enum.IntEnum):
    """How far past its thresholds a trigger is (after hysteresis)."""

    CLEAR = 0
    WARN = 1
    BREACH = 2


class HedgeUrgency(enum.IntEnum):
    """How hard the hedger should work the CEX hedge."""

    NONE = 0
    NORMAL = 1
    AGGRESSIVE = 2


@dataclass(frozen=True, slots=True)
class Band:
    """Warn and breach thresholds of one trigger, and the states each demands.

    The unit is that of the trigger's reading (see the table in the module docstring). A band whose
    ``breach`` is below its ``warn`` is "lower is worse" (distance to liquidation). A level, once
    reached, is held until the reading is back past ``threshold * (1 - release_frac)`` (or
    ``threshold * (1 + release_frac)`` for a lower-is-worse band): that gap is the hysteresis.
    Set both states to NORMAL to monitor a trigger without acting on it.
    """

    warn: float
    breach: float
    warn_state: RiskState
    breach_state: RiskState
    release_frac: float = 0.25

    def __post_init__(self) -> None:
        if not (math.isfinite(self.warn) and math.isfinite(self.breach)):
            raise ConfigError(f"risk band {self}: warn and breach must be finite numbers")
        if self.warn <= 0 or self.breach <= 0 or self.warn == self.breach:
            raise ConfigError(
                f"risk band {self}: warn and breach must be positive and different "
                "(breach above warn when higher is worse, below when lower is worse)"
            )
        if not 0.0 <= self.release_frac < 1.0:
            raise ConfigError(f"risk band {self}: release_frac must be in [0, 1)")
        if self.breach_state < self.warn_state:
            raise ConfigError(f"risk band {self}: breach_state must be at least warn_state")

    @property
    def higher_is_worse(self) -> bool:
        """Return whether larger readings are more dangerous."""
        return self.breach > self.warn

    def release(self, threshold: float) -> float:
        """Return the reading at which a level entered at ``threshold`` is let go."""
        if self.higher_is_worse:
            return threshold * (1.0 - self.release_frac)
        return threshold * (1.0 + self.release_frac)

    def level(self, value: float, held: Level) -> Level:
        """Return the level for ``value``, given the level ``held`` since the last reading."""
        if math.isnan(value):
            return Level.BREACH
        if self._past(value, self.breach):
            return Level.BREACH
        if held is Level.BREACH and self._past(value, self.release(self.breach)):
            return Level.BREACH
        if self._past(value, self.warn):
            return Level.WARN
        if held >= Level.WARN and self._past(value, self.release(self.warn)):
            return Level.WARN
        return Level.CLEAR

    def state_for(self, level: Level) -> RiskState:
        """Return the state this band demands at ``level``."""
        if level is Level.BREACH:
            return self.breach_state
        if level is Level.WARN:
            return self.warn_state
        return RiskState.NORMAL

    def threshold_for(self, level: Level) -> float:
        """Return the threshold that defines ``level`` (warn for CLEAR too)."""
        return self.breach if level is Level.BREACH else self.warn

    def _past(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.higher_is_worse else value <= threshold


_R = RiskState


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every threshold of the risk engine, with its unit in its name, and the posture of each state.

    Bands are keyed by the reading they judge; see the module docstring for the table of defaults.
    """

    realized_vol_annual: Band = Band(1.0, 2.0, _R.REDUCED, _R.WIDENED)
    index_jump_bps: Band = Band(150.0, 400.0, _R.WIDENED, _R.WITHDRAWN)
    index_jump_window_s: float = 60.0
    quote_collar_ratio: Band = Band(1.0, 2.0, _R.REDUCED, _R.WITHDRAWN)
    collar_sigmas: float = 6.0
    """Collar half-width in standard deviations of the index over ``collar_horizon_s``."""
    collar_horizon_s: float = 60.0
    collar_min_bps: float = 25.0
    """Floor of the collar half-width, so a calm market does not make the collar a pinhole."""
    funding_adverse_prob: Band = Band(0.5, 0.8, _R.WIDENED, _R.HEDGING)
    funding_window_s: float = 900.0
    """Funding risk counts only this close to the next snapshot."""
    funding_window_frac: float = 0.03125
    """The funding window is at most this fraction of the funding interval (900 s of 8 h)."""
    funding_min_inventory_frac: float = 0.1
    """Funding risk counts only for an inventory at least this fraction of the cap."""
    funding_min_abs_rate_bps: float = 0.0
    """Funding risk counts only for a predicted rate at least this large (bps per interval)."""
    funding_min_stake_quote: float = 5.0
    """Funding risk counts only when |inventory| × |rate| × price (quote currency, the payment at
    the snapshot) is at least this: the trigger weighs dollars, not the sign of a tiny rate."""
    fair_value_divergence_bps: Band = Band(100.0, 300.0, _R.WIDENED, _R.WITHDRAWN)
    """Fair value (exchange-led) against the oracle: the chain has not caught up with a move."""
    cex_jump_state: RiskState = RiskState.WIDENED
    """State demanded while the exchange jump detector has quotes pulled. The pull itself is the
    flag's own posture (cancel all, hedge the whole residual as taker) and ends with the flag, so
    quotes come back around the new fair value as soon as the detector sees a stable market,
    not after WITHDRAWN's cooldowns (the target is quotes straddling fair within a minute). The
    state is what remains after the pull: WIDENED, on top of the detector's own re-entry posture
    (half size, 1.5x spread); HEDGING's quarter size and 3x spread on top of that priced every
    re-entry quote below the gas of sending it (a live 3% move left the book empty for 60 s)."""
    sweep_fills: int = 3
    """Own fills on one side within ``sweep_window_s`` that mark a sweep (toxic flow): that side
    is not re-quoted for ``sweep_pause_s`` and the residual is hedged at once as taker. Informed
    takers swept the whole ladder seconds before a flash move the exchange had not printed yet;
    re-quoting the side sold them the same option twice. 0 switches the guard off (``plain``)."""
    sweep_window_s: float = 5.0
    sweep_pause_s: float = 30.0
    """How long a swept side stays unquoted after the sweep's last fill, seconds."""
    oracle_heartbeat_s: float | None = None
    """The oracle feed's heartbeat; when set, the oracle-age band is derived from it."""
    oracle_warn_heartbeats: float = 1.5
    oracle_breach_heartbeats: float = 3.0
    flap_window_s: float = 3_600.0
    """Escalations within this window (after the first) lengthen the cooldowns."""
    flap_backoff: float = 2.0
    """Cooldown multiplier per repeated escalation within ``flap_window_s`` (1: no backoff)."""
    flap_max_cooldown_s: float = 900.0
    """The backoff never makes a cooldown longer than this (a settled market recovers)."""
    strategy_capital_quote: float | None = None
    """Capital the strategy uses, quote currency: the drawdown bands are fractions of it, not of
    the whole account (a 5% limit on a $250k balance that a 1-unit cap never uses does not bind).
    None (the default): derived from the strategy's own limits at the first priced evaluation,
    ``capital_margin_frac × inventory cap × price`` (see `strategy_capital`)."""
    drawdown_withdraw_frac: float = 0.035
    """At this drawdown (a fraction of the strategy capital, between the drawdown band's warn and
    breach) the engine withdraws: cancel all, reduce-only quotes, the whole residual hedged at
    once as taker. The loss stops growing before the halt instead of at it: HALTED does no
    automated hedging, so a residual still open when the halt fired kept losing through the
    rest of a crash (a 0.1-unit long halted at 5.4% of the capital ended at 629%). 0: straight
    from the warn's state to the halt."""
    capital_margin_frac: float = 0.2
    """The margin a position at the inventory cap takes, as a fraction of its notional, both legs
    together: 0.2 is the DEX's 10% initial margin plus a 10x exchange account for the hedge.
    Used only when ``strategy_capital_quote`` is unset; 1 sizes the capital at the full notional."""
    hedging_band_mult: float = 0.5
    """Hedge dead-band multiplier in HEDGING (the hedger hedges more of the residual)."""
    withdrawn_band_mult: float = 0.0
    """Hedge dead-band multiplier in WITHDRAWN: hedge the whole residual at once."""
    base_fee_budget_ratio: Band = Band(1.0, 2.0, _R.WIDENED, _R.WITHDRAWN)
    pending_tx_age_s: Band = Band(15.0, 60.0, _R.WIDENED, _R.WITHDRAWN)
    inclusion_delay_s: Band = Band(6.0, 20.0, _R.REDUCED, _R.WIDENED)
    oracle_age_s: Band = Band(10.0, 30.0, _R.WIDENED, _R.WITHDRAWN)
    block_age_s: Band = Band(15.0, 45.0, _R.WIDENED, _R.WITHDRAWN)
    cex_feed_age_s: Band = Band(3.0, 10.0, _R.WIDENED, _R.WITHDRAWN)
    rpc_error_rate: Band = Band(0.05, 0.25, _R.REDUCED, _R.WITHDRAWN)
    drawdown_frac: Band = Band(0.02, 0.05, _R.REDUCED, _R.HALTED)
    margin_ratio: Band = Band(0.5, 0.8, _R.HEDGING, _R.WITHDRAWN)
    liq_distance_bps: Band = Band(1500.0, 500.0, _R.HEDGING, _R.WITHDRAWN)
    inventory_cap_ratio: Band = Band(1.0, 1.5, _R.REDUCED, _R.HEDGING)
    orders_per_min: Band = Band(120.0, 240.0, _R.WIDENED, _R.WITHDRAWN)
    gas_refreshes_left: Band = Band(200.0, 50.0, _R.WIDENED, _R.WITHDRAWN)
    """Quote refreshes the signer's native balance still pays for (lower is worse): an agent out
    of gas cannot cancel, so it withdraws while a cancel-all is still affordable."""
    cex_unreachable_state: RiskState = RiskState.WIDENED
    cex_banned_state: RiskState = RiskState.REDUCED
    cex_rate_limited_state: RiskState = RiskState.REDUCED
    cex_degraded_inventory_cap_mult: float = 0.5
    """Inventory cap multiplier while the CEX is unreachable or has banned us (no hedge)."""

    cooldown_reduced_s: float = 15.0
    """Time clear before stepping down from REDUCED (and likewise for the fields below)."""
    cooldown_widened_s: float = 30.0
    cooldown_hedging_s: float = 30.0
    cooldown_withdrawn_s: float = 60.0

    reduced_size_mult: float = 0.5
    """Size multiplier in REDUCED and WIDENED."""
    widened_spread_mult: float = 2.0
    hedging_size_mult: float = 0.25
    """Size multiplier in HEDGING, and for reduce-only unload quotes in WITHDRAWN."""
    hedging_spread_mult: float = 3.0

    unload_target_frac: float = 0.8
    """An unload ends once |inventory| is at or below this fraction of the effective cap."""
    unload_horizon_s: float = 300.0
    unload_urgent_horizon_s: float = 60.0
    """Unload horizon in HEDGING and above (also shortens a running plan's deadline)."""
    unload_min_remaining_s: float = 5.0
    """Floor of the time left used for the unload rate, so a late plan asks for a finite rate."""

    def __post_init__(self) -> None:
        positive = (
            "index_jump_window_s",
            "collar_sigmas",
            "collar_horizon_s",
            "unload_horizon_s",
            "unload_urgent_horizon_s",
            "unload_min_remaining_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"risk.{name} must be > 0 (got {getattr(self, name)!r})")
        non_negative = (
            "collar_min_bps",
            "funding_window_s",
            "funding_min_inventory_frac",
            "funding_min_abs_rate_bps",
            "cooldown_reduced_s",
            "cooldown_widened_s",
            "cooldown_hedging_s",
            "cooldown_withdrawn_s",
            "sweep_fills",
            "sweep_pause_s",
        )
        if not self.sweep_window_s > 0:
            raise ConfigError(f"risk.sweep_window_s must be > 0 (got {self.sweep_window_s!r})")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ConfigError(f"risk.{name} must be >= 0 (got {getattr(self, name)!r})")
        if self.flap_backoff < 1.0 or self.flap_window_s < 0.0:
            raise ConfigError("risk.flap_backoff must be >= 1 and flap_window_s >= 0")
        if self.oracle_heartbeat_s is not None and not self.oracle_heartbeat_s > 0.0:
            raise ConfigError("risk.oracle_heartbeat_s must be > 0 when set")
        if not 0.0 < self.oracle_warn_heartbeats < self.oracle_breach_heartbeats:
            raise ConfigError("risk: need 0 < oracle_warn_heartbeats < oracle_breach_heartbeats")
        capital = self.strategy_capital_quote
        if capital is not None and not (math.isfinite(capital) and capital > 0.0):
            raise ConfigError(
                f"risk.strategy_capital_quote must be a finite amount > 0 in quote currency when "
                f"set (got {capital!r}); leave it out to derive it from the inventory cap"
            )
        for f in fields(self):
            band, default = getattr(self, f.name), f.default
            if isinstance(default, Band) and band.higher_is_worse != default.higher_is_worse:
                # A swapped pair would silently turn the trigger upside down (a fresh agent at
                # zero drawdown "past" a breach of 0.01 with warn 0.02), never what was meant.
                worse = "above" if default.higher_is_worse else "below"
                raise ConfigError(
                    f"risk.{f.name}: breach ({band.breach:g}) must be {worse} warn "
                    f"({band.warn:g}) for this trigger; swap them, or set both (the defaults "
                    f"are warn {default.warn:g}, breach {default.breach:g})"
                )
        dd, withdraw = self.drawdown_frac, self.drawdown_withdraw_frac
        if withdraw != 0.0 and not (dd.higher_is_worse and dd.warn < withdraw < dd.breach):
            raise ConfigError(
                f"risk.drawdown_withdraw_frac must lie between risk.drawdown_frac's warn "
                f"({dd.warn:g}) and breach ({dd.breach:g}) (got {withdraw!r}), or be 0 to "
                "withdraw only at the halt"
            )
        if not 0.0 < self.capital_margin_frac <= 1.0:
            raise ConfigError(
                f"risk.capital_margin_frac must be in (0, 1] (got {self.capital_margin_frac!r}): "
                "the margin a position at the cap takes, as a fraction of its notional"
            )
        if not 0.0 < self.funding_window_frac <= 1.0 or self.funding_min_stake_quote < 0.0:
            raise ConfigError("risk: funding_window_frac in (0, 1], funding_min_stake_quote >= 0")
        for name in ("hedging_band_mult", "withdrawn_band_mult"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"risk.{name} must be in [0, 1] (got {getattr(self, name)!r})")
        fractions = (
            "cex_degraded_inventory_cap_mult",
            "reduced_size_mult",
            "hedging_size_mult",
            "unload_target_frac",
        )
        for name in fractions:
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"risk.{name} must be in (0, 1] (got {getattr(self, name)!r})")
        for name in ("widened_spread_mult", "hedging_spread_mult"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"risk.{name} must be >= 1 (got {getattr(self, name)!r})")

    def oracle_band(self) -> Band:
        """Return the oracle-age band: from the heartbeat when it is known."""
        hb = self.oracle_heartbeat_s
        if hb is None:
            return self.oracle_age_s
        b = self.oracle_age_s
        return Band(
            hb * self.oracle_warn_heartbeats,
            hb * self.oracle_breach_heartbeats,
            b.warn_state,
            b.breach_state,
            b.release_frac,
        )

    def spread_mult(self, state: RiskState) -> float:
        """Return the spread multiplier a state orders."""
        if state >= RiskState.HEDGING:
            return self.hedging_spread_mult
        if state >= RiskState.WIDENED:
            return self.widened_spread_mult
        return 1.0

    def cooldown_s(self, state: RiskState) -> float:
        """Return how long triggers must be clear before stepping down from ``state``."""
        return {
            RiskState.REDUCED: self.cooldown_reduced_s,
            RiskState.WIDENED: self.cooldown_widened_s,
            RiskState.HEDGING: self.cooldown_hedging_s,
            RiskState.WITHDRAWN: self.cooldown_withdrawn_s,
        }.get(state, 0.0)


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """One snapshot of everything the engine judges; the runtime builds it each decision.

    Use ``math.inf`` for an age that has no observation yet (it reads as stale) and for the
    liquidation distance of a flat position.
    """

    now_s: float
    """Monotonic time of the snapshot, from the injected clock."""
    index_price: float
    realized_vol_annual: float
    inventory_base: float
    """Signed position in base-asset units (+ long)."""
    inventory_cap_base: float
    """Configured |inventory| cap in base-asset units, before any risk multiplier."""
    funding_rate_predicted: float
    """Predicted rate for the next snapshot, fraction per interval (+ means longs pay shorts)."""
    funding_flip_prob: float
    """Probability that the realized sign differs from the predicted one."""
    funding_snapshot_in_s: float
    base_fee_gwei: float
    base_fee_budget_gwei: float
    oldest_pending_tx_age_s: float
    inclusion_delay_s: float
    oracle_age_s: float
    block_age_s: float
    cex_feed_age_s: float
    rpc_error_rate: float
    """Failed / all RPC calls over the estimator's window, 0..1."""
    equity_quote: float
    """Both legs marked fresh: DEX equity at fair value plus the hedge's mark-to-market at the
    exchange mid now (`marked_equity_quote`), less the gas spent, quote currency."""
    margin_ratio: float
    """Maintenance margin / account equity (1.0 is liquidation)."""
    liq_distance_bps: float
    """Distance from mark to the liquidation price, bps of mark."""
    cex_reachable: bool
    cex_banned: bool
    cex_rate_limited: bool
    orders_per_min: float
    """Orders (place, cancel, replace) sent over the last 60 s."""
    quote_prices: tuple[float, ...] = ()
    """Prices of the quotes about to be posted (or resting), for the collar."""
    session_peak_equity_quote: float | None = None
    """A known peak to start from (e.g. restored from the journal); the engine tracks the rest."""
    fair_value: float | None = None
    """Fair value the collar centres on (``FairValueEstimator``); None: the index."""
    fair_value_divergence_bps: float = 0.0
    """|fair value − fresh oracle| in bps (``FairValue.divergence_bps``)."""
    cex_jump: bool = False
    """The exchange jump detector has quotes pulled (``JumpState.PULLED``)."""
    swept_bid: bool = False
    """A one-sided burst of fills against our bids (``SweepGuard``): toxic flow."""
    swept_ask: bool = False
    """A one-sided burst of fills against our asks (``SweepGuard``): toxic flow."""
    funding_interval_s: float = 28_800.0
    """The market's funding interval (the funding window scales with it)."""
    gas_refreshes_left: float = math.inf
    """Quote refreshes the signer's native balance pays for at the current fee (inf: unread)."""
    hedge_exposure_base: float | None = None
    """DEX inventory plus the exchange hedge position, signed base units: what no leg offsets.
    None: no hedge leg (nothing to block on)."""


@dataclass(frozen=True, slots=True)
class TriggerReading:
    """One active trigger: what it read, the threshold of its level, and what it demands."""

    name: str
    value: float
    threshold: float
    release: float
    """The value the reading must get back past for this level to be let go."""
    level: Level
    state: RiskState

    def describe(self) -> str:
        """Return a one-line account for logs, e.g. ``oracle_age_s=45 (breach 30)``."""
        return f"{self.name}={self.value:.6g} ({self.level.name.lower()} {self.threshold:.6g})"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, with the reason and the readings behind it."""

    from_state: RiskState
    to_state: RiskState
    at_s: float
    reason: str
    readings: tuple[TriggerReading, ...]

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping for the journal and structured logs."""
        return {
            "from": self.from_state.name,
            "to": self.to_state.name,
            "at_s": self.at_s,
            "reason": self.reason,
            "readings": [
                {
                    "name": r.name,
                    "value": r.value,
                    "threshold": r.threshold,
                    "level": r.level.name,
                    "state": r.state.name,
                }
                for r in self.readings
            ],
        }


@dataclass(frozen=True, slots=True)
class UnloadPlan:
    """A time-weighted reduction of inventory down to ``target_abs_base`` by ``deadline_s``."""

    side: Side
    """The side to trade: ASK (sell) to unload a long, BID (buy) to unload a short."""
    excess_base: float
    """|inventory| above the target, base units (> 0)."""
    target_abs_base: float
    rate_base_per_s: float
    """Reduction to achieve per second from now: excess / max(time left, min remaining)."""
    deadline_s: float


@dataclass(frozen=True, slots=True)
class RiskDirective:
    """The posture the runtime must apply to quotes and hedges until the next evaluation."""

    state: RiskState
    size_mult: float
    spread_mult: float
    allow_bid: bool
    allow_ask: bool
    reduce_only: bool
    cancel_all: bool
    hedge_urgency: HedgeUrgency
    inventory_cap_mult: float
    inventory_cap_base: float
    """Effective |inventory| cap: the configured cap times ``inventory_cap_mult``."""
    unload: UnloadPlan | None
    readings: tuple[TriggerReading, ...]
    hedge_band_mult: float = 1.0
    """Multiplier on the hedger's dead band: < 1 in HEDGING, 0 in WITHDRAWN (hedge it all)."""
    hedge_taker: bool = False
    """The hedger should cross the spread now instead of working a passive order."""
    bid_room_base: float = math.inf
    """Most the bids together may buy (base units): while the hedge is blocked, the unhedged
    exposure a short needs bought back; unbounded otherwise."""
    ask_room_base: float = math.inf
    """Most the asks together may sell (base units), likewise."""


class _RangeWindow:
    """Sliding max and min of a price over a time window (monotonic deques, O(1) amortized)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._max: deque[tuple[float, float]] = deque()
        self._min: deque[tuple[float, float]] = deque()

    def push(self, now_s: float, price: float) -> float:
        """Add a price and return the window's (max - min) / min in bps."""
        while self._max and self._max[-1][1] <= price:
            self._max.pop()
        self._max.append((now_s, price))
        while self._min and self._min[-1][1] >= price:
            self._min.pop()
        self._min.append((now_s, price))
        horizon = now_s - self._window_s
        while self._max[0][0] < horizon:
            self._max.popleft()
        while self._min[0][0] < horizon:
            self._min.popleft()
        low = self._min[0][1]
        return (self._max[0][1] - low) / low * _BPS


class RiskEngine:
    """Hold the risk state and decide it from successive `RiskInputs` snapshots.

    Parameters
    ----------
    limits
        Thresholds and postures; defaults to `RiskLimits()`.
    start_s
        Time the initial state began (same clock as ``RiskInputs.now_s``).
    initial_state
        State to start in; pass HALTED restored from the journal so a restart never un-halts.
    """

    def __init__(
        self,
        limits: RiskLimits | None = None,
        *,
        start_s: float = 0.0,
        initial_state: RiskState = RiskState.NORMAL,
    ) -> None:
        self._limits = limits if limits is not None else RiskLimits()
        self._state = initial_state
        self._since_s = start_s
        self._clear_since_s: float | None = None
        self._held: dict[str, Level] = {}
        self._peak_equity: float | None = None
        self._last_equity: float | None = None
        self._capital: float | None = self._limits.strategy_capital_quote
        self._flatten = _flatten_band(self._limits)
        self._last_drawdown_frac = 0.0
        self._jumps = _RangeWindow(self._limits.index_jump_window_s)
        self._unload_deadline_s: float | None = None
        self._transitions: list[Transition] = []
        self._escalations: deque[float] = deque()
        self._released_since_escalation = False

    @property
    def limits(self) -> RiskLimits:
        """Return the limits in force."""
        return self._limits

    @property
    def state(self) -> RiskState:
        """Return the current state."""
        return self._state

    @property
    def since_s(self) -> float:
        """Return when the current state was entered."""
        return self._since_s

    @property
    def peak_equity_quote(self) -> float | None:
        """Return the session peak equity the drawdown is measured from."""
        return self._peak_equity

    @property
    def strategy_capital_quote(self) -> float | None:
        """Return the capital the drawdown is a fraction of (None until the first price)."""
        return self._capital

    @property
    def drawdown_frac(self) -> float:
        """Return the last drawdown reading, a fraction of the strategy capital."""
        return self._last_drawdown_frac

    def evaluate(self, inputs: RiskInputs) -> RiskDirective:
        """Judge a snapshot, move the state if due, and return the posture to apply.

        Parameters
        ----------
        inputs
            The snapshot; ``inputs.now_s`` is the only notion of time the engine has.

        Returns
        -------
        RiskDirective
            The posture for the (possibly new) state, with the active trigger readings.
        """
        cap_mult = self._cap_mult(inputs)
        cap_base = inputs.inventory_cap_base * cap_mult
        readings = self._assess(inputs, cap_base)
        demanded = max((r.state for r in readings), default=RiskState.NORMAL)
        self._step(inputs.now_s, demanded, readings)
        unload = self._unload(inputs, cap_base)
        return self._directive(inputs, readings, cap_mult, cap_base, unload)

    def operator_halt(self, now_s: float, reason: str) -> Transition | None:
        """Enter HALTED at once (kill switch); return the transition, or None if already halted."""
        if self._state is RiskState.HALTED:
            return None
        return self._move(RiskState.HALTED, now_s, f"operator halt: {reason}", ())

    @property
    def drawdown_latched(self) -> bool:
        """True while the drawdown withdraw level holds the agent out (not HALTED).

        ``drawdown_withdraw_frac`` releases only once the drawdown is back under its release
        level, which a flat, withdrawn agent never earns back: the level is a latch that only
        :meth:`operator_resume` clears.
        """
        held = self._held.get(_FLATTEN_TRIGGER, Level.CLEAR)
        return self._state is not RiskState.HALTED and held is not Level.CLEAR

    def operator_resume(self, now_s: float, who: str) -> Transition | None:
        """Leave HALTED, or the drawdown latch, on an operator's word; None if neither holds.

        From HALTED the agent moves to WITHDRAWN. Held out by the drawdown withdraw level
        (:attr:`drawdown_latched`) it stays in its state, and the move is recorded as a
        transition to the same state (the audit trail). Either way the drawdown is measured
        afresh from the last equity seen (the next reading's, when none is yet): the operator
        has accepted the loss, the next drawdown counts from here, and the usual cooldowns
        apply from now. Any other state is left alone: there is nothing to resume from.

        Raises
        ------
        ValueError
            If ``who`` is empty: every resume must name the operator for the audit trail.
        """
        if not who.strip():
            raise ValueError("operator_resume needs the operator's name (who) for the audit trail")
        halted = self._state is RiskState.HALTED
        if not halted and not self.drawdown_latched:
            return None
        old_peak, equity = self._peak_equity, self._last_equity
        self._peak_equity = equity
        # The level is let go now, not at the next reading: status and health say so at once.
        self._held.pop(_FLATTEN_TRIGGER, None)
        self._last_drawdown_frac = 0.0
        if halted:
            return self._move(RiskState.WITHDRAWN, now_s, f"operator resume by {who}", ())
        was = f"{old_peak:.2f}" if old_peak is not None else "unknown"
        now = f"{equity:.2f}" if equity is not None else "the next equity reading"
        return self._move(
            self._state,
            now_s,
            f"operator resume by {who}: drawdown latch cleared, peak re-based from {was} to "
            f"{now} (loss accepted); steps down after the cooldown",
            (),
        )

    def memory(self) -> dict[str, object]:
        """Return what must survive a restart (state, its start, peak equity, recent escalations
        and whether the next escalation would be a flap).

        JSON-ready; :meth:`restore` takes it back. Without it a restart would forget the drawdown
        peak (a loss taken before the crash would read as no loss) and the cooldown in progress.
        """
        return {
            "state": self._state.name,
            "since_s": self._since_s,
            "peak_equity": self._peak_equity,
            "drawdown_latched": self.drawdown_latched,
            "escalations": list(self._escalations),
            "released_since_escalation": self._released_since_escalation,
        }

    def restore(self, memory: dict[str, object]) -> None:
        """Take back what :meth:`memory` returned in an earlier run (call before evaluating).

        The restored state's cooldown starts over (the time the agent was down is not time the
        triggers were seen clear), so restarting never leaves a state faster. Unknown or
        malformed entries are ignored field by field.
        """
        state = memory.get("state")
        if isinstance(state, str) and state in RiskState.__members__:
            self._state = RiskState[state]
        since = memory.get("since_s")
        if isinstance(since, int | float) and math.isfinite(since):
            self._since_s = float(since)
        self._clear_since_s = None
        peak = memory.get("peak_equity")
        if isinstance(peak, int | float) and math.isfinite(peak):
            self._peak_equity = float(peak)
        # The latch survives a restart even before the first reading: a resume waiting in the
        # data dir (written while the agent was down) must find it.
        if memory.get("drawdown_latched") is True and self._flatten is not None:
            self._held[_FLATTEN_TRIGGER] = Level.WARN
        escalations = memory.get("escalations")
        if isinstance(escalations, list):
            self._escalations = deque(float(t) for t in escalations if isinstance(t, int | float))
        # Whether the next escalation is a flap (it comes back after a release) or a further
        # step of the episode in progress: lost, a restart between a release and the trigger
        # coming back counted the return as the same episode and skipped the flap backoff.
        released = memory.get("released_since_escalation")
        if isinstance(released, bool):
            self._released_since_escalation = released

    def drain_transitions(self) -> tuple[Transition, ...]:
        """Return the transitions since the last call, oldest first, and forget them."""
        out = tuple(self._transitions)
        self._transitions.clear()
        return out

    # -- internals ---------------------------------------------------------------------------

    def _hedge_blocked(self, x: RiskInputs) -> bool:
        """True when a hedge order cannot be placed now (and a hedge leg exists)."""
        if x.hedge_exposure_base is None:
            return False
        fresh = x.cex_feed_age_s < self._limits.cex_feed_age_s.warn  # NaN reads as stale
        return x.cex_banned or not x.cex_reachable or x.cex_rate_limited or not fresh

    def _cap_mult(self, x: RiskInputs) -> float:
        if x.cex_banned or not x.cex_reachable:
            return self._limits.cex_degraded_inventory_cap_mult
        return 1.0

    def _assess(self, x: RiskInputs, cap_base: float) -> tuple[TriggerReading, ...]:
        # Two readings feed engine state as they are taken: the index range window and the
        # equity peak. Each is taken exactly once per evaluation, here.
        lim = self._limits
        # While the exchange jump pull is on, quotes resting at the old price and a chain that
        # has not caught up are the jump itself, and the pull already cancels and hedges: read
        # as a collar breach or a divergence they added WITHDRAWN's cooldown (60 s and more) to
        # a market the detector re-enters as soon as it is stable. Both count again once the
        # pull ends (a divergence that outlasts it is a stuck oracle).
        pulled = x.cex_jump
        drawdown = self._drawdown_frac(x)
        banded: list[tuple[str, Band, float]] = [
            ("realized_vol_annual", lim.realized_vol_annual, x.realized_vol_annual),
            ("index_jump_bps", lim.index_jump_bps, self._jump_bps(x)),
            (
                "quote_collar_ratio",
                lim.quote_collar_ratio,
                0.0 if pulled else self._collar_ratio(x),
            ),
            ("funding_adverse_prob", lim.funding_adverse_prob, self._funding_adverse_prob(x)),
            (
                "base_fee_budget_ratio",
                lim.base_fee_budget_ratio,
                _ratio(x.base_fee_gwei, x.base_fee_budget_gwei),
            ),
            ("pending_tx_age_s", lim.pending_tx_age_s, x.oldest_pending_tx_age_s),
            ("inclusion_delay_s", lim.inclusion_delay_s, x.inclusion_delay_s),
            ("oracle_age_s", lim.oracle_band(), x.oracle_age_s),
            ("block_age_s", lim.block_age_s, x.block_age_s),
            ("cex_feed_age_s", lim.cex_feed_age_s, x.cex_feed_age_s),
            ("rpc_error_rate", lim.rpc_error_rate, x.rpc_error_rate),
            ("drawdown_frac", lim.drawdown_frac, drawdown),
            ("margin_ratio", lim.margin_ratio, x.margin_ratio),
            ("liq_distance_bps", lim.liq_distance_bps, x.liq_distance_bps),
            (
                "inventory_cap_ratio",
                lim.inventory_cap_ratio,
                _ratio(abs(x.inventory_base), cap_base),
            ),
            ("orders_per_min", lim.orders_per_min, x.orders_per_min),
            ("gas_refreshes_left", lim.gas_refreshes_left, x.gas_refreshes_left),
            (
                "fair_value_divergence_bps",
                lim.fair_value_divergence_bps,
                0.0 if pulled else x.fair_value_divergence_bps,
            ),
        ]
        if self._flatten is not None:
            banded.append((_FLATTEN_TRIGGER, self._flatten, drawdown))
        out: list[TriggerReading] = []
        for name, band, value in banded:
            level = band.level(value, self._held.get(name, Level.CLEAR))
            self._held[name] = level
            if level is Level.CLEAR:
                continue
            threshold = band.threshold_for(level)
            out.append(
                TriggerReading(
                    name, value, threshold, band.release(threshold), level, band.state_for(level)
                )
            )
        flags = (
            ("cex_unreachable", not x.cex_reachable, lim.cex_unreachable_state),
            ("cex_banned", x.cex_banned, lim.cex_banned_state),
            ("cex_rate_limited", x.cex_rate_limited, lim.cex_rate_limited_state),
            ("cex_jump", x.cex_jump, lim.cex_jump_state),
        )
        for name, raised, state in flags:
            if raised:
                out.append(TriggerReading(name, 1.0, 1.0, 0.0, Level.BREACH, state))
        return tuple(out)

    def _jump_bps(self, x: RiskInputs) -> float:
        if not (math.isfinite(x.index_price) and x.index_price > 0):
            return math.nan
        return self._jumps.push(x.now_s, x.index_price)

    def _collar_ratio(self, x: RiskInputs) -> float:
        if not x.quote_prices:
            return 0.0
        lim = self._limits
        centre = x.fair_value if x.fair_value is not None else x.index_price
        if not (math.isfinite(centre) and centre > 0):
            return math.nan
        collar_bps = lim.collar_min_bps
        if math.isfinite(x.realized_vol_annual):
            sigma_h = x.realized_vol_annual * math.sqrt(lim.collar_horizon_s / _SECONDS_PER_YEAR)
            collar_bps = max(collar_bps, lim.collar_sigmas * sigma_h * _BPS)
        # Quotes widened by the current state sit further out by design, not by mistake.
        collar_bps *= lim.spread_mult(self._state)
        worst_bps = max(abs(p - centre) / centre * _BPS for p in x.quote_prices)
        return _ratio(worst_bps, collar_bps)

    def _funding_adverse_prob(self, x: RiskInputs) -> float:
        lim = self._limits
        used = (x.funding_rate_predicted, x.funding_flip_prob, x.funding_snapshot_in_s)
        if any(math.isnan(v) for v in used):
            return math.nan
        inv_frac = _ratio(abs(x.inventory_base), x.inventory_cap_base)
        window_s = min(lim.funding_window_s, lim.funding_window_frac * x.funding_interval_s)
        price = x.fair_value if x.fair_value is not None else x.index_price
        stake = abs(x.inventory_base * x.funding_rate_predicted) * price
        if (
            x.inventory_base == 0
            or x.funding_snapshot_in_s > window_s
            or not stake >= lim.funding_min_stake_quote
            or inv_frac < lim.funding_min_inventory_frac
            or abs(x.funding_rate_predicted) * _BPS < lim.funding_min_abs_rate_bps
        ):
            return 0.0
        flip = min(max(x.funding_flip_prob, 0.0), 1.0)
        # We pay when the sign of the rate matches the sign of our position (longs pay on +).
        predicted_adverse = (x.inventory_base > 0) == (x.funding_rate_predicted > 0)
        return 1.0 - flip if predicted_adverse else flip

    def _drawdown_frac(self, x: RiskInputs) -> float:
        equity = x.equity_quote
        if not math.isfinite(equity):
            return math.nan
        self._last_equity = equity
        candidates = [equity]
        if self._peak_equity is not None:
            candidates.append(self._peak_equity)
        if x.session_peak_equity_quote is not None and math.isfinite(x.session_peak_equity_quote):
            candidates.append(x.session_peak_equity_quote)
        peak = max(candidates)
        self._peak_equity = peak
        if self._capital is None:
            price = x.fair_value if x.fair_value is not None else x.index_price
            # A position already over the cap at start (inherited, or left by a crash) takes
            # margin too: the strategy is sized by the larger of the two.
            held = abs(x.inventory_base) if math.isfinite(x.inventory_base) else 0.0
            size = max(x.inventory_cap_base, held)
            self._capital = strategy_capital(self._limits, size, price)
        if self._capital is not None:
            frac = max(peak - equity, 0.0) / self._capital
        elif peak <= 0:
            frac = 0.0 if equity >= peak else math.inf
        else:
            # No price yet to size the strategy by: of the peak, which only ever reads lower.
            frac = (peak - equity) / peak
        self._last_drawdown_frac = frac
        return frac

    def _step(
        self, now_s: float, demanded: RiskState, readings: tuple[TriggerReading, ...]
    ) -> None:
        current = self._state
        if current is RiskState.HALTED:
            self._clear_since_s = None
            return
        if demanded > current:
            # One episode escalates in steps (a crash: REDUCED, WIDENED, WITHDRAWN within
            # seconds); only coming back after a release is a flap. Counting every step held a
            # single crash's WITHDRAWN 4× its cooldown and kept quotes out for the whole
            # recovery.
            if not self._escalations or self._released_since_escalation:
                self._escalations.append(now_s)
            self._released_since_escalation = False
            cause = "; ".join(r.describe() for r in readings if r.state == demanded)
            self._move(demanded, now_s, f"escalate: {cause}", readings)
            return
        if demanded == current:
            self._clear_since_s = None
            return
        if self._clear_since_s is None:
            self._clear_since_s = now_s
        clear_for_s = now_s - self._clear_since_s
        lim = self._limits
        while self._escalations and self._escalations[0] < now_s - lim.flap_window_s:
            self._escalations.popleft()
        # The first escalation in the window is an event; every later one is a flap.
        flaps = max(len(self._escalations) - 1, 0)
        base_s = lim.cooldown_s(current)
        cooldown_s = max(base_s, min(base_s * lim.flap_backoff**flaps, lim.flap_max_cooldown_s))
        if clear_for_s < cooldown_s:
            return
        target = RiskState(current - 1)
        still = "; ".join(r.describe() for r in readings) or "none"
        self._move(
            target,
            now_s,
            f"de-escalate: clear of {current.name} for {clear_for_s:.1f} s "
            f"(cooldown {cooldown_s:g} s); still active: {still}",
            readings,
        )
        self._released_since_escalation = True
        # The next step down needs a full cooldown of its own.
        self._clear_since_s = now_s if demanded < target else None

    def _move(
        self, to: RiskState, now_s: float, reason: str, readings: tuple[TriggerReading, ...]
    ) -> Transition:
        transition = Transition(self._state, to, now_s, reason, readings)
        self._transitions.append(transition)
        self._state = to
        self._since_s = now_s
        self._clear_since_s = None
        return transition

    def _unload(self, x: RiskInputs, cap_base: float) -> UnloadPlan | None:
        lim = self._limits
        inv = x.inventory_base
        if self._state is RiskState.HALTED or not math.isfinite(inv) or not cap_base > 0:
            self._unload_deadline_s = None
            return None
        target = cap_base * lim.unload_target_frac
        urgent = self._state >= RiskState.HEDGING
        horizon_s = lim.unload_urgent_horizon_s if urgent else lim.unload_horizon_s
        if self._unload_deadline_s is None:
            if abs(inv) <= cap_base:
                return None
            self._unload_deadline_s = x.now_s + horizon_s
        elif abs(inv) <= target:
            self._unload_deadline_s = None
            return None
        elif urgent:
            self._unload_deadline_s = min(self._unload_deadline_s, x.now_s + horizon_s)
        # Over the cap on the side that pays at the coming funding snapshot: the unload is due
        # by the snapshot, not minutes after it (the cap holds at every snapshot).
        window_s = min(lim.funding_window_s, lim.funding_window_frac * x.funding_interval_s)
        if inv * x.funding_rate_predicted > 0.0 and 0.0 < x.funding_snapshot_in_s <= window_s:
            self._unload_deadline_s = min(
                self._unload_deadline_s, x.now_s + x.funding_snapshot_in_s
            )
        excess = abs(inv) - target
        left_s = max(self._unload_deadline_s - x.now_s, lim.unload_min_remaining_s)
        return UnloadPlan(
            side=Side.ASK if inv > 0 else Side.BID,
            excess_base=excess,
            target_abs_base=target,
            rate_base_per_s=excess / left_s,
            deadline_s=self._unload_deadline_s,
        )

    def _directive(
        self,
        x: RiskInputs,
        readings: tuple[TriggerReading, ...],
        cap_mult: float,
        cap_base: float,
        unload: UnloadPlan | None,
    ) -> RiskDirective:
        lim = self._limits
        s = self._state
        size, spread, urgency = 1.0, 1.0, HedgeUrgency.NORMAL
        band_mult, taker = 1.0, False
        if s >= RiskState.REDUCED:
            size = lim.reduced_size_mult
        if s >= RiskState.WIDENED:
            spread = lim.widened_spread_mult
        if s >= RiskState.HEDGING:
            size, spread, urgency = (
                lim.hedging_size_mult,
                lim.hedging_spread_mult,
                HedgeUrgency.AGGRESSIVE,
            )
            band_mult, taker = lim.hedging_band_mult, True
        withdrawn = s >= RiskState.WITHDRAWN
        if withdrawn:
            band_mult = lim.withdrawn_band_mult
        # An exchange jump the chain has not seen yet: pull every quote and hedge the residual
        # now, whatever the state (HALTED below still overrides: no automated hedging there).
        pulled = x.cex_jump and s is not RiskState.HALTED
        if pulled:
            band_mult, taker = 0.0, True
        # A sweep of our ladder is informed flow ahead of a move: the swept side stays empty
        # and the inventory the takers handed us is hedged now, before the move they saw.
        swept = (x.swept_bid or x.swept_ask) and s is not RiskState.HALTED
        if swept:
            band_mult, taker = 0.0, True
        inv = x.inventory_base
        if math.isfinite(inv):
            allow_bid, allow_ask = inv < cap_base, inv > -cap_base
        else:
            allow_bid = allow_ask = False
        bid_room = ask_room = math.inf
        allow_bid = allow_bid and not x.swept_bid
        allow_ask = allow_ask and not x.swept_ask
        if self._hedge_blocked(x):
            # A fill we cannot hedge is exposure held through whatever the market does until
            # the exchange answers again (a crash, in the case that taught us): quote only the
            # side that brings the unhedged exposure back toward zero.
            # Hedged flat, neither side reduces it: both stay empty. Quoted, each side was a
            # whole ladder one taker order could fill unhedged (0.118 a side in the live storm
            # test; a fill then a sweep left 0.134 where a top quote is 0.112); a hair off flat
            # the room already allowed less than a lot.
            exposure = x.hedge_exposure_base
            assert exposure is not None
            allow_bid = allow_bid and exposure < -_FLAT_BASE
            allow_ask = allow_ask and exposure > _FLAT_BASE
            # ... and no further than flat: a sweep of a full ladder on the reducing side
            # carried a 0.007 short to a 0.111 long in the live crash under a 429 storm.
            if exposure > _FLAT_BASE:
                ask_room = exposure
            elif exposure < -_FLAT_BASE:
                bid_room = -exposure
        if withdrawn:
            allow_bid, allow_ask = allow_bid and inv < 0, allow_ask and inv > 0
        if s is RiskState.HALTED:
            size, urgency, band_mult, taker = 0.0, HedgeUrgency.NONE, 1.0, False
            allow_bid = allow_ask = False
        return RiskDirective(
            state=s,
            size_mult=size,
            spread_mult=spread,
            allow_bid=allow_bid,
            allow_ask=allow_ask,
            reduce_only=withdrawn,
            cancel_all=withdrawn or pulled,
            hedge_urgency=urgency,
            inventory_cap_mult=cap_mult,
            inventory_cap_base=cap_base,
            unload=unload,
            readings=readings,
            hedge_band_mult=band_mult,
            hedge_taker=taker,
            bid_room_base=bid_room,
            ask_room_base=ask_room,
        )


def _flatten_band(lim: RiskLimits) -> Band | None:
    """The drawdown level that withdraws and hedges it all before the halt (None: off)."""
    if lim.drawdown_withdraw_frac == 0.0:
        return None
    dd = lim.drawdown_frac
    # Never milder than WITHDRAWN at its breach, whatever the drawdown band itself demands there.
    breach_state = max(dd.breach_state, RiskState.WITHDRAWN)
    return Band(
        lim.drawdown_withdraw_frac, dd.breach, RiskState.WITHDRAWN, breach_state, dd.release_frac
    )


def _ratio(num: float, den: float) -> float:
    """Return num / den, reading a zero or negative denominator as "everything is over"."""
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den > 0:
        return num / den
    return 0.0 if num <= 0 else math.inf


def marked_equity_quote(
    dex_cash_quote: float,
    dex_position_base: float,
    hedge_cash_quote: float,
    hedge_position_base: float,
    fair_value: float,
    hedge_mark: float | None = None,
) -> float:
    """Return both legs' equity marked fresh, quote currency (the input ``equity_quote`` wants).

    Each leg is its cash (collateral plus realised P&L minus entry cost) plus its position at a
    fresh mark: the DEX leg at fair value, the hedge at ``hedge_mark`` (the exchange mid now;
    fair value when omitted). A delta-neutral book then shows no phantom drawdown in a crash: a
    hedge marked at a price 10 s old inflated crash drawdowns about 2.5×.
    """
    mark = fair_value if hedge_mark is None else hedge_mark
    return (
        dex_cash_quote
        + dex_position_base * fair_value
        + hedge_cash_quote
        + hedge_position_base * mark
    )


def book_equity_quote(
    dex_equity_quote: float,
    dex_position_base: float,
    hedge_cash_quote: float,
    hedge_position_base: float,
    *,
    venue_mark: float | None,
    fair_value: float | None,
    hedge_mark: float | None = None,
) -> float | None:
    """Return both legs' equity from the DEX account's own reading, quote currency.

    ``dex_equity_quote`` is the account's equity as the venue computes it (at its mark, in the
    block the account was read in). With fair value and the venue's mark both read, the account's
    cash is that equity less the position at ``venue_mark`` and the DEX leg is marked at
    ``fair_value`` (`marked_equity_quote`). Without either (fair value stale: the exchange down
    and the oracle late; or the mark's read failed, the account's not) the DEX leg is the
    account's equity as read, never dropped: the old fallback, the DEX account plus the hedge's
    execution edge only, left out the hedge leg's gain and read a hedged book's whole DEX loss
    since the peak as drawdown (a phantom 6-10 % that halted ``holdout/crash_exchange_down`` in
    live timing). The hedge leg is at ``hedge_mark`` (the exchange mid now) when given, else at
    the DEX leg's price. None when there is no price for the hedge leg.
    """
    if fair_value is not None and venue_mark is not None:
        dex_cash = dex_equity_quote - dex_position_base * venue_mark
        return marked_equity_quote(
            dex_cash,
            dex_position_base,
            hedge_cash_quote,
            hedge_position_base,
            fair_value,
            hedge_mark,
        )
    mark = next((m for m in (hedge_mark, venue_mark, fair_value) if m is not None), None)
    if mark is None:
        return None
    return dex_equity_quote + hedge_cash_quote + hedge_position_base * mark


def strategy_capital(limits: RiskLimits, inventory_cap_base: float, price: float) -> float | None:
    """Return the capital the strategy uses, quote currency (the drawdown bands' denominator).

    ``limits.strategy_capital_quote`` when set; else the margin a position at the inventory cap
    takes on both legs, ``limits.capital_margin_frac × inventory_cap_base × price``. None when
    that cannot be priced yet (no finite positive price or cap).
    """
    if limits.strategy_capital_quote is not None:
        return limits.strategy_capital_quote
    notional = inventory_cap_base * price
    if not (math.isfinite(notional) and notional > 0.0):
        return None
    return limits.capital_margin_frac * notional
