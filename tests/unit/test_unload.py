"""The unload executor's price band and its view of "the market" (not our own quotes)."""

from __future__ import annotations

from agent.types import Side
from agent.unload import best_other, unload_limit_tick
from tests.unit.snapshots import snapshot


def test_our_own_quotes_are_not_the_opposite_best() -> None:
    snap = snapshot(bid=299_000, ask=301_000, own=((Side.BID, 299_900, 5),))
    assert best_other(snap, Side.BID, 0.01) == 2990.0
    assert best_other(snap, Side.ASK, 0.01) == 3010.0


def test_the_limit_never_goes_past_the_band_and_rounds_in_our_favour() -> None:
    # Selling 50 bps under $3000 may accept down to $2985.00; buying may pay up to $3015.00.
    assert unload_limit_tick(Side.ASK, 3000.0, 0.005, 0.01) == 298_500
    # (3000 × 1.005 / 0.01 is 301499.99… in binary floating point: one tick inside the band.)
    assert 301_499 <= unload_limit_tick(Side.BID, 3000.0, 0.005, 0.01) <= 301_500
    assert unload_limit_tick(Side.ASK, 3000.004, 0.0, 0.01) == 300_001  # ceil when selling
    assert unload_limit_tick(Side.BID, 3000.004, 0.0, 0.01) == 300_000  # floor when buying
    assert unload_limit_tick(Side.ASK, 0.001, 0.5, 0.01) == 1
