"""Live terminal dashboard: pure rendering of a :class:`DashboardSnapshot` to text.

It lives in ``sims/`` because the demo and the stress runs are its only users. The demo builds a
snapshot (plain numbers and strings) on each decision; this module only
turns it into lines. :func:`render_dashboard` gives the full screen, :func:`status_line` one line
for logs, and :class:`LiveDashboard` redraws in place on a terminal, at the terminal's width, or
prints a status line every few seconds when stdout is a pipe or a file (a log must not fill with
screens). The SCENARIO line names the scripted events in force (gas spike, stall, exchange blip,
funding flip, cascade), so the viewer sees the cause beside the agent's reaction.

Layout (width 100)::

    mm-agent · BTC-PERP · block 1,234 · 12:00:05 · risk WIDENED
    ──────────────────────────────────────────────────────────────
    SCENARIO gas spike x30 (since t+600s)
    MARKET   index 60,000.00   DEX mid 60,003.00 (+0.5 bps)   book 59,998.00 / 60,008.00
    QUOTES   bids 59,994.00 x 0.1000 | 59,988.00 x 0.2000   spread 3.0 bps
             asks 60,012.00 x 0.1000 | 60,018.00 x 0.2000
    INVENT.  +0.4200 / cap 1.0000  [..........|####......]  hedge -0.4000  net +0.0200
    P&L      spread +12.40  inventory -3.10  funding +0.50  fees +0.00  gas -0.88  hedge +0.00
             basis +0.00  total +8.92 USD
    GAS      base fee 1.20 gwei / max 50.00   spent 0.42 / budget 10.00 USD
    MEMPOOL  inclusion delay 2.1 s   3 pending
    FUNDING  last +0.0100%  predicted -0.0060%  snapshot in 07:41
    RISK     WIDENED   triggers: base_fee_budget_ratio 1.4 (warn)
    DECISION refresh sent: value 1.84 > cost 0.62 (gas 0.41, exposure 0.19, funding 0.02)
    EVENTS
             12:00:07  fill buy 0.0500 @ 59,994.00
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "DashboardEvent",
    "DashboardSnapshot",
    "DecisionView",
    "LadderLevel",
    "LiveDashboard",
    "render_dashboard",
    "status_line",
]

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_MAGENTA = "\x1b[35m"
_CYAN = "\x1b[36m"
_STATE_COLOURS = {
    "NORMAL": _GREEN,
    "REDUCED": _CYAN,
    "WIDENED": _YELLOW,
    "HEDGING": _YELLOW + _BOLD,
    "WITHDRAWN": _RED,
    "HALTED": _MAGENTA + _BOLD,
}
_LEVEL_COLOURS = {"info": "", "warn": _YELLOW, "error": _RED}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HOME_CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True, slots=True)
class LadderLevel:
    """One of our resting quote levels."""

    price: float
    size_base: float


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The last cost-gate decision, in USD.

    A decision with ``value_usd`` set renders as ``"<action> sent: value V > cost C (gas g,
    exposure e, funding f)"`` (or ``skipped`` with ``<=``); without it, as ``"<action> skipped:
    <note>"`` (e.g. a risk state forbade quoting).
    """

    action: str
    """What was considered, e.g. ``"refresh"``, ``"cancel-all"``, ``"hedge"``."""
    sent: bool
    value_usd: float | None = None
    gas_usd: float = 0.0
    exposure_usd: float = 0.0
    funding_usd: float = 0.0
    note: str = ""

    @property
    def cost_usd(self) -> float:
        """Total cost the value was weighed against."""
        return self.gas_usd + self.exposure_usd + self.funding_usd


@dataclass(frozen=True, slots=True)
class DashboardEvent:
    """One line of the recent-events list."""

    clock: str
    """Wall or simulated clock, preformatted (``"12:00:05"``)."""
    text: str
    level: str = "info"
    """``info``, ``warn`` or ``error`` (colours only)."""


@dataclass(frozen=True, slots=True)
class DashboardSnapshot:
    """Everything the dashboard shows, as plain numbers and strings."""

    market: str
    clock: str
    """Preformatted current time (wall or simulated)."""
    block_number: int
    index_price: float
    dex_mid: float | None
    best_bid: float | None
    best_ask: float | None
    bids: Sequence[LadderLevel] = ()
    """Our bid ladder, best first."""
    asks: Sequence[LadderLevel] = ()
    inventory_base: float = 0.0
    inventory_cap_base: float = 0.0
    hedge_position_base: float = 0.0
    pnl_usd: Sequence[tuple[str, float]] = ()
    """Cumulative P&L components in display order; the total is their sum."""
    base_fee_gwei: float = 0.0
    max_fee_gwei: float | None = None
    """The fee ceiling (budget) above which nothing is sent."""
    gas_spent_usd: float = 0.0
    gas_budget_usd: float | None = None
    inclusion_delay_s: float | None = None
    pending_txs: int = 0
    funding_last_rate: float | None = None
    """Last settled funding rate per interval, as a fraction (0.0001 = 0.01%)."""
    funding_predicted_rate: float | None = None
    next_funding_in_s: float | None = None
    risk_state: str = "NORMAL"
    risk_triggers: Sequence[str] = ()
    """Active triggers, e.g. ``"base_fee_budget_ratio 1.4 (warn)"``."""
    last_decision: DecisionView | None = None
    events: Sequence[DashboardEvent] = field(default_factory=tuple)
    """Recent events, oldest first; the newest few are shown."""
    scripted: Sequence[str] = ()
    """Scripted scenario events in force now, named (``"gas spike x30 (since t+600s)"``)."""


