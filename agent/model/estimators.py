"""Online estimators: O(1) per update, explicit timestamps, frozen snapshots.

Each estimator is a plain class: ``update_*`` methods take the event time in seconds (never read a
clock) and ``snapshot()`` returns a frozen dataclass. ``Estimators`` bundles them and produces the
``ModelEstimates`` that ``decide`` consumes.

====================== ========================================================================
estimator              what it tracks
====================== ========================================================================
EwmaVolatility         σ of log returns per √s (time-decayed EWMA of r²/Δt), reported absolute
FillIntensity          (A, k) of λ(δ) = A·e^(−kδ) from trade distances to mid (log-linear fit)
QuoteFillIntensity     (A, k) from our own quotes' fills per exposure time by distance from fair
BaseFeeForecaster      next base fee by the EIP-1559 rule, tail from its own errors, spike flag
InclusionDelay         submit → inclusion seconds and blocks, drop rate
FundingPredictor       running premium TWAP → predicted rate, P(sign flips before snapshot)
====================== ========================================================================
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from operator import mul as _mul

from agent.errors import ConfigError

__all__ = [
    "BaseFeeForecaster",
    "BaseFeeSnapshot",
    "DelaySnapshot",
    "Estimators",
    "EwmaVolatility",
    "FillIntensity",
    "FillIntensitySnapshot",
    "FundingPredictor",
    "FundingSnapshot",
    "InclusionDelay",
    "ModelEstimates",
    "QuoteFillIntensity",
    "QuoteLife",
    "VolSnapshot",
]

_Z95 = 1.6448536269514722
_Z99 = 2.3263478740408408
_MIN_ERROR_SD = 0.01
"""Floor on the base-fee forecast error's σ (log units) for the spike flag: integer-wei rounding
of a quiet node's fees must not read as a spike."""
_LN2 = math.log(2.0)


def _decay(dt_s: float, halflife_s: float) -> float:
    """Weight kept by the old estimate after ``dt_s`` (1 when no time passed)."""
    if dt_s <= 0.0:
        return 1.0
    return math.exp(-_LN2 * dt_s / halflife_s)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True, slots=True)
class ModelEstimates:
    """The estimator outputs a decision needs (see ``agent.model.quoting`` for units)."""

    sigma_per_sqrt_s: float
    """Absolute volatility, price units per √second."""
    fill_a_per_s: float
    fill_k_per_price: float
    base_fee_wei: float
    """Forecast base fee of the block the next update lands in."""
    base_fee_p99_wei: float
    tip_wei: float
    inclusion_delay_s: float
    funding_rate: float
    """Predicted funding rate for the next snapshot, fraction per interval (+: longs pay)."""
    funding_flip_prob: float
    sigma_implied_per_sqrt_s: float | None = None
    paid_gas_price_wei: float | None = None
    """Gas price the pipeline actually pays (its base fee + tip estimate); when set it replaces
    ``base_fee_wei + tip_wei`` in the model (the spike tail is still added)."""
    l1_fee_per_byte_wei: float = 0.0
    """L2 only: L1 data fee per byte of calldata, wei (0 on an L1)."""


@dataclass(frozen=True, slots=True)
class VolSnapshot:
    """Volatility estimate."""

    sigma_rel_per_sqrt_s: float
    sigma_per_sqrt_s: float
    samples: int


class EwmaVolatility:
    """EWMA realized volatility of log returns, time-decayed so irregular sampling is handled.

    Parameters
    ----------
    halflife_s
        Half-life of the variance estimate.
    prior_sigma_rel_per_sqrt_s
        Relative σ reported before enough samples arrive (and the EWMA's starting point).
    """

    def __init__(self, halflife_s: float = 300.0, prior_sigma_rel_per_sqrt_s: float = 5e-4):
        if halflife_s <= 0.0:
            raise ConfigError("EwmaVolatility: halflife_s must be > 0")
        self._halflife_s = halflife_s
        self._var_rate = prior_sigma_rel_per_sqrt_s**2
        self._last_t: float | None = None
        self._last_log_price = 0.0
        self._last_price = 0.0
        self._samples = 0

    def update_price(self, t_s: float, price: float, jump_log_return: float = math.inf) -> None:
        """Feed one mid (or mark) observation at time ``t_s``.

        A log return of at least ``jump_log_return`` (in size) is a jump: the level moves, the
        diffusion variance does not (a truncated realized variance, after Mancini). Otherwise a
        single 3% step read 0.1 s after the last price held σ at 8/yr for minutes.
        """
        if price <= 0.0:
            return
        log_price = math.log(price)
        if self._last_t is not None:
            dt = t_s - self._last_t
            ret = log_price - self._last_log_price
            if dt <= 0.0 or abs(ret) >= jump_log_return:
                # Same-timestamp updates carry no elapsed time, and a jump carries no
                # diffusion: keep the latest price (and time) only.
                self._last_log_price = log_price
                self._last_price = price
                if dt > 0.0:
                    self._last_t = t_s
                return
            w = _decay(dt, self._halflife_s)
            self._var_rate = w * self._var_rate + (1.0 - w) * ret * ret / dt
            self._samples += 1
        self._last_t = t_s
        self._last_log_price = log_price
        self._last_price = price

    def snapshot(self) -> VolSnapshot:
        """Return σ relative and absolute (at the last price), per √second."""
        rel = math.sqrt(self._var_rate)
        return VolSnapshot(rel, rel * self._last_price, self._samples)


