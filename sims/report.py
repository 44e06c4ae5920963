"""Stress-run reports: metrics (``report.json``), PNG plots and a one-page ``index.html``.

The stress runner records a :class:`RunRecord` while the agent runs a scenario; :func:`write_report`
turns it into a directory a reviewer can open in a browser::

    out_dir/
      report.json     every figure below, machine-readable (the CI table reads it)
      index.html      self-contained summary page (inline CSS, relative image links)
      price.png       index, DEX mid, our bid/ask and our fills, risk states shaded
      inventory.png   DEX inventory, hedge and net position against the cap
      pnl.png         cumulative P&L by component
      gas.png         base fee and measured inclusion delay
      risk.png        risk state over time

Metrics are time-weighted where they describe a state (inventory, uptime, spread): each sample
holds until the next one, the last for the median sample interval. :func:`summary_row` and
:func:`format_table` make the one-row-per-scenario table printed after a stress batch.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "PNL_COMPONENTS",
    "RISK_STATES",
    "CentreBasis",
    "EventRecord",
    "FillRecord",
    "FundingSnapshotRecord",
    "HedgeRecord",
    "InvariantResult",
    "PnlSnapshot",
    "ReportPaths",
    "RunMeta",
    "RunRecord",
    "Sample",
    "TransitionRecord",
    "TxRecord",
    "TxStatus",
    "build_report",
    "drawdown_check",
    "drawdown_limit",
    "format_table",
    "paying_side",
    "summary_row",
    "write_report",
]

PNL_COMPONENTS: tuple[str, ...] = (
    "spread",
    "inventory",
    "funding",
    "fees",
    "gas",
    "hedge",
    "basis",
)
"""P&L components, in the order they are reported (see agent/pnl.py for their definitions)."""

RISK_STATES: tuple[str, ...] = ("NORMAL", "REDUCED", "WIDENED", "HEDGING", "WITHDRAWN", "HALTED")
"""The risk engine's states, mildest first; unknown states sort after these."""

_STATE_COLOURS = {
    "NORMAL": "#2e7d32",
    "REDUCED": "#9e9d24",
    "WIDENED": "#f9a825",
    "HEDGING": "#ef6c00",
    "WITHDRAWN": "#c62828",
    "HALTED": "#6a1b9a",
}
_OTHER_COLOUR = "#607d8b"
_COMPONENT_COLOURS = {
    "spread": "#1b9e77",
    "inventory": "#d95f02",
    "funding": "#7570b3",
    "fees": "#e7298a",
    "gas": "#66a61e",
    "hedge": "#e6ab02",
    "basis": "#a6761d",
}
_F64 = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# the record


@dataclass(frozen=True, slots=True)
class RunMeta:
    """What was run, where and how."""

    scenario: str
    seed: int
    started_at: str
    """ISO 8601 wall-clock start."""
    duration_s: float
    """Simulated duration."""
    chain: str
    """Fork URL and block, e.g. ``"http://127.0.0.1:8546 @ 1234"``."""
    agent_config: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    """A flat summary of the settings that matter (gamma, spread floor, caps, budgets)."""
    native_price_usd: float | None = None
    """Price of the gas token; when given, gas is also reported in USD."""
    inventory_cap_base: float | None = None
    """The inventory cap in base units; when given, time over cap is reported and it is the cap
    on the paying side at every funding snapshot."""
    strategy_capital_quote: float | None = None
    """The capital the risk engine sized the strategy at (``RiskEngine.strategy_capital_quote``);
    when given, the drawdown is reported as a fraction of it against the limits below."""
    drawdown_warn_frac: float | None = None
    """The risk engine's drawdown warn level, a fraction of the capital."""
    drawdown_limit_frac: float | None = None
    """The risk engine's drawdown breach level (the halt), a fraction of the capital."""


@dataclass(frozen=True, slots=True)
class PnlSnapshot:
    """Cumulative P&L by component at one sample, USD."""

    spread: float = 0.0
    inventory: float = 0.0
    funding: float = 0.0
    fees: float = 0.0
    gas: float = 0.0
    hedge: float = 0.0
    basis: float = 0.0
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class CentreBasis:
    """What our resting best bid and best ask were priced from, averaged over the two.

    Each of the two orders is traced to the agent's decision that placed it (a touch re-prices
    one side only, so the two may come from different decisions); every field is the mean over
    the two, price units. With ``centre`` the mean of the two resting prices and ``fair`` the
    world's fair value now, ``centre - fair`` splits exactly into

    * tick rounding ``centre - model_centre``,
    * ladder shape ``model_centre - reservation`` (a top that is a deeper level, a clamp),
    * the deliberate shift ``reservation - fair_estimate`` (inventory skew, funding, momentum),
    * the agent's fair-value error ``fair_estimate - fair_then``, and
    * staleness ``fair_then - fair`` (the world's fair value moved since the decision).
    """

    model_centre: float
    """Mean of the two orders' unrounded model prices."""
    reservation: float
    """Mean reservation price of the placing decisions (inventory skew, funding, momentum in)."""
    funding_shift: float
    """The funding terms' part of ``reservation - fair_estimate``."""
    momentum_shift: float
    """The exchange momentum's part of ``reservation - fair_estimate``."""
    fair_estimate: float
    """Mean of the agent's own fair value at the placing decisions."""
    fair_then: float
    """Mean of the world's fair value at the steps the placing decisions were made."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The state of the run at one time step."""

    t_s: float
    index: float
    dex_mid: float
    our_bid: float | None
    """Best bid we have resting (None when not quoting that side)."""
    our_ask: float | None
    inventory_base: float
    """DEX position, base units (signed)."""
    pnl: PnlSnapshot
    base_fee_gwei: float
    inclusion_delay_s: float | None
    """Last measured send → inclusion delay (None before the first inclusion)."""
    risk_state: str
    hedge_position_base: float
    """CEX position, base units (signed)."""
    fair: float | None = None
    """The world's fair value for the DEX at this step (the index plus the scripted premium,
    what the takers and the arbitrageur price off; not the agent's estimate). ``None`` means the
    index is the fair value."""
    equity_usd: float | None = None
    """Both legs marked at the world's prices, less the gas spent: the DEX account re-marked at
    the world's fair value, the exchange account (wallet plus unrealized at its mid). USD,
    absolute; only its changes matter. ``None`` when not observed (the ledger's total is used)."""
    engine_drawdown_frac: float | None = None
    """The risk engine's own drawdown reading after this step, a fraction of its capital."""
    centre_basis: CentreBasis | None = None
    """What our best bid and ask were priced from (None: not both traced to a decision)."""

    @property
    def fair_usd(self) -> float:
        """The fair value the edge and centre figures are measured against."""
        return self.index if self.fair is None else self.fair


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill of our DEX orders."""

    t_s: float
    side: Literal["buy", "sell"]
    price: float
    size_base: float
    fee_usd: float
    """Fee paid (positive) or rebate received (negative)."""
    liquidity: Literal["maker", "taker"]


@dataclass(frozen=True, slots=True)
class FundingSnapshotRecord:
    """Our DEX inventory at one funding snapshot, and how much of it was on the paying side."""

    t_s: float
    rate: float
    """The rate the agent predicted just before the snapshot (+: longs pay), per interval."""
    inventory_base: float
    paying_base: float
    """Inventory on the paying side (longs when the rate is positive, shorts when negative)."""


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One risk-state change."""

    t_s: float
    from_state: str
    to_state: str
    reason: str