def _px(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def _signed(v: float, digits: int = 2) -> str:
    return f"{v + 0.0:+,.{digits}f}"  # + 0.0 turns -0.0 into 0.0: no "-0.00"


def _mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return (
        f"{s // 60:02d}:{s % 60:02d}"
        if s < 3600
        else f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    )


def _visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def _clip(text: str, width: int) -> str:
    """Cut `text` to `width` visible characters, keeping ANSI codes intact."""
    if _visible_len(text) <= width:
        return text
    out, seen, i = [], 0, 0
    while i < len(text) and seen < width - 1:
        m = _ANSI.match(text, i)
        if m:
            out.append(m.group(0))
            i = m.end()
            continue
        out.append(text[i])
        seen += 1
        i += 1
    return "".join(out) + "…" + (_RESET if "\x1b[" in text else "")


def _wrap(label: str, parts: Sequence[str], width: int) -> list[str]:
    """Lay `parts` out after `label`, two spaces apart, continuing on indented lines."""
    indent = " " * len(label)
    lines, current = [], label
    for part in parts:
        sep = "" if current in (label, indent) else "  "
        if current not in (label, indent) and _visible_len(current + sep + part) > width:
            lines.append(current)
            current, sep = indent, ""
        current += sep + part
    lines.append(current)
    return lines


def _decision_text(d: DecisionView) -> str:
    verb = "sent" if d.sent else "skipped"
    if d.value_usd is None:
        return f"{d.action} {verb}: {d.note or 'no reason recorded'}"
    cmp = ">" if d.value_usd > d.cost_usd else "<="
    text = (
        f"{d.action} {verb}: value {d.value_usd:.2f} {cmp} cost {d.cost_usd:.2f} "
        f"(gas {d.gas_usd:.2f}, exposure {d.exposure_usd:.2f}, funding {d.funding_usd:.2f})"
    )
    return f"{text}; {d.note}" if d.note else text


def _inventory_bar(inv: float, cap: float, half: int = 10) -> str:
    # Centre-zero bar: left half short, right half long; a '!' at the end means over the cap.
    if cap <= 0:
        return ""
    frac = inv / cap
    n = min(half, round(abs(frac) * half))
    left = "." * half if frac >= 0 else "." * (half - n) + "#" * n
    right = "#" * n + "." * (half - n) if frac > 0 else "." * half
    over = "!" if abs(frac) > 1 else ""
    return f"[{left}|{right}]{over}"


def render_dashboard(snapshot: DashboardSnapshot, width: int = 100, *, color: bool = False) -> str:
    """Render `snapshot` as a multi-line dashboard at most `width` characters wide.

    With ``color=True`` the risk state, P&L signs, warnings and the decision are ANSI-coloured.
    """
    s = snapshot

    def c(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color and code else text

    def pnl_colour(v: float) -> str:
        return _GREEN if v > 0 else _RED if v < 0 else ""

    state = c(_STATE_COLOURS.get(s.risk_state, _RED), s.risk_state)
    lines = [
        c(_BOLD, f"mm-agent · {s.market} · block {s.block_number:,} · {s.clock}")
        + f" · risk {state}",
        "─" * width,
    ]
    if s.scripted:
        lines += _wrap("SCENARIO ", [c(_YELLOW + _BOLD, e) for e in s.scripted], width)

    mid = "–"
    if s.dex_mid is not None:
        dev_bps = (s.dex_mid / s.index_price - 1.0) * 1e4 if s.index_price else 0.0
        mid = f"{s.dex_mid:,.2f} ({dev_bps:+.1f} bps)"
    lines.append(
        f"MARKET   index {_px(s.index_price)}   DEX mid {mid}   "
        f"book {_px(s.best_bid)} / {_px(s.best_ask)}"
    )

    def ladder(levels: Sequence[LadderLevel]) -> str:
        if not levels:
            return c(_DIM, "not quoting")
        return " | ".join(f"{lv.price:,.2f} x {lv.size_base:.4f}" for lv in levels)

    spread = ""
    if s.bids and s.asks:
        q_mid = (s.bids[0].price + s.asks[0].price) / 2
        spread = f"   spread {(s.asks[0].price - s.bids[0].price) / q_mid * 1e4:.1f} bps"
    lines.append(f"QUOTES   bids {ladder(s.bids)}{spread}")
    lines.append(f"         asks {ladder(s.asks)}")

    over = s.inventory_cap_base > 0 and abs(s.inventory_base) > s.inventory_cap_base
    inv_text = f"{_signed(s.inventory_base, 4)} / cap {s.inventory_cap_base:.4f}"
    lines.append(
        f"INVENT.  {c(_RED if over else '', inv_text)}  "
        f"{_inventory_bar(s.inventory_base, s.inventory_cap_base)}  "
        f"hedge {_signed(s.hedge_position_base, 4)}  "
        f"net {_signed(s.inventory_base + s.hedge_position_base, 4)}"
    )

    total = sum(v for _, v in s.pnl_usd)
    parts = [f"{name} {c(pnl_colour(v), _signed(v))}" for name, v in s.pnl_usd]
    parts.append(c(_BOLD, "total ") + c(pnl_colour(total), _signed(total)) + " USD")
    lines += _wrap("P&L      ", parts, width)

    over_fee = s.max_fee_gwei is not None and s.base_fee_gwei > s.max_fee_gwei
    fee = f"base fee {s.base_fee_gwei:,.2f} gwei"
    if s.max_fee_gwei is not None:
        fee += f" / max {s.max_fee_gwei:,.2f}"
    spent = f"spent {s.gas_spent_usd:,.2f}"
    if s.gas_budget_usd is not None:
        spent += f" / budget {s.gas_budget_usd:,.2f}"
    incl = "–" if s.inclusion_delay_s is None else f"{s.inclusion_delay_s:.1f} s"
    lines.append(f"GAS      {c(_RED if over_fee else '', fee)}   {spent} USD")
    lines.append(f"MEMPOOL  inclusion delay {incl}   {s.pending_txs} pending")

    def rate(r: float | None) -> str:
        return "–" if r is None else f"{r * 100:+.4f}%"

    countdown = "–" if s.next_funding_in_s is None else _mmss(s.next_funding_in_s)
    lines.append(
        f"FUNDING  last {rate(s.funding_last_rate)}  predicted {rate(s.funding_predicted_rate)}"
        f"  snapshot in {countdown}"
    )

    triggers = ", ".join(s.risk_triggers) if s.risk_triggers else "none"
    lines.append(f"RISK     {state}   triggers: {c(_YELLOW if s.risk_triggers else '', triggers)}")

    if s.last_decision is None:
        decision = c(_DIM, "none yet")
    else:
        decision = c(_GREEN if s.last_decision.sent else _DIM, _decision_text(s.last_decision))
    lines.append(f"DECISION {decision}")

    lines.append("EVENTS")
    recent = list(s.events)[-6:]
    if not recent:
        lines.append(c(_DIM, "         none"))
    for ev in recent:
        lines.append(f"         {ev.clock}  {c(_LEVEL_COLOURS.get(ev.level, ''), ev.text)}")
    return "\n".join(_clip(line, width) for line in lines)


def status_line(snapshot: DashboardSnapshot) -> str:
    """One compact line for logs and non-TTY output."""
    s = snapshot
    total = sum(v for _, v in s.pnl_usd)
    mid = "–" if s.dex_mid is None else f"{s.dex_mid:,.2f}"
    funding = "–" if s.next_funding_in_s is None else _mmss(s.next_funding_in_s)
    decision = "-" if s.last_decision is None else _decision_text(s.last_decision)
    return (
        f"{s.clock} block={s.block_number} risk={s.risk_state} index={s.index_price:,.2f} "
        f"mid={mid} inv={s.inventory_base:+.4f}/{s.inventory_cap_base:g} "
        f"hedge={s.hedge_position_base:+.4f} pnl={total:+,.2f} fee={s.base_fee_gwei:.2f}gwei "
        f"funding_in={funding} last={decision}"
    )


class LiveDashboard:
    """Redraw the dashboard in place on a TTY; else write a status line every `interval_s`.

    Parameters
    ----------
    stream
        Where to write (stdout by default).
    width
        Render width on a terminal; None (the default) follows the terminal's width as it is
        resized (at least 60 columns).
    interval_s
        Minimum time between status lines when `stream` is not a TTY.
    color
        ANSI colours; None means "when `stream` is a TTY".
    clock
        Monotonic seconds (injected so tests and simulations control time).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        width: int | None = None,
        interval_s: float = 10.0,
        color: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._width = width
        self._interval_s = interval_s
        self._color = self._tty if color is None else color
        self._clock = clock
        self._last_line_at: float | None = None

    @property
    def width(self) -> int:
        """Columns to render: the fixed width, or the terminal's now."""
        if self._width is not None:
            return self._width
        return max(60, shutil.get_terminal_size((100, 40)).columns)

    @property
    def is_tty(self) -> bool:
        """True when the dashboard redraws in place."""
        return self._tty

    def update(self, snapshot: DashboardSnapshot) -> bool:
        """Show `snapshot`; return True if anything was written."""
        if self._tty:
            text = render_dashboard(snapshot, self.width, color=self._color)
            self._stream.write(_HOME_CLEAR + text + "\n")
            self._stream.flush()
            return True
        now = self._clock()
        if self._last_line_at is not None and now - self._last_line_at < self._interval_s:
            return False
        self._last_line_at = now
        self._stream.write(status_line(snapshot) + "\n")
        self._stream.flush()
        return True