@dataclass(frozen=True, slots=True)
class FillIntensitySnapshot:
    """Fill-intensity fit; ``fitted`` is False when the priors are being reported."""

    a_per_s: float
    k_per_price: float
    fitted: bool
    trades: float


class FillIntensity:
    """Fit ``λ(δ) = A·exp(−kδ)`` from how far trades reach from mid.

    A trade that reaches distance δ from mid would have filled a quote at any distance ≤ δ, so the
    intensity at δ is the (time-decayed) rate of trades reaching at least δ. Distances go into fixed
    bins (O(1) per trade; the decay is applied by a running scale factor); ``snapshot`` does a
    weighted least-squares fit of ``ln λ(δ_i)`` on ``δ_i`` over the bins' upper tails.

    Trades of ``sides`` sides are pooled; ``A`` is reported per side.
    Reports the priors with fewer than ``min_trades`` decayed trades or fewer than three non-empty
    tail bins, and keeps the last accepted fit (the prior if none) for a fitted ``k`` the
    histogram cannot identify: not positive, or a decay length ``1/k`` beyond ten times the
    binned span (trades all landing in the last, open-ended bin give a flat tail whose slope is
    rounding noise; taking it would make ``k`` vanish and the quoted spread explode).

    Prefer ``QuoteFillIntensity``: trade distances from a mid that contains our own quotes depend
    on where we quote, and over an hour this fit drifted 1/k from $30 to $9.5.
    """

    def __init__(
        self,
        bin_width: float,
        n_bins: int = 20,
        halflife_s: float = 600.0,
        prior_a_per_s: float = 0.05,
        prior_k_per_price: float = 1.0,
        min_trades: float = 30.0,
        sides: int = 2,
    ) -> None:
        if bin_width <= 0.0 or n_bins < 3 or halflife_s <= 0.0:
            raise ConfigError("FillIntensity: need bin_width > 0, n_bins >= 3, halflife_s > 0")
        self._bin_width = bin_width
        self._counts = [0.0] * n_bins
        self._halflife_s = halflife_s
        self._prior = (prior_a_per_s, prior_k_per_price)
        self._last_fit: tuple[float, float] | None = None
        self._min_trades = min_trades
        self._sides = max(sides, 1)
        self._t0: float | None = None
        self._t_last = 0.0

    def update_trade(self, t_s: float, distance: float) -> None:
        """Record a taker trade that reached ``distance`` (price units, ≥ 0) from mid at ``t_s``."""
        if self._t0 is None:
            self._t0 = t_s
        # Weight new trades up instead of decaying every bin: O(1). Rebase before overflow.
        exponent = _LN2 * (t_s - self._t0) / self._halflife_s
        if exponent > 600.0:
            scale = math.exp(-exponent)
            self._counts = [c * scale for c in self._counts]
            self._t0 = t_s
            exponent = 0.0
        i = min(int(max(distance, 0.0) / self._bin_width), len(self._counts) - 1)
        self._counts[i] += math.exp(exponent)
        self._t_last = max(self._t_last, t_s)

    def snapshot(self, t_s: float | None = None) -> FillIntensitySnapshot:
        """Return (A, k) at time ``t_s`` (default: the last trade's time)."""
        a0, k0 = self._prior
        if self._t0 is None:
            return FillIntensitySnapshot(a0, k0, False, 0.0)
        now = self._t_last if t_s is None else max(t_s, self._t_last)
        to_now = math.exp(-_LN2 * (now - self._t0) / self._halflife_s)
        counts = [c * to_now for c in self._counts]
        total = sum(counts)
        # Decayed counts / effective window length = rate per second.
        window = (
            self._halflife_s / _LN2 * (1.0 - math.exp(-_LN2 * (now - self._t0) / self._halflife_s))
        )
        window = max(window, 1e-9)
        tail = total
        xs: list[float] = []
        ys: list[float] = []
        ws: list[float] = []
        for i, c in enumerate(counts):
            if tail > 0.5:
                xs.append(i * self._bin_width)
                ys.append(math.log(tail / window))
                ws.append(tail)
            tail -= c
        if total < self._min_trades or len(xs) < 3:
            return FillIntensitySnapshot(a0, k0, False, total)
        sw = sum(ws)
        mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
        my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
        sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
        sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True))
        slope = sxy / sxx if sxx > 0.0 else 0.0
        span = self._bin_width * len(self._counts)
        if slope >= 0.0 or -slope * 10.0 * span < 1.0:
            # A rejected fit keeps the last accepted one: jumping back to the prior moved the
            # spread by the prior's error on every rejection.
            a_keep, k_keep = self._last_fit if self._last_fit is not None else (a0, k0)
            return FillIntensitySnapshot(a_keep, k_keep, False, total)
        a_total = math.exp(my - slope * mx)
        self._last_fit = (a_total / self._sides, -slope)
        return FillIntensitySnapshot(a_total / self._sides, -slope, True, total)