TxStatus = Literal["success", "reverted", "dropped", "replaced", "failed", "pending"]
"""How a signed transaction ended: included (success or reverted), or never included."""


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One transaction the agent signed (every attempt: a replacement is its own record)."""

    t_s: float
    purpose: str
    gas_used: int
    effective_gas_price_gwei: float
    status: TxStatus
    delay_s: float | None
    """Send → inclusion (None when never included)."""
    calldata_bytes: int = 0
    l1_data_fee_native: float = 0.0
    """An L2's fee for posting the calldata to L1, in the gas token (0 on L1)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A scripted event of the scenario, marked on the plots."""

    t_s: float
    end_s: float
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class HedgeRecord:
    """One hedge order on the CEX."""

    t_s: float
    side: Literal["buy", "sell"]
    qty_base: float
    filled_base: float
    avg_price: float | None
    slippage_bps: float | None
    """Against the CEX mid at send; positive is a cost."""


@dataclass(frozen=True, slots=True)
class InvariantResult:
    """One invariant checked after the run."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything a stress run recorded; the input of :func:`write_report`."""

    meta: RunMeta
    samples: Sequence[Sample]
    fills: Sequence[FillRecord] = ()
    transitions: Sequence[TransitionRecord] = ()
    txs: Sequence[TxRecord] = ()
    hedges: Sequence[HedgeRecord] = ()
    invariants: Sequence[InvariantResult] = ()
    events: Sequence[EventRecord] = ()
    funding_snapshots: Sequence[FundingSnapshotRecord] = ()


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where :func:`write_report` put things."""

    out_dir: Path
    json: Path
    html: Path
    plots: Mapping[str, Path]


# ---------------------------------------------------------------------------------------------
# metrics


def _arr(values: Sequence[float | None]) -> _F64:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _weights(t: _F64) -> _F64:
    if t.size == 1:
        return np.ones(1)
    dt = np.diff(t)
    return np.append(dt, float(np.median(dt)))


def _max_drawdown(t: _F64, total: _F64) -> dict[str, float]:
    # The run starts at zero P&L, so zero is the first peak: losing from the start is drawdown.
    series = np.concatenate([[0.0], total])
    times = np.concatenate([[t[0]], t])
    peaks = np.maximum.accumulate(series)
    dd = peaks - series
    trough = int(np.argmax(dd))
    peak = int(np.argmax(series[: trough + 1])) if trough > 0 else 0
    return {
        "usd": float(dd[trough]),
        "peak_t_s": float(times[peak]),
        "trough_t_s": float(times[trough]),
    }


def _l1_fee_usd_by_sample(record: RunRecord, t: _F64) -> _F64:
    """Cumulative L1 data fee (USD) paid by each sample's time (the ledger never saw it)."""
    price = record.meta.native_price_usd or 0.0
    paid = sorted((tx.t_s, tx.l1_data_fee_native * price) for tx in record.txs)
    if not paid or price == 0.0:
        return np.zeros(t.size)
    times = np.array([p[0] for p in paid], dtype=np.float64)
    cum = np.cumsum([p[1] for p in paid])
    idx = np.searchsorted(times, t, side="right")
    return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)


def _ledger_series(record: RunRecord, t: _F64) -> _F64:
    """The agent's ledger net P&L at each sample, less the L1 data fee paid by then."""
    return _arr([s.pnl.total for s in record.samples]) - _l1_fee_usd_by_sample(record, t)


def _world_series(record: RunRecord, t: _F64) -> _F64 | None:
    """Both legs at the world's prices less gas and L1 fee, from the first sample (None when a
    step did not observe it)."""
    equity = [s.equity_usd for s in record.samples]
    if any(e is None for e in equity):
        return None
    series = _arr(equity)
    out: _F64 = series - series[0] - _l1_fee_usd_by_sample(record, t)
    return out


