"""P&L attribution adds up to the mark-to-market equity change."""

from __future__ import annotations

import math

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
        elif kind == "dex":  # fills happen at the current (marked) mid ± something
            led.on_dex_fill(a, price=b, fee=c, mid=dmid)
            cash -= a * b + c
            dpos += a
        elif kind == "cex":
            led.on_cex_fill(a, price=b, fee=c, mid=cmid)
            cash -= a * b + c
            hpos += a
        elif kind == "fund":
            led.on_funding(a)
            cash += a
        else:
            led.on_gas(a)
            cash -= a
    equity_change = cash + dpos * dmid + hpos * cmid
    assert math.isclose(led.snapshot().total, equity_change, rel_tol=1e-9, abs_tol=1e-6)