class QuoteFillIntensity:
    """Fit ``λ(δ) = A·exp(−kδ)`` from our own quotes: exposure time and fills by distance from fair.

    Each resting quote at distance ``δ`` from *fair value* (never from a mid that contains our own
    quotes) accrues exposure time in ``δ``'s bucket; each fill of one of our quotes counts in the
    bucket of its distance at the time it filled. Per bucket the fill rate is
    ``fills / exposure``, a Poisson rate per quote (so ``A`` is per side). The fit is the
    maximum-likelihood Poisson regression of fills on exposure, with a **prior** entered as
    pseudo-observations: ``prior_weight_s`` quote-seconds in every bucket filled at the prior's
    rate ``A0·exp(−k0·δ)``. Hence

    * the estimate starts at the prior and moves toward the data as exposure accrues: there is no
      switch between "prior" and "fit", so nothing ever jumps back to the prior;
    * counts decay with ``halflife_s`` (an EWMA of the data), the prior does not: a quiet spell
      drifts the estimate toward the prior, smoothly;
    * a distance never quoted carries only the prior, so ``k`` cannot collapse because we stopped
      quoting somewhere (the old trade-distance fit did, as our quotes moved the mid it measured
      from).

    The state (counts, bucket width, clock) round-trips through ``to_state`` / ``from_state`` for
    persistence across restarts.

    Parameters
    ----------
    bin_width
        Bucket width, price units (e.g. 1 bp of the price).
    n_bins
        Buckets; distances beyond the last go into it.
    prior_a_per_s
        Prior arrivals per second per side reaching fair value (~0.05 on a thin perp DEX).
    prior_k_per_price
        Prior decay per price unit (e.g. ``1 / (5 bps of price)``).
    prior_weight_s
        Pseudo-exposure of the prior per bucket, quote-seconds: how much data outweighs it.
    halflife_s
        Half-life of the observed counts.
    """

    def __init__(
        self,
        bin_width: float,
        n_bins: int = 24,
        prior_a_per_s: float = 0.05,
        prior_k_per_price: float = 1.0,
        prior_weight_s: float = 120.0,
        halflife_s: float = 3_600.0,
    ) -> None:
        if bin_width <= 0.0 or n_bins < 3 or halflife_s <= 0.0:
            raise ConfigError("QuoteFillIntensity: need bin_width > 0, n_bins >= 3, halflife_s > 0")
        if prior_a_per_s <= 0.0 or prior_k_per_price <= 0.0 or prior_weight_s <= 0.0:
            raise ConfigError("QuoteFillIntensity: the prior's A, k and weight must be > 0")
        self._bin_width = bin_width
        self._prior = (prior_a_per_s, prior_k_per_price, prior_weight_s)
        self._halflife_s = halflife_s
        self._exposure = [0.0] * n_bins
        self._fills = [0.0] * n_bins
        self._t: float | None = None
        self._resting: tuple[float, ...] = ()
        self._grid_cache: tuple[list[float], list[float]] | None = None
        self._k_last: float | None = None
        """The last fit's k: a hint that speeds up the next fit, never changes its result."""

    @classmethod
    def for_price(
        cls,
        ref_price: float,
        prior_a_per_s: float = 0.05,
        prior_decay_bps: float = 5.0,
        bin_bps: float = 1.0,
        **kw: float,
    ) -> QuoteFillIntensity:
        """Return an estimator scaled to a market at ``ref_price`` (prior 1/k in bps of price)."""
        if ref_price <= 0.0:
            raise ConfigError("QuoteFillIntensity.for_price: ref_price must be > 0")
        return cls(
            bin_width=ref_price * bin_bps * 1e-4,
            prior_a_per_s=prior_a_per_s,
            prior_k_per_price=1.0 / (ref_price * prior_decay_bps * 1e-4),
            **kw,  # type: ignore[arg-type]
        )

    def _bin(self, distance: float) -> int:
        return min(int(max(distance, 0.0) / self._bin_width), len(self._fills) - 1)

    def _grid(self) -> tuple[list[float], list[float]]:
        """Bucket centres and the prior's pseudo-fills per bucket (fixed: computed once)."""
        grid = self._grid_cache
        if grid is None:
            a0, k0, w0 = self._prior
            xs = [(i + 0.5) * self._bin_width for i in range(len(self._fills))]
            grid = self._grid_cache = (xs, [w0 * a0 * math.exp(-k0 * x) for x in xs])
        return grid

    def _advance(self, t_s: float) -> None:
        if self._t is None:
            self._t = t_s
            return
        dt = t_s - self._t
        if dt <= 0.0:
            return
        w = _decay(dt, self._halflife_s)
        self._exposure = [e * w for e in self._exposure]
        # Exposure accrued over the interval, each instant decayed to t_s: ∫ e^(−λ(t−s)) ds.
        accrued = (1.0 - w) * self._halflife_s / _LN2
        for d in self._resting:
            self._exposure[self._bin(d)] += accrued
        self._fills = [f * w for f in self._fills]
        self._t = t_s

    def update_quotes(self, t_s: float, distances: tuple[float, ...]) -> None:
        """Credit exposure to the quotes resting until ``t_s`` and set the ones resting from now.

        ``distances`` are the new resting quotes' distances from fair value (price units, ≥ 0 on
        the passive side; a quote through fair counts as distance 0), one per quote, both sides.
        """
        self._advance(t_s)
        self._resting = tuple(max(d, 0.0) for d in distances)

    def update_fill(self, t_s: float, distance: float) -> None:
        """Record a fill of one of our quotes that rested ``distance`` from fair value."""
        self._advance(t_s)
        self._fills[self._bin(distance)] += 1.0

    def snapshot(self, t_s: float | None = None) -> FillIntensitySnapshot:
        """Return the posterior (A per side, k); ``trades`` is the decayed observed fill count."""
        if t_s is not None and self._t is not None and t_s > self._t:
            self._advance(t_s)
        k0, w0 = self._prior[1], self._prior[2]
        xs, prior_fills = self._grid()
        expo = [e + w0 for e in self._exposure]
        fills = [f + p for f, p in zip(self._fills, prior_fills, strict=True)]
        k = self._k_last = _poisson_decay_mle(xs, fills, expo, k0, self._k_last)
        weights = [e * math.exp(-k * x) for e, x in zip(expo, xs, strict=True)]
        a = sum(fills) / sum(weights)
        observed = sum(self._fills)
        return FillIntensitySnapshot(a, k, observed > 0.0, observed)

    def to_state(self) -> dict[str, object]:
        """Return a JSON-ready state for persistence (restore with ``from_state``)."""
        return {
            "version": 1,
            "bin_width": self._bin_width,
            "prior": list(self._prior),
            "halflife_s": self._halflife_s,
            "exposure": list(self._exposure),
            "fills": list(self._fills),
            "t": self._t,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> QuoteFillIntensity:
        """Rebuild an estimator from ``to_state``'s output.

        The clock restarts at the next update (the process clock of a new run is not the old
        one's), so downtime neither decays nor adds exposure.
        """
        if state.get("version") != 1:
            raise ConfigError(f"QuoteFillIntensity: unknown state version {state.get('version')!r}")
        exposure = [float(x) for x in state["exposure"]]  # type: ignore[attr-defined]
        fills = [float(x) for x in state["fills"]]  # type: ignore[attr-defined]
        a0, k0, w0 = (float(x) for x in state["prior"])  # type: ignore[attr-defined]
        out = cls(
            bin_width=float(state["bin_width"]),  # type: ignore[arg-type]
            n_bins=len(fills),
            prior_a_per_s=a0,
            prior_k_per_price=k0,
            prior_weight_s=w0,
            halflife_s=float(state["halflife_s"]),  # type: ignore[arg-type]
        )
        out._exposure, out._fills = exposure, fills
        return out


_NOTHING_CERTIFIED = (-math.inf, math.inf, -math.inf, math.inf)


def _poisson_decay_mle(
    xs: list[float], n: list[float], expo: list[float], k_start: float, hint: float | None = None
) -> float:
    """Return k maximising the Poisson likelihood of counts ``n`` over exposures ``expo``.

    With ``A`` profiled out, the score is zero where the exposure-weighted mean distance under
    weights ``expo·e^(−kx)`` equals the fills' mean distance; that mean falls in k, so bisection
    on ln k finds the root. Bounded to [k_start/100, k_start·100].

    It runs once per decision cycle, so it is written for speed without changing a bit of the
    result: the same products ``e·exp(−k·(x − x_min))`` are summed in the same order, built by
    ``map`` in C instead of a Python loop; the offsets ``x − x_min`` are taken once; and the loop
    stops once an iteration leaves the bracket unchanged (every further iteration would repeat
    it: the state is a fixed point).

    ``hint`` (a guess of k, e.g. the previous cycle's) lets most of the bisection's comparisons
    be decided without computing them, see :func:`_certified_bracket`: the bisection takes the
    same path and returns the same bits, hint or not. Measured need: the bisection (56–60
    evaluations of the weighted mean, 167 µs) was over a quarter of an event-sim decision; with
    the last fit's k as the hint about 16 evaluations plus Newton's few remain (80 µs).
    """
    total = sum(n)
    target = sum(map(_mul, n, xs)) / total
    lo, hi = math.log(k_start / 100.0), math.log(k_start * 100.0)
    x_min = xs[0]
    offsets = [x - x_min for x in xs]
    exp = math.exp

    def mean(k: float) -> float:
        w: list[float] = list(map(_mul, expo, map(exp, map(_mul, repeat(-k), offsets))))
        s1: float = sum(map(_mul, w, xs))
        return s1 / sum(w)

    # k at or below k_hi is certified to compare above the target, at or above k_lo below it;
    # ln k at or below m_hi (at or above m_lo) has such a k, without taking the exp.
    k_hi, k_lo, m_hi, m_lo = _NOTHING_CERTIFIED
    if hint is not None:
        k_hi, k_lo, m_hi, m_lo = _certified_bracket(xs, expo, offsets, target, lo, hi, hint, mean)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid <= m_hi:
            above = True
        elif mid >= m_lo:
            above = False
        else:
            k = exp(mid)
            above = k <= k_hi or (k < k_lo and mean(k) > target)
        if above:
            if lo == mid:
                break
            lo = mid
        else:
            if hi == mid:
                break
            hi = mid
    return math.exp(0.5 * (lo + hi))


def _certified_bracket(
    xs: list[float],
    expo: list[float],
    offsets: list[float],
    target: float,
    lo: float,
    hi: float,
    hint: float,
    mean: Callable[[float], float],
) -> tuple[float, float, float, float]:
    """Return ``(k_hi, k_lo, m_hi, m_lo)``: every float k ≤ k_hi has ``mean(k) > target``, every
    k ≥ k_lo has not; ``exp(m)`` for ``m ≤ m_hi`` is ≤ k_hi, for ``m ≥ m_lo`` ≥ k_lo.

    ``mean(k)`` is the computed value of the exact weighted mean
    ``F(k) = Σ tᵢ·xᵢ / Σ tᵢ`` with ``tᵢ = eᵢ·exp(−k·oᵢ)`` (``e`` the exposures, ``o`` the float
    offsets, all taken as exact reals), which is non-increasing in k: its derivative is
    ``−Cov_t(o, x) ≤ 0``, as ``o`` rises with ``x``. Rounding (``u = 2⁻⁵³``): a computed
    weight is ``tᵢ·(1 + ρᵢ)`` with ``|ρᵢ| ≤ (zᵢ + 6)·u``, ``zᵢ = k·oᵢ`` (the product ``k·oᵢ``
    rounded, then amplified by exp; exp's own error, budgeted at 2 ulp; the product with
    ``eᵢ``); the sums are sequential over positive terms (``(n − 1)·u``). So each sum is off by
    at most its t-weighted mean of ``zᵢ`` plus ``(n + 7)·u`` of itself, and the ratio by at most
    ``eps = 2·(z̄ + n + 8)·u``. The mean ``z̄`` is at most ``k·o_max``, and for any k at most
    ``(r − 1)/e`` with ``r = Σ eᵢ·xᵢ / (e₀·x₀)``, because ``z·exp(−z) ≤ 1/e`` and the first term
    (offset 0) weighs ``e₀`` exactly. Twice this bound is used, per side.

    So if ``mean(a) ≥ target·(1 + 3·eps)`` then for every float ``k ≤ exp(a)``:
    ``mean(k) ≥ F(k)·(1 − eps) ≥ F(exp(a))·(1 − eps) ≥ mean(a)·(1 − eps)/(1 + eps) > target``,
    and the mirror holds at and above ``exp(b)``. Newton's method from ``hint`` places ``a`` and
    ``b`` just either side of the root; whatever fails (a poor hint, a flat likelihood,
    non-finite sums) certifies nothing, and the caller computes every comparison as before.
    ``m_hi`` and ``m_lo`` keep 1e-13 from ``a`` and ``b`` in ln k, far more than exp's
    (budgeted 2 ulp) error needs for ``exp(m)`` to keep its side of ``exp(a)``, ``exp(b)``.
    """
    none = _NOTHING_CERTIFIED
    x0, e0 = xs[0], expo[0]
    # The proof needs positive weights, increasing distances and a positive target.
    if not (hint > 0.0 and x0 > 0.0 and e0 > 0.0 and 0.0 < target < math.inf):
        return none
    if min(expo) < 0.0 or any(map(operator.ge, xs, xs[1:])):
        return none
    r = sum(map(_mul, expo, xs)) / (e0 * x0)
    if not r < 1e9:
        return none
    exp = math.exp
    m = min(max(math.log(hint), lo), hi)
    slope = 0.0
    for _ in range(8):  # Newton on ln k: approximate is enough, the bracket below is checked
        k = exp(m)
        w = list(map(_mul, expo, map(exp, map(_mul, repeat(-k), offsets))))
        s0 = sum(w)
        wx = list(map(_mul, w, xs))
        mu = sum(wx) / s0
        slope = k * (sum(map(_mul, wx, xs)) / s0 - mu * mu) / mu  # −d ln F / d ln k
        if not (slope > 0.0 and math.isfinite(slope)):
            return none
        step = min(max((mu - target) / target / slope, -1.0), 1.0)
        m = min(max(m + step, lo), hi)
        if abs(step) < 1e-7:  # quadratic convergence: m is now within ~1e-14 of the root
            break
    n_u = (len(xs) + 8.0) * 2.0**-53
    z_any = (r - 1.0) / math.e * 2.0**-53
    # Twice the bound, per side: below the root every k ≤ exp(m), above it any k up to the top.
    eps_below = 4.0 * (min(exp(m) * offsets[-1] * 2.0**-53, z_any) + n_u)
    eps_above = 4.0 * (z_any + n_u)
    if not max(eps_below, eps_above) < 1e-6:
        return none
    delta_a = 16.0 * eps_below / slope + 4e-16 * (1.0 + abs(m))
    delta_b = 16.0 * eps_above / slope + 4e-16 * (1.0 + abs(m))
    if not max(delta_a, delta_b) < 1e-3:  # a flat likelihood (a fit at the edge): no gain
        return none
    a, b = m - delta_a, m + delta_b
    ka, kb = exp(a), exp(b)
    below = ka <= exp(m) and mean(ka) >= target * (1.0 + 3.0 * eps_below)
    above = mean(kb) <= target * (1.0 - 3.0 * eps_above)
    return (
        ka if below else -math.inf,
        kb if above else math.inf,
        a - 1e-13 if below else -math.inf,
        b + 1e-13 if above else math.inf,
    )


@dataclass(frozen=True, slots=True)
class BaseFeeSnapshot:
    """Base-fee forecast for the next block and its spike quantiles."""

    next_base_fee_wei: float
    p95_wei: float
    p99_wei: float
    spike: bool


class BaseFeeForecaster:
    """Forecast the next base fee (EIP-1559 rule) and its tail from the rule's own errors.

    The tail is ``forecast × exp(z·σ)`` where σ is an EWMA of the one-block forecast errors in log
    fee (what the rule did not predict: outside demand, a scripted or real spike), not the spread
    of the fees themselves. A fee the rule explains, such as a node decaying from 1 gwei towards
    its floor by 12.5% a block, has no tail; measured from the fees' own EWMA mean instead, that
    decay sat far below a lagging mean and priced a refresh near the old level for a hundred blocks
    (a live run priced its re-entry quotes out this way). The spike flag is raised when a block's
    error exceeds the p99 implied by the errors *before* that block (a spike cannot hide inside its
    own estimate), with σ floored at :data:`_MIN_ERROR_SD` so rounding on a quiet node never flags.
    """

    def __init__(self, halflife_blocks: float = 50.0, elasticity: float = 8.0) -> None:
        if halflife_blocks <= 0.0:
            raise ConfigError("BaseFeeForecaster: halflife_blocks must be > 0")
        self._alpha = 1.0 - _decay(1.0, halflife_blocks)
        self._elasticity = elasticity
        self._var = 0.0
        self._next = 0.0
        self._spike = False
        self._blocks = 0

    def update_block(self, t_s: float, base_fee_wei: float, gas_used: int, gas_limit: int) -> None:
        """Feed one block: its timestamp, base fee, gas used and gas limit."""
        del t_s  # block-indexed; the timestamp is accepted for a uniform interface
        fee = max(base_fee_wei, 1.0)
        if self._blocks > 0:
            err = math.log(fee) - math.log(max(self._next, 1.0))
            sd = max(math.sqrt(self._var), _MIN_ERROR_SD)
            self._spike = err > _Z99 * sd and self._blocks >= 10
            self._var = (1.0 - self._alpha) * self._var + self._alpha * err * err
        self._blocks += 1
        target = gas_limit / 2.0
        change = (gas_used - target) / target / self._elasticity if target > 0 else 0.0
        self._next = fee * (1.0 + change)

    def snapshot(self) -> BaseFeeSnapshot:
        """Return the forecast and p95/p99 (never below the forecast)."""
        if not self._blocks:
            return BaseFeeSnapshot(0.0, 0.0, 0.0, False)
        sd = math.sqrt(self._var)
        p95 = self._next * math.exp(_Z95 * sd)
        p99 = self._next * math.exp(_Z99 * sd)
        return BaseFeeSnapshot(self._next, p95, p99, self._spike)


@dataclass(frozen=True, slots=True)
class DelaySnapshot:
    """Inclusion-delay estimate."""

    mean_s: float
    p95_s: float
    mean_blocks: float
    drop_rate: float


class InclusionDelay:
    """EWMA of submit → inclusion delay fed by the transaction pipeline, plus a drop rate."""

    def __init__(self, alpha: float = 0.05, prior_delay_s: float = 2.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ConfigError("InclusionDelay: alpha must be in (0, 1]")
        self._alpha = alpha
        self._mean = prior_delay_s
        self._var = 0.0
        self._blocks = 1.0
        self._drop = 0.0

    def update_inclusion(self, submit_time_s: float, inclusion_time_s: float, blocks: int) -> None:
        """Record a transaction submitted at ``submit_time_s`` and included ``blocks`` later."""
        delay = max(inclusion_time_s - submit_time_s, 0.0)
        a = self._alpha
        d = delay - self._mean
        self._mean += a * d
        self._var = (1.0 - a) * (self._var + a * d * d)
        self._blocks += a * (blocks - self._blocks)
        self._drop *= 1.0 - a

    def update_dropped(self, submit_time_s: float) -> None:
        """Record a transaction that was dropped or replaced before inclusion."""
        del submit_time_s
        self._drop += self._alpha * (1.0 - self._drop)

    def snapshot(self) -> DelaySnapshot:
        """Return mean and p95 delay, mean blocks and the drop rate."""
        return DelaySnapshot(
            self._mean, self._mean + _Z95 * math.sqrt(self._var), self._blocks, self._drop
        )


@dataclass(frozen=True, slots=True)
class FundingSnapshot:
    """Funding prediction for the next snapshot."""

    predicted_rate: float
    flip_prob: float
    seconds_to_snapshot: float
    premium_twap: float


class FundingPredictor:
    """Predict the next funding rate from the running premium and the chance its sign flips.

    The rate paid at a snapshot is the contract's (``FundingMath.rate``): an 8-hour rate
    ``r8h = P + clamp(I − P, ±clamp)`` from the time-weighted average premium ``P`` over the
    interval, scaled to the interval and capped, ``r = clamp(r8h · interval / 8 h, ±cap)``.
    ``interest_rate`` and ``clamp`` are per ``rate_basis_s`` (8 h) as in the contract; the
    predicted rate is **per interval**, what a unit of position pays at the snapshot as a fraction
    of mark. Build it with the market's interval, interest, clamp and cap. Snapshots fall at
    multiples of ``interval_s`` from ``offset_s``. The premium is modeled as a random walk whose
    variance per second is an EWMA of observed increments; the remaining part of the TWAP then has
    variance ``v·τ/3`` around the current premium, which gives
    ``P(sign of the final rate ≠ sign of the prediction)``.
    """

    def __init__(
        self,
        interval_s: float = 28_800.0,
        offset_s: float = 0.0,
        interest_rate: float = 0.0001,
        clamp: float = 0.0005,
        halflife_s: float = 3_600.0,
        rate_basis_s: float = 28_800.0,
        cap: float = math.inf,
    ) -> None:
        if interval_s <= 0.0 or halflife_s <= 0.0 or rate_basis_s <= 0.0:
            raise ConfigError("FundingPredictor: interval_s, halflife_s, rate_basis_s must be > 0")
        if not cap > 0.0:
            raise ConfigError("FundingPredictor: cap must be > 0")
        self._scale = interval_s / rate_basis_s
        self._cap = cap
        self._interval = interval_s
        self._offset = offset_s
        self._interest = interest_rate
        self._clamp = clamp
        self._halflife = halflife_s
        self._epoch: int | None = None
        self._sum = 0.0
        self._span = 0.0
        self._last_t = 0.0
        self._last_p = 0.0
        self._var_rate = 0.0

    def _epoch_of(self, t_s: float) -> int:
        return math.floor((t_s - self._offset) / self._interval)

    def update_premium(self, t_s: float, premium: float) -> None:
        """Feed the premium index ``(mark − index) / index`` observed at ``t_s``."""
        epoch = self._epoch_of(t_s)
        if self._epoch is None:
            self._epoch = epoch
        else:
            dt = t_s - self._last_t
            if dt > 0.0:
                d = premium - self._last_p
                w = _decay(dt, self._halflife)
                self._var_rate = w * self._var_rate + (1.0 - w) * d * d / dt
                if epoch != self._epoch:
                    # A snapshot passed: the new interval starts from the current premium.
                    self._epoch = epoch
                    self._sum = 0.0
                    self._span = 0.0
                else:
                    self._sum += self._last_p * dt
                    self._span += dt
        self._last_t = t_s
        self._last_p = premium

    def _rate(self, premium: float) -> float:
        r8h = premium + max(-self._clamp, min(self._clamp, self._interest - premium))
        return max(-self._cap, min(self._cap, r8h * self._scale))

    def snapshot(self, t_s: float) -> FundingSnapshot:
        """Return the predicted rate and flip probability as of ``t_s``."""
        next_snap = (self._epoch_of(t_s) + 1) * self._interval + self._offset
        remaining = max(next_snap - t_s, 0.0)
        if self._epoch is None:
            return FundingSnapshot(self._rate(0.0), 0.5, remaining, 0.0)
        elapsed = self._span
        twap_so_far = self._sum / elapsed if elapsed > 0.0 else self._last_p
        frac_left = min(remaining / self._interval, 1.0)
        twap = (1.0 - frac_left) * twap_so_far + frac_left * self._last_p
        rate = self._rate(twap)
        sd = frac_left * math.sqrt(self._var_rate * remaining / 3.0)
        # The rate is flat (= interest) while the premium sits within the clamp band, so its sign
        # flips where the premium crosses the band's far edge, not where the premium crosses zero.
        if self._interest > 0.0:
            threshold = -self._clamp
        elif self._interest < 0.0:
            threshold = self._clamp
        else:
            threshold = 0.0
        if rate == 0.0:
            flip = 0.5
        elif sd <= 0.0:
            flip = 0.0
        else:
            flip = _normal_cdf(-abs(twap - threshold) / sd)
        return FundingSnapshot(rate, flip, remaining, twap)


class QuoteLife:
    """How long a ladder rests before the next refresh: an EWMA of intervals between sends.

    The model values quotes and amortizes a refresh's gas over this horizon
    (``ModelParams.quote_life_s``). It is measured, not assumed: a fixed short horizon makes the
    gas floor push quotes out, fills dwindle and refreshes stop altogether. The feedback through
    the measurement is stabilising: rarer refreshes mean longer-lived, more valuable quotes.
    """

    def __init__(
        self, prior_s: float, alpha: float = 0.1, min_s: float = 1.0, max_s: float = 900.0
    ) -> None:
        if not (0.0 < alpha <= 1.0) or not (0.0 < min_s <= max_s):
            raise ConfigError("QuoteLife: need 0 < alpha <= 1 and 0 < min_s <= max_s")
        self._mean = min(max(prior_s, min_s), max_s)
        self._alpha = alpha
        self._bounds = (min_s, max_s)
        self._last: float | None = None

    def update_send(self, t_s: float) -> None:
        """Record that a quote refresh was sent at ``t_s``."""
        if self._last is not None and t_s > self._last:
            self._mean += self._alpha * (t_s - self._last - self._mean)
        self._last = t_s

    def expected_s(self, t_s: float) -> float:
        """Expected life of the ladder resting now; the open interval counts once it is longer."""
        mean = self._mean
        if self._last is not None:
            mean = max(mean, t_s - self._last)
        lo, hi = self._bounds
        return min(max(mean, lo), hi)


class Estimators:
    """The estimator set a decision uses, with one ``snapshot`` producing ``ModelEstimates``."""

    def __init__(
        self,
        vol: EwmaVolatility,
        fills: FillIntensity,
        base_fee: BaseFeeForecaster,
        delay: InclusionDelay,
        funding: FundingPredictor,
        tip_wei: float = 1e8,
        quote_fills: QuoteFillIntensity | None = None,
    ) -> None:
        self.vol = vol
        self.fills = fills
        self.quote_fills = quote_fills
        """When set, (A, k) come from our own quotes' fill rates, not from trade distances."""
        self.base_fee = base_fee
        self.delay = delay
        self.funding = funding
        self.tip_wei = tip_wei
        self.paid_gas_price_wei: float | None = None
        self.l1_fee_per_byte_wei = 0.0

    def update_paid_fee(self, base_fee_wei: float, tip_wei: float) -> None:
        """Feed the pipeline's current fee quote (next base fee + its tip estimate).

        From then on the model prices gas at what the pipeline pays, not at ``tip_wei``.
        """
        self.paid_gas_price_wei = float(base_fee_wei) + float(tip_wei)
        self.tip_wei = float(tip_wei)

    def update_l1_fee(self, l1_fee_per_byte_wei: float) -> None:
        """Feed an L2's L1 data fee per calldata byte (wei)."""
        self.l1_fee_per_byte_wei = max(float(l1_fee_per_byte_wei), 0.0)

    def snapshot(self, t_s: float, sigma_implied_per_sqrt_s: float | None = None) -> ModelEstimates:
        """Combine every estimator's view at ``t_s``."""
        v = self.vol.snapshot()
        f = (
            self.quote_fills.snapshot(t_s)
            if self.quote_fills is not None
            else self.fills.snapshot(t_s)
        )
        g = self.base_fee.snapshot()
        d = self.delay.snapshot()
        fu = self.funding.snapshot(t_s)
        return ModelEstimates(
            sigma_per_sqrt_s=v.sigma_per_sqrt_s,
            fill_a_per_s=f.a_per_s,
            fill_k_per_price=f.k_per_price,
            base_fee_wei=g.next_base_fee_wei,
            base_fee_p99_wei=g.p99_wei,
            tip_wei=self.tip_wei,
            inclusion_delay_s=d.mean_s,
            funding_rate=fu.predicted_rate,
            funding_flip_prob=fu.flip_prob,
            sigma_implied_per_sqrt_s=sigma_implied_per_sqrt_s,
            paid_gas_price_wei=self.paid_gas_price_wei,
            l1_fee_per_byte_wei=self.l1_fee_per_byte_wei,
        )
