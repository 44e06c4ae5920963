"""Stress scenarios: a strict TOML format, a loader, CI shortening and a deterministic expander.

A scenario scripts what the world does to the agent over simulated time: the index price path, the
perp premium (and so funding), the chain's base fee, the mempool, the oracle, the CEX and the taker
flow. :func:`load_scenario` reads one file into frozen dataclasses; :func:`expand` turns it, with a
seed, into a :class:`Timeline` with one :class:`Step` per block slot, which the stress runner plays
against a forked chain. The same seed always gives the identical timeline.

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

    [price]                          index: GBM + Poisson jumps + scripted overlays
    initial_usd     1..1e7          index at t = 0                           [60000]
    vol_annual      0..5            GBM σ, annualized                        [0.5]
    drift_annual    -5..5           GBM μ, annualized                        [0]
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
    base_fee_gwei   0.001..10000    the chain's quiet base fee               [1]
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

    [cex]
    latency_ms      0..60000        base request latency                     [30]
    latency_jitter_ms 0..60000      mean of the exponential extra latency    [10]
    partial_fill_prob 0..1          chance a taker hedge fills only partly   [0]
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
    aggressiveness_mean_bps 0..1000 mean limit distance through the mid (exponential) [5]
    [[takers.surges]]
      at_s *, duration_s *, rate_multiplier * 0..100
    [[takers.cascades]]              forced liquidations, front-loaded (triangular intensity)
      at_s *, duration_s 1..86400 [120], side "buy"|"sell" ["sell"], total_base * 0..1e4,
      orders 1..10000 [60], aggressiveness_bps 0..5000 [100], premium_bps -1000..1000 [-20]

A mistake raises one :class:`~agent.errors.ConfigError` naming the key path, for example
``scenario.gas.spikes[0].multiplier: must be between 1 and 1000``.

Timeline semantics
------------------
Step ``i`` is the block slot ending at ``t_s[i] = (i + 1) * block_time_s``. ``mined[i]`` is False in
a stall; the base-fee decay only advances on mined blocks and the oracle only pushes in them.
``premium_bps`` is the target offset of the DEX mid from the index that the taker bots push toward
(cascades add their ``premium_bps`` on top, shaped like their intensity). Informed takers trade in
the direction of the index ``informed_horizon_s`` ahead: that is what being informed means here.
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
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt

from agent.errors import ConfigError
from agent.types import Side

__all__ = [
    "SCENARIO_DIR",
    "Cascade",
    "CexDegradation",
    "CexFaults",
    "CexSpec",
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
_T = typing.TypeVar("_T")
_E = typing.TypeVar("_E", bound="_TimedWindow")

# Minimum event lengths kept by `Scenario.shortened`: below these the risk engine's default
# thresholds (agent/risk/engine.py) would never fire, and the short run would stop testing the
# stress it is named after. Stall > block_age breach (45 s); stale oracle > oracle_age breach
# (30 s); CEX outage > cex_feed_age breach (10 s), with room to see the hedger react.
_MIN_STALL_S = 60.0
_MIN_STALE_ORACLE_S = 45.0
_MIN_CEX_WINDOW_S = 30.0
_MIN_WINDOW_S = 30.0
_MIN_SHOCK_MOVE_S = 10.0
_MIN_RECOVER_S = 30.0
_MIN_GAS_HOLD_S = 10.0
_MIN_FUNDING_INTERVAL_S = 60.0


# ---------------------------------------------------------------------------------------------
# field helpers


def _p(default: Any = dataclasses.MISSING, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field with an inclusive valid range, checked by `_validate`."""
    return field(default=default, metadata={"lo": lo, "hi": hi})


