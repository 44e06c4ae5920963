"""Adverse-selection signals from the exchange, which leads the chain (pure, no clock reads).

``ExchangeMomentum``
    EWMA drift of the exchange mid, price units per second. The model shifts its reservation price
    by ``momentum_per_s × momentum_horizon_s`` so a quote does not sit where the exchange has
    already left (``DecisionInputs.momentum_per_s``).
``JumpDetector``
    Crash posture. A move of the exchange mid over ``window_s`` larger than both ``jump_bps`` and
    ``jump_sigmas`` standard deviations pulls quotes (state ``PULLED``) before the oracle and the
    DEX book see it. Quoting resumes (``REENTRY``, then ``NORMAL``) around the new fair value (the
    model centres on the fair-value estimate, never on where it quoted before) on either of:

    * **stable**: the mid has moved less than ``stable_bps`` over ``stable_s`` (a step that holds);
    * **orderly**: no jump-sized move for ``quiet_s``, a drift over that time no faster than
      ``reentry_max_trend_bps_per_s`` (2), and the realised diffusion, measured around that
      drift, within ``reentry_diffusion_mult`` of the pre-jump level. A market that is merely
      noisier after a jump (3× volatility never holds within 15 bps for 20 s) comes back.

    A jump is the move over ``window_s`` beyond what the trend of the ``quiet_s`` before it
    explains (up to ``max_trend_bps_per_s``, 10): trend plus noise is not counted as a fresh jump
    every few seconds. A trend is not yet priced, though: in REENTRY a drift faster than
    ``reentry_max_trend_bps_per_s`` pulls again. Measured on ``flash_crash`` (600 s, L2): quoting
    the 3.9 bps/s recovery two-sided lost 10–25 USD more a run on inventory than staying out,
    because informed takers trade 30 s ahead of it and the model's momentum skew does not price
    that; the cap keeps us out of such a recovery until it slows.

    Every pull within ``flap_window_s`` of the last re-entry doubles the quiet time asked before
    the next (up to ``max_backoff``): a market that keeps jumping keeps us out longer each time
    instead of flapping in and out. The posture and the backoff survive a restart
    (:meth:`JumpDetector.memory`, :meth:`JumpDetector.restore`): a keeper that crashes in a
    crash must not come back quoting as if nothing had happened.

    ==========  ======================================  ========================================
    state       when                                    what the runtime does
    ==========  ======================================  ========================================
    NORMAL      no jump                                 quote
    PULLED      a jump, or still jumping after one      cancel all (risk input ``cex_jump``),
                                                        hedge the residual now
    REENTRY     stable or orderly after a jump, for     quote at ``reentry_size_mult`` of size and
                ``reentry_s``                           ``reentry_spread_mult`` of spread, with
                                                        the momentum skew
    ==========  ======================================  ========================================

``SweepGuard``
    Toxic flow. Informed takers see the move before the exchange prints it and sweep our ladder
    on the side the move will hurt (bids before a crash, asks before a pump) seconds before the
    jump detector can fire. ``fills`` of our fills on one side within ``window_s`` is such a
    sweep: that side is paused for ``pause_s`` (re-quoting it would sell the next taker the same
    option at the same stale fair value) and the residual is hedged at once, before the move the
    takers saw. Symmetric: either side is judged alone, the other keeps quoting.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = [
    "ExchangeMomentum",
    "JumpDetector",
    "JumpParams",
    "JumpSignal",
    "JumpState",
    "SweepGuard",
    "SweepParams",
]

_LN2 = math.log(2.0)
_BPS = 1e4


class ExchangeMomentum:
    """EWMA of the exchange mid's drift, price units per second.

    Parameters
    ----------
    halflife_s
        Half-life of the drift estimate: short (seconds), the signal is the last moves.
    """

    def __init__(self, halflife_s: float = 10.0) -> None:
        if halflife_s <= 0.0:
            raise ConfigError("ExchangeMomentum: halflife_s must be > 0")
        self._halflife_s = halflife_s
        self._last: tuple[float, float] | None = None
        self._drift = 0.0

    def update(self, t_s: float, mid: float, jump_bps: float = math.inf) -> None:
        """Feed the exchange mid at ``t_s``.

        A step of at least ``jump_bps`` from the last mid is a jump (``JumpDetector``): the level
        moves, the drift estimate does not. Counted as drift, one 3% step kept the reservation
        price skewed ~5 USD the jump's way half a minute later, when quotes came back.
        """
        if not (math.isfinite(mid) and mid > 0.0):
            return
        if self._last is not None:
            dt = t_s - self._last[0]
            step_bps = abs(mid / self._last[1] - 1.0) * _BPS
            if dt <= 0.0 or step_bps >= jump_bps:
                self._last = (self._last[0] if dt <= 0.0 else t_s, mid)
                return
            w = math.exp(-_LN2 * dt / self._halflife_s)
            # Each observed increment is an estimate of drift × dt; weight it by its elapsed time.
            self._drift = w * self._drift + (1.0 - w) * (mid - self._last[1]) / dt
        self._last = (t_s, mid)

    def drift_per_s(self) -> float:
        """Return the drift estimate, price units per second (+: rising)."""
        return self._drift


class JumpState(enum.StrEnum):
    """Crash posture."""

    NORMAL = "normal"
    PULLED = "pulled"
    REENTRY = "reentry"


@dataclass(frozen=True, slots=True)
class JumpParams:
    """Jump-detector thresholds; every field carries its unit."""

    window_s: float = 10.0
    """Look-back over which a move counts as one jump."""
    jump_bps: float = 50.0
    """Smallest move over ``window_s`` that pulls quotes, bps."""
    jump_sigmas: float = 6.0
    """The move must also exceed this many σ·√window (σ relative, per √s)."""
    stable_s: float = 20.0
    """Stable re-entry: the market must stay within ``stable_bps`` for this long."""
    stable_bps: float = 15.0
    quiet_s: float = 30.0
    """Orderly re-entry: no jump-sized move for this long, seconds (before any backoff)."""
    reentry_diffusion_mult: float = 3.0
    """Orderly re-entry: realised diffusion (σ around the drift) over ``quiet_s`` at most this
    multiple of the pre-jump level."""
    max_trend_bps_per_s: float = 10.0
    """A trend up to this fast is priced, not feared: the move over ``window_s`` the trend of the
    ``quiet_s`` before it explains is not counted toward a jump, and the orderly re-entry asks
    for a drift no faster. A crash (−25% in 2 min is 21 bps/s) is never explained away."""
    reentry_max_trend_bps_per_s: float = 2.0
    """Orderly re-entry asks for a drift over ``quiet_s`` no faster than this, and REENTRY goes
    back to PULLED on one: a market still recovering from a jump at 3.9 bps/s is being traded
    by takers who see 30 s ahead (117 bps), and quoting it two-sided lost 10–25 USD a 600 s
    flash_crash run on inventory (measured; the model's momentum skew, 5 s of significant
    drift, does not price that)."""
    baseline_halflife_s: float = 60.0
    """Half-life of the pre-jump diffusion estimate (updated only while quoting normally)."""
    flap_window_s: float = 300.0
    """A pull within this long after a re-entry doubles the next quiet time."""
    max_backoff: float = 8.0
    """Largest multiple of ``quiet_s`` and ``stable_s`` the backoff asks for."""
    reentry_s: float = 60.0
    """Time in REENTRY (smaller, wider quotes) before NORMAL."""
    reentry_size_mult: float = 0.5
    reentry_spread_mult: float = 1.5

    def __post_init__(self) -> None:
        if min(self.window_s, self.jump_bps, self.stable_s, self.stable_bps, self.quiet_s) <= 0.0:
            raise ConfigError("jump detector: windows and thresholds must be > 0")
        if self.jump_sigmas < 0.0 or self.reentry_s < 0.0 or self.flap_window_s < 0.0:
            raise ConfigError("jump detector: jump_sigmas, reentry_s, flap_window_s must be >= 0")
        if not 0.0 < self.reentry_size_mult <= 1.0 or self.reentry_spread_mult < 1.0:
            raise ConfigError("jump detector: reentry size mult in (0, 1], spread mult >= 1")
        if self.reentry_diffusion_mult < 1.0 or self.max_backoff < 1.0:
            raise ConfigError("jump detector: reentry_diffusion_mult and max_backoff must be >= 1")
        if (
            self.baseline_halflife_s <= 0.0
            or self.max_trend_bps_per_s < 0.0
            or self.reentry_max_trend_bps_per_s < 0.0
        ):
            raise ConfigError("jump detector: baseline_halflife_s must be > 0, trend caps >= 0")


@dataclass(frozen=True, slots=True)
class JumpSignal:
    """The detector's view at one time."""

    state: JumpState
    move_bps: float
    """Largest move within ``window_s`` (max − min over min), bps."""
    size_mult: float
    spread_mult: float
    since_s: float
    """When the current state began."""
    pulls: int = 0
    """Pulls so far (NORMAL or REENTRY to PULLED): the number of times quotes were pulled."""


