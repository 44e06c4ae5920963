"""Fair value of the DEX perp from the market, never from our own quotes (pure, no clock reads).

One estimate serves the quoting model (the centre of every quote), the risk engine's collar and its
jump trigger, so all three agree on where the market is.

Sources, best first::

    source   input                                   used when
    -------  --------------------------------------  ------------------------------------------
    CEX      exchange mid + EWMA basis               the exchange mid is younger than
                                                     ``max_cex_age_s``
    ORACLE   oracle / index price                    the exchange is stale, the oracle is younger
                                                     than ``max_oracle_age_s``
    DEX      other makers' mid on the DEX book       both are stale and the book (without our
             (our own orders removed by the caller)  orders) is two-sided and younger than
                                                     ``max_dex_age_s``
    LAST     the last estimate, flagged ``stale``    nothing is fresh (the caller withdraws)

Fair value is the **index**, as the exchange tells it now, plus the perp's **premium** over it::

    fair = exchange mid + basis + premium

The **basis** is the exchange's offset from the index: an EWMA (time half-life
``basis_halflife_s``) of ``oracle index − exchange mid``. It is sampled only when the oracle
reports (a fresh reference against a fresh exchange mid) and only while the two agree within
``band_bps``: a slow oracle heartbeat behind a fast exchange move must not drag fair value back to
the old price. That disagreement is reported instead (``divergence_bps``): the risk engine reads
it, and the exchange side wins, because the chain is the one that lags. The exchange's basis is
noise that mean-reverts within a minute or so, so the half-life is short: the newest report
outweighs old ones (with a slow heartbeat feed every sample is old, and the newest still wins).

The **premium** is what the perp trades at over the index, the very thing funding is paid on: an
EWMA (``premium_halflife_s``) of ``other makers' DEX mid − the index estimate``, sampled on every
book the caller feeds (our own orders removed by the caller), times ``dex_premium_weight``. A
perp whose market sits 3 bps over the index is worth 3 bps over it; centring on the index
instead leaves every quote that far off where the takers and arbitrageurs price it. A book mid
more than ``max_premium_bps`` from the index is a dislocated or one-sided-thin book, not a
premium, and is not sampled.

The oracle is also the **sanity band**: an estimate more than ``band_bps`` away from a fresh
oracle sets ``divergent``. Nothing is clamped: clamping to a lagging oracle is exactly how asks get
re-posted under the new price and lifted.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = ["FairValue", "FairValueEstimator", "FairValueParams", "FairValueSource"]

_LN2 = math.log(2.0)
_BPS = 1e4


class FairValueSource(enum.StrEnum):
    """Which input set the estimate."""

    CEX = "cex"
    ORACLE = "oracle"
    DEX = "dex"
    LAST = "last"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FairValueParams:
    """Settings of the fair-value estimator; every field carries its unit."""

    basis_halflife_s: float = 10.0
    """Half-life of the exchange basis EWMA, seconds (the exchange's offset from the index
    mean-reverts within a minute: a long memory prices off an offset that has already gone)."""
    premium_halflife_s: float = 5.0
    """Half-life of the premium EWMA (other makers' DEX mid over the index), seconds: long
    enough to average over a few blocks of other makers' quotes, short against the premium's
    own drift. An EWMA trailing a premium that falls at rate ``v`` sits ``v·h/ln 2`` above it
    (``h`` the half-life); in a sell cascade the premium falls bps per ten seconds, and a 15 s
    half-life kept the quotes' centre bps above the perp's value, so the cascade filled our bids
    (funding_flip, L2, 600 s, seeds 0-4: net -0.05 at 15 s, +10.75 at 5 s; edge per fill 1.9 ->
    3.5 bps)."""
    max_cex_age_s: float = 3.0
    """The exchange mid is stale beyond this age, seconds."""
    max_oracle_age_s: float = 120.0
    """The oracle is stale beyond this age, seconds (a few heartbeats for a heartbeat feed)."""
    max_dex_age_s: float = 30.0
    """Other makers' DEX mid is stale beyond this age, seconds."""
    band_bps: float = 100.0
    """Sanity band around a fresh oracle: beyond it the estimate is ``divergent``."""
    dex_premium_weight: float = 1.0
    """Weight in [0, 1] of the premium read from other makers' DEX book (0: fair value is the
    index, the perp's premium ignored)."""
    max_premium_bps: float = 100.0
    """A DEX book mid further than this from the index is not sampled as a premium."""
    max_basis_bps: float = 200.0
    """The basis EWMA is held within ± this many bps of the exchange mid."""

    def __post_init__(self) -> None:
        positive = (
            self.basis_halflife_s,
            self.premium_halflife_s,
            self.max_premium_bps,
            self.max_cex_age_s,
            self.max_oracle_age_s,
            self.max_dex_age_s,
            self.band_bps,
            self.max_basis_bps,
        )
        if not all(x > 0.0 for x in positive):
            raise ConfigError("fair value: half-life, ages and bands must be > 0")
        if not 0.0 <= self.dex_premium_weight <= 1.0:
            raise ConfigError("fair value: dex_premium_weight must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class FairValue:
    """One fair-value estimate."""

    price: float
    """Fair value, quote currency per base unit (NaN before any input)."""
    source: FairValueSource
    basis: float
    """What is added to the exchange mid (exchange basis plus weighted premium), price units."""
    age_s: float
    """Age of the input the estimate rests on, seconds (``inf`` before any input)."""
    divergence_bps: float
    """|estimate − fresh oracle| in bps of the oracle (0 without a fresh oracle)."""
    stale: bool
    """No input is fresh: quote nothing off this number."""
    divergent: bool
    """The estimate is outside the oracle's sanity band."""


class FairValueEstimator:
    """Track the exchange mid, the oracle and other makers' DEX mid; report fair value.

    Each ``update_*`` takes the observation's time (seconds, the caller's clock) and ``value(t)``
    reports as of ``t``. Feeding the same sequence gives the same answers.
    """

    def __init__(self, params: FairValueParams | None = None) -> None:
        self.params = params if params is not None else FairValueParams()
        self._cex: tuple[float, float] | None = None
        self._oracle: tuple[float, float] | None = None
        self._dex: tuple[float, float] | None = None
        self._basis = 0.0
        self._basis_t: float | None = None
        self._premium = 0.0
        self._premium_t: float | None = None
        self._last: float = math.nan

    @property
    def basis(self) -> float:
        """Return the current exchange basis estimate (index − exchange mid), price units."""
        return self._basis

    @property
    def premium(self) -> float:
        """Return the current premium estimate (DEX perp over the index), price units."""
        return self._premium

    def update_cex(self, t_s: float, mid: float) -> None:
        """Feed the exchange mid observed at ``t_s``."""
        if math.isfinite(mid) and mid > 0.0:
            self._cex = (t_s, mid)

    def update_dex(self, t_s: float, best_bid: float | None, best_ask: float | None) -> None:
        """Feed the DEX book's best bid and ask *excluding our own orders* at ``t_s``.

        A one-sided or crossed book carries no mid and is ignored.
        """
        if best_bid is None or best_ask is None or not 0.0 < best_bid < best_ask:
            return
        mid = 0.5 * (best_bid + best_ask)
        self._dex = (t_s, mid)
        index = self._index_now(t_s)
        if index is None or abs(mid - index) / index * _BPS > self.params.max_premium_bps:
            return
        target = mid - index
        if self._premium_t is None:
            self._premium = target
        else:
            dt = max(t_s - self._premium_t, 0.0)
            w_old = math.exp(-_LN2 * dt / self.params.premium_halflife_s)
            self._premium = w_old * self._premium + (1.0 - w_old) * target
        self._premium_t = t_s

    def _index_now(self, t_s: float) -> float | None:
        """The index as the freshest input tells it: exchange mid + basis, else the oracle."""
        p = self.params
        cex = self._fresh(self._cex, t_s, p.max_cex_age_s)
        if cex is not None and self._basis_t is not None:
            return cex + self._basis
        return self._fresh(self._oracle, t_s, p.max_oracle_age_s)

    def update_oracle(self, t_s: float, price: float) -> None:
        """Feed an oracle (index) report published at ``t_s``; samples the basis."""
        if not (math.isfinite(price) and price > 0.0):
            return
        self._oracle = (t_s, price)
        cex = self._fresh(self._cex, t_s, self.params.max_cex_age_s)
        if cex is None:
            return
        if abs(price - cex) / price * _BPS > self.params.band_bps:
            # Disagreement: one of the two has moved and the other has not caught up yet. That
            # is not a basis; it shows as divergence until the chain side catches up.
            return
        target = price - cex
        if self._basis_t is None:
            self._basis = target
        else:
            dt = max(t_s - self._basis_t, 0.0)
            w_old = math.exp(-_LN2 * dt / self.params.basis_halflife_s)
            self._basis = w_old * self._basis + (1.0 - w_old) * target
        bound = cex * self.params.max_basis_bps / _BPS
        self._basis = min(max(self._basis, -bound), bound)
        self._basis_t = t_s

    def value(self, t_s: float) -> FairValue:
        """Return the fair value as of ``t_s``."""
        p = self.params
        oracle = self._fresh(self._oracle, t_s, p.max_oracle_age_s)
        cex = self._fresh(self._cex, t_s, p.max_cex_age_s)
        dex = self._fresh(self._dex, t_s, p.max_dex_age_s)
        premium = p.dex_premium_weight * self._premium
        if cex is not None and self._cex is not None:
            price, source, age = (
                cex + self._basis + premium,
                FairValueSource.CEX,
                t_s - self._cex[0],
            )
        elif oracle is not None and self._oracle is not None:
            price, source, age = oracle + premium, FairValueSource.ORACLE, t_s - self._oracle[0]
        elif dex is not None and self._dex is not None:
            price, source, age = dex, FairValueSource.DEX, t_s - self._dex[0]
        elif math.isfinite(self._last):
            ages = [t_s - o[0] for o in (self._cex, self._oracle, self._dex) if o is not None]
            return FairValue(
                self._last, FairValueSource.LAST, self._basis, min(ages), 0.0, True, False
            )
        else:
            return FairValue(math.nan, FairValueSource.NONE, 0.0, math.inf, 0.0, True, False)
        self._last = price
        # The sanity band is on the index: the premium is the perp's own, not a disagreement.
        divergence = abs(price - premium - oracle) / oracle * _BPS if oracle is not None else 0.0
        return FairValue(
            price,
            source,
            self._basis + premium,
            max(age, 0.0),
            divergence,
            False,
            divergence > p.band_bps,
        )

    @staticmethod
    def _fresh(obs: tuple[float, float] | None, t_s: float, max_age_s: float) -> float | None:
        if obs is None or t_s - obs[0] > max_age_s:
            return None
        return obs[1]