def drawdown_limit(record: RunRecord) -> dict[str, Any]:
    """The run's worst drawdown as a fraction of the strategy's capital, against the limit.

    The equity is both legs marked at the world's prices less gas (``Sample.equity_usd``, which
    the stress runner observes independently of the agent's own marks), or, when a run did not
    observe it at every step, the net P&L of the agent's ledger; either way less the L1 data fee
    paid so far. The peak starts at the first sample. ``breached`` is True when the drawdown
    reached the risk engine's breach level (its halt), None when the capital is unknown.
    """
    samples = record.samples
    meta = record.meta
    t = _arr([s.t_s for s in samples])
    world = _world_series(record, t)
    observed = world is not None
    dd = _max_drawdown(t, world if world is not None else _ledger_series(record, t))
    capital, limit = meta.strategy_capital_quote, meta.drawdown_limit_frac
    frac = dd["usd"] / capital if capital else None
    engine = [s.engine_drawdown_frac for s in samples if s.engine_drawdown_frac is not None]
    return {
        "equity": "both legs at the world's prices, less gas" if observed else "net P&L",
        "capital_quote": capital,
        "warn_frac": meta.drawdown_warn_frac,
        "limit_frac": limit,
        "max_usd": dd["usd"],
        "max_frac": frac,
        "peak_t_s": dd["peak_t_s"],
        "trough_t_s": dd["trough_t_s"],
        "engine_max_frac": max(engine) if engine else None,
        "breached": None if frac is None or limit is None else bool(frac >= limit),
    }


DRAWDOWN_TOLERANCE_USD = 5.0
"""How far the ledger's drawdown may sit from the world-priced one and still agree, USD (or
:data:`DRAWDOWN_TOLERANCE_FRAC` of the world's, when that is more)."""
DRAWDOWN_TOLERANCE_FRAC = 0.25
"""The relative part of the tolerance: the ledger marks at the agent's fair-value estimate, the
world at its own fair value, and in a fast move the estimate trails by a few bps of the price."""


def drawdown_check(record: RunRecord) -> dict[str, Any]:
    """The ledger's drawdown (the report's ``max_drawdown``) beside the world-priced one.

    The ledger values the legs at the agent's own prices (:mod:`agent.pnl`); the world-priced
    equity (:func:`drawdown_limit`) at the world's. They should tell the same story: ``agree``
    is True when the two drawdowns differ by at most the tolerance (the larger of
    :data:`DRAWDOWN_TOLERANCE_USD` and :data:`DRAWDOWN_TOLERANCE_FRAC` of the world's), None
    when the run did not observe the world-priced equity. ``tracking_gap_usd`` is the largest
    difference of the two P&L paths at any sample (each from the first sample): a phantom
    drawdown that a later mark gives back shows here even when the maxima happen to agree;
    ``final_gap_usd`` is that difference at the end (the ledger's net against the world's).
    """
    t = _arr([s.t_s for s in record.samples])
    ledger = _ledger_series(record, t)
    ledger_dd = _max_drawdown(t, ledger)["usd"]
    world = _world_series(record, t)
    if world is None:
        return {
            "ledger_usd": ledger_dd,
            "world_usd": None,
            "diff_usd": None,
            "tracking_gap_usd": None,
            "final_gap_usd": None,
            "tolerance_usd": None,
            "agree": None,
        }
    world_dd = _max_drawdown(t, world)["usd"]
    tolerance = max(DRAWDOWN_TOLERANCE_USD, DRAWDOWN_TOLERANCE_FRAC * world_dd)
    diff = ledger_dd - world_dd
    gap = (ledger - ledger[0]) - world
    return {
        "ledger_usd": ledger_dd,
        "world_usd": world_dd,
        "diff_usd": diff,
        "tracking_gap_usd": float(np.max(np.abs(gap))),
        "final_gap_usd": float(gap[-1]),
        "tolerance_usd": tolerance,
        "agree": bool(abs(diff) <= tolerance),
    }


def paying_side(record: RunRecord) -> dict[str, Any]:
    """Inventory on the paying side at the funding snapshots, against the inventory cap."""
    cap = record.meta.inventory_cap_base
    paying = [f.paying_base for f in record.funding_snapshots]
    # A lot's float residue is not a breach: compare at a billionth of a unit.
    over = [p for p in paying if cap is not None and p > cap + 1e-9]
    return {
        "cap_base": cap,
        "snapshots": len(paying),
        "max_base": max(paying) if paying else 0.0,
        "mean_base": float(np.mean(paying)) if paying else 0.0,
        "breaches": len(over),
        "records": [asdict(f) for f in record.funding_snapshots],
    }


def _state_rank(state: str) -> int:
    return RISK_STATES.index(state) if state in RISK_STATES else len(RISK_STATES)