_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")
_DURATION_FULL = re.compile(r"(?:[0-9]*\.?[0-9]+\s*[a-zA-Z]*\s*)+")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration_s(value: object, key: str = "duration") -> float:
    """Convert a duration to seconds: a number of seconds, or ``"90s"``, ``"2m"``, ``"1h15m"``.

    Raises
    ------
    ConfigError
        For a negative or non-finite number, or an unknown unit, naming `key`.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration (seconds or e.g. '2m'), got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DURATION_FULL.fullmatch(text) is None:
            raise ConfigError(f"{key}: expected a duration like '90s', '2m' or '1h', got {value!r}")
        seconds = 0.0
        for m in _DURATION_PART.finditer(text):
            unit = m.group(2).lower()
            if unit not in _UNIT_S:
                raise ConfigError(
                    f"{key}: bad unit {m.group(2)!r} in {value!r} (use ms, s, m or h)"
                )
            seconds += float(m.group(1)) * _UNIT_S[unit]
    else:
        raise ConfigError(f"{key}: expected a duration (seconds or e.g. '2m'), got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{key}: must be a finite, non-negative duration, got {value!r}")
    return seconds


# ---------------------------------------------------------------------------------------------
# the scenario model


def _fit(at_s: float, span_s: float, total_s: float) -> float:
    """Start time that keeps an event of `span_s` inside ``[0, total_s]``."""
    return max(0.0, min(at_s, total_s - span_s))


class _TimedWindow(typing.Protocol):
    @property
    def at_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...


def _shorten_window(ev: _E, factor: float, total_s: float, min_s: float) -> _E:
    """Scale a window's start and length by `factor`, keeping at least `min_s` of it (never more
    than it had, nor more than half the run) and keeping it inside the run."""
    dur = min(ev.duration_s, max(ev.duration_s * factor, min_s), total_s * 0.5)
    return dataclasses.replace(ev, at_s=_fit(ev.at_s * factor, dur, total_s), duration_s=dur)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class Window:
    """A fault window: active for ``at_s <= t < at_s + duration_s``."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=0.1)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float, min_s: float = _MIN_WINDOW_S) -> Self:
        return _shorten_window(self, factor, total_s, min_s)


