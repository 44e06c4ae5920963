"""Fair value of the DEX perp from the market, never from our own quotes (pure, no clock reads).

One estimate serves the quoting model (the centre of every quote), the risk engine's collar and its
jump trigger, so all three agree on where the market is.

Sources, best first::

    source   input                                   used when
    -------  --------------------------------------  ------------------------------------------
    CEX      filtered index + premium (the exchange  the exchange mid is younger than
             mid with its basis filtered out)        ``max_cex_age_s``
    ORACLE   oracle / index price                    the exchange is stale, the oracle is younger
                                                     than ``max_oracle_age_s``
    DEX      other makers' mid on the DEX book       both are stale and the book (without our
             (our own orders removed by the caller)  orders) is two-sided and was last *posted*
                                                     (changed on a live chain) within
                                                     ``max_dex_age_s``
    LAST     the last estimate, flagged ``stale``    nothing is fresh (the caller withdraws)

The book's age is the age of its last post, not of the last read: the runtime reads the book
every cycle, and a book read now is not a price now. On a halted chain (or after the other
makers have left) it holds the same quotes for as long as the halt lasts, and right after one
it changes with quotes posted before it, at prices the market has left. The DEX source uses the
same rule as the premium below (:class:`PremiumFreshness`, its book half: ``book_fresh``), so
a halted chain's book with the exchange and the oracle stale is ``stale``, never fair value.

Fair value is the **index**, as the exchange tells it now, plus the perp's **premium** over it::

    fair = index estimate + premium

The **index estimate** is a two-state Kalman filter in log prices: the state is the log index
``x`` (a random walk) and the exchange's log basis ``c = log(exchange mid) − x`` (mean-reverting,
Ornstein-Uhlenbeck with half-life ``basis_halflife_s`` and stationary standard deviation
``basis_vol_bps`` around a long-run mean learned from the reports). Two observations feed it:

* the **exchange mid**, fresh every cycle: an exact observation of ``x + c``. Between oracle
  reports it moves both: a move of the exchange is partly the index (variance ``σ_x²·dt``) and
  partly basis noise (variance of the OU increment), and the filter splits it by those two
  variances, while the basis prediction decays toward its mean between reports instead of being
  held (an EWMA of reports holds an old offset that the exchange has already given back).
* the **oracle report**: an exact but stale observation of ``x`` at its publication time; a
  report older than the latest exchange mid is an observation of the index that time ago, so its
  variance grows by ``σ_x²·age``.

``σ_x²`` (the index's variance per second) starts at ``index_vol_bps_per_sqrt_s`` and is learned
from the oracle's own increments (EWMA, ``index_vol_halflife_s``; one increment counts at most
``jump_z²`` times the current estimate, so one jump does not make the filter ignore the basis for
minutes). An exchange move beyond ``jump_z`` standard deviations of its prediction is taken as an
index move whole: a 3 % jump is not basis noise, and splitting it would leave fair value tens of
bps behind the exchange until the next report.

A report is used only while oracle and exchange agree within ``band_bps``: a slow oracle
heartbeat behind a fast exchange move must not drag fair value back to the old price. That
disagreement is reported instead (``divergence_bps``): the risk engine reads it, and the exchange
side wins, because the chain is the one that lags.

The **premium** is what the perp trades at over the index, the very thing funding is paid on: an
EWMA (``premium_halflife_s``) of ``other makers' DEX mid − the index estimate``, times
``dex_premium_weight``. It is sampled only when other makers' book **changes** (our own orders
removed by the caller): a maker's quote is fresh when it is posted and goes stale while the index
moves under it, so comparing an unchanged book with a moving index reads the index's move since
the maker posted as a premium (background makers re-post every few seconds or bps; sampling
every book added 0.13 bps to the mean |fair-value error| in calm and 0.19 bps in funding_flip,
replayed on the scenario timelines, seeds 0-4). A perp whose market sits 3 bps over the index is
worth 3 bps over it; centring on the index instead leaves every quote that far off where the
takers and arbitrageurs price it. A book mid more than ``max_premium_bps`` from the index is a
dislocated or one-sided-thin book, not a premium, and is not sampled.

A changed book is a fresh post only while the chain is live: the caller says so with
``premium_fresh`` (:class:`PremiumFreshness`, computed once per cycle and given to the P&L ledger
as well). Right after a halt the book changes, but with quotes posted before it: the first block
after ``holdout/chain_halt``'s 5-minute halt put other makers' mid 74 bps over the world's fair
value for 11 s, and fair value read that as premium. While the premium is not fresh the EWMA holds
its last fresh value, as the ledger's DEX mark does, so the model, the collar, the risk engine and
the ledger price the perp's premium alike.

The oracle is also the **sanity band**: an estimate more than ``band_bps`` away from a fresh
oracle sets ``divergent``. Nothing is clamped: clamping to a lagging oracle is exactly how asks get
re-posted under the new price and lifted.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = [
    "FairValue",
    "FairValueEstimator",
    "FairValueParams",
    "FairValueSource",
    "PremiumFreshness",
]

_LN2 = math.log(2.0)
_BPS = 1e4
_R_CEX = (0.05 / _BPS) ** 2
"""Variance of an exchange mid reading, log units (its tick and rounding: 0.05 bps)."""
_R_ORACLE = (0.05 / _BPS) ** 2
"""Variance of an oracle report against the index it publishes, log units."""


class FairValueSource(enum.StrEnum):
    """Which input set the estimate."""

    CEX = "cex"
    ORACLE = "oracle"
    DEX = "dex"
    LAST = "last"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FairValueParams:
    """Settings of the fair-value estimator; every field carries its unit.

    The basis and index-volatility defaults describe a liquid exchange's mid against an index
    (a few bps of offset that mean-reverts within a minute, 40-50 % annual volatility); the
    filter's answers change little for half or twice these values (calm timelines replayed, seeds
    0-4: mean |fair-value error| 0.41 bps at the defaults, 0.42-0.50 with any one of them halved or
    doubled, against 0.63 for the EWMA it replaced), and the index volatility is learned from the
    oracle's reports.
    """

    basis_halflife_s: float = 30.0
    """Mean-reversion half-life of the exchange's basis (its offset from the index), seconds."""
    basis_vol_bps: float = 2.0
    """Stationary standard deviation of the exchange's basis around its mean, bps."""
    basis_mean_halflife_s: float = 300.0
    """Half-life of the EWMA of reported bases that sets the basis's long-run mean, seconds."""
    index_vol_bps_per_sqrt_s: float = 0.8
    """Prior volatility of the index, bps per √second (45 % a year is 0.8), until the oracle's
    increments say otherwise."""
    index_vol_halflife_s: float = 120.0
    """Half-life of the EWMA of the oracle's squared increments per second, seconds."""
    jump_z: float = 4.0
    """An exchange move beyond this many standard deviations of its prediction is an index move
    (none of it is basis)."""
    premium_halflife_s: float = 2.0
    """Half-life of the premium EWMA (other makers' DEX mid over the index), seconds. Samples are
    fresh posts only (a few seconds apart), so the newest outweighs the rest. An EWMA trailing a
    premium that falls at rate ``v`` sits ``v·h/ln 2`` above it (``h`` the half-life); in a sell
    cascade the premium falls bps per ten seconds and a long half-life keeps the quotes' centre
    above the perp's value while the cascade fills our bids (funding_flip, L2, 600 s, seeds 0-4:
    net -0.05 at 15 s, +10.75 at 5 s, sampling every book). Fresh-post samples, replayed on the
    scenario timelines (5 seeds): |fair error| calm 0.41/0.41/0.42 bps and funding_flip
    0.58/0.64/0.78 bps at 2/3/5 s."""
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
    """The basis estimate is held within ± this many bps."""

    def __post_init__(self) -> None:
        positive = (
            self.basis_halflife_s,
            self.basis_vol_bps,
            self.basis_mean_halflife_s,
            self.index_vol_bps_per_sqrt_s,
            self.index_vol_halflife_s,
            self.jump_z,
            self.premium_halflife_s,
            self.max_premium_bps,
            self.max_cex_age_s,
            self.max_oracle_age_s,
            self.max_dex_age_s,
            self.band_bps,
            self.max_basis_bps,
        )
        if not all(x > 0.0 for x in positive):
            raise ConfigError("fair value: half-lives, volatilities, ages and bands must be > 0")
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