def _segments(t: _F64, states: Sequence[str], end_s: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, state in enumerate(states):
        if out and out[-1]["state"] == state:
            continue
        if out:
            out[-1]["end_s"] = float(t[i])
        out.append({"state": state, "start_s": float(t[i]), "end_s": end_s})
    return out


def _edge(samples: Sequence[Sample], fills: Sequence[FillRecord]) -> dict[str, Any]:
    """Our prices against the world's fair value: per fill, and the resting quotes' centre.

    ``per_fill_bps`` is the size-weighted mean of each DEX fill's edge against the fair value of
    the step it was recorded at (the last sample at or before the fill), positive when the fill
    was good for us (bought under fair, sold over it). ``centre_abs_bps`` is the mean, over the
    steps where a bid and an ask of ours rest, of ``|(best bid + best ask)/2 - fair|``;
    ``centre_signed_bps`` keeps the sign (above fair is positive), which tells a lagging ladder
    (signs cancel) from a biased one.
    """
    t = np.array([s.t_s for s in samples], dtype=np.float64)
    fair = np.array([s.fair_usd for s in samples], dtype=np.float64)
    edges: list[tuple[float, float, str]] = []
    for f in fills:
        if not math.isfinite(f.t_s) or f.size_base <= 0:
            continue
        i = int(np.searchsorted(t, f.t_s, side="right")) - 1
        if i < 0 or not math.isfinite(fair[i]) or fair[i] <= 0:
            continue
        sign = 1.0 if f.side == "buy" else -1.0
        edges.append((sign * (fair[i] - f.price) / fair[i] * 1e4, f.size_base, f.side))

    def weighted(side: str | None) -> float | None:
        picked = [(e, w) for e, w, sd in edges if side is None or sd == side]
        size = sum(w for _, w in picked)
        return sum(e * w for e, w in picked) / size if size > 0 else None

    off: list[float] = []
    parts: list[tuple[float, ...]] = []
    for s in samples:
        if s.our_bid is None or s.our_ask is None or not s.fair_usd > 0:
            continue
        centre = (s.our_bid + s.our_ask) / 2.0
        off.append((centre - s.fair_usd) / s.fair_usd * 1e4)
        if (b := s.centre_basis) is not None:
            skew = b.reservation - b.fair_estimate
            split = (
                centre - b.model_centre,
                b.model_centre - b.reservation,
                skew - b.funding_shift - b.momentum_shift,
                b.funding_shift,
                b.momentum_shift,
                b.fair_estimate - b.fair_then,
                b.fair_then - s.fair_usd,
            )
            parts.append((off[-1], *(x / s.fair_usd * 1e4 for x in split)))
    return {
        "per_fill_bps": weighted(None),
        "buy_bps": weighted("buy"),
        "sell_bps": weighted("sell"),
        "fills_measured": len(edges),
        "centre_abs_bps": float(np.mean(np.abs(off))) if off else None,
        "centre_signed_bps": float(np.mean(off)) if off else None,
        "centre_steps": len(off),
        "centre_ex_skew_abs_bps": _ex_skew(parts),
        "centre_decomposition": _centre_decomposition(parts),
    }


_CENTRE_PARTS = (
    "rounding",
    "shape",
    "skew_inventory",
    "skew_funding",
    "skew_momentum",
    "fair_estimate",
    "stale",
)
"""The terms ``centre - fair`` splits into, in :class:`CentreBasis`'s order (the three skews are
the reservation price's deliberate shift from the agent's fair value)."""


def _ex_skew(parts: Sequence[tuple[float, ...]]) -> float | None:
    """Mean ``|centre - fair - reservation shift|``, bps: the centre error not chosen on purpose."""
    if not parts:
        return None
    return float(np.mean([abs(p[0] - p[3] - p[4] - p[5]) for p in parts]))


def _centre_decomposition(parts: Sequence[tuple[float, ...]]) -> dict[str, Any]:
    """The centre error, term by term (bps of fair), over the steps whose quotes were traced.

    ``signed_bps`` are means of the signed terms, which add up to the signed centre error on
    those steps; ``abs_bps`` are means of each term's size, which do not add up (terms cancel).
    ``centre_abs_bps`` is the headline on the traced steps, ``ex_skew_abs_bps`` the same with
    the deliberate reservation shift (inventory skew, funding, momentum) taken out.
    """
    if not parts:
        return {"steps": 0}
    a = np.array(parts, dtype=np.float64)
    return {
        "steps": int(a.shape[0]),
        "centre_abs_bps": float(np.mean(np.abs(a[:, 0]))),
        "centre_signed_bps": float(np.mean(a[:, 0])),
        "ex_skew_abs_bps": _ex_skew(parts),
        "signed_bps": {n: float(np.mean(a[:, i + 1])) for i, n in enumerate(_CENTRE_PARTS)},
        "abs_bps": {n: float(np.mean(np.abs(a[:, i + 1]))) for i, n in enumerate(_CENTRE_PARTS)},
    }


def build_report(record: RunRecord) -> dict[str, Any]:
    """Compute every report figure from `record` (JSON-ready: NaN becomes None).

    Raises
    ------
    ValueError
        If the record has no samples (there is nothing to report on).
    """
    samples = record.samples
    if not samples:
        raise ValueError("run record has no samples: nothing to report")
    meta = record.meta
    t = _arr([s.t_s for s in samples])
    w = _weights(t)
    span = float(w.sum())
    end_s = float(t[-1] + w[-1])

    pnl_final = {c: getattr(samples[-1].pnl, c) for c in (*PNL_COMPONENTS, "total")}
    # The node never charges an L2's L1 data fee, so the agent's ledger cannot see it: the run's
    # accounting adds it to gas here (and to the total), from each transaction's calldata.
    l1_fee_usd = sum(tx.l1_data_fee_native for tx in record.txs) * (meta.native_price_usd or 0.0)
    pnl_final["gas"] -= l1_fee_usd
    pnl_final["total"] -= l1_fee_usd
    # The drawdown is of the net P&L reported above: the L1 data fee counts as it is paid.
    total = _ledger_series(record, t)

    inv = _arr([s.inventory_base for s in samples])
    cap = meta.inventory_cap_base
    over_cap_s = float(w[np.abs(inv) > cap].sum()) if cap is not None else None
    inventory = {
        "mean_base": float(np.average(inv, weights=w)),
        "abs_mean_base": float(np.average(np.abs(inv), weights=w)),
        "max_base": float(inv.max()),
        "min_base": float(inv.min()),
        "final_base": float(inv[-1]),
        "cap_base": cap,
        "time_over_cap_s": over_cap_s,
        "time_over_cap_frac": None if over_cap_s is None else over_cap_s / span,
    }

    bid = _arr([s.our_bid for s in samples])
    ask = _arr([s.our_ask for s in samples])
    two_sided = ~np.isnan(bid) & ~np.isnan(ask)
    any_side = ~np.isnan(bid) | ~np.isnan(ask)
    spread_bps = np.full(t.size, np.nan)
    mid = (bid[two_sided] + ask[two_sided]) / 2.0
    spread_bps[two_sided] = (ask[two_sided] - bid[two_sided]) / mid * 1e4
    quoting = {
        "uptime_frac": float(w[two_sided].sum() / span),
        "any_side_frac": float(w[any_side].sum() / span),
        "avg_spread_bps": (
            float(np.average(spread_bps[two_sided], weights=w[two_sided]))
            if two_sided.any()
            else None
        ),
        "median_spread_bps": float(np.median(spread_bps[two_sided])) if two_sided.any() else None,
    }

    fills = record.fills
    fills_out = {
        "count": len(fills),
        "maker_count": sum(f.liquidity == "maker" for f in fills),
        "taker_count": sum(f.liquidity == "taker" for f in fills),
        "buy_count": sum(f.side == "buy" for f in fills),
        "sell_count": sum(f.side == "sell" for f in fills),
        "volume_base": sum(f.size_base for f in fills),
        "volume_usd": sum(f.size_base * f.price for f in fills),
        "fees_usd": sum(f.fee_usd for f in fills),
    }

    txs = record.txs
    execution = sum(tx.gas_used * tx.effective_gas_price_gwei * 1e-9 for tx in txs)
    l1_data = sum(tx.l1_data_fee_native for tx in txs)
    native = execution + l1_data
    price = meta.native_price_usd
    delays = [tx.delay_s for tx in txs if tx.delay_s is not None]
    by_status = {st: sum(tx.status == st for tx in txs) for st in sorted({t.status for t in txs})}
    gas = {
        # Every signed transaction counts: replaced and dropped attempts are real sends, and a
        # reverted one paid for its gas.
        "tx_count": len(txs),
        "failed_count": sum(tx.status != "success" for tx in txs),
        "by_status": by_status,
        "gas_used": sum(tx.gas_used for tx in txs),
        "native": native,
        "execution_native": execution,
        "l1_data_fee_native": l1_data,
        "calldata_bytes": sum(tx.calldata_bytes for tx in txs),
        "usd": None if price is None else native * price,
        "mean_delay_s": float(np.mean(delays)) if delays else None,
        "max_delay_s": float(np.max(delays)) if delays else None,
        "max_base_fee_gwei": max(s.base_fee_gwei for s in samples),
        "by_purpose": {
            p: sum(tx.gas_used for tx in txs if tx.purpose == p)
            for p in sorted({tx.purpose for tx in txs})
        },
    }

    funding_steps = np.diff(_arr([s.pnl.funding for s in samples]), prepend=0.0)
    funding = {
        "received_usd": float(funding_steps[funding_steps > 0].sum()),
        "paid_usd": float(-funding_steps[funding_steps < 0].sum()),
        "net_usd": float(funding_steps.sum()),
    }

    filled = [h for h in record.hedges if h.filled_base > 0 and h.slippage_bps is not None]
    filled_qty = sum(h.filled_base for h in filled)
    slippage = [h.slippage_bps for h in filled if h.slippage_bps is not None]
    hedges = {
        "count": len(record.hedges),
        "qty_base": sum(h.qty_base for h in record.hedges),
        "filled_base": sum(h.filled_base for h in record.hedges),
        "fill_ratio": (
            sum(h.filled_base for h in record.hedges) / sum(h.qty_base for h in record.hedges)
            if any(h.qty_base > 0 for h in record.hedges)
            else None
        ),
        "avg_slippage_bps": (
            sum(h.filled_base * s for h, s in zip(filled, slippage, strict=True)) / filled_qty
            if filled_qty > 0
            else None
        ),
        "max_slippage_bps": max(slippage) if slippage else None,
        "slippage_cost_usd": sum(
            h.filled_base * (h.avg_price or 0.0) * s / 1e4
            for h, s in zip(filled, slippage, strict=True)
        ),
    }

    states = [s.risk_state for s in samples]
    time_in: dict[str, float] = {}
    for state, wi in zip(states, w.tolist(), strict=True):
        time_in[state] = time_in.get(state, 0.0) + wi
    risk = {
        "segments": _segments(t, states, end_s),
        "time_in_state_s": dict(sorted(time_in.items(), key=lambda kv: _state_rank(kv[0]))),
        "worst_state": max(states, key=_state_rank),
        "final_state": states[-1],
        "transitions": [asdict(tr) for tr in record.transitions],
    }

    invariants = [asdict(inv) for inv in record.invariants]
    report = {
        "meta": asdict(meta) | {"agent_config": dict(meta.agent_config)},
        "samples": len(samples),
        "passed": all(inv.passed for inv in record.invariants),
        "pnl": pnl_final,
        "max_drawdown": _max_drawdown(t, total),
        "drawdown_limit": drawdown_limit(record),
        "drawdown_check": drawdown_check(record),
        "paying_side": paying_side(record),
        "inventory": inventory,
        "fills": fills_out,
        "quoting": quoting,
        "gas": gas,
        "funding": funding,
        "hedges": hedges,
        "edge": _edge(samples, fills),
        "risk": risk,
        "invariants": invariants,
        "events": [asdict(e) for e in record.events],
    }
    safe: dict[str, Any] = _json_safe(report)
    return safe


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


# ---------------------------------------------------------------------------------------------
# plots


def _time_axis(t: _F64) -> tuple[_F64, str]:
    span = float(t[-1] - t[0]) if t.size > 1 else 0.0
    return (t / 60.0, "time (min)") if span >= 600 else (t, "time (s)")


def _shade_states(ax: Any, segments: Sequence[Mapping[str, Any]], scale: float) -> None:
    # Shade only the defensive states: NORMAL stays clean so the eye goes to the trouble.
    for seg in segments:
        if seg["state"] == "NORMAL":
            continue
        colour = _STATE_COLOURS.get(seg["state"], _OTHER_COLOUR)
        ax.axvspan(seg["start_s"] / scale, seg["end_s"] / scale, color=colour, alpha=0.12, lw=0)


def _state_handles(segments: Sequence[Mapping[str, Any]]) -> list[Any]:
    from matplotlib.patches import Patch

    seen = sorted({s["state"] for s in segments if s["state"] != "NORMAL"}, key=_state_rank)
    return [
        Patch(color=_STATE_COLOURS.get(s, _OTHER_COLOUR), alpha=0.25, label=s.lower()) for s in seen
    ]


def _mark_events(ax: Any, events: Sequence[EventRecord], scale: float) -> None:
    # A dashed line where each scripted event starts, named at the top: the reader sees the
    # cause (a gas spike, a stall) beside its effect on quotes, inventory and P&L.
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for k, ev in enumerate(events):
        x = ev.t_s / scale
        ax.axvline(x, color="#37474f", lw=0.8, ls="--", alpha=0.7)
        ax.text(x, 0.98 - 0.07 * (k % 4), f" {ev.label}", transform=trans, fontsize=7,
                va="top", ha="left", color="#37474f", clip_on=True)  # fmt: skip


def _write_plots(record: RunRecord, report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    samples = record.samples
    t_raw = _arr([s.t_s for s in samples])
    t, xlabel = _time_axis(t_raw)
    scale = float(t_raw[-1] / t[-1]) if t[-1] else 1.0
    segments = report["risk"]["segments"]
    title = f"{record.meta.scenario} (seed {record.meta.seed})"
    paths: dict[str, Path] = {}

    def finish(fig: Any, ax: Any, name: str, heading: str) -> None:
        _mark_events(ax, record.events, scale)
        ax.set_title(f"{heading} — {title}", fontsize=11, loc="left")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3, lw=0.6)
        ax.set_xlim(t[0], t[-1])
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        paths[name] = path

    usd = FuncFormatter(lambda v, _pos: f"{v:,.0f}")

    # price, quotes and fills
    fig, ax = plt.subplots(figsize=(11, 4.6))
    try:
        _shade_states(ax, segments, scale)
        ax.plot(t, _arr([s.index for s in samples]), color="#444444", lw=1.0, label="index")
        ax.plot(t, _arr([s.dex_mid for s in samples]), color="#1f77b4", lw=0.9, label="DEX mid")
        ax.step(t, _arr([s.our_bid for s in samples]), where="post", color="#2ca02c", lw=0.8,
                alpha=0.8, label="our bid")  # fmt: skip
        ax.step(t, _arr([s.our_ask for s in samples]), where="post", color="#d62728", lw=0.8,
                alpha=0.8, label="our ask")  # fmt: skip
        for side, marker, colour in (("buy", "^", "#1a7f1a"), ("sell", "v", "#b01a1a")):
            fs = [f for f in record.fills if f.side == side]
            if fs:
                ax.scatter(
                    [f.t_s / scale for f in fs],
                    [f.price for f in fs],
                    marker=marker,
                    s=[18 + 60 * min(1.0, f.size_base / 0.5) for f in fs],
                    color=colour,
                    edgecolor="white",
                    linewidths=0.4,
                    zorder=5,
                    label=f"we {'bought' if side == 'buy' else 'sold'}",
                )
        ax.yaxis.set_major_formatter(usd)
        ax.set_ylabel("price (USD)")
        handles, _labels = ax.get_legend_handles_labels()
        ax.legend(handles=handles + _state_handles(segments), loc="best", fontsize=8, ncol=2)
        finish(fig, ax, "price", "Price, our quotes and fills")
    finally:
        plt.close(fig)

    # inventory
    fig, ax = plt.subplots(figsize=(11, 3.6))
    try:
        _shade_states(ax, segments, scale)
        inv = _arr([s.inventory_base for s in samples])
        hedge = _arr([s.hedge_position_base for s in samples])
        ax.plot(t, inv, color="#1f77b4", lw=1.1, label="DEX inventory")
        ax.plot(t, hedge, color="#ff7f0e", lw=1.0, label="CEX hedge")
        ax.plot(t, inv + hedge, color="#222222", lw=1.2, ls="--", label="net delta")
        cap = record.meta.inventory_cap_base
        if cap is not None:
            for y in (cap, -cap):
                ax.axhline(y, color="#c62828", lw=0.9, ls=":")
            ax.plot([], [], color="#c62828", lw=0.9, ls=":", label=f"cap ±{cap:g}")
        ax.axhline(0.0, color="#999999", lw=0.6)
        ax.set_ylabel("position (base units)")
        handles, _labels = ax.get_legend_handles_labels()
        ax.legend(handles=handles + _state_handles(segments), loc="best", fontsize=8, ncol=2)
        finish(fig, ax, "inventory", "Inventory and hedge")
    finally:
        plt.close(fig)

    # P&L
    fig, ax = plt.subplots(figsize=(11, 4.2))
    try:
        for c in PNL_COMPONENTS:
            ax.plot(t, _arr([getattr(s.pnl, c) for s in samples]), lw=1.0, label=c,
                    color=_COMPONENT_COLOURS[c])  # fmt: skip
        ax.plot(t, _arr([s.pnl.total for s in samples]), color="black", lw=2.0, label="total")
        world = _world_series(record, t_raw)
        if world is not None:
            # The same money at the world's prices: where the two part, the ledger's marks err.
            ax.plot(t, world + samples[0].pnl.total, color="#555555", lw=1.2, ls="--",
                    label="total, world-priced")  # fmt: skip
        ax.axhline(0.0, color="#999999", lw=0.6)
        dd = report["max_drawdown"]
        if dd["usd"] > 0:
            ax.axvspan(dd["peak_t_s"] / scale, dd["trough_t_s"] / scale, color="#c62828",
                       alpha=0.08, lw=0, label=f"max drawdown {dd['usd']:,.2f} USD")  # fmt: skip
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.2f}"))
        ax.set_ylabel("cumulative P&L (USD)")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
        finish(fig, ax, "pnl", "P&L by component")
    finally:
        plt.close(fig)

    # gas and inclusion delay
    fig, ax = plt.subplots(figsize=(11, 3.6))
    try:
        _shade_states(ax, segments, scale)
        fee = _arr([s.base_fee_gwei for s in samples])
        ax.plot(t, fee, color="#6a1b9a", lw=1.1, label="base fee")
        if np.nanmax(fee) / max(float(np.nanmin(fee)), 1e-12) > 20:
            # Spikes are 20-50x: a log axis keeps the quiet level readable.
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_ylabel("base fee (gwei)")
        ax2 = ax.twinx()
        delay = _arr([s.inclusion_delay_s for s in samples])
        ax2.plot(t, delay, color="#00897b", lw=1.0, label="inclusion delay")
        ax2.set_ylabel("inclusion delay (s)")
        ax2.set_ylim(bottom=0)
        h1, _l1 = ax.get_legend_handles_labels()
        h2, _l2 = ax2.get_legend_handles_labels()
        ax.legend(handles=h1 + h2, loc="upper right", fontsize=8)
        finish(fig, ax, "gas", "Base fee and inclusion delay")
    finally:
        plt.close(fig)

    # risk state
    fig, ax = plt.subplots(figsize=(11, 2.8))
    try:
        states = [s.risk_state for s in samples]
        order = sorted(set(states) | set(RISK_STATES), key=_state_rank)
        levels = [order.index(state) for state in states]
        for seg in segments:
            ax.axvspan(seg["start_s"] / scale, seg["end_s"] / scale, lw=0, alpha=0.25,
                       color=_STATE_COLOURS.get(seg["state"], _OTHER_COLOUR))  # fmt: skip
        ax.step(t, levels, where="post", color="#222222", lw=1.2)
        ax.set_yticks(range(len(order)), [s.lower() for s in order], fontsize=8)
        ax.set_ylim(-0.5, len(order) - 0.5)
        ax.set_ylabel("risk state")
        finish(fig, ax, "risk", "Risk state")
    finally:
        plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;
