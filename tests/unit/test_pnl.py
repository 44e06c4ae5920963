"""P&L attribution adds up to the mark-to-market equity change."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.pnl import PnlLedger


def test_round_trip_at_the_spread_is_spread_capture() -> None:
    led = PnlLedger()
    led.mark(index=100.0, dex_mid=100.0)
    led.on_dex_fill(+1.0, price=99.5, fee=0.01, mid=100.0)  # we bought below mid
    led.on_dex_fill(-1.0, price=100.5, fee=0.01, mid=100.0)  # and sold above it
    c = led.snapshot()
    assert math.isclose(c.spread, 1.0)
    assert math.isclose(c.fees, -0.02)
    assert c.inventory == 0.0 and math.isclose(c.total, 0.98)


def test_hedged_inventory_has_no_directional_pnl_only_basis() -> None:
    led = PnlLedger()
    led.mark(index=100.0, dex_mid=100.0, cex_mid=100.0)
    led.on_dex_fill(+2.0, price=100.0, fee=0.0, mid=100.0)
    led.on_cex_fill(-2.0, price=100.0, fee=0.0, mid=100.0)
    led.mark(index=90.0, dex_mid=89.0, cex_mid=90.0)  # DEX fell 1 more than the index
    c = led.snapshot()
    assert c.inventory == 0.0
    assert math.isclose(c.basis, -2.0)


event = st.one_of(
    st.tuples(st.just("mark"), st.floats(50, 150), st.floats(-2, 2), st.floats(-2, 2)),
    st.tuples(st.just("dex"), st.floats(-3, 3), st.floats(50, 150), st.floats(0, 1)),
    st.tuples(st.just("cex"), st.floats(-3, 3), st.floats(50, 150), st.floats(0, 1)),
    st.tuples(st.just("fund"), st.floats(-5, 5), st.just(0.0), st.just(0.0)),
    st.tuples(st.just("gas"), st.floats(0, 1), st.just(0.0), st.just(0.0)),
)


def _book(
    led: PnlLedger, kind: str, a: float, b: float, c: float, *, dex_mid: float, cex_mid: float
) -> tuple[float, float, float]:
    """Apply one non-mark event; return its change to (cash, DEX position, hedge position)."""
    if kind == "dex":
        led.on_dex_fill(a, price=b, fee=c, mid=dex_mid)
        return -(a * b + c), a, 0.0
    if kind == "cex":
        led.on_cex_fill(a, price=b, fee=c, mid=cex_mid)
        return -(a * b + c), 0.0, a
    if kind == "fund":
        led.on_funding(a)
        return a, 0.0, 0.0
    led.on_gas(a)
    return -a, 0.0, 0.0


@given(st.lists(event, max_size=40))
def test_components_sum_to_equity_change(events: list[tuple[str, float, float, float]]) -> None:
    led = PnlLedger()
    index, dmid, cmid = 100.0, 100.0, 100.0
    led.mark(index, dmid, cmid)
    cash, dpos, hpos = 0.0, 0.0, 0.0
    for kind, a, b, c in events:
        if kind == "mark":
            index, dmid, cmid = a, a + b, a + c
            led.mark(index, dmid, cmid)
        else:  # fills happen at the current (marked) mid ± something
            d_cash, d_dex, d_hedge = _book(led, kind, a, b, c, dex_mid=dmid, cex_mid=cmid)
            cash, dpos, hpos = cash + d_cash, dpos + d_dex, hpos + d_hedge
    equity_change = cash + dpos * dmid + hpos * cmid
    assert math.isclose(led.snapshot().total, equity_change, rel_tol=1e-9, abs_tol=1e-6)


# -- which price marks each leg ----------------------------------------------------------------


def _world_equity(cash: float, dex: float, hedge: float, dex_px: float, cex_px: float) -> float:
    return cash + dex * dex_px + hedge * cex_px


def _max_drawdown(path: list[float]) -> float:
    peak, worst = 0.0, 0.0
    for v in path:
        peak = max(peak, v)
        worst = max(worst, peak - v)
    return worst


def test_a_frozen_exchange_mid_makes_no_phantom_drawdown() -> None:
    """The hedge leg through an exchange outage in a crash: marked at fair value's estimate of
    the exchange, not its last mid (holdout/crash_exchange_down: $371 reported, $26 real)."""
    q, px = 0.156, 60_000.0
    led, old = PnlLedger(), PnlLedger()  # `old` marks the hedge at the last mid read
    led.mark_fair(px, 0.0, premium_fresh=True, cex_mid=px, cex_estimate=px)
    old.mark(px, px, px)
    for ledger in (led, old):
        ledger.on_dex_fill(+q, px, 0.0, px)  # long on the DEX, hedged short on the exchange
        ledger.on_cex_fill(-q, px, 0.0, px)
    path, old_path, world = [], [], []
    last_read = px
    for t in range(1, 241):
        px = 60_000.0 * (1.0 - 0.12 * min(t, 120) / 120)  # -12% in 2 min, then flat
        outage = 60 <= t < 180  # the exchange stops answering half-way down
        last_read = last_read if outage else px
        # Fair value comes from the oracle while the exchange is down: it follows the crash.
        led.mark_fair(px, 0.0, premium_fresh=True, cex_mid=None if outage else px, cex_estimate=px)
        old.mark(px, px, last_read)
        path.append(led.snapshot().total)
        old_path.append(old.snapshot().total)
        world.append(_world_equity(0.0, q, -q, px, px))
    assert max(abs(a - b) for a, b in zip(path, world, strict=True)) < 1e-6
    assert _max_drawdown(path) == pytest.approx(_max_drawdown(world), abs=1e-6)
    c = led.snapshot()
    assert c.inventory == 0.0 and abs(c.basis) < 1e-6
    # The frozen mark's phantom: the hedge's gain missing for as long as the outage lasted.
    assert _max_drawdown(old_path) == pytest.approx(q * 60_000.0 * 0.06, rel=0.02)
    assert old_path[-1] == pytest.approx(path[-1], abs=1e-6)  # and given back at the end


def test_a_premium_read_from_a_stale_book_is_not_a_price() -> None:
    """Right after a halt other makers' quotes are stale: the DEX leg keeps the last premium
    read from a fresh book (holdout/chain_halt: a 74-bps premium for 11 s, $18 of phantom
    basis on 0.04 units), and takes the book's premium again once it is fresh."""
    led = PnlLedger()
    led.mark_fair(60_020.0, 20.0, premium_fresh=True, cex_mid=60_000.0, cex_estimate=60_000.0)
    led.on_dex_fill(-0.041, 60_020.0, 0.0, 60_020.0)
    led.on_cex_fill(+0.041, 60_000.0, 0.0, 60_000.0)
    # The chain resumes: the index fell to 58,200; the stale book reads a 450-dollar premium.
    led.mark_fair(58_650.0, 450.0, premium_fresh=False, cex_mid=58_200.0, cex_estimate=58_200.0)
    c = led.snapshot()
    assert c.basis == pytest.approx(0.0, abs=1e-9)  # the premium held at 20: no basis move
    assert c.total == pytest.approx(0.0, abs=1e-9)  # hedged: the fall costs nothing
    # The makers re-post: the book is fresh again and its premium (now 30) is the mark's.
    led.mark_fair(58_230.0, 30.0, premium_fresh=True, cex_mid=58_200.0, cex_estimate=58_200.0)
    assert led.snapshot().basis == pytest.approx(-0.041 * 10.0)