@dataclass(slots=True)
class PremiumFreshness:
    """Whether the DEX premium read this cycle is a price: a fresh book against a fresh index.

    One rule, computed once per cycle by the caller and given to both readers of the premium:
    :meth:`FairValueEstimator.update_dex` samples the premium only when it holds, and the P&L
    ledger (:meth:`agent.pnl.PnlLedger.mark_fair`) marks the DEX leg with a premium only when it
    holds. Two copies would drift apart, and then the ledger would count money at a price the
    model, the collar and the risk engine do not quote from (as it did when only the ledger had
    this rule). The state below advances on every call: call :meth:`fresh` once per cycle.

    The premium is other makers' DEX mid less the index estimate, so both must be fresh:

    * the **book**, while the chain produces blocks and has done so for ``settle_s`` since its
      last gap: during a halt or a stall nothing on the book can move, and right after one the
      book still holds quotes posted before it, at prices the market has left
      (``holdout/chain_halt`` seed 0: the first block after the 5-minute halt put other makers'
      mid 74 bps over fair value, for 11 s, until they re-posted);
    * the **index**, in a cycle that brought a new exchange mid: fair value keeps using the last
      one for ``max_cex_age_s`` after the exchange stops answering, and a book that follows the
      market against that held index reads the market's move as premium, on the DEX leg only
      while the hedge is marked at the held mid (a 3-s window: $18 of phantom drawdown on 0.25
      units in a fall of $60 a second, ``tests/e2e/scenarios/exchange_down_in_a_fall.toml``).

    Parameters
    ----------
    gap_s
        A head older than this, or two heads further apart, is a gap (the risk engine's
        block-age warn level, seconds).
    settle_s
        How long the book takes to count as fresh again after a gap, seconds (the fair-value
        estimator's ``max_dex_age_s``: beyond that age a DEX quote is stale).
    """

    gap_s: float
    settle_s: float
    _head_seen_s: float | None = None
    _settled_s: float = -math.inf
    _index_read_s: float | None = None
    _book_fresh: bool = False

    @property
    def book_fresh(self) -> bool:
        """Return the book half of the last :meth:`fresh`: the chain is live and has settled.

        A book that changes while this holds is a post made now, whether or not the exchange
        answered: what the DEX fallback of fair value needs when the exchange is down.
        """
        return self._book_fresh

    def fresh(self, now_s: float, head_seen_s: float, index_read_s: float | None = None) -> bool:
        """Return whether the premium read at `now_s` is fresh.

        Parameters
        ----------
        now_s
            Now, seconds (the caller's clock).
        head_seen_s
            When the chain's current head was first seen (same clock).
        index_read_s
            When the exchange mid the index estimate rests on was read (same clock); None when
            there is no exchange (the index is the oracle's, and only the book is judged).
        """
        last = self._head_seen_s
        if last is not None and head_seen_s - last > self.gap_s:
            self._settled_s = head_seen_s + self.settle_s
        self._head_seen_s = head_seen_s
        new_index = index_read_s is None or index_read_s != self._index_read_s
        self._index_read_s = index_read_s
        self._book_fresh = now_s - head_seen_s <= self.gap_s and now_s >= self._settled_s
        return new_index and self._book_fresh