max-width:1180px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;
font-weight:600}.pass{background:#2e7d32}.fail{background:#c62828}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:20px}
img{width:100%;border:1px solid #eee;margin:6px 0}
"""


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(
        f"<tr><th>{html.escape(k)}</th><td class=n>{html.escape(_fmt(v))}</td></tr>"
        for k, v in pairs
    )


def _dd_text(dd: Mapping[str, Any]) -> str:
    if dd["max_frac"] is None:
        return f"{dd['max_usd']:,.2f} USD (capital unknown)"
    limit = "-" if dd["limit_frac"] is None else f"{100 * dd['limit_frac']:.2f}%"
    return f"{100 * dd['max_frac']:.2f}% of {dd['capital_quote']:,.0f} ({limit})" + (
        " BREACHED" if dd["breached"] else ""
    )


def _dd_check_text(chk: Mapping[str, Any]) -> str:
    if chk["world_usd"] is None:
        return f"{chk['ledger_usd']:,.2f} / not observed"
    verdict = "agree" if chk["agree"] else "DISAGREE"
    return (
        f"{chk['ledger_usd']:,.2f} / {chk['world_usd']:,.2f} ({verdict} within "
        f"{chk['tolerance_usd']:,.2f}; paths at most {chk['tracking_gap_usd']:,.2f} apart)"
    )


def _paying_text(ps: Mapping[str, Any]) -> str:
    cap = "-" if ps["cap_base"] is None else f"{ps['cap_base']:g}"
    return f"{ps['max_base']:.4f} over {ps['snapshots']} ({cap}); {ps['breaches']} over the cap"


def _html(report: Mapping[str, Any], plots: Mapping[str, Path]) -> str:
    meta = report["meta"]
    ok = report["passed"]
    esc = html.escape
    pnl, inv, q, gas = report["pnl"], report["inventory"], report["quoting"], report["gas"]
    headline = [
        ("total P&L (USD)", pnl["total"]),
        ("max drawdown (USD)", report["max_drawdown"]["usd"]),
        ("max drawdown: ledger / world-priced (USD)", _dd_check_text(report["drawdown_check"])),
        ("max drawdown / strategy capital (limit)", _dd_text(report["drawdown_limit"])),
        ("paying-side inventory at funding snapshots, max (cap)",
         _paying_text(report["paying_side"])),
        ("fills / volume (base)",
         f"{report['fills']['count']} / {report['fills']['volume_base']:.4f}"),
        ("quote uptime, two-sided (%)", 100 * q["uptime_frac"]),
        ("average quoted spread (bps)", q["avg_spread_bps"]),
        ("edge per fill against fair, size-weighted (bps)", report["edge"]["per_fill_bps"]),
        ("mean |quote centre - fair| (bps)", report["edge"]["centre_abs_bps"]),
        ("the same without the reservation shift (bps)",
         report["edge"].get("centre_ex_skew_abs_bps")),
        ("inventory abs mean / max / min (base)",
         f"{inv['abs_mean_base']:.4f} / {inv['max_base']:.4f} / {inv['min_base']:.4f}"),
        ("time over cap (s)", inv["time_over_cap_s"]),
        ("gas spent (native)", f"{gas['native']:.6f}"),
        ("gas spent (USD)", gas["usd"]),
        ("txs signed (not successful)", f"{gas['tx_count']} ({gas['failed_count']})"),
        ("txs by outcome", ", ".join(f"{k} {v}" for k, v in gas["by_status"].items()) or "–"),
        ("L1 data fee (native)", f"{gas['l1_data_fee_native']:.6f}"),
        ("funding received / paid (USD)",
         f"{report['funding']['received_usd']:,.2f} / {report['funding']['paid_usd']:,.2f}"),
        ("hedge slippage, size-weighted (bps)", report["hedges"]["avg_slippage_bps"]),
        ("worst risk state", report["risk"]["worst_state"]),
    ]  # fmt: skip
    pnl_rows = [(c, pnl[c]) for c in (*PNL_COMPONENTS, "total")]
    invariants = (
        "".join(
            f"<tr><td><span class='badge {'pass' if i['passed'] else 'fail'}'>"
            f"{'PASS' if i['passed'] else 'FAIL'}</span></td><td>{esc(i['name'])}</td>"
            f"<td>{esc(i['detail'])}</td></tr>"
            for i in report["invariants"]
        )
        or "<tr><td colspan=3>no invariants were checked</td></tr>"
    )
    transitions = (
        "".join(
            f"<tr><td class=n>{tr['t_s']:.1f}</td><td>{esc(tr['from_state'])} → "
            f"{esc(tr['to_state'])}</td><td>{esc(tr['reason'])}</td></tr>"
            for tr in report["risk"]["transitions"]
        )
        or "<tr><td colspan=3>no transitions</td></tr>"
    )
    config = _rows(sorted(meta["agent_config"].items()))
    captions = {
        "price": "Price, our quotes and fills",
        "inventory": "Inventory and hedge",
        "pnl": "P&L by component",
        "gas": "Base fee and inclusion delay",
        "risk": "Risk state",
    }
    images = "".join(
        f"<figure><img src='{esc(p.name)}' alt='{esc(captions.get(k, k))}'></figure>"
        for k, p in plots.items()
    )
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<title>{esc(meta["scenario"])} — stress report</title><style>{_CSS}</style></head><body>
<h1>{esc(meta["scenario"])} <span class='badge {"pass" if ok else "fail"}'>
{"PASS" if ok else "FAIL"}</span></h1>
<div class=meta>seed {meta["seed"]} · started {esc(meta["started_at"])} ·
{meta["duration_s"]:,.0f} s simulated · chain {esc(meta["chain"])}</div>
<div class=grid>
<div><h2>Summary</h2><table>{_rows(headline)}</table></div>
<div><h2>P&amp;L by component (USD)</h2><table>{_rows(pnl_rows)}</table>
<h2>Agent configuration</h2><table>{config}</table></div>
</div>
<h2>Invariants</h2><table>{invariants}</table>
<h2>Plots</h2>{images}
<h2>Risk transitions</h2><table><tr><th>t (s)</th><th>change</th><th>reason</th></tr>
{transitions}</table>
</body></html>
"""


def write_report(record: RunRecord, out_dir: Path | str) -> ReportPaths:
    """Write ``report.json``, the PNG plots and ``index.html`` for `record` into `out_dir`.

    The directory is created if needed; existing report files in it are overwritten.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(record)
    plots = _write_plots(record, report, out)
    report["plots"] = {k: p.name for k, p in plots.items()}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    html_path = out / "index.html"
    html_path.write_text(_html(report, plots))
    return ReportPaths(out_dir=out, json=json_path, html=html_path, plots=plots)


# ---------------------------------------------------------------------------------------------
# the batch table


def summary_row(report: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the per-scenario table, from a report as returned by :func:`build_report`."""
    inv = report["inventory"]
    return {
        "scenario": report["meta"]["scenario"],
        "seed": report["meta"]["seed"],
        "passed": report["passed"],
        "pnl_usd": report["pnl"]["total"],
        "max_dd_usd": report["max_drawdown"]["usd"],
        "world_dd_usd": report["drawdown_check"]["world_usd"],
        "dd_pct_cap": _pct(report["drawdown_limit"]["max_frac"]),
        "dd_limit_pct": _pct(report["drawdown_limit"]["limit_frac"]),
        "paying_max": report["paying_side"]["max_base"],
        "paying_over_cap": report["paying_side"]["breaches"],
        "fills": report["fills"]["count"],
        "uptime_pct": 100.0 * report["quoting"]["uptime_frac"],
        "spread_bps": report["quoting"]["avg_spread_bps"],
        "edge_bps": report["edge"]["per_fill_bps"],
        "centre_bps": report["edge"]["centre_abs_bps"],
        "centre_ex_skew_bps": report["edge"].get("centre_ex_skew_abs_bps"),
        "max_abs_inv": max(abs(inv["max_base"]), abs(inv["min_base"])),
        "over_cap_s": inv["time_over_cap_s"],
        "gas_usd": report["gas"]["usd"],
        "txs": report["gas"]["tx_count"],
        "txs_failed": report["gas"]["failed_count"],
        "funding_usd": report["funding"]["net_usd"],
        "hedge_slip_bps": report["hedges"]["avg_slippage_bps"],
        "worst_state": report["risk"]["worst_state"],
        "invariants": f"{sum(i['passed'] for i in report['invariants'])}/"
        f"{len(report['invariants'])}",
    }


def _pct(frac: float | None) -> float | None:
    return None if frac is None else 100.0 * frac


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Render rows as an aligned text table (numbers right-aligned, None as ``-``).

    Columns are the union of the rows' keys, in first-seen order.
    """
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "PASS" if v else "FAIL"
        if isinstance(v, float):
            return f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    numeric = [
        all((isinstance(row.get(c), int | float) and not isinstance(row.get(c), bool))
            or row.get(c) is None for row in rows)
        for c in columns
    ]  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(wd) if num else v.ljust(wd)
            for v, wd, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * wd for wd in widths)
    return "\n".join([line(columns), sep, *(line(r) for r in cells)])