def test_a_fill_is_measured_against_the_mark_not_a_book_mid_of_our_own_quotes() -> None:
    led = PnlLedger()
    led.mark_fair(54_194.0, 0.0, premium_fresh=True, cex_mid=54_194.0, cex_estimate=54_194.0)
    # Our stale quotes hold the book mid at 58,496; a taker lifts our ask at 58,400.
    led.on_dex_fill(-0.01, 58_400.0, 0.0, 58_496.0)
    c = led.snapshot()
    assert c.spread == pytest.approx(0.01 * (58_400.0 - 54_194.0))  # edge against fair value
    assert c.basis == 0.0 and c.total == pytest.approx(c.spread)


fair_mark = st.tuples(
    st.floats(50, 150),  # fair
    st.floats(-2, 2),  # premium
    st.booleans(),  # book fresh
    st.one_of(st.none(), st.floats(-2, 2)),  # exchange mid over the index (None: stale)
    st.floats(-2, 2),  # the exchange's basis estimate
)


@given(st.lists(st.one_of(st.tuples(st.just("fair"), fair_mark), event), max_size=40))
def test_fair_marks_sum_to_equity_change(events: list[tuple[Any, ...]]) -> None:
    """Marks from fair value still add up: equity at the legs' marks, whatever is stale."""
    led = PnlLedger()
    led.mark_fair(100.0, 0.0, premium_fresh=True, cex_mid=100.0, cex_estimate=100.0)
    dmid, cmid, held = 100.0, 100.0, 0.0
    cash, dpos, hpos = 0.0, 0.0, 0.0
    for ev in events:
        if ev[0] == "fair":
            fair, prem, premium_fresh, cex_off, basis = ev[1]
            index = fair - prem
            held = prem if premium_fresh else held
            cex = None if cex_off is None else index + cex_off
            led.mark_fair(
                fair, prem, premium_fresh=premium_fresh, cex_mid=cex, cex_estimate=index + basis
            )
            dmid, cmid = index + held, cex if cex is not None else index + basis
            continue
        kind, a, b, c = ev
        if kind == "mark":
            dmid, cmid = a + b, a + c
            led.mark(a, dmid, cmid)
        else:  # the caller's DEX mid is anything: the ledger measures at its mark
            d_cash, d_dex, d_hedge = _book(led, kind, a, b, c, dex_mid=b + 7.0, cex_mid=cmid)
            cash, dpos, hpos = cash + d_cash, dpos + d_dex, hpos + d_hedge
    equity_change = cash + dpos * dmid + hpos * cmid
    assert math.isclose(led.snapshot().total, equity_change, rel_tol=1e-9, abs_tol=1e-6)