class JumpDetector:
    """Pull quotes on an exchange jump, re-enter once stable or orderly (see module doc)."""

    def __init__(self, params: JumpParams | None = None) -> None:
        self.params = params if params is not None else JumpParams()
        self._prices: deque[tuple[float, float]] = deque()
        self._state = JumpState.NORMAL
        self._since_s = 0.0
        self._pulls = 0
        self._backoff = 1.0
        self._reentered_s = -math.inf
        # The last update that still saw a jump in its window: the step itself lies before it,
        # so drift and diffusion measured from here on are the market after the jump.
        self._last_jump_s = -math.inf
        # Pre-jump diffusion: EWMA of squared log increments per second, quoting normally only.
        self._base_var_per_s = 0.0
        self._base_weight = 0.0
        self._base_sigma_at_pull = 0.0
        self._restored = False  # a restored PULLED/REENTRY: its clock restarts at the next update

    def memory(self) -> dict[str, object]:
        """Return what must survive a restart (JSON-ready; :meth:`restore` takes it back).

        The posture and its clocks, the pull count, the flap backoff and the pre-jump diffusion.
        The price history is not kept: after a restart re-entry is judged on prices seen anew.
        """
        return {
            "state": self._state.value,
            "since_s": self._since_s,
            "pulls": self._pulls,
            "backoff": self._backoff,
            "reentered_s": _finite_or_none(self._reentered_s),
            "last_jump_s": _finite_or_none(self._last_jump_s),
            "base_var_per_s": self._base_var_per_s,
            "base_weight": self._base_weight,
            "base_sigma_at_pull": self._base_sigma_at_pull,
        }

    def restore(self, memory: dict[str, object]) -> None:
        """Take back what :meth:`memory` returned in an earlier run (call before any update).

        A restored PULLED or REENTRY restarts its clock at the first update after the restore:
        the time the agent was down is not time it saw a stable market, and the prices before
        the crash are gone, so re-entry asks for ``stable_s`` (or ``quiet_s``, times the
        backoff) of prices seen after it. The backoff and the last re-entry are kept, so a
        pull soon after coming back still counts as a flap. Malformed fields are ignored one by
        one; an unknown state leaves the detector as it is.
        """
        state = memory.get("state")
        if isinstance(state, str) and state in JumpState._value2member_map_:
            self._state = JumpState(state)
            self._restored = self._state is not JumpState.NORMAL
        since = _finite(memory.get("since_s"))
        if since is not None:
            self._since_s = since
        pulls = memory.get("pulls")
        if isinstance(pulls, int) and pulls >= 0:
            self._pulls = pulls
        backoff = _finite(memory.get("backoff"))
        if backoff is not None:
            self._backoff = min(max(backoff, 1.0), self.params.max_backoff)
        for name in ("reentered_s", "last_jump_s"):
            if name in memory:
                t = _finite(memory.get(name))
                setattr(self, f"_{name}", -math.inf if t is None else t)
        for name in ("base_var_per_s", "base_weight", "base_sigma_at_pull"):
            v = _finite(memory.get(name))
            if v is not None and v >= 0.0:
                setattr(self, f"_{name}", v)

    def update(self, t_s: float, mid: float, sigma_rel_per_sqrt_s: float = 0.0) -> JumpSignal:
        """Feed the exchange mid at ``t_s`` (and the current relative σ); return the signal."""
        p = self.params
        if self._restored:
            self._restored = False
            self._since_s = t_s
        last = self._prices[-1] if self._prices else None
        if math.isfinite(mid) and mid > 0.0:
            self._prices.append((t_s, mid))
        keep = max(p.window_s + p.quiet_s, max(p.stable_s, p.quiet_s) * p.max_backoff)
        while self._prices and self._prices[0][0] < t_s - keep:
            self._prices.popleft()
        move = self._range_bps(t_s - p.window_s)
        threshold = self.threshold_bps(sigma_rel_per_sqrt_s)
        # What the established trend (the quiet_s before this window, capped) explains of the
        # move is not a jump: 3.9 bps/s of recovery is 39 bps of every 10 s window.
        trend = self._drift_bps_per_s(t_s - p.window_s - p.quiet_s, t_s - p.window_s)
        explained = min(abs(trend), p.max_trend_bps_per_s) * p.window_s
        if move - explained >= threshold:
            if self._state is not JumpState.PULLED:
                self._pull(t_s, sigma_rel_per_sqrt_s)
            # Every new jump restarts the clock: re-entry waits for quiet after the last one.
            self._since_s = t_s
            self._last_jump_s = t_s
        elif self._state is JumpState.PULLED:
            if self._stable(t_s) or self._orderly(t_s):
                self._enter(JumpState.REENTRY, t_s)
                self._reentered_s = t_s
        else:
            if last is not None and self._state is JumpState.NORMAL:
                self._learn_baseline(last, t_s, mid, threshold)
            # Drift since the jump, not across it: a step that holds is not a trend.
            since = max(t_s - p.quiet_s, self._last_jump_s)
            trending = abs(self._drift_bps_per_s(since, t_s)) > p.reentry_max_trend_bps_per_s
            # Within flap_window_s of a re-entry the market is still one recovering from a
            # jump, in REENTRY or after it: a 60 s REENTRY can end in a recovery's first
            # seconds, before its drift clears the noise.
            recovering = t_s - self._reentered_s < p.flap_window_s
            if trending and (self._state is JumpState.REENTRY or recovering):
                # Came back in a pause (a crash's hold) and the market set off again: out.
                self._pull(t_s, sigma_rel_per_sqrt_s)
            elif self._state is JumpState.REENTRY and t_s - self._since_s >= p.reentry_s:
                self._enter(JumpState.NORMAL, t_s)
            if t_s - self._reentered_s >= p.flap_window_s:
                self._backoff = 1.0
        return self.signal(move)

    def threshold_bps(self, sigma_rel_per_sqrt_s: float = 0.0) -> float:
        """Return the move over ``window_s`` that counts as a jump at this σ, bps.

        A single price step this large is a jump whatever its duration: the volatility estimate
        takes it as a level shift, not as diffusion (``EwmaVolatility.update_price``).
        """
        p = self.params
        sigma_move_bps = p.jump_sigmas * sigma_rel_per_sqrt_s * math.sqrt(p.window_s) * _BPS
        return max(p.jump_bps, sigma_move_bps)

    def signal(self, move_bps: float = 0.0) -> JumpSignal:
        """Return the current state and its multipliers."""
        p = self.params
        if self._state is JumpState.REENTRY:
            size, spread = p.reentry_size_mult, p.reentry_spread_mult
        elif self._state is JumpState.PULLED:
            size, spread = 0.0, p.reentry_spread_mult
        else:
            size, spread = 1.0, 1.0
        return JumpSignal(self._state, move_bps, size, spread, self._since_s, self._pulls)

    def baseline_sigma(self) -> float:
        """The pre-jump diffusion the orderly re-entry compares with, relative per √s."""
        return max(self._own_baseline(), self._base_sigma_at_pull)

    def _own_baseline(self) -> float:
        if self._base_weight <= 0.0:
            return 0.0
        # Divided by the weight: an estimate from a short history is not biased toward 0.
        return math.sqrt(self._base_var_per_s / self._base_weight)

    def _pull(self, t_s: float, sigma_rel_per_sqrt_s: float) -> None:
        p = self.params
        if t_s - self._reentered_s < p.flap_window_s:
            # Pulled again soon after coming back: ask for twice the quiet next time.
            self._backoff = min(self._backoff * 2.0, p.max_backoff)
        if self._state is JumpState.NORMAL:
            # The estimator's σ at the pull is still the pre-jump market's (it has seen at
            # most window_s of the move); it floors the detector's own baseline.
            self._base_sigma_at_pull = max(self._own_baseline(), sigma_rel_per_sqrt_s)
        self._pulls += 1
        self._enter(JumpState.PULLED, t_s)

    def _stable(self, t_s: float) -> bool:
        """The last (backed-off) ``stable_s`` moved less than ``stable_bps``.

        The clock restarted on every update that still had the jump inside ``window_s``, i.e.
        until ``window_s`` after its last step: ``stable_s`` after that step is ``stable_s −
        window_s`` after the restart (waiting a full ``stable_s`` more kept the book empty
        ``window_s`` longer than the market was moving).
        """
        p = self.params
        stable_s = p.stable_s * self._backoff
        calm = self._range_bps(t_s - stable_s) < p.stable_bps
        return calm and t_s - self._since_s >= max(stable_s - p.window_s, 0.0)

    def _orderly(self, t_s: float) -> bool:
        """No jump for the (backed-off) ``quiet_s`` and diffusion near its pre-jump level."""
        p = self.params
        quiet_s = p.quiet_s * self._backoff
        if t_s - self._since_s < max(quiet_s - p.window_s, 0.0):
            return False
        if abs(self._drift_bps_per_s(t_s - quiet_s, t_s)) > p.reentry_max_trend_bps_per_s:
            return False
        sigma = self._diffusion(t_s - quiet_s)
        base = self.baseline_sigma()
        return sigma is not None and base > 0.0 and sigma <= p.reentry_diffusion_mult * base

    def _drift_bps_per_s(self, from_s: float, to_s: float) -> float:
        """Mean log drift of the mid between ``from_s`` and ``to_s``, bps per second."""
        pts = [(t, m) for t, m in self._prices if from_s <= t <= to_s]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return 0.0
        return math.log(pts[-1][1] / pts[0][1]) / (pts[-1][0] - pts[0][0]) * _BPS

    def _diffusion(self, from_s: float) -> float | None:
        """Realised σ (relative, per √s) since ``from_s`` around the window's own drift.

        A steady trend is not risk to be feared: it is removed (the mean log increment per
        second), and what is left is the noise a quote at the new fair value must stand.
        """
        pts = [(t, m) for t, m in self._prices if t >= from_s]
        if len(pts) < 3:
            return None
        span = pts[-1][0] - pts[0][0]
        if span <= 0.0:
            return None
        drift = math.log(pts[-1][1] / pts[0][1]) / span
        ss = 0.0
        for (t0, m0), (t1, m1) in itertools.pairwise(pts):
            dt = t1 - t0
            if dt > 0.0:
                ss += (math.log(m1 / m0) - drift * dt) ** 2
        return math.sqrt(ss / span)

    def _learn_baseline(
        self, last: tuple[float, float], t_s: float, mid: float, threshold_bps: float
    ) -> None:
        """Fold one increment into the pre-jump diffusion (never a jump-sized step)."""
        t0, m0 = last
        dt = t_s - t0
        if dt <= 0.0 or not (math.isfinite(mid) and mid > 0.0):
            return
        ret = math.log(mid / m0)
        if abs(ret) * _BPS >= threshold_bps:
            return
        w = math.exp(-_LN2 * dt / self.params.baseline_halflife_s)
        self._base_var_per_s = w * self._base_var_per_s + (1.0 - w) * ret * ret / dt
        self._base_weight = w * self._base_weight + (1.0 - w)

    def _enter(self, state: JumpState, t_s: float) -> None:
        self._state = state
        self._since_s = t_s

    def _range_bps(self, from_s: float) -> float:
        window = [m for t, m in self._prices if t >= from_s]
        if len(window) < 2:
            return 0.0
        low = min(window)
        return (max(window) - low) / low * _BPS


