"""Fair value's DEX fallback: other makers' book counts from its last post, never its last read.

The runtime reads the book every cycle. Before this rule the DEX source took the read's time as
the book's age, so with the exchange and the oracle both stale a halted chain's frozen book was
fair value at age 0, and the agent quoted off it instead of withdrawing.
"""

from __future__ import annotations

import pytest

from agent.model.fairvalue import (
    FairValue,
    FairValueEstimator,
    FairValueParams,
    FairValueSource,
    PremiumFreshness,
)

P = FairValueParams(max_cex_age_s=3.0, max_oracle_age_s=120.0, max_dex_age_s=30.0)
FROZEN_MID = 60_000.0
"""Other makers' mid when the chain halts (the book cannot move while it is halted)."""


def _outage(*, halt_end_s: float, posts_after_s: float, until_s: int) -> dict[int, FairValue]:
    """Drive the estimator as the runtime does through a halt with the exchange down.

    A block, an exchange mid and other makers' re-post every second, an oracle report every
    10 s, until 100 s. Then the chain halts (the book freezes at ``FROZEN_MID``) and the exchange
    stops answering; the oracle, pushed on chain, stops with it. From `halt_end_s` blocks come
    again, first with the quotes posted before the halt 50 bps over (mined late), and from
    `posts_after_s` the makers re-post every block at 61,000. Every cycle passes the freshness
    rule's verdicts exactly as the runtime computes them; returns fair value by second.
    """
    fv = FairValueEstimator(P)
    judge = PremiumFreshness(gap_s=15.0, settle_s=P.max_dex_age_s)
    head_seen = 0.0
    cex_read = 0.0
    out: dict[int, FairValue] = {}
    for t in range(until_s + 1):
        ts = float(t)
        live = t < 100 or t >= halt_end_s
        if live:
            head_seen = ts
        if t < 100:
            cex_read = ts
            fv.update_cex(ts, FROZEN_MID - 5.0 + (t % 2))
            if t % 10 == 0:
                fv.update_oracle(ts, FROZEN_MID - 5.0)
            mid = FROZEN_MID + 0.5 * (t % 2)  # a fresh post every block
        elif t < halt_end_s:
            mid = FROZEN_MID
        elif t < posts_after_s:
            mid = FROZEN_MID * 1.005  # posted before the halt, mined after it
        else:
            mid = 61_000.0 + 0.5 * (t % 2)
        premium_fresh = judge.fresh(ts, head_seen, cex_read)
        fv.update_dex(
            ts, mid - 3.0, mid + 3.0, premium_fresh=premium_fresh, book_fresh=judge.book_fresh
        )
        out[t] = fv.value(ts)
    return out


def test_a_halted_chains_frozen_book_is_stale_not_fair_value() -> None:
    # Only the runtime's pre-existing arguments (premium_fresh): this failed before the rule,
    # when the frozen book read every cycle was a DEX source of age 0.
    fv = FairValueEstimator(P)
    judge = PremiumFreshness(gap_s=15.0, settle_s=P.max_dex_age_s)
    for t in range(100):
        ts = float(t)
        fv.update_cex(ts, FROZEN_MID)
        if t % 10 == 0:
            fv.update_oracle(ts, FROZEN_MID)
        mid = FROZEN_MID + 0.5 * (t % 2)
        fv.update_dex(ts, mid - 3.0, mid + 3.0, premium_fresh=judge.fresh(ts, ts, ts))
    for t in range(100, 400):  # halted, the exchange silent: the same book every cycle
        ts = float(t)
        fv.update_dex(
            ts, FROZEN_MID - 3.0, FROZEN_MID + 3.0, premium_fresh=judge.fresh(ts, 99.0, 99.0)
        )
        v = fv.value(ts)
        if t >= 220:  # the exchange stale since 103 s and the oracle since 210 s
            assert v.stale and v.source is FairValueSource.LAST, t
            assert v.age_s >= 120.0


def test_the_dex_source_counts_from_the_last_post_through_a_halt() -> None:
    fair = _outage(halt_end_s=400.0, posts_after_s=430.0, until_s=500)
    # The oracle (last report at 90 s) is fresh until 210 s: the index, not the book.
    assert fair[200].source is FairValueSource.ORACLE and not fair[200].stale
    # From then on nothing is fresh: the last post was at 99 s, 30 s of book age gone long ago.
    assert all(fair[t].stale and fair[t].source is FairValueSource.LAST for t in range(211, 430))
    # Blocks again at 400 s, but the book changes with quotes posted before the halt: not a
    # post until the chain has settled for max_dex_age_s, so still stale (and never 60,300).
    assert all(fair[t].price != pytest.approx(FROZEN_MID * 1.005) for t in range(400, 430))
    # The makers re-post from 430 s: other makers' fresh mid is fair value again.
    v = fair[431]
    assert v.source is FairValueSource.DEX and not v.stale
    assert v.price == pytest.approx(61_000.25, abs=0.5) and v.age_s == 0.0


def test_a_live_book_nobody_reposts_ages_out() -> None:
    # A live chain whose other makers stopped re-posting (the book unchanged for minutes) with
    # the exchange and the oracle stale: fresh for max_dex_age_s after the last post, then stale.
    fv = FairValueEstimator(P)
    fv.update_dex(0.0, 1999.0, 2003.0, premium_fresh=False, book_fresh=True)
    for t in range(1, 61):
        fv.update_dex(float(t), 1999.0, 2003.0, premium_fresh=False, book_fresh=True)
        v = fv.value(float(t))
        if t <= 30:
            assert (v.source, v.price, v.stale, v.age_s) == (FairValueSource.DEX, 2001.0, False, t)
        else:
            assert v.stale and v.source is FairValueSource.LAST and v.age_s == t
    # A new post is fresh at once; the stricter premium rule is the default for the book.
    fv.update_dex(61.0, 1999.5, 2003.0, premium_fresh=False, book_fresh=True)
    assert fv.value(61.0).source is FairValueSource.DEX
    fv.update_dex(62.0, 2000.0, 2003.0, premium_fresh=False)
    assert fv.value(62.0).price == 2001.25


def test_the_book_half_of_the_freshness_rule() -> None:
    judge = PremiumFreshness(gap_s=15.0, settle_s=30.0)
    assert not judge.book_fresh  # nothing judged yet
    assert judge.fresh(0.0, 0.0, 0.0) and judge.book_fresh
    # The exchange is silent (the same read) but blocks come: the book is a price, the premium
    # (the book against a held index) is not.
    assert not judge.fresh(1.0, 1.0, 0.0) and judge.book_fresh
    assert not judge.fresh(20.0, 1.0, 0.0) and not judge.book_fresh  # no block for 19 s
    for t in range(40, 70):  # blocks again after the gap: settling, neither half fresh
        assert not judge.fresh(float(t), float(t), float(t)) and not judge.book_fresh
    assert judge.fresh(70.0, 70.0, 70.0) and judge.book_fresh