@dataclass(frozen=True, slots=True)
class PriceShock:
    """A scripted index move (log-linear), an optional hold and a partial recovery."""

    at_s: float = _p(lo=0.0)
    move_pct: float = _p(lo=-90.0, hi=500.0)
    duration_s: float = _p(120.0, 1.0, 86400.0)
    hold_s: float = _p(0.0, 0.0, 86400.0)
    recover_frac: float = _p(0.0, 0.0, 1.0)
    recover_s: float = _p(600.0, 1.0, 86400.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects (recovery included when there is one)."""
        return self.duration_s + self.hold_s + (self.recover_s if self.recover_frac > 0 else 0.0)

    def _shortened(self, factor: float, total_s: float) -> Self:
        # The move keeps its size: a shorter move is a more violent one, which is still the stress.
        new = dataclasses.replace(
            self,
            duration_s=min(self.duration_s, max(self.duration_s * factor, _MIN_SHOCK_MOVE_S)),
            hold_s=self.hold_s * factor,
            recover_s=min(self.recover_s, max(self.recover_s * factor, _MIN_RECOVER_S)),
        )
        return dataclasses.replace(new, at_s=_fit(self.at_s * factor, new.span_s, total_s))


@dataclass(frozen=True, slots=True)
class VolRegime:
    """Multiply the GBM σ inside a window (e.g. 3.0 for a 3x volatility shock)."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=1.0)
    multiplier: float = _p(lo=0.1, hi=20.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        return _shorten_window(self, factor, total_s, _MIN_WINDOW_S * 2)


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """Index price: GBM with Poisson log-normal jumps, plus scripted shocks and vol regimes."""

    initial_usd: float = _p(60_000.0, 1.0, 1e7)
    vol_annual: float = _p(0.5, 0.0, 5.0)
    drift_annual: float = _p(0.0, -5.0, 5.0)
    jump_rate_per_hour: float = _p(0.0, 0.0, 120.0)
    jump_mean_bps: float = _p(0.0, -2000.0, 2000.0)
    jump_std_bps: float = _p(50.0, 0.0, 5000.0)
    shocks: tuple[PriceShock, ...] = ()
    vol_regimes: tuple[VolRegime, ...] = ()


@dataclass(frozen=True, slots=True)
class FundingFlip:
    """Move the premium's long-run mean to `to_mean_bps`, linearly over `ramp_s`."""

    at_s: float = _p(lo=0.0)
    to_mean_bps: float = _p(lo=-500.0, hi=500.0)
    ramp_s: float = _p(60.0, 0.0, 86400.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.ramp_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        ramp = min(self.ramp_s, max(self.ramp_s * factor, 5.0))
        return dataclasses.replace(self, at_s=_fit(self.at_s * factor, ramp, total_s), ramp_s=ramp)


@dataclass(frozen=True, slots=True)
class FundingSpec:
    """The premium process (Ornstein-Uhlenbeck in bps) and the funding period."""

    interval_s: float = _p(900.0, 60.0, 86400.0)
    mean_bps: float = _p(1.0, -500.0, 500.0)
    half_life_s: float = _p(300.0, 1.0, 86400.0)
    vol_bps: float = _p(2.0, 0.0, 500.0)
    flips: tuple[FundingFlip, ...] = ()


@dataclass(frozen=True, slots=True)
class GasSpike:
    """Base fee jumps to `multiplier` x the quiet level, holds, then decays per EIP-1559."""

    at_s: float = _p(lo=0.0)
    multiplier: float = _p(lo=1.0, hi=1000.0)
    ramp_s: float = _p(0.0, 0.0, 600.0)
    hold_s: float = _p(30.0, 0.0, 3600.0)

    @property
    def span_s(self) -> float:
        """Time until the decay starts (the decay itself is open-ended)."""
        return self.ramp_s + self.hold_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        new = dataclasses.replace(
            self,
            ramp_s=self.ramp_s * factor,
            hold_s=min(self.hold_s, max(self.hold_s * factor, _MIN_GAS_HOLD_S)),
        )
        return dataclasses.replace(new, at_s=_fit(self.at_s * factor, new.span_s, total_s))


@dataclass(frozen=True, slots=True)
class GasSpec:
    """Quiet base fee and scripted spikes."""

    base_fee_gwei: float = _p(1.0, 0.001, 10_000.0)
    decay_per_block: float = _p(0.125, 0.001, 0.125)
    spikes: tuple[GasSpike, ...] = ()


@dataclass(frozen=True, slots=True)
class MempoolCongestion:
    """A window of slow inclusion and dropped transactions."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=1.0)
    inclusion_delay_blocks: int = _p(3, 0, 600)
    drop_prob: float = _p(0.0, 0.0, 1.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        return _shorten_window(self, factor, total_s, _MIN_WINDOW_S)


@dataclass(frozen=True, slots=True)
class MempoolSpec:
    """Block production and inclusion of our transactions."""

    automine: bool = False
    inclusion_delay_blocks: int = _p(0, 0, 100)
    drop_prob: float = _p(0.0, 0.0, 1.0)
    congestion: tuple[MempoolCongestion, ...] = ()
    stalls: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class OracleSpec:
    """A push oracle updated on heartbeat or deviation; stale windows stop the updater."""

    heartbeat_s: float = _p(5.0, 0.1, 3600.0)
    deviation_bps: float = _p(5.0, 0.0, 1000.0)
    stale: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimitStorm:
    """A window where the CEX answers HTTP 429 with probability `reject_prob`."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=1.0)
    reject_prob: float = _p(0.9, 0.0, 1.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        return _shorten_window(self, factor, total_s, _MIN_CEX_WINDOW_S)


@dataclass(frozen=True, slots=True)
class CexDegradation:
    """A window of high latency and partial fills."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=1.0)
    latency_ms: float = _p(500.0, 0.0, 60_000.0)
    partial_fill_prob: float = _p(0.5, 0.0, 1.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        return _shorten_window(self, factor, total_s, _MIN_CEX_WINDOW_S)


@dataclass(frozen=True, slots=True)
class CexSpec:
    """The hedge venue's behaviour."""

    latency_ms: float = _p(30.0, 0.0, 60_000.0)
    latency_jitter_ms: float = _p(10.0, 0.0, 60_000.0)
    partial_fill_prob: float = _p(0.0, 0.0, 1.0)
    outages: tuple[Window, ...] = ()
    rate_limit_storms: tuple[RateLimitStorm, ...] = ()
    degradations: tuple[CexDegradation, ...] = ()


@dataclass(frozen=True, slots=True)
class TakerSurge:
    """Multiply the taker arrival rate inside a window."""

    at_s: float = _p(lo=0.0)
    duration_s: float = _p(lo=1.0)
    rate_multiplier: float = _p(lo=0.0, hi=100.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        return _shorten_window(self, factor, total_s, _MIN_WINDOW_S)


@dataclass(frozen=True, slots=True)
class Cascade:
    """A liquidation cascade: `orders` forced orders totalling `total_base`, front-loaded."""

    at_s: float = _p(lo=0.0)
    total_base: float = _p(lo=0.0, hi=10_000.0)
    duration_s: float = _p(120.0, 1.0, 86400.0)
    side: Literal["buy", "sell"] = "sell"
    orders: int = _p(60, 1, 10_000)
    aggressiveness_bps: float = _p(100.0, 0.0, 5000.0)
    premium_bps: float = _p(-20.0, -1000.0, 1000.0)

    @property
    def span_s(self) -> float:
        """Total time the event affects."""
        return self.duration_s

    def _shortened(self, factor: float, total_s: float) -> Self:
        # Same total size in less time: the cascade gets more intense, not smaller.
        return _shorten_window(self, factor, total_s, _MIN_WINDOW_S)


@dataclass(frozen=True, slots=True)
class TakerSpec:
    """Taker bots: Poisson arrivals, lognormal sizes, an informed share, surges and cascades."""

    rate_per_min: float = _p(6.0, 0.0, 6000.0)
    size_median_base: float = _p(0.02, 1e-6, 1000.0)
    size_sigma: float = _p(1.0, 0.0, 3.0)
    informed_share: float = _p(0.1, 0.0, 1.0)
    informed_horizon_s: float = _p(30.0, 1.0, 3600.0)
    aggressiveness_mean_bps: float = _p(5.0, 0.0, 1000.0)
    surges: tuple[TakerSurge, ...] = ()
    cascades: tuple[Cascade, ...] = ()


_EVENT_LISTS: tuple[tuple[str, str], ...] = (
    ("price", "shocks"),
    ("price", "vol_regimes"),
    ("funding", "flips"),
    ("gas", "spikes"),
    ("mempool", "congestion"),
    ("mempool", "stalls"),
    ("oracle", "stale"),
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
    ("cex", "outages"): _MIN_CEX_WINDOW_S,
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One stress scenario (see the module docstring for the file format)."""

    name: str = "unnamed"
    description: str = ""
    duration_s: float = _p(3600.0, 60.0, 7 * 86400.0)
    block_time_s: float = _p(1.0, 0.1, 60.0)
    price: PriceSpec = field(default_factory=PriceSpec)
    funding: FundingSpec = field(default_factory=FundingSpec)
    gas: GasSpec = field(default_factory=GasSpec)
    mempool: MempoolSpec = field(default_factory=MempoolSpec)
    oracle: OracleSpec = field(default_factory=OracleSpec)
    cex: CexSpec = field(default_factory=CexSpec)
    takers: TakerSpec = field(default_factory=TakerSpec)

    @property
    def n_steps(self) -> int:
        """Number of block slots in the timeline."""
        return max(1, round(self.duration_s / self.block_time_s))

    def _check(self, path: str) -> None:
        if self.block_time_s > self.duration_s:
            raise ConfigError(f"{path}.block_time_s: must not exceed duration_s")
        for section, key in _EVENT_LISTS:
            events: tuple[Any, ...] = getattr(getattr(self, section), key)
            for i, ev in enumerate(events):
                end = ev.at_s + ev.span_s
                if end > self.duration_s + 1e-9:
                    raise ConfigError(
                        f"{path}.{section}.{key}[{i}]: ends at {end:g} s, after the scenario "
                        f"ends ({self.duration_s:g} s); move it earlier or shorten it"
                    )

    def shortened(self, duration_s: float) -> Scenario:
        """Return the same scenario compressed to `duration_s` (for CI).

        Event times scale by ``duration_s / self.duration_s``. Durations scale too, but never
        below the length that still trips the stress (a stall stays longer than the risk engine's
        block-age breach, an outage longer than the CEX feed-age breach, a gas spike still holds),
        and every event is moved so it ends inside the run. Magnitudes (move sizes, multipliers,
        cascade totals) are kept: the short run is as violent as the long one, just sooner.

        Raises
        ------
        ConfigError
            If `duration_s` is not shorter than the scenario or below 60 s.
        """
        if not 60.0 <= duration_s < self.duration_s:
            raise ConfigError(
                f"shortened: duration_s must be at least 60 and below {self.duration_s:g}, "
                f"got {duration_s:g}"
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
            sections[section] = dataclasses.replace(spec, **{key: new})
        interval = max(self.funding.interval_s * f, _MIN_FUNDING_INTERVAL_S)
        sections["funding"] = dataclasses.replace(sections["funding"], interval_s=interval)
        out = dataclasses.replace(
            self,
            duration_s=duration_s,
            description=f"{self.description} (shortened to {duration_s:g} s)".strip(),
            **sections,
        )
        _validate(out, "scenario")
        return out


# ---------------------------------------------------------------------------------------------
# strict loading


def _convert(tp: Any, value: object, path: str, is_duration: bool) -> object:
    origin = typing.get_origin(tp)
    if tp is float:
        if is_duration:
            return parse_duration_s(value, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: must be one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected an array of tables ([[{path.split('.', 1)[-1]}]])")
        return tuple(_parse(item_tp, item, f"{path}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _parse(tp, value, path)  # type: ignore[arg-type]
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a programming error


def _parse(cls: type[_T], raw: object, path: str) -> _T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(fields)}"
            raise ConfigError(f"{path}.{key}: unknown key ({hint})")
    kwargs: dict[str, object] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}.{name}: required")
            continue
        kwargs[name] = _convert(hints[name], raw[name], f"{path}.{name}", name.endswith("_s"))
    return cls(**kwargs)


def _validate(obj: object, path: str) -> None:
    """Check every field's range (field metadata) and each object's cross-field `_check`."""
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        key = f"{path}.{f.name}"
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if lo is not None and hi is not None and not lo <= value <= hi:
                raise ConfigError(f"{key}: must be between {lo:g} and {hi:g}, got {value:g}")
            if lo is not None and value < lo:
                raise ConfigError(f"{key}: must be at least {lo:g}, got {value:g}")
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                _validate(item, f"{key}[{i}]")
        elif dataclasses.is_dataclass(value):
            _validate(value, key)
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path)


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.parent != Path():
        if not p.is_file():
            raise ConfigError(f"scenario file {p} not found")
        return p
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(list_scenarios())
        raise ConfigError(f"unknown scenario {str(name_or_path)!r}: choose one of {known}")
    return candidate


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by name (``sims/scenarios/<name>.toml``) or by file path.

    Raises
    ------
    ConfigError
        For a missing file, invalid TOML, an unknown key, a bad unit or an out-of-range value,
        naming the key path (e.g. ``scenario.gas.spikes[0].multiplier``).
    """
    path = _resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    scenario = _parse(Scenario, raw, "scenario")
    _validate(scenario, "scenario")
    return scenario


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

    ``aggressiveness_bps`` is how far through the DEX mid the limit price goes: a buy is limited at
    ``mid × (1 + aggressiveness_bps / 1e4)``.
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
    t_s: _F64, index: _F64, can_push: npt.NDArray[np.bool_], spec: OracleSpec
) -> tuple[npt.NDArray[np.bool_], _F64, _F64]:
    # Sequential by nature (each push resets the heartbeat and the deviation reference).
    n = t_s.size
    update = np.zeros(n, dtype=np.bool_)
    price = np.empty(n)
    age = np.empty(n)
    last_px, last_t = float(index[0]), 0.0
    dev = spec.deviation_bps * _BPS
    for i, (t, px, ok) in enumerate(
        zip(t_s.tolist(), index.tolist(), can_push.tolist(), strict=True)
    ):
        if ok and (t - last_t >= spec.heartbeat_s - 1e-9 or abs(px / last_px - 1.0) >= dev):
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
    rng_price, rng_premium, rng_mempool, rng_cex, rng_takers, rng_cascades = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
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
        ps.drift_annual,
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
        fee = np.fmax(fee, eip1559_base_fee(t, mined, sp, gs.base_fee_gwei, gs.decay_per_block))

    # --- oracle
    can_push = mined.copy()
    for w in scenario.oracle.stale:
        can_push[_window_mask(t, w.at_s, w.duration_s)] = False
    oracle_update, oracle_px, oracle_age = _oracle(t, index, can_push, scenario.oracle)

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

    takers = _taker_orders(scenario, t, index, rng_takers, rng_cascades)
    steps = np.fromiter((o.step for o in takers), dtype=np.int64, count=len(takers))
    bounds = np.searchsorted(steps, np.arange(n + 1), side="left").astype(np.int64)

    arrays: list[npt.NDArray[Any]] = [
        t, index, premium, fee, mined, delay, drop, oracle_update, oracle_px, oracle_age,
        snapshot, outage, reject, latency, partial, bounds,
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