class FairValueEstimator:
    """Track the exchange mid, the oracle and other makers' DEX mid; report fair value.

    Each ``update_*`` takes the observation's time (seconds, the caller's clock) and ``value(t)``
    reports as of ``t``. Feeding the same sequence gives the same answers. The filter's state is
    plain floats (it runs every cycle): ``_x`` the log index, ``_c`` the log basis, and their
    covariance ``_pxx``, ``_pxc``, ``_pcc``.
    """

    def __init__(self, params: FairValueParams | None = None) -> None:
        self.params = params if params is not None else FairValueParams()
        p = self.params
        self._cex: tuple[float, float] | None = None
        self._oracle: tuple[float, float] | None = None
        self._dex: tuple[float, float] | None = None
        self._kappa = _LN2 / p.basis_halflife_s
        self._basis_var = (p.basis_vol_bps / _BPS) ** 2
        self._index_var_per_s = (p.index_vol_bps_per_sqrt_s / _BPS) ** 2
        self._t: float | None = None
        """Time of the filter state (the last exchange mid or report folded in)."""
        self._x = 0.0
        self._c = 0.0
        self._c_mean = 0.0
        self._pxx = self._pxc = self._pcc = 0.0
        self._reported = False
        """Whether an oracle report has been folded in (before one, the basis is its mean)."""
        self._last_report: tuple[float, float] | None = None
        """(time, log price) of the last oracle report, for the index's variance."""
        self._book: tuple[float, float] | None = None
        """The book the premium last saw (sampled or seen while not fresh)."""
        self._posted: tuple[float, float] | None = None
        """The book the DEX source last saw; ``_dex`` moves only when it changes (a post)."""
        self._premium = 0.0
        self._premium_t: float | None = None
        self._last: float = math.nan

    @property
    def basis(self) -> float:
        """Return the current exchange basis estimate (index − exchange mid), price units."""
        if self._cex is None or self._t is None:
            return 0.0
        return self._cex[1] * math.expm1(-self._c)

    @property
    def premium(self) -> float:
        """Return the current premium estimate (DEX perp over the index), price units."""
        return self._premium

    @property
    def basis_mean_log(self) -> float:
        """Return the exchange's long-run log basis over the index (learned from reports)."""
        return self._c_mean

    @property
    def covariance(self) -> tuple[float, float, float]:
        """Return the filter's covariance (var log index, covariance, var log basis)."""
        return self._pxx, self._pxc, self._pcc

    @property
    def index_vol_bps_per_sqrt_s(self) -> float:
        """Return the index volatility the filter uses, bps per √second."""
        return math.sqrt(self._index_var_per_s) * _BPS

    def update_cex(self, t_s: float, mid: float) -> None:
        """Feed the exchange mid observed at ``t_s`` (an exact reading of index × basis)."""
        if not (math.isfinite(mid) and mid > 0.0):
            return
        self._cex = (t_s, mid)
        z = math.log(mid)
        if self._t is None:
            self._t = t_s
            self._x, self._c = z - self._c_mean, self._c_mean
            # The exchange reads x + c exactly: all the doubt is how it splits.
            v = self._basis_var
            self._pxx, self._pxc, self._pcc = v, -v, v
            return
        self._predict(t_s)
        nu = z - self._x - self._c
        s = self._pxx + 2.0 * self._pxc + self._pcc + _R_CEX
        if nu * nu > self.params.jump_z**2 * s:
            # A jump of the exchange is a move of the index, not basis noise.
            self._x += nu
            return
        kx = (self._pxx + self._pxc) / s
        kc = (self._pxc + self._pcc) / s
        self._x += kx * nu
        self._c += kc * nu
        hx = self._pxx + self._pxc  # H·P, the row both gains multiply
        hc = self._pxc + self._pcc
        self._pxx -= kx * hx
        self._pxc -= kx * hc
        self._pcc -= kc * hc
        self._clamp_basis()

    def update_oracle(self, t_s: float, price: float) -> None:
        """Feed an oracle (index) report published at ``t_s``; corrects the basis."""
        if not (math.isfinite(price) and price > 0.0):
            return
        self._oracle = (t_s, price)
        cex = self._fresh(self._cex, t_s, self.params.max_cex_age_s)
        if cex is None or self._t is None:
            return
        if abs(price - cex) / price * _BPS > self.params.band_bps:
            # Disagreement: one of the two has moved and the other has not caught up yet. That
            # is not a basis; it shows as divergence until the chain side catches up.
            return
        z = math.log(price)
        self._learn_index_var(t_s, z)
        self._predict(t_s)
        # A report older than the state observes the index that long ago.
        r = _R_ORACLE + self._index_var_per_s * max(self._t - t_s, 0.0)
        nu = z - self._x
        s = self._pxx + r
        kx = self._pxx / s
        kc = self._pxc / s
        self._x += kx * nu
        self._c += kc * nu
        pxx, pxc = self._pxx, self._pxc
        self._pxx -= kx * pxx
        self._pxc -= kx * pxc
        self._pcc -= kc * pxc
        self._clamp_basis()
        # The basis's long-run mean: an EWMA of the reported bases (the exchange's own offset).
        reported = math.log(cex) - z
        if not self._reported:
            self._c_mean = reported
        else:
            dt = max(t_s - self._last_report[0], 0.0) if self._last_report else 0.0
            w = math.exp(-_LN2 * dt / self.params.basis_mean_halflife_s)
            self._c_mean = w * self._c_mean + (1.0 - w) * reported
        self._reported = True
        self._last_report = (t_s, z)

    def update_dex(
        self,
        t_s: float,
        best_bid: float | None,
        best_ask: float | None,
        *,
        premium_fresh: bool = True,
        book_fresh: bool | None = None,
    ) -> None:
        """Feed the DEX book's best bid and ask *excluding our own orders* at ``t_s``.

        A one-sided or crossed book carries no mid and is ignored. The premium is sampled only
        when the book changed since the last call (a fresh post; see the module docstring) and
        `premium_fresh` (:meth:`PremiumFreshness.fresh` for this cycle) holds. The DEX source's
        mid and age move only when the book changed and `book_fresh`
        (:attr:`PremiumFreshness.book_fresh`; None: `premium_fresh`, the stricter rule) holds:
        an unchanged book, or one changed by quotes mined after a halt, keeps the age of its
        last post and turns stale ``max_dex_age_s`` after it.
        """
        if best_bid is None or best_ask is None or not 0.0 < best_bid < best_ask:
            return
        mid = 0.5 * (best_bid + best_ask)
        book = (best_bid, best_ask)
        if book != self._posted:
            self._posted = book
            if premium_fresh if book_fresh is None else book_fresh:
                self._dex = (t_s, mid)
        if book == self._book:
            return
        if not premium_fresh:
            # Seen but not sampled: once the chain has settled, only a book that changes again
            # (a post made since) is read, never the quotes that were resting through the gap.
            self._book = book
            return
        index = self._index_now(t_s)
        if index is None:
            return  # sampled once an index is known
        self._book = book
        if abs(mid - index) / index * _BPS > self.params.max_premium_bps:
            return
        target = mid - index
        if self._premium_t is None:
            self._premium = target
        else:
            dt = max(t_s - self._premium_t, 0.0)
            w_old = math.exp(-_LN2 * dt / self.params.premium_halflife_s)
            self._premium = w_old * self._premium + (1.0 - w_old) * target
        self._premium_t = t_s

    def value(self, t_s: float) -> FairValue:
        """Return the fair value as of ``t_s``."""
        p = self.params
        oracle = self._fresh(self._oracle, t_s, p.max_oracle_age_s)
        cex = self._fresh(self._cex, t_s, p.max_cex_age_s)
        dex = self._fresh(self._dex, t_s, p.max_dex_age_s)
        premium = p.dex_premium_weight * self._premium
        basis = self.basis
        if cex is not None and self._cex is not None:
            price, source, age = cex + basis + premium, FairValueSource.CEX, t_s - self._cex[0]
        elif oracle is not None and self._oracle is not None:
            price, source, age = oracle + premium, FairValueSource.ORACLE, t_s - self._oracle[0]
        elif dex is not None and self._dex is not None:
            price, source, age = dex, FairValueSource.DEX, t_s - self._dex[0]
        elif math.isfinite(self._last):
            ages = [t_s - o[0] for o in (self._cex, self._oracle, self._dex) if o is not None]
            return FairValue(self._last, FairValueSource.LAST, basis, min(ages), 0.0, True, False)
        else:
            return FairValue(math.nan, FairValueSource.NONE, 0.0, math.inf, 0.0, True, False)
        self._last = price
        # The sanity band is on the index: the premium is the perp's own, not a disagreement.
        divergence = abs(price - premium - oracle) / oracle * _BPS if oracle is not None else 0.0
        return FairValue(
            price,
            source,
            basis + premium,
            max(age, 0.0),
            divergence,
            False,
            divergence > p.band_bps,
        )

    def _index_now(self, t_s: float) -> float | None:
        """The index as the freshest input tells it: the filter's, else the oracle."""
        p = self.params
        cex = self._fresh(self._cex, t_s, p.max_cex_age_s)
        if cex is not None and self._reported:
            return cex + self.basis
        return self._fresh(self._oracle, t_s, p.max_oracle_age_s)

    def _predict(self, t_s: float) -> None:
        """Carry the state to ``t_s``: the index diffuses, the basis decays toward its mean."""
        assert self._t is not None
        dt = t_s - self._t
        if dt <= 0.0:
            return  # a late observation is folded in at the state's time
        e = math.exp(-self._kappa * dt)
        self._c = self._c_mean + (self._c - self._c_mean) * e
        self._pxx += self._index_var_per_s * dt
        self._pxc *= e
        self._pcc = self._pcc * e * e + self._basis_var * (1.0 - e * e)
        self._t = t_s

    def _learn_index_var(self, t_s: float, z: float) -> None:
        """Fold one oracle increment into the index variance per second (winsorized EWMA)."""
        last = self._last_report
        if last is None or t_s <= last[0]:
            return
        dt = t_s - last[0]
        per_s = min((z - last[1]) ** 2 / dt, self.params.jump_z**2 * self._index_var_per_s)
        w = math.exp(-_LN2 * dt / self.params.index_vol_halflife_s)
        self._index_var_per_s = w * self._index_var_per_s + (1.0 - w) * per_s

    def _clamp_basis(self) -> None:
        bound = self.params.max_basis_bps / _BPS
        if abs(self._c) > bound:
            shift = math.copysign(bound, self._c) - self._c
            self._c += shift
            self._x -= shift  # the exchange mid still reads x + c

    @staticmethod
    def _fresh(obs: tuple[float, float] | None, t_s: float, max_age_s: float) -> float | None:
        if obs is None or t_s - obs[0] > max_age_s:
            return None
        return obs[1]
