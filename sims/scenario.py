"""Stress scenarios: a strict TOML format, a loader, CI shortening and a deterministic expander.

A scenario scripts what the world does to the agent over simulated time: the index price path, the
perp premium (and so funding), the chain's base fee, the mempool, the oracle, the CEX and the taker
flow. :func:`load_scenario` reads one file into frozen pydantic models; :func:`expand` turns it,
with a seed, into a :class:`Timeline` with one :class:`Step` per block slot, which the stress
runner plays against a forked chain. The same seed always gives the identical timeline.

File format
-----------
One TOML file per scenario (``sims/scenarios/<name>.toml``). Every key is optional unless marked
*required*; units are in the key names. Keys ending in ``_s`` are durations in seconds and also
accept a string with a unit: ``"500ms"``, ``"90s"``, ``"2m"``, ``"1.5h"``. Event times (``at_s``)
count from the start of the run, and every event must end before the scenario does. In error
messages the document root is called ``scenario`` (e.g. ``scenario.gas.spikes[0].multiplier``).

::

    name            str      scenario name (default: the file name)
    description     str      one line for listings and reports
    duration_s      60..604800      simulated length                         [3600]
    block_time_s    0.1..60         one step of the timeline                 [1]

    [chain]                          which chain's costs (CHAIN_PROFILES); unset numbers: profile's
    profile         "l1"|"l2"       l1: 1 gwei, $2,000; l2: 0.02 gwei + L1 data fee  ["l1"]
    base_fee_gwei   0.001..10000    quiet base fee
    native_price_usd 1..1e6         gas-token price
    l1_data_fee_per_byte_gwei 0..1e4  data fee per calldata byte (charged by the run's accounting)

    [price]                          index: GBM + Poisson jumps + scripted overlays
    initial_usd     1..1e7          index at t = 0                           [60000]
    vol_annual      0..5            GBM σ, annualized                        [0.5]
    drift_annual    -100..100       GBM μ (log), annualized                  [0]
    drift_pct_per_hour -5..5        the same in % per hour (-0.5: a slow bleed); not with the other
    jump_rate_per_hour 0..120       Poisson jump intensity                   [0]
    jump_mean_bps   -2000..2000     mean log-jump                            [0]
    jump_std_bps    0..5000         std of log-jump                          [50]
    [[price.shocks]]                 deterministic move, in log space, on top of the GBM
      at_s *        start           move_pct * -90..500 (e.g. -25)
      duration_s    1..86400  [120] time to complete the move
      hold_s        0..86400  [0]   time at the bottom/top
      recover_frac  0..1      [0]   fraction of the move given back
      recover_s     1..86400  [600] time the recovery takes
    [[price.vol_regimes]]            σ multiplier window
      at_s *, duration_s *, multiplier * 0.1..20

    [funding]                        premium of the DEX mid over the index (mean-reverting, OU)
    interval_s      60..86400       funding period; a snapshot at every boundary   [900]
    mean_bps        -500..500       long-run premium                         [1]
    half_life_s     1..86400        OU mean-reversion half-life              [300]
    vol_bps         0..500          stationary std of the premium            [2]
    [[funding.flips]]                the long-run mean moves (a sign flip inside an interval)
      at_s *, to_mean_bps * -500..500, ramp_s 0..86400 [60]

    [gas]                            base fee overrides (None outside spikes: chain decides)
    base_fee_gwei   0.001..10000    the chain's quiet base fee               [chain profile's]
    decay_per_block 0.001..0.125    EIP-1559 decay per mined block after the hold  [0.125]
    [[gas.spikes]]
      at_s *, multiplier * 1..1000, ramp_s 0..600 [0] (geometric), hold_s 0..3600 [30]

    [mempool]
    automine        bool            mine on every tx instead of every block_time_s  [false]
    inclusion_delay_blocks 0..100   blocks our txs wait before inclusion     [0]
    drop_prob       0..1            chance per block that txs sent in it are dropped  [0]
    [[mempool.congestion]]
      at_s *, duration_s *, inclusion_delay_blocks 0..600 [3], drop_prob 0..1 [0]
    [[mempool.stalls]]               no block is mined (time still passes)
      at_s *, duration_s *

    [oracle]                         push oracle: on heartbeat or on deviation, mined blocks only
    heartbeat_s     0.1..3600       max time between pushes                  [5]
    deviation_bps   0..1000         push early when the index moved this much  [5]
    [[oracle.stale]]                 the updater stops pushing
      at_s *, duration_s *
    [[oracle.frozen]]                the answer sticks at its last value; pushes keep coming on
      at_s *, duration_s *           the heartbeat, so the price looks fresh and is wrong

    [cex]
    latency_ms      0..60000        base request latency                     [30]
    latency_jitter_ms 0..60000      mean of the exponential extra latency    [10]
    partial_fill_prob 0..1          chance a taker hedge fills only partly   [0]
    basis_vol_bps   0..500          std of the exchange mid's OU offset from the index  [2]
    basis_half_life_s 1..86400      its mean-reversion half-life             [30]
    [[cex.outages]]                  every request fails (connection refused / 5xx)
      at_s *, duration_s *
    [[cex.rate_limit_storms]]        requests answered 429 with this probability
      at_s *, duration_s *, reject_prob 0..1 [0.9]
    [[cex.degradations]]             slow, partly filling exchange
      at_s *, duration_s *, latency_ms 0..60000 [500], partial_fill_prob 0..1 [0.5]

    [takers]                         taker bots hitting the DEX book
    rate_per_min    0..6000         uninformed + informed orders per minute  [6]
    size_median_base 1e-6..1000     lognormal median order size (base units) [0.02]
    size_sigma      0..3            lognormal σ of the size                  [1]
    informed_share  0..1            share of orders that know the index ahead  [0.1]
    informed_horizon_s 1..3600      how far ahead informed takers see        [30]
    aggressiveness_mean_bps 0..1000 mean limit distance through fair value (exponential) [5]
    [[takers.surges]]
      at_s *, duration_s *, rate_multiplier * 0..100
    [[takers.cascades]]              forced liquidations, front-loaded (triangular intensity)
      at_s *, duration_s 1..86400 [120], side "buy"|"sell" ["sell"], total_base * 0..1e4,
      orders 1..10000 [60], aggressiveness_bps 0..5000 [100], premium_bps -1000..1000 [-20]

    [arbitrage]                      takes DEX quotes resting through the exchange mid
    enabled         bool                                                     [true]
    latency_s       0..60           sees the exchange mid this late          [1]
    min_edge_bps    0..1000         edge over its taker fee and gas          [2]
    max_size_base   0..1e4          per side per block                       [2]
    gas_units       21000..3e7      its gas per trade                        [300000]

The models are pydantic's, as the agent config's are (strict: a string where a number belongs, NaN,
infinities and unknown keys are refused), and a mistake raises one
:class:`~agent.errors.ConfigError` in the config's format naming the key path, for example
``scenario.gas.spikes.0.multiplier: Input should be less than or equal to 1000 (got 5000)``.

Timeline semantics
------------------
Step ``i`` is the block slot ending at ``t_s[i] = (i + 1) * block_time_s``. ``mined[i]`` is False in
a stall; the base-fee decay only advances on mined blocks and the oracle only pushes in them.
``premium_bps`` is the target offset of the DEX mid from the index that the taker bots push toward
(cascades add their ``premium_bps`` on top, shaped like their intensity); index plus premium is
fair value, which the takers price off. The exchange mid is the index plus its own OU basis.
Informed takers trade in the direction of the index ``informed_horizon_s`` ahead: that is what
being informed means here.
Each process draws from its own child of ``SeedSequence(seed)``, so changing the taker flow of a
scenario leaves its price path unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from agent.config import format_validation_error
from agent.errors import ConfigError
from agent.types import Side

__all__ = [
    "CHAIN_PROFILES",
    "SCENARIO_DIR",
    "ArbitrageSpec",
    "Cascade",
    "CexDegradation",
    "CexFaults",
    "CexSpec",
    "ChainProfile",
    "ChainSpec",
    "FundingFlip",
    "FundingSpec",
    "GasSpec",
    "GasSpike",
    "MempoolCongestion",
    "MempoolSpec",
    "OracleSpec",
    "PriceShock",
    "PriceSpec",
    "RateLimitStorm",
    "Scenario",
    "ScriptedEvent",
    "Seconds",
    "Step",
    "TakerOrder",
    "TakerSpec",
    "TakerSurge",
    "Timeline",
    "VolRegime",
    "Window",
    "eip1559_base_fee",
    "expand",
    "gbm_jump_log_path",
    "list_scenarios",
    "load_scenario",
    "ou_path",
    "parse_duration_s",
]

SCENARIO_DIR = Path(__file__).with_name("scenarios")
"""Where the shipped scenarios live."""

_SECONDS_PER_YEAR = 365.25 * 24 * 3600.0
_BPS = 1e-4
_F64 = npt.NDArray[np.float64]

# Minimum event lengths kept by `Scenario.shortened`: below these the risk engine's default
# thresholds (agent/risk/engine.py) would never fire, and the short run would stop testing the
# stress it is named after. Stall > block_age breach (45 s); stale oracle > oracle_age breach
# (30 s); CEX outage > cex_feed_age breach (10 s), with room to see the hedger react.
_MIN_STALL_S = 60.0
_MIN_STALE_ORACLE_S = 45.0
_MIN_CEX_WINDOW_S = 30.0
_MIN_WINDOW_S = 30.0
_MIN_GAS_HOLD_S = 10.0
_MIN_FUNDING_INTERVAL_S = 60.0


# ---------------------------------------------------------------------------------------------
# field helpers

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")
_DURATION_FULL = re.compile(r"(?:[0-9]*\.?[0-9]+\s*[a-zA-Z]*\s*)+")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _duration_text_s(text: str) -> float:
    """Seconds in ``"90s"``, ``"2m"``, ``"1h15m"``; ValueError naming the problem otherwise."""
    stripped = text.strip()
    if _DURATION_FULL.fullmatch(stripped) is None:
        raise ValueError(f"expected a duration like '90s', '2m' or '1h', got {text!r}")
    seconds = 0.0
    for m in _DURATION_PART.finditer(stripped):
        unit = m.group(2).lower()
        if unit not in _UNIT_S:
            raise ValueError(f"bad unit {m.group(2)!r} in {text!r} (use ms, s, m or h)")
        seconds += float(m.group(1)) * _UNIT_S[unit]
    return seconds


def parse_duration_s(value: object, key: str = "duration") -> float:
    """Convert a duration to seconds: a number of seconds, or ``"90s"``, ``"2m"``, ``"1h15m"``.

    Raises
    ------
    ConfigError
        For a negative or non-finite number, or an unknown unit, naming `key`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: expected a duration (seconds or e.g. '2m'), got {value!r}")
    try:
        seconds = _duration_text_s(value) if isinstance(value, str) else float(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{key}: must be a finite, non-negative duration, got {value!r}")
    return seconds


def _seconds(value: object) -> object:
    # Strings are durations with a unit; numbers go on to the strict float check and the bounds.
    return _duration_text_s(value) if isinstance(value, str) else value


def _as_tuple(value: object) -> object:
    # TOML arrays arrive as lists; the models are frozen, so their event lists are tuples.
    return tuple(value) if isinstance(value, list) else value


Seconds = Annotated[float, BeforeValidator(_seconds)]
"""A duration field: seconds, or a string with a unit (``"2m"``)."""


class _Spec(BaseModel):
    """Frozen, strict, closed: unknown keys, strings for numbers, NaN and infinities are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def _replace(self, **changes: Any) -> Self:
        return self.model_copy(update=changes)


# ---------------------------------------------------------------------------------------------
# the scenario model


def _fit(at_s: float, span_s: float, total_s: float) -> float:
    """Start time that keeps an event of `span_s` inside ``[0, total_s]``."""
    return max(0.0, min(at_s, total_s - span_s))


class _WindowLike(_Spec):
    at_s: Seconds = Field(ge=0.0)
    duration_s: Seconds = Field(ge=0.1, le=7 * 86400.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float, min_s: float = _MIN_WINDOW_S) -> Self:
        # A fault window is a state, not a move: it scales with the run, but keeps at least
        # `min_s` (never more than it had, nor more than half the run) so it still trips.
        dur = min(self.duration_s, max(self.duration_s * factor, min_s), total_s * 0.5)
        return self._replace(at_s=_fit(self.at_s * factor, dur, total_s), duration_s=dur)


class Window(_WindowLike):
    """A fault window: active for ``at_s <= t < at_s + duration_s``."""


class PriceShock(_Spec):
    """A scripted index move (log-linear), an optional hold and a partial recovery."""

    at_s: Seconds = Field(ge=0.0)
    move_pct: float = Field(ge=-90.0, le=500.0)
    duration_s: Seconds = Field(120.0, ge=1.0, le=86400.0)
    hold_s: Seconds = Field(0.0, ge=0.0, le=86400.0)
    recover_frac: float = Field(0.0, ge=0.0, le=1.0)
    recover_s: Seconds = Field(600.0, ge=1.0, le=86400.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects (recovery included when there is one)."""
        return self.duration_s + self.hold_s + (self.recover_s if self.recover_frac > 0 else 0.0)

    def mirrored(self) -> PriceShock:
        """The same move the other way in log space (−25 % becomes +33.3 %)."""
        return self._replace(move_pct=(1.0 / (1.0 + self.move_pct / 100.0) - 1.0) * 100.0)

    def _shortened(self, factor: float, total_s: float) -> Self:
        # The move keeps its duration and so its speed: a short run compresses the quiet time
        # around it, never a -25% crash into seconds. The hold is quiet time and scales. The
        # recovery keeps its speed too; when it does not fit, it is cut short (less of the move
        # is given back at the same pace) rather than sped up.
        hold = self.hold_s * factor
        at_s = _fit(self.at_s * factor, self.duration_s + hold, total_s)
        room = total_s - at_s - self.duration_s - hold
        recover_s, recover_frac = self.recover_s, self.recover_frac
        if recover_frac > 0 and recover_s > room:
            recover_s = max(room, 1.0)
            recover_frac *= recover_s / self.recover_s
        new = self._replace(hold_s=hold, recover_s=recover_s, recover_frac=recover_frac)
        return new._replace(at_s=_fit(at_s, new.span_s, total_s))


class VolRegime(_WindowLike):
    """Multiply the GBM σ inside a window (e.g. 3.0 for a 3x volatility shock)."""

    duration_s: Seconds = Field(ge=1.0, le=7 * 86400.0)
    multiplier: float = Field(ge=0.1, le=20.0)

    def _shortened(self, factor: float, total_s: float, min_s: float = 2 * _MIN_WINDOW_S) -> Self:
        return super()._shortened(factor, total_s, min_s)


_ANNUAL_PER_PCT_HOUR = 365.25 * 24 / 100.0


class PriceSpec(_Spec):
    """Index price: GBM with Poisson log-normal jumps, plus scripted shocks and vol regimes."""

    initial_usd: float = Field(60_000.0, ge=1.0, le=1e7)
    vol_annual: float = Field(0.5, ge=0.0, le=5.0)
    drift_annual: float = Field(0.0, ge=-100.0, le=100.0)
    """GBM μ per year in log terms; ±100 reaches a ±1.14 %/h bleed (−0.5 %/h is −43.8)."""
    drift_pct_per_hour: float | None = Field(None, ge=-5.0, le=5.0)
    """The same drift said the way a trader says it (−0.5 for a slow bleed); not with the other."""
    jump_rate_per_hour: float = Field(0.0, ge=0.0, le=120.0)
    jump_mean_bps: float = Field(0.0, ge=-2000.0, le=2000.0)
    jump_std_bps: float = Field(50.0, ge=0.0, le=5000.0)
    shocks: Annotated[tuple[PriceShock, ...], BeforeValidator(_as_tuple)] = ()
    vol_regimes: Annotated[tuple[VolRegime, ...], BeforeValidator(_as_tuple)] = ()

    @model_validator(mode="after")
    def _one_drift(self) -> Self:
        if self.drift_pct_per_hour is not None and self.drift_annual != 0.0:
            raise ValueError("give drift_annual or drift_pct_per_hour, not both")
        return self

    @property
    def drift_log_annual(self) -> float:
        """The drift μ (log, per year) whichever key gave it."""
        if self.drift_pct_per_hour is not None:
            return math.log1p(self.drift_pct_per_hour / 100.0) * 365.25 * 24
        return self.drift_annual


class FundingFlip(_Spec):
    """Move the premium's long-run mean to `to_mean_bps`, linearly over `ramp_s`."""

    at_s: Seconds = Field(ge=0.0)
    to_mean_bps: float = Field(ge=-500.0, le=500.0)
    ramp_s: Seconds = Field(60.0, ge=0.0, le=86400.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.ramp_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        # A premium drift, not a price move: it scales like the funding interval does.
        ramp = min(self.ramp_s, max(self.ramp_s * factor, 5.0))
        return self._replace(at_s=_fit(self.at_s * factor, ramp, total_s), ramp_s=ramp)


class FundingSpec(_Spec):
    """The premium process (Ornstein-Uhlenbeck in bps) and the funding period."""

    interval_s: Seconds = Field(900.0, ge=60.0, le=86400.0)
    mean_bps: float = Field(1.0, ge=-500.0, le=500.0)
    half_life_s: Seconds = Field(300.0, ge=1.0, le=86400.0)
    vol_bps: float = Field(2.0, ge=0.0, le=500.0)
    flips: Annotated[tuple[FundingFlip, ...], BeforeValidator(_as_tuple)] = ()


class GasSpike(_Spec):
    """Base fee jumps to `multiplier` x the quiet level, holds, then decays per EIP-1559."""

    at_s: Seconds = Field(ge=0.0)
    multiplier: float = Field(ge=1.0, le=1000.0)
    ramp_s: Seconds = Field(0.0, ge=0.0, le=600.0)
    hold_s: Seconds = Field(30.0, ge=0.0, le=3600.0)

    @property
    def span_s(self) -> float:
        """Time until the decay starts (the decay itself is open-ended)."""
        return self.ramp_s + self.hold_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        # The ramp is the spike's speed (kept); the hold is a state (scaled, with a floor).
        new = self._replace(hold_s=min(self.hold_s, max(self.hold_s * factor, _MIN_GAS_HOLD_S)))
        return new._replace(at_s=_fit(self.at_s * factor, new.span_s, total_s))


class GasSpec(_Spec):
    """Quiet base fee and scripted spikes."""

    base_fee_gwei: float | None = Field(None, ge=0.001, le=10_000.0)
    """The quiet base fee; None: the chain profile's."""
    decay_per_block: float = Field(0.125, ge=0.001, le=0.125)
    spikes: Annotated[tuple[GasSpike, ...], BeforeValidator(_as_tuple)] = ()


class MempoolCongestion(_WindowLike):
    """A window of slow inclusion and dropped transactions."""

    duration_s: Seconds = Field(ge=1.0, le=7 * 86400.0)
    inclusion_delay_blocks: int = Field(3, ge=0, le=600)
    drop_prob: float = Field(0.0, ge=0.0, le=1.0)


class MempoolSpec(_Spec):
    """Block production and inclusion of our transactions."""

    automine: bool = False
    inclusion_delay_blocks: int = Field(0, ge=0, le=100)
    drop_prob: float = Field(0.0, ge=0.0, le=1.0)
    congestion: Annotated[tuple[MempoolCongestion, ...], BeforeValidator(_as_tuple)] = ()
    stalls: Annotated[tuple[Window, ...], BeforeValidator(_as_tuple)] = ()


class OracleSpec(_Spec):
    """A push oracle updated on heartbeat or deviation; stale windows stop the updater.

    A frozen window is the failure an age check cannot see: the updater keeps pushing on its
    heartbeat, with a fresh timestamp, the answer it had when the window began (a stuck
    aggregator, a feed pinned at a bound). The chain's price is wrong while it looks fresh.
    """

    heartbeat_s: Seconds = Field(5.0, ge=0.1, le=3600.0)
    deviation_bps: float = Field(5.0, ge=0.0, le=1000.0)
    stale: Annotated[tuple[Window, ...], BeforeValidator(_as_tuple)] = ()
    frozen: Annotated[tuple[Window, ...], BeforeValidator(_as_tuple)] = ()


class RateLimitStorm(_WindowLike):
    """A window where the CEX answers HTTP 429 with probability `reject_prob`."""

    duration_s: Seconds = Field(ge=1.0, le=7 * 86400.0)
    reject_prob: float = Field(0.9, ge=0.0, le=1.0)


class CexDegradation(_WindowLike):
    """A window of high latency and partial fills."""

    duration_s: Seconds = Field(ge=1.0, le=7 * 86400.0)
    latency_ms: float = Field(500.0, ge=0.0, le=60_000.0)
    partial_fill_prob: float = Field(0.5, ge=0.0, le=1.0)


class CexSpec(_Spec):
    """The hedge venue's behaviour, and its own mid: the index plus a basis of its own."""

    latency_ms: float = Field(30.0, ge=0.0, le=60_000.0)
    latency_jitter_ms: float = Field(10.0, ge=0.0, le=60_000.0)
    partial_fill_prob: float = Field(0.0, ge=0.0, le=1.0)
    basis_vol_bps: float = Field(2.0, ge=0.0, le=500.0)
    """Stationary std of the exchange mid's offset from the index (OU), bps."""
    basis_half_life_s: Seconds = Field(30.0, ge=1.0, le=86400.0)
    """Mean-reversion half-life of that offset."""
    outages: Annotated[tuple[Window, ...], BeforeValidator(_as_tuple)] = ()
    rate_limit_storms: Annotated[tuple[RateLimitStorm, ...], BeforeValidator(_as_tuple)] = ()
    degradations: Annotated[tuple[CexDegradation, ...], BeforeValidator(_as_tuple)] = ()


class TakerSurge(_WindowLike):
    """Multiply the taker arrival rate inside a window."""

    duration_s: Seconds = Field(ge=1.0, le=7 * 86400.0)
    rate_multiplier: float = Field(ge=0.0, le=100.0)


class Cascade(_Spec):
    """A liquidation cascade: `orders` forced orders totalling `total_base`, front-loaded."""

    at_s: Seconds = Field(ge=0.0)
    total_base: float = Field(ge=0.0, le=10_000.0)
    duration_s: Seconds = Field(120.0, ge=1.0, le=86400.0)
    side: Literal["buy", "sell"] = "sell"
    orders: int = Field(60, ge=1, le=10_000)
    aggressiveness_bps: float = Field(100.0, ge=0.0, le=5000.0)
    premium_bps: float = Field(-20.0, ge=-1000.0, le=1000.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        # Same size over the same time: the cascade's intensity is its speed, so it is kept.
        dur = min(self.duration_s, total_s)
        return self._replace(at_s=_fit(self.at_s * factor, dur, total_s), duration_s=dur)


class TakerSpec(_Spec):
    """Taker bots: Poisson arrivals, lognormal sizes, an informed share, surges and cascades.

    Every taker prices off fair value (the index plus the scripted premium), never off a DEX
    mid that contains our own quotes: a quote through fair value is hit, one outside is not.
    """

    rate_per_min: float = Field(6.0, ge=0.0, le=6000.0)
    size_median_base: float = Field(0.02, ge=1e-6, le=1000.0)
    size_sigma: float = Field(1.0, ge=0.0, le=3.0)
    informed_share: float = Field(0.1, ge=0.0, le=1.0)
    informed_horizon_s: Seconds = Field(30.0, ge=1.0, le=3600.0)
    aggressiveness_mean_bps: float = Field(5.0, ge=0.0, le=1000.0)
    surges: Annotated[tuple[TakerSurge, ...], BeforeValidator(_as_tuple)] = ()
    cascades: Annotated[tuple[Cascade, ...], BeforeValidator(_as_tuple)] = ()


class ArbitrageSpec(_Spec):
    """An arbitrageur who takes any DEX quote resting through the exchange mid.

    It sees the exchange mid `latency_s` late and trades only when the edge pays its taker fee
    (read from the market), its gas at the step's base fee, and `min_edge_bps`.
    """

    enabled: bool = True
    latency_s: Seconds = Field(1.0, ge=0.0, le=60.0)
    min_edge_bps: float = Field(2.0, ge=0.0, le=1000.0)
    max_size_base: float = Field(2.0, ge=0.0, le=10_000.0)
    gas_units: int = Field(300_000, ge=21_000, le=30_000_000)


ChainProfileName = Literal["l1", "l2"]


@dataclass(frozen=True, slots=True)
class ChainProfile:
    """What one chain's transactions cost (the presets of :data:`CHAIN_PROFILES`)."""

    base_fee_gwei: float
    native_price_usd: float
    l1_data_fee_per_byte_gwei: float
    """Fee per byte of calldata, in gwei of the gas token, that an L2 charges for posting the
    transaction's data to L1 (0 on L1). The node does not charge it; the run's accounting does."""
    tip_gwei: float
    """The priority fee the world's traffic pays (the agent's fee estimator reads it)."""


CHAIN_PROFILES: Mapping[str, ChainProfile] = {
    # Ethereum mainnet class: ~1 gwei quiet base fee, ETH ~$2,000, no data fee.
    "l1": ChainProfile(
        base_fee_gwei=1.0, native_price_usd=2000.0, l1_data_fee_per_byte_gwei=0.0, tip_gwei=1.0
    ),
    # An optimistic rollup: execution at ~0.02 gwei plus the L1 data fee, here 16 gas per
    # calldata byte at a 0.5 gwei L1 base fee (8 gwei per byte) -- a 1 kB batch pays ~$0.016.
    # Sequencer tips are a thousandth of a gwei.
    "l2": ChainProfile(
        base_fee_gwei=0.02, native_price_usd=2000.0, l1_data_fee_per_byte_gwei=8.0, tip_gwei=0.001
    ),
}
"""Shipped chain-cost profiles, by name."""


class ChainSpec(_Spec):
    """Which chain the scenario models; unset numbers come from the named profile."""

    profile: ChainProfileName = "l1"
    base_fee_gwei: float | None = Field(None, ge=0.001, le=10_000.0)
    native_price_usd: float | None = Field(None, ge=1.0, le=1e6)
    l1_data_fee_per_byte_gwei: float | None = Field(None, ge=0.0, le=10_000.0)

    @property
    def resolved(self) -> ChainProfile:
        """The profile with this scenario's overrides applied."""
        p = CHAIN_PROFILES[self.profile]
        return ChainProfile(
            base_fee_gwei=p.base_fee_gwei if self.base_fee_gwei is None else self.base_fee_gwei,
            native_price_usd=(
                p.native_price_usd if self.native_price_usd is None else self.native_price_usd
            ),
            l1_data_fee_per_byte_gwei=(
                p.l1_data_fee_per_byte_gwei
                if self.l1_data_fee_per_byte_gwei is None
                else self.l1_data_fee_per_byte_gwei
            ),
            tip_gwei=p.tip_gwei,
        )


_EVENT_LISTS: tuple[tuple[str, str], ...] = (
    ("price", "shocks"),
    ("price", "vol_regimes"),
    ("funding", "flips"),
    ("gas", "spikes"),
    ("mempool", "congestion"),
    ("mempool", "stalls"),
    ("oracle", "stale"),
    ("oracle", "frozen"),
    ("cex", "outages"),
    ("cex", "rate_limit_storms"),
    ("cex", "degradations"),
    ("takers", "surges"),
    ("takers", "cascades"),
)

# Event lists made of plain `Window`s, and the minimum length each keeps when shortened.
_WINDOW_MINIMA: Mapping[tuple[str, str], float] = {
    ("mempool", "stalls"): _MIN_STALL_S,
    ("oracle", "stale"): _MIN_STALE_ORACLE_S,
    ("oracle", "frozen"): _MIN_STALE_ORACLE_S,
    ("cex", "outages"): _MIN_CEX_WINDOW_S,
    ("cex", "rate_limit_storms"): _MIN_CEX_WINDOW_S,
    ("cex", "degradations"): _MIN_CEX_WINDOW_S,
}

# What the dashboard and the plots call each kind of scripted event.
_EVENT_KIND: Mapping[tuple[str, str], str] = {
    ("price", "shocks"): "price shock",
    ("price", "vol_regimes"): "vol regime",
    ("funding", "flips"): "funding flip",
    ("gas", "spikes"): "gas spike",
    ("mempool", "congestion"): "congestion",
    ("mempool", "stalls"): "stall",
    ("oracle", "stale"): "stale oracle",
    ("oracle", "frozen"): "frozen oracle",
    ("cex", "outages"): "exchange blip",
    ("cex", "rate_limit_storms"): "exchange 429s",
    ("cex", "degradations"): "exchange slow",
    ("takers", "surges"): "taker surge",
    ("takers", "cascades"): "cascade",
}


@dataclass(frozen=True, slots=True)
class ScriptedEvent:
    """One scripted event, named for people: the dashboard and the plots mark these."""

    at_s: float
    end_s: float
    kind: str
    """``"gas spike"``, ``"stall"``, ``"exchange blip"``, ``"funding flip"``, ``"cascade"``..."""
    label: str
    """The kind with its size, e.g. ``"gas spike x30"`` or ``"price shock -25%"``."""


def _event_label(kind: str, ev: Any) -> str:
    if isinstance(ev, PriceShock):
        return f"{kind} {ev.move_pct:+.3g}%"
    if isinstance(ev, GasSpike):
        return f"{kind} x{ev.multiplier:g}"
    if isinstance(ev, FundingFlip):
        return f"{kind} to {ev.to_mean_bps:+g} bps"
    if isinstance(ev, Cascade):
        return f"{kind} {ev.side} {ev.total_base:g}"
    if isinstance(ev, VolRegime):
        return f"{kind} x{ev.multiplier:g}"
    if isinstance(ev, TakerSurge):
        return f"{kind} x{ev.rate_multiplier:g}"
    return kind


class Scenario(_Spec):
    """One stress scenario (see the module docstring for the file format)."""

    name: str = "unnamed"
    description: str = ""
    duration_s: Seconds = Field(3600.0, ge=60.0, le=7 * 86400.0)
    block_time_s: Seconds = Field(1.0, ge=0.1, le=60.0)
    chain: ChainSpec = ChainSpec()
    price: PriceSpec = PriceSpec()
    funding: FundingSpec = FundingSpec()
    gas: GasSpec = GasSpec()
    mempool: MempoolSpec = MempoolSpec()
    oracle: OracleSpec = OracleSpec()
    cex: CexSpec = CexSpec()
    takers: TakerSpec = TakerSpec()
    arbitrage: ArbitrageSpec = ArbitrageSpec()

    @property
    def n_steps(self) -> int:
        """Number of block slots in the timeline."""
        return max(1, round(self.duration_s / self.block_time_s))

    @property
    def quiet_base_fee_gwei(self) -> float:
        """The base fee outside spikes: ``[gas] base_fee_gwei``, else the chain profile's."""
        if self.gas.base_fee_gwei is not None:
            return self.gas.base_fee_gwei
        return self.chain.resolved.base_fee_gwei

    @model_validator(mode="after")
    def _events_inside(self) -> Self:
        if self.block_time_s > self.duration_s:
            raise ValueError("block_time_s must not exceed duration_s")
        for section, key in _EVENT_LISTS:
            events: tuple[Any, ...] = getattr(getattr(self, section), key)
            for i, ev in enumerate(events):
                end = ev.at_s + ev.span_s
                if end > self.duration_s + 1e-9:
                    raise ValueError(
                        f"{section}.{key}[{i}] ends at {end:g} s, after the scenario ends "
                        f"({self.duration_s:g} s); move it earlier or shorten it"
                    )
        return self

    def events(self) -> list[ScriptedEvent]:
        """Every scripted event, by start time (what the dashboard announces, plots mark)."""
        out = [
            ScriptedEvent(ev.at_s, ev.at_s + ev.span_s, kind, _event_label(kind, ev))
            for (section, key), kind in _EVENT_KIND.items()
            for ev in getattr(getattr(self, section), key)
        ]
        return sorted(out, key=lambda e: (e.at_s, e.kind))

    @property
    def min_shortened_s(self) -> float:
        """The shortest run that still holds every scripted move at its own speed."""
        moves = [sh.duration_s for sh in self.price.shocks]
        moves += [c.duration_s for c in self.takers.cascades]
        moves += [g.ramp_s + _MIN_GAS_HOLD_S for g in self.gas.spikes]
        # A minute before and after the longest move: the agent is seen quoting into and out of it.
        return max(moves) + 120.0 if moves else 60.0

    def short_run(self, duration_s: float) -> Scenario:
        """The CI version: :meth:`shortened` to `duration_s`, or to :attr:`min_shortened_s` when
        a scripted move needs longer; the scenario itself when it is already that short."""
        target = max(duration_s, self.min_shortened_s)
        return self.shortened(target) if target < self.duration_s else self

    def with_chain_profile(self, profile: ChainProfileName) -> Scenario:
        """The same scenario on another chain: its profile's costs, the quiet fee included."""
        return self._replace(
            chain=ChainSpec(profile=profile),
            gas=self.gas._replace(base_fee_gwei=None),
            description=f"{self.description} [{profile}]".strip(),
        )

    def mirrored(self, name: str | None = None) -> Scenario:
        """The scenario upside down: every scripted move, drift, premium and cascade reversed.

        A crash and its mirror (``flash_crash`` and ``flash_pump``) differ only in direction, so
        a directional bias in the agent shows up as the gap between their results.
        """
        p, f, t = self.price, self.funding, self.takers
        return self._replace(
            name=name or f"{self.name}_mirror",
            price=p._replace(
                drift_annual=-p.drift_annual,
                drift_pct_per_hour=(
                    None if p.drift_pct_per_hour is None else -p.drift_pct_per_hour
                ),
                jump_mean_bps=-p.jump_mean_bps,
                shocks=tuple(sh.mirrored() for sh in p.shocks),
            ),
            funding=f._replace(
                mean_bps=-f.mean_bps,
                flips=tuple(fl._replace(to_mean_bps=-fl.to_mean_bps) for fl in f.flips),
            ),
            takers=t._replace(
                cascades=tuple(
                    c._replace(
                        side="buy" if c.side == "sell" else "sell", premium_bps=-c.premium_bps
                    )
                    for c in t.cascades
                )
            ),
        )

    def shortened(self, duration_s: float) -> Scenario:
        """Return the same scenario compressed to `duration_s` (for CI).

        The quiet time is what shrinks: event start times scale by ``duration_s /
        self.duration_s``, and every scripted *move* keeps its own speed (a −25% crash still
        takes its 2 minutes, a cascade keeps its size and length, a gas
        spike keeps its ramp; a recovery that no longer fits is cut short at the same pace).
        Fault *windows* (stalls, outages, stale oracle, congestion) scale, but never below the
        length that still trips the stress (a stall stays longer than the risk engine's
        block-age breach, an outage longer than the CEX feed-age breach). Every event is moved
        so it ends inside the run.

        Raises
        ------
        ConfigError
            If `duration_s` is not shorter than the scenario, or shorter than
            :attr:`min_shortened_s` (a move would have to be sped up).
        """
        low = self.min_shortened_s
        if not low <= duration_s < self.duration_s:
            raise ConfigError(
                f"shortened: duration_s must be at least {low:g} (the longest scripted move "
                f"plus two minutes) and below {self.duration_s:g}, got {duration_s:g}"
            )
        f = duration_s / self.duration_s
        sections: dict[str, Any] = {}
        for section, key in _EVENT_LISTS:
            spec = sections.get(section, getattr(self, section))
            events: tuple[Any, ...] = getattr(spec, key)
            minimum = _WINDOW_MINIMA.get((section, key))
            if minimum is not None:
                new = tuple(ev._shortened(f, duration_s, minimum) for ev in events)
            else:
                new = tuple(ev._shortened(f, duration_s) for ev in events)
            sections[section] = spec._replace(**{key: new})
        interval = max(self.funding.interval_s * f, _MIN_FUNDING_INTERVAL_S)
        sections["funding"] = sections["funding"]._replace(interval_s=interval)
        out = self._replace(
            duration_s=duration_s,
            description=f"{self.description} (shortened to {duration_s:g} s)".strip(),
            **sections,
        )
        return _validated(out.model_dump(), "scenario")


# ---------------------------------------------------------------------------------------------
# strict loading


def _validated(raw: Mapping[str, Any], where: str) -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            # The config's hint points at mm.example.toml; a scenario's points at its own keys.
            *parent, key = first["loc"]
            model: Any = Scenario
            for part in parent:
                if isinstance(part, str):
                    ann = model.model_fields[part].annotation
                    inner = typing.get_args(ann)
                    model = next((a for a in (ann, *inner) if isinstance(a, type)
                                  and issubclass(a, BaseModel)), model)  # fmt: skip
            close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see sims/scenarios/README.md"
            path = ".".join(str(p) for p in (where, *first["loc"]))
            raise ConfigError(f"{path}: unknown key ({hint})") from None
        raise ConfigError(format_validation_error(exc, where)) from None


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.parent != Path():
        # ``holdout/whipsaw``: a name inside a sub-directory of the library (the held-out set).
        inside = SCENARIO_DIR / p.with_suffix(".toml")
        if not p.is_file() and p.suffix != ".toml" and not p.is_absolute() and inside.is_file():
            return inside
        if not p.is_file():
            raise ConfigError(f"scenario file {p} not found")
        return p
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(list_scenarios())
        raise ConfigError(f"unknown scenario {str(name_or_path)!r}: choose one of {known}")
    return candidate


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by name (``sims/scenarios/<name>.toml``), by a name in a
    sub-directory of the library (``holdout/whipsaw``) or by file path.

    Validation is the agent config's (pydantic, strict, unknown keys refused, finite numbers)
    and so is the one-line error.

    Raises
    ------
    ConfigError
        For a missing file, invalid TOML, an unknown key, a bad unit or an out-of-range value,
        naming the key path (e.g. ``scenario.gas.spikes.0.multiplier``).
    """
    path = _resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    return _validated(raw, "scenario")


def list_scenarios() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


# ---------------------------------------------------------------------------------------------
# processes (vectorised; all in float64 arrays over the step grid)


def gbm_jump_log_path(
    rng: np.random.Generator,
    dt_s: float,
    sigma_annual: _F64,
    drift_annual: float,
    jump_rate_per_s: float,
    jump_mean: float,
    jump_std: float,
) -> _F64:
    """Return cumulative log-returns of a GBM with Merton jumps (one value per step).

    `sigma_annual` is per step, so vol regimes are a multiplier on it. Jumps are log-normal: in a
    step with ``k`` jumps the log move is ``N(k·jump_mean, k·jump_std²)``.
    """
    n = sigma_annual.size
    var = sigma_annual**2 * (dt_s / _SECONDS_PER_YEAR)
    diffusion = (drift_annual * dt_s / _SECONDS_PER_YEAR - 0.5 * var) + np.sqrt(
        var
    ) * rng.standard_normal(n)
    k = rng.poisson(jump_rate_per_s * dt_s, n).astype(np.float64)
    jumps = k * jump_mean + np.sqrt(k) * jump_std * rng.standard_normal(n)
    return np.cumsum(diffusion + jumps)


def ou_path(
    rng: np.random.Generator, dt_s: float, mean: _F64, half_life_s: float, stdev: float, x0: float
) -> _F64:
    """Return an exact-discretisation Ornstein-Uhlenbeck path around a time-varying `mean`.

    The AR(1) recursion is inherently sequential; the loop runs over plain floats (an hour of
    1 s steps takes about a millisecond), the noise is drawn in one vectorised call.
    """
    a = math.exp(-math.log(2.0) * dt_s / half_life_s)
    shocks = (stdev * math.sqrt(1.0 - a * a)) * rng.standard_normal(mean.size)
    out = np.empty_like(mean)
    dev = x0 - float(mean[0])
    for i, e in enumerate(shocks.tolist()):
        dev = a * dev + e
        out[i] = dev
    return out + mean


def eip1559_base_fee(
    t_s: _F64, mined: npt.NDArray[np.bool_], spike: GasSpike, base_gwei: float, decay: float
) -> _F64:
    """Return one spike's base-fee override per step (NaN where the spike is over).

    Geometric ramp to ``base × multiplier``, hold, then ``× (1 − decay)`` per *mined* block (as
    EIP-1559 does for empty blocks) until within 1% of the quiet level.
    """
    peak = base_gwei * spike.multiplier
    out = np.full(t_s.size, np.nan)
    rel = t_s - spike.at_s
    if spike.ramp_s > 0:
        ramping = (rel > 0) & (rel <= spike.ramp_s)
        out[ramping] = base_gwei * spike.multiplier ** (rel[ramping] / spike.ramp_s)
    # Same (start, end] convention as every window: a hold of h seconds covers h / dt blocks.
    holding = (rel > spike.ramp_s) & (rel <= spike.span_s)
    out[holding] = peak
    after = rel > spike.span_s
    blocks_after = np.cumsum(mined & after)
    decayed = peak * (1.0 - decay) ** blocks_after
    decaying = after & (decayed > base_gwei * 1.01)
    out[decaying] = decayed[decaying]
    return out


def _window_mask(t_s: _F64, at_s: float, duration_s: float) -> npt.NDArray[np.bool_]:
    # Step i covers (t_s[i] - dt, t_s[i]]; an event is active in a step when its window contains
    # the step's end time, so a window of length d covers round(d / dt) steps.
    return (t_s > at_s) & (t_s <= at_s + duration_s)


# ---------------------------------------------------------------------------------------------
# the timeline


@dataclass(frozen=True, slots=True)
class TakerOrder:
    """One taker order for the bots to send in `step`.

    ``aggressiveness_bps`` is how far through fair value (the step's target DEX mid: index plus
    premium) the limit price goes: a buy is limited at ``fair × (1 + aggressiveness_bps / 1e4)``.
    """

    step: int
    t_s: float
    side: Side
    size_base: float
    aggressiveness_bps: float
    informed: bool
    liquidation: bool


@dataclass(frozen=True, slots=True)
class CexFaults:
    """What the CEX simulator should do during one step."""

    outage: bool
    reject_429_prob: float
    latency_ms: float
    partial_fill_prob: float

    @property
    def any_fault(self) -> bool:
        """True when an outage, a 429 storm or partial fills are active."""
        return self.outage or self.reject_429_prob > 0 or self.partial_fill_prob > 0


@dataclass(frozen=True, slots=True)
class Step:
    """Everything scripted for one block slot."""

    index: int
    t_s: float
    index_usd: float
    premium_bps: float
    target_dex_mid_usd: float
    base_fee_override_gwei: float | None
    mined: bool
    inclusion_delay_blocks: int
    drop_txs: bool
    oracle_update: bool
    oracle_usd: float
    oracle_age_s: float
    funding_snapshot: bool
    cex: CexFaults
    cex_mid_usd: float
    arb_reference_usd: float
    takers: tuple[TakerOrder, ...]


@dataclass(frozen=True, eq=False)
class Timeline:
    """A scenario expanded with a seed: parallel arrays, one entry per step, plus taker orders.

    Use ``timeline[i]`` or iteration for per-step :class:`Step` views; the arrays are for
    vectorised consumers (plots, reports). Arrays are read-only.
    """

    scenario: Scenario
    seed: int
    t_s: _F64
    index_usd: _F64
    premium_bps: _F64
    base_fee_override_gwei: _F64
    """NaN where the chain's own base fee applies."""
    mined: npt.NDArray[np.bool_]
    inclusion_delay_blocks: npt.NDArray[np.int64]
    drop_txs: npt.NDArray[np.bool_]
    oracle_update: npt.NDArray[np.bool_]
    oracle_usd: _F64
    oracle_age_s: _F64
    funding_snapshot: npt.NDArray[np.bool_]
    cex_outage: npt.NDArray[np.bool_]
    cex_reject_429_prob: _F64
    cex_latency_ms: _F64
    cex_partial_fill_prob: _F64
    cex_mid_usd: _F64
    """The exchange's mid: the index plus its own basis noise."""
    arb_reference_usd: _F64
    """The arbitrageur's fair value of the perp (exchange mid plus premium), `latency_s` late."""
    takers: tuple[TakerOrder, ...]
    _taker_bounds: npt.NDArray[np.int64] = field(repr=False)

    def __len__(self) -> int:
        return int(self.t_s.size)

    def __getitem__(self, i: int) -> Step:
        if not -len(self) <= i < len(self):
            raise IndexError(f"step {i} out of range (timeline has {len(self)} steps)")
        i %= len(self)
        fee = float(self.base_fee_override_gwei[i])
        lo, hi = int(self._taker_bounds[i]), int(self._taker_bounds[i + 1])
        index = float(self.index_usd[i])
        premium = float(self.premium_bps[i])
        return Step(
            index=i,
            t_s=float(self.t_s[i]),
            index_usd=index,
            premium_bps=premium,
            target_dex_mid_usd=index * (1.0 + premium * _BPS),
            base_fee_override_gwei=None if math.isnan(fee) else fee,
            mined=bool(self.mined[i]),
            inclusion_delay_blocks=int(self.inclusion_delay_blocks[i]),
            drop_txs=bool(self.drop_txs[i]),
            oracle_update=bool(self.oracle_update[i]),
            oracle_usd=float(self.oracle_usd[i]),
            oracle_age_s=float(self.oracle_age_s[i]),
            funding_snapshot=bool(self.funding_snapshot[i]),
            cex=CexFaults(
                outage=bool(self.cex_outage[i]),
                reject_429_prob=float(self.cex_reject_429_prob[i]),
                latency_ms=float(self.cex_latency_ms[i]),
                partial_fill_prob=float(self.cex_partial_fill_prob[i]),
            ),
            cex_mid_usd=float(self.cex_mid_usd[i]),
            arb_reference_usd=float(self.arb_reference_usd[i]),
            takers=self.takers[lo:hi],
        )

    def __iter__(self) -> Iterator[Step]:
        return (self[i] for i in range(len(self)))

    def fingerprint(self) -> str:
        """SHA-256 over every array and taker order: equal fingerprints, identical timelines."""
        h = hashlib.sha256()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                h.update(f.name.encode())
                h.update(np.ascontiguousarray(value).tobytes())
        for o in self.takers:
            h.update(repr(dataclasses.astuple(o)).encode())
        return h.hexdigest()


def _piecewise_mean(t_s: _F64, start: float, flips: Sequence[FundingFlip]) -> _F64:
    knots_t, knots_v = [0.0], [start]
    current = start
    for flip in sorted(flips, key=lambda fl: fl.at_s):
        knots_t += [flip.at_s, flip.at_s + max(flip.ramp_s, 1e-9)]
        knots_v += [current, flip.to_mean_bps]
        current = flip.to_mean_bps
    return np.interp(t_s, knots_t, knots_v)


def _triangular_profile(t_s: _F64, at_s: float, duration_s: float) -> _F64:
    # Cascades accelerate (each liquidation moves the price into the next one's trigger), peak at
    # a third of the window, then exhaust: a triangle with its mode at 1/3, peak value 1.
    mode = at_s + duration_s / 3.0
    return np.interp(t_s, [at_s, mode, at_s + duration_s], [0.0, 1.0, 0.0], left=0.0, right=0.0)


def _oracle(
    t_s: _F64,
    index: _F64,
    can_push: npt.NDArray[np.bool_],
    frozen: npt.NDArray[np.bool_],
    spec: OracleSpec,
) -> tuple[npt.NDArray[np.bool_], _F64, _F64]:
    # Sequential by nature (each push resets the heartbeat and the deviation reference).
    n = t_s.size
    update = np.zeros(n, dtype=np.bool_)
    price = np.empty(n)
    age = np.empty(n)
    last_px, last_t = float(index[0]), 0.0
    dev = spec.deviation_bps * _BPS
    for i, (t, px, ok, stuck) in enumerate(
        zip(t_s.tolist(), index.tolist(), can_push.tolist(), frozen.tolist(), strict=True)
    ):
        if stuck:
            # A stuck feed re-reports its last answer on the heartbeat: fresh age, old price.
            if ok and t - last_t >= spec.heartbeat_s - 1e-9:
                update[i] = True
                last_t = t
        elif ok and (t - last_t >= spec.heartbeat_s - 1e-9 or abs(px / last_px - 1.0) >= dev):
            update[i] = True
            last_px, last_t = px, t
        price[i] = last_px
        age[i] = t - last_t
    return update, price, age


def expand(scenario: Scenario, seed: int) -> Timeline:
    """Expand `scenario` with `seed` into a per-step :class:`Timeline` (deterministic).

    Raises
    ------
    ConfigError
        If `seed` is negative.
    """
    if seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed}")
    # Children are indexed: adding a process at the end leaves the older ones' draws unchanged.
    rng_price, rng_premium, rng_mempool, rng_cex, rng_takers, rng_cascades, rng_basis = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)
    )
    dt = scenario.block_time_s
    n = scenario.n_steps
    t = (np.arange(n, dtype=np.float64) + 1.0) * dt

    # --- index price
    ps = scenario.price
    vol_mult = np.ones(n)
    for reg in ps.vol_regimes:
        vol_mult[_window_mask(t, reg.at_s, reg.duration_s)] *= reg.multiplier
    log_ret = gbm_jump_log_path(
        rng_price,
        dt,
        ps.vol_annual * vol_mult,
        ps.drift_log_annual,
        ps.jump_rate_per_hour / 3600.0,
        ps.jump_mean_bps * _BPS,
        ps.jump_std_bps * _BPS,
    )
    for sh in ps.shocks:
        size = math.log1p(sh.move_pct / 100.0)
        end_move = sh.at_s + sh.duration_s
        end_hold = end_move + sh.hold_s
        knots_t = [sh.at_s, end_move, end_hold, end_hold + sh.recover_s]
        knots_v = [0.0, size, size, size * (1.0 - sh.recover_frac)]
        log_ret += np.interp(t, knots_t, knots_v, left=0.0, right=knots_v[-1])
    index = ps.initial_usd * np.exp(log_ret)

    # --- mempool and blocks
    ms = scenario.mempool
    mined = np.ones(n, dtype=np.bool_)
    for w in ms.stalls:
        mined[_window_mask(t, w.at_s, w.duration_s)] = False
    delay = np.full(n, ms.inclusion_delay_blocks, dtype=np.int64)
    drop_p = np.full(n, ms.drop_prob)
    for c in ms.congestion:
        m = _window_mask(t, c.at_s, c.duration_s)
        delay[m] = np.maximum(delay[m], c.inclusion_delay_blocks)
        drop_p[m] = np.maximum(drop_p[m], c.drop_prob)
    drop = (rng_mempool.random(n) < drop_p) & mined

    # --- premium (funding driver)
    fs = scenario.funding
    mean = _piecewise_mean(t, fs.mean_bps, fs.flips)
    premium = ou_path(rng_premium, dt, mean, fs.half_life_s, fs.vol_bps, fs.mean_bps)
    for cas in scenario.takers.cascades:
        premium += cas.premium_bps * _triangular_profile(t, cas.at_s, cas.duration_s)
    # A boundary k·interval falls in step i when it lies in (t[i] - dt, t[i]].
    period = np.floor(t / fs.interval_s + 1e-9)
    snapshot = np.diff(period, prepend=0.0) > 0

    # --- gas
    gs = scenario.gas
    fee = np.full(n, np.nan)
    for sp in gs.spikes:
        fee = np.fmax(
            fee, eip1559_base_fee(t, mined, sp, scenario.quiet_base_fee_gwei, gs.decay_per_block)
        )

    # --- oracle
    can_push = mined.copy()
    for w in scenario.oracle.stale:
        can_push[_window_mask(t, w.at_s, w.duration_s)] = False
    frozen = np.zeros(n, dtype=np.bool_)
    for w in scenario.oracle.frozen:
        frozen |= _window_mask(t, w.at_s, w.duration_s)
    oracle_update, oracle_px, oracle_age = _oracle(t, index, can_push, frozen, scenario.oracle)

    # --- CEX
    cs = scenario.cex
    outage = np.zeros(n, dtype=np.bool_)
    for w in cs.outages:
        outage |= _window_mask(t, w.at_s, w.duration_s)
    reject = np.zeros(n)
    for st in cs.rate_limit_storms:
        m = _window_mask(t, st.at_s, st.duration_s)
        reject[m] = np.maximum(reject[m], st.reject_prob)
    latency = cs.latency_ms + rng_cex.exponential(1.0, n) * cs.latency_jitter_ms
    partial = np.full(n, cs.partial_fill_prob)
    for dg in cs.degradations:
        m = _window_mask(t, dg.at_s, dg.duration_s)
        latency[m] = np.maximum(latency[m], dg.latency_ms + rng_cex.exponential(1.0, int(m.sum())))
        partial[m] = np.maximum(partial[m], dg.partial_fill_prob)

    # The exchange's own mid: the index plus a mean-reverting basis, so the two venues disagree
    # the way real ones do. The arbitrageur prices the perp off it, plus the perp's premium (a
    # quote at the scripted premium is fair, not mispriced), and sees both `latency_s` late.
    basis = ou_path(rng_basis, dt, np.zeros(n), cs.basis_half_life_s, cs.basis_vol_bps, 0.0)
    cex_mid = index * (1.0 + basis * _BPS)
    fair = cex_mid * (1.0 + premium * _BPS)
    lag = min(round(scenario.arbitrage.latency_s / dt), n)
    arb_ref = np.concatenate([np.full(lag, fair[0]), fair[: n - lag]])

    takers = _taker_orders(scenario, t, index, rng_takers, rng_cascades)
    steps = np.fromiter((o.step for o in takers), dtype=np.int64, count=len(takers))
    bounds = np.searchsorted(steps, np.arange(n + 1), side="left").astype(np.int64)

    arrays: list[npt.NDArray[Any]] = [
        t, index, premium, fee, mined, delay, drop, oracle_update, oracle_px, oracle_age,
        snapshot, outage, reject, latency, partial, cex_mid, arb_ref, bounds,
    ]  # fmt: skip
    for a in arrays:
        a.flags.writeable = False
    return Timeline(
        scenario=scenario,
        seed=seed,
        t_s=t,
        index_usd=index,
        premium_bps=premium,
        base_fee_override_gwei=fee,
        mined=mined,
        inclusion_delay_blocks=delay,
        drop_txs=drop,
        oracle_update=oracle_update,
        oracle_usd=oracle_px,
        oracle_age_s=oracle_age,
        funding_snapshot=snapshot,
        cex_outage=outage,
        cex_reject_429_prob=reject,
        cex_latency_ms=latency,
        cex_partial_fill_prob=partial,
        cex_mid_usd=cex_mid,
        arb_reference_usd=arb_ref,
        takers=takers,
        _taker_bounds=bounds,
    )