def _finite(v: object) -> float | None:
    """`v` as a float when it is a finite number (not a bool), else None."""
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class SweepParams:
    """Sweep-guard thresholds; ``fills`` 0 switches the guard off."""

    fills: int = 3
    """Own fills on one side within ``window_s`` that count as a sweep (0: never)."""
    window_s: float = 5.0
    """Look-back over which one side's fills count together, seconds."""
    pause_s: float = 30.0
    """How long a swept side stays unquoted after its last sweeping fill, seconds."""

    def __post_init__(self) -> None:
        if self.fills < 0:
            raise ConfigError("sweep guard: fills must be >= 0 (0 switches it off)")
        if self.window_s <= 0.0 or self.pause_s < 0.0:
            raise ConfigError("sweep guard: window_s must be > 0 and pause_s >= 0")


class SweepGuard:
    """Pause the side a one-sided burst of our fills came from (see module doc).

    Sides are signed like ``Side.sign``: +1 our bid was hit (we bought), −1 our ask was lifted.
    """

    def __init__(self, params: SweepParams | None = None) -> None:
        self.params = params if params is not None else SweepParams()
        self._fills: dict[int, deque[float]] = {1: deque(), -1: deque()}
        self._paused_until: dict[int, float] = {1: -math.inf, -1: -math.inf}

    def on_fill(self, t_s: float, side_sign: int) -> bool:
        """Record one of our fills at ``t_s`` on side ``side_sign``; return True on a sweep."""
        p = self.params
        if p.fills <= 0 or side_sign not in (1, -1):
            return False
        times = self._fills[side_sign]
        times.append(t_s)
        while times and times[0] < t_s - p.window_s:
            times.popleft()
        if len(times) < p.fills:
            return False
        self._paused_until[side_sign] = max(self._paused_until[side_sign], t_s + p.pause_s)
        return True

    def paused(self, t_s: float, side_sign: int) -> bool:
        """Return whether side ``side_sign`` is paused at ``t_s``."""
        return t_s < self._paused_until.get(side_sign, -math.inf)