def _taker_orders(
    scenario: Scenario,
    t: _F64,
    index: _F64,
    rng: np.random.Generator,
    rng_cascades: np.random.Generator,
) -> tuple[TakerOrder, ...]:
    ts = scenario.takers
    dt = scenario.block_time_s
    n = t.size
    rate = np.full(n, ts.rate_per_min / 60.0 * dt)
    for s in ts.surges:
        rate[_window_mask(t, s.at_s, s.duration_s)] *= s.rate_multiplier
    counts = rng.poisson(rate)
    step = np.repeat(np.arange(n), counts)
    m = step.size
    size = ts.size_median_base * np.exp(ts.size_sigma * rng.standard_normal(m))
    informed = rng.random(m) < ts.informed_share
    coin = rng.random(m) < 0.5
    ahead = np.minimum(step + max(1, round(ts.informed_horizon_s / dt)), n - 1)
    future_move = index[ahead] - index[step]
    buy = np.where(informed & (future_move != 0), future_move > 0, coin)
    # Informed takers cross further: they know the move will pay for it.
    aggr = rng.exponential(ts.aggressiveness_mean_bps, m) * np.where(informed, 2.0, 1.0)

    steps_l, buy_l, size_l = [step], [buy], [size]
    aggr_l, informed_l, liq_l = [aggr], [informed], [np.zeros(m, dtype=np.bool_)]
    for cas in ts.cascades:
        k = cas.orders
        mode = cas.at_s + cas.duration_s / 3.0
        when = rng_cascades.triangular(cas.at_s, mode, cas.at_s + cas.duration_s, k)
        weights = rng_cascades.gamma(2.0, 1.0, k)
        steps_l.append(np.clip(np.ceil(when / dt - 1e-9).astype(np.int64) - 1, 0, n - 1))
        buy_l.append(np.full(k, cas.side == "buy"))
        size_l.append(cas.total_base * weights / weights.sum())
        aggr_l.append(cas.aggressiveness_bps * (0.5 + rng_cascades.random(k)))
        informed_l.append(np.zeros(k, dtype=np.bool_))
        liq_l.append(np.ones(k, dtype=np.bool_))

    all_steps = np.concatenate(steps_l)
    order = np.argsort(all_steps, kind="stable")
    cols = [np.concatenate(c)[order] for c in (buy_l, size_l, aggr_l, informed_l, liq_l)]
    all_steps = all_steps[order]
    return tuple(
        TakerOrder(
            step=int(s),
            t_s=float(t[s]),
            side=Side.BID if b else Side.ASK,
            size_base=float(sz),
            aggressiveness_bps=float(a),
            informed=bool(inf),
            liquidation=bool(liq),
        )
        for s, b, sz, a, inf, liq in zip(
            all_steps.tolist(), *(c.tolist() for c in cols), strict=True
        )
    )
