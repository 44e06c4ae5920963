"""Risk engine and the market: fair-value collar, hysteresis, heartbeat, capital, hedge posture."""

from __future__ import annotations

import math

import pytest

from agent.errors import ConfigError
from agent.risk import (
    Band,
    RiskEngine,
    RiskLimits,
    RiskState,
    book_equity_quote,
    marked_equity_quote,
    strategy_capital,
)
from tests.unit.risk.test_risk_engine import calm

S = RiskState


def test_collar_centres_on_fair_value_not_on_a_lagging_index() -> None:
    # The exchange moved 3 %; fair value follows it, the oracle index has not yet. Quotes around
    # fair value are right, and the collar must not call them wrong.
    around_fair = {"index_price": 100.0, "fair_value": 103.0, "quote_prices": (102.9, 103.1)}
    assert RiskEngine().evaluate(calm(0.0, **around_fair)).state is S.NORMAL
    # Quotes left at the old price are 3 % through fair value: the collar pulls them.
    stale = {**around_fair, "quote_prices": (99.9, 100.1)}
    assert RiskEngine().evaluate(calm(0.0, **stale)).state is S.WITHDRAWN


def test_hedging_widening_does_not_trip_the_collar() -> None:
    # In HEDGING quotes sit 3× wider: 1.5 × the base collar (41 bps at 50 % vol) must not read
    # as a breach.
    engine = RiskEngine()
    wide = (100.0 * (1 - 0.0062), 100.0 * (1 + 0.0062))
    d = engine.evaluate(calm(0.0, margin_ratio=0.6, quote_prices=wide))
    assert d.state is S.HEDGING
    for t in range(1, 600):
        d = engine.evaluate(calm(float(t), margin_ratio=0.6, quote_prices=wide))
        assert d.state is S.HEDGING
    # The same quotes in NORMAL are outside the collar.
    assert RiskEngine().evaluate(calm(0.0, quote_prices=wide)).state is S.REDUCED


def test_a_flapping_trigger_flips_the_state_a_handful_of_times_per_hour() -> None:
    # A trigger that fires for 10 s every 150 s for an hour (the collar and HEDGING used to flip
    # 70 times in 4 hours this way).
    def run(limits: RiskLimits) -> int:
        engine = RiskEngine(limits)
        for t in range(3_600):
            bad = t % 150 < 10
            engine.evaluate(calm(float(t), block_age_s=60.0 if bad else 1.0))
        return sum(1 for tr in engine.drain_transitions() if tr.to_state > tr.from_state)

    escalations = run(RiskLimits())
    assert escalations <= 6
    assert run(RiskLimits(flap_backoff=1.0)) >= 20


def test_a_single_event_still_recovers_on_the_normal_cooldowns() -> None:
    engine = RiskEngine()
    engine.evaluate(calm(0.0, block_age_s=60.0))
    t = 1.0
    while engine.state is not S.NORMAL and t < 400:
        engine.evaluate(calm(t))
        t += 1.0
    # 60 + 30 + 30 + 15 s of cooldowns, one step at a time.
    assert engine.state is S.NORMAL and t < 200


def test_oracle_age_limits_follow_the_feeds_heartbeat() -> None:
    hb = RiskLimits(oracle_heartbeat_s=60.0)
    # 45 s is two heartbeats late for the default 10/30 s band, on time for a 60 s heartbeat.
    assert RiskEngine().evaluate(calm(0.0, oracle_age_s=45.0)).state is S.WITHDRAWN
    assert RiskEngine(hb).evaluate(calm(0.0, oracle_age_s=45.0)).state is S.NORMAL
    assert RiskEngine(hb).evaluate(calm(0.0, oracle_age_s=100.0)).state is S.WIDENED
    assert RiskEngine(hb).evaluate(calm(0.0, oracle_age_s=200.0)).state is S.WITHDRAWN


def test_drawdown_is_relative_to_the_capital_the_strategy_uses() -> None:
    # A $250k account quoting a 10-unit cap at 100: the strategy's capital is the margin of a
    # position at the cap on both 10x legs, 0.2 × 10 × 100 = $200, not the account.
    account = {"equity_quote": 250_000.0}
    engine = RiskEngine()
    engine.evaluate(calm(0.0, **account))
    assert engine.strategy_capital_quote == pytest.approx(200.0)
    d = engine.evaluate(calm(1.0, equity_quote=249_995.0))  # $5: 2.5 % of the capital
    assert d.state is S.REDUCED and engine.drawdown_frac == pytest.approx(0.025)
    assert engine.evaluate(calm(2.0, equity_quote=249_989.0)).state is S.HALTED  # 5.5 %
    # The same $11 against the peak of the account was 0.004 %: the old reading never bound.
    explicit = RiskEngine(RiskLimits(strategy_capital_quote=250_000.0))
    explicit.evaluate(calm(0.0, **account))
    assert explicit.evaluate(calm(1.0, equity_quote=249_989.0)).state is S.NORMAL


def test_strategy_capital_is_fixed_at_the_first_price_and_follows_fair_value() -> None:
    engine = RiskEngine(RiskLimits(capital_margin_frac=1.0))  # unlevered: the cap's notional
    engine.evaluate(calm(0.0, index_price=99.0, fair_value=101.0, equity_quote=10_000.0))
    assert engine.strategy_capital_quote == pytest.approx(1_010.0)  # fair value, not the index
    # A crash halves the price: the limit does not tighten under the loss it is judging.
    engine.evaluate(calm(1.0, index_price=50.0, fair_value=50.0, equity_quote=9_990.0))
    assert engine.strategy_capital_quote == pytest.approx(1_010.0)
    assert engine.drawdown_frac == pytest.approx(10.0 / 1_010.0)
    # A position over the cap at start takes margin too: the strategy is sized by it.
    inherited = RiskEngine(RiskLimits(capital_margin_frac=1.0))
    inherited.evaluate(calm(0.0, inventory_base=-25.0, equity_quote=10_000.0))
    assert inherited.strategy_capital_quote == pytest.approx(2_500.0)  # 25 × 100, not 10 × 100
    # No price yet: nothing to size by, so no capital (and the peak fallback only reads lower).
    unpriced = RiskEngine()
    unpriced.evaluate(calm(0.0, index_price=math.nan, equity_quote=10_000.0))
    assert unpriced.strategy_capital_quote is None


def test_strategy_capital_helper_and_its_validation() -> None:
    assert strategy_capital(RiskLimits(), 2.0, 3_000.0) == pytest.approx(1_200.0)
    assert strategy_capital(RiskLimits(strategy_capital_quote=5e4), 2.0, 3e3) == 5e4
    assert strategy_capital(RiskLimits(), 2.0, math.nan) is None
    assert strategy_capital(RiskLimits(), 0.0, 3_000.0) is None
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ConfigError, match=r"risk\.strategy_capital_quote"):
            RiskLimits(strategy_capital_quote=bad)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match=r"risk\.capital_margin_frac"):
            RiskLimits(capital_margin_frac=bad)


def test_marked_equity_nets_a_hedged_book_at_fresh_marks() -> None:
    # Long 5 on the DEX, short 5 on the exchange, both opened at 2,000. A crash to 1,500:
    before = marked_equity_quote(-10_000.0 + 20_000.0, 5.0, 10_000.0, -5.0, 2_000.0)
    after = marked_equity_quote(-10_000.0 + 20_000.0, 5.0, 10_000.0, -5.0, 1_500.0)
    assert before == after == pytest.approx(20_000.0)
    # A hedge marked at a stale price makes a phantom loss: why both legs are marked fresh.
    stale = marked_equity_quote(10_000.0, 5.0, 10_000.0, -5.0, 1_500.0, hedge_mark=2_000.0)
    assert stale == pytest.approx(17_500.0)


def test_a_hedged_book_reads_no_drawdown_when_the_mark_read_fails() -> None:
    # Two cycles of holdout/crash_exchange_down in live timing, 230 s after a crash from 60,000:
    # DEX long 0.188, hedged by 0.188 sold on the exchange. In the second the venue's mark read
    # failed while the account's succeeded (the account is still valued at the contract's mark).
    dex, cash, hedge, mid = 0.188, 11_234.8, -0.188, 54_114.6
    read = book_equity_quote(
        248_884.9, dex, cash, hedge, venue_mark=54_057.2, fair_value=54_057.2, hedge_mark=mid
    )
    no_mark = book_equity_quote(
        248_882.9, dex, cash, hedge, venue_mark=None, fair_value=54_057.2, hedge_mark=mid
    )
    assert read is not None and no_mark is not None
    assert no_mark == pytest.approx(read, abs=5.0)
    # The session peak was read before the crash with both legs marked at 60,000.
    peak = 250_005.3
    engine = RiskEngine(RiskLimits(strategy_capital_quote=12_003.0))
    engine.evaluate(calm(0.0, equity_quote=peak))
    assert engine.evaluate(calm(1.0, equity_quote=no_mark)).state is S.NORMAL
    assert engine.drawdown_frac == pytest.approx(0.005, abs=1e-3)
    # The DEX account plus the hedge's execution edge (what the risk inputs used when this was
    # None) reads the DEX leg's whole crash loss: the phantom 9.8 % that halted the run.
    alone = RiskEngine(RiskLimits(strategy_capital_quote=12_003.0))
    alone.evaluate(calm(0.0, equity_quote=peak))
    assert alone.evaluate(calm(1.0, equity_quote=248_882.9 - 52.7)).state is not S.NORMAL
    assert alone.drawdown_frac == pytest.approx(0.098, abs=1e-3)


def test_a_hedged_book_nets_at_the_venue_mark_while_fair_value_is_stale() -> None:
    # The exchange is down and the oracle late: no fair value, no exchange mid. The DEX leg is
    # the account as read (at the venue's mark, 54,000), the hedge at that same mark.
    dex, cash = 0.118, 0.118 * 59_828.8
    peak = book_equity_quote(
        250_000.0, dex, cash, -dex, venue_mark=60_000.0, fair_value=60_000.0, hedge_mark=60_000.0
    )
    account = 250_000.0 - dex * 6_000.0
    stale = book_equity_quote(account, dex, cash, -dex, venue_mark=54_000.0, fair_value=None)
    assert peak is not None and stale == pytest.approx(peak)
    # No price at all for the hedge leg: no reading rather than a wrong one.
    assert book_equity_quote(account, dex, cash, -dex, venue_mark=None, fair_value=None) is None


@pytest.mark.parametrize(
    ("trigger", "state", "band", "taker"),
    [
        ({}, S.NORMAL, 1.0, False),
        ({"margin_ratio": 0.6}, S.HEDGING, 0.5, True),
        ({"block_age_s": 60.0}, S.WITHDRAWN, 0.0, True),
    ],
)
def test_hedging_and_withdrawn_tell_the_hedger_to_shrink_its_band_and_take(
    trigger: dict[str, float], state: RiskState, band: float, taker: bool
) -> None:
    d = RiskEngine().evaluate(calm(0.0, inventory_base=2.0, **trigger))
    assert (d.state, d.hedge_band_mult, d.hedge_taker) == (state, band, taker)


def test_an_exchange_jump_pulls_quotes_and_hedges_then_quoting_resumes_at_once() -> None:
    engine = RiskEngine()
    d = engine.evaluate(calm(0.0, inventory_base=2.0, cex_jump=True))
    assert d.state is S.WIDENED and d.cancel_all
    assert (d.hedge_band_mult, d.hedge_taker) == (0.0, True)
    assert [r.name for r in d.readings] == ["cex_jump"]
    # The detector sees a stable market again: quotes come back (WIDENED: half size, twice the
    # spread, on top of the detector's own re-entry posture), not after WITHDRAWN's cooldowns.
    d = engine.evaluate(calm(30.0, inventory_base=2.0))
    assert d.state is S.WIDENED and not d.cancel_all and d.allow_bid and d.allow_ask


def test_stale_quotes_and_a_lagging_oracle_during_a_jump_pull_do_not_withdraw() -> None:
    # A 3% exchange move: our resting quotes sit 300 bps from the new fair value and the oracle
    # has not caught up yet. The pull cancels and hedges; the collar and divergence readings
    # are the jump itself and must not add WITHDRAWN's 60 s cooldown on top.
    jump = {"fair_value": 3090.0, "quote_prices": (2999.0, 3001.0)}
    engine = RiskEngine()
    d = engine.evaluate(
        calm(0.0, cex_jump=True, fair_value_divergence_bps=300.0, index_price=3000.0, **jump)
    )
    assert d.state is S.WIDENED and d.cancel_all
    assert [r.name for r in d.readings] == ["cex_jump"]
    # Without the pull the same readings are a breach: quotes through the collar, a stuck oracle.
    d = RiskEngine().evaluate(
        calm(0.0, fair_value_divergence_bps=300.0, index_price=3000.0, **jump)
    )
    assert d.state is S.WITHDRAWN
    assert {r.name for r in d.readings} >= {"quote_collar_ratio", "fair_value_divergence_bps"}


@pytest.mark.parametrize(
    ("flag", "bid", "ask"), [("swept_bid", False, True), ("swept_ask", True, False)]
)
def test_a_swept_side_is_not_requoted_and_the_residual_is_hedged_at_once(
    flag: str, bid: bool, ask: bool
) -> None:
    # Informed takers swept our ladder ahead of a move the exchange has not printed: quoting
    # that side again sells them the same option, and the inventory they left is hedged now.
    d = RiskEngine().evaluate(calm(0.0, inventory_base=0.1, **{flag: True}))
    assert d.state is S.NORMAL and not d.cancel_all
    assert (d.allow_bid, d.allow_ask) == (bid, ask)
    assert (d.hedge_band_mult, d.hedge_taker) == (0.0, True)
    # The flag cleared (the pause is over): both sides and the normal band come back.
    d = RiskEngine().evaluate(calm(0.0, inventory_base=0.1))
    assert (d.allow_bid, d.allow_ask, d.hedge_band_mult, d.hedge_taker) == (True, True, 1.0, False)


def test_sweep_limits_are_validated() -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError):
        RiskLimits(sweep_fills=-1)
    with pytest.raises(ConfigError):
        RiskLimits(sweep_window_s=0.0)


def test_a_crash_escalating_in_steps_is_one_event_not_three_flaps() -> None:
    # flash_crash: REDUCED (vol), WIDENED (exchange jump), WITHDRAWN (index range) within 15 s.
    # Counted as two flaps, WITHDRAWN's 60 s cooldown became 240 s and WIDENED's 120 s, so the
    # agent stayed withdrawn through the whole recovery of the 600 s stress run.
    engine = RiskEngine()
    engine.evaluate(calm(0.0, realized_vol_annual=1.1))
    engine.evaluate(calm(1.0, realized_vol_annual=1.1, cex_jump=True))
    # (the third step by a block-age breach: any trigger demanding WITHDRAWN will do)
    engine.evaluate(calm(15.0, realized_vol_annual=1.1, block_age_s=60.0))
    assert engine.state is S.WITHDRAWN
    t = 16.0
    while engine.state is not S.NORMAL and t < 600:
        engine.evaluate(calm(t))
        t += 1.0
    # 60 + 30 + 30 + 15 s of cooldowns, as for a single trigger.
    assert engine.state is S.NORMAL and t < 16.0 + 200.0
    # Coming back after the release is a flap: the next cooldown doubles.
    engine.evaluate(calm(t, block_age_s=60.0))
    start = t
    while engine.state is S.WITHDRAWN and t < start + 600:
        t += 1.0
        engine.evaluate(calm(t))
    assert t - start >= 120.0


def test_drawdown_withdraws_and_hedges_it_all_before_the_halt() -> None:
    # 2 % reduces, 3.5 % flattens (cancel all, reduce-only, the whole residual hedged as taker)
    # while the halt, which does no automated hedging, is still 1.5 % of the capital away.
    engine = RiskEngine(RiskLimits(strategy_capital_quote=10_000.0))
    engine.evaluate(calm(0.0, equity_quote=10_000.0, inventory_base=2.0))
    assert engine.evaluate(calm(1.0, equity_quote=9_780.0, inventory_base=2.0)).state is S.REDUCED
    d = engine.evaluate(calm(2.0, equity_quote=9_640.0, inventory_base=2.0))
    assert d.state is S.WITHDRAWN and "drawdown_withdraw_frac" in [r.name for r in d.readings]
    assert d.cancel_all and d.reduce_only and d.hedge_taker and d.hedge_band_mult == 0.0
    assert (d.allow_bid, d.allow_ask) == (False, True)  # only the side that reduces the long
    # Flat and hedged, the equity recovers part way: still withdrawn until below the release.
    for t in range(3, 200):
        assert engine.evaluate(calm(float(t), equity_quote=9_700.0)).state is S.WITHDRAWN
    assert engine.evaluate(calm(200.0, equity_quote=9_480.0)).state is S.HALTED
    # Off (0): straight from REDUCED to the halt, as before.
    off = RiskEngine(RiskLimits(strategy_capital_quote=10_000.0, drawdown_withdraw_frac=0.0))
    off.evaluate(calm(0.0, equity_quote=10_000.0))
    assert off.evaluate(calm(1.0, equity_quote=9_640.0)).state is S.REDUCED
    assert off.evaluate(calm(2.0, equity_quote=9_480.0)).state is S.HALTED


def _latched(engine: RiskEngine) -> float:
    """Withdraw ``engine`` by the drawdown level and hold it there flat; return the time."""
    engine.evaluate(calm(0.0, equity_quote=10_000.0))
    assert engine.evaluate(calm(1.0, equity_quote=9_640.0)).state is S.WITHDRAWN  # 3.6 %
    assert engine.drawdown_latched
    # Flat and hedged for ten minutes, every other trigger clear: it stays out.
    for t in range(2, 600):
        assert engine.evaluate(calm(float(t), equity_quote=9_650.0)).state is S.WITHDRAWN
    assert engine.drawdown_latched
    return 600.0


def test_the_drawdown_latch_is_cleared_by_an_operator_resume_that_re_bases_the_peak() -> None:
    engine = RiskEngine(RiskLimits(strategy_capital_quote=10_000.0))
    t = _latched(engine)
    engine.drain_transitions()

    resumed = engine.operator_resume(t, "alice")
    assert resumed is not None and (resumed.from_state, resumed.to_state) == (
        S.WITHDRAWN,
        S.WITHDRAWN,
    )
    assert "alice" in resumed.reason and "9650.00" in resumed.reason
    assert engine.drain_transitions() == (resumed,)  # journaled like any other transition
    assert not engine.drawdown_latched and engine.peak_equity_quote == 9_650.0
    assert engine.drawdown_frac == 0.0

    # It re-enters through the normal cooldowns, counted from the resume.
    steps = []
    while engine.state is not S.NORMAL and t < 1200.0:
        t += 1.0
        engine.evaluate(calm(t, equity_quote=9_650.0))
        steps.extend(engine.drain_transitions())
    assert [(x.from_state, x.to_state) for x in steps] == [
        (S(level), S(level - 1)) for level in range(S.WITHDRAWN, 0, -1)
    ]
    assert steps[0].at_s - 600.0 >= RiskLimits().cooldown_withdrawn_s

    # The next drawdown counts from the new peak: 2.5 % below 9,650 reduces, 3.6 % withdraws.
    assert engine.evaluate(calm(t + 1, equity_quote=9_400.0)).state is S.REDUCED
    assert engine.evaluate(calm(t + 2, equity_quote=9_290.0)).state is S.WITHDRAWN
    assert engine.drawdown_latched


def test_a_resume_leaves_every_other_state_alone() -> None:
    # Withdrawn by another trigger (a stale chain) is not a latch: it steps down on its own.
    engine = RiskEngine(RiskLimits(strategy_capital_quote=10_000.0))
    engine.evaluate(calm(0.0, equity_quote=10_000.0))
    assert engine.evaluate(calm(1.0, equity_quote=10_000.0, block_age_s=60.0)).state is (
        S.WITHDRAWN
    )
    assert not engine.drawdown_latched
    engine.drain_transitions()
    assert engine.operator_resume(2.0, "bob") is None
    assert engine.drain_transitions() == () and engine.peak_equity_quote == 10_000.0
    # Reduced by the drawdown warn band (2.5 %): it releases on its own once equity recovers.
    reduced = RiskEngine(RiskLimits(strategy_capital_quote=10_000.0))
    reduced.evaluate(calm(0.0, equity_quote=10_000.0))
    assert reduced.evaluate(calm(1.0, equity_quote=9_750.0)).state is S.REDUCED
    assert not reduced.drawdown_latched and reduced.operator_resume(2.0, "bob") is None
    assert reduced.peak_equity_quote == 10_000.0


def test_the_drawdown_latch_and_its_re_based_peak_survive_a_restart() -> None:
    limits = RiskLimits(strategy_capital_quote=10_000.0)
    engine = RiskEngine(limits)
    t = _latched(engine)
    memory = engine.memory()
    assert memory["drawdown_latched"] is True

    # Restarted, before any reading: the latch is known, so a resume waiting in the data dir
    # (written while the agent was down) clears it; the peak is the next reading's equity.
    again = RiskEngine(limits, start_s=t + 30)
    again.restore(memory)
    assert again.state is S.WITHDRAWN and again.drawdown_latched
    resumed = again.operator_resume(t + 30, "carol")
    assert resumed is not None and "the next equity reading" in resumed.reason
    again.evaluate(calm(t + 31, equity_quote=9_600.0))
    assert again.peak_equity_quote == 9_600.0 and not again.drawdown_latched

    # Restarted after the resume: the re-based peak is restored, not the session's first one.
    after = RiskEngine(limits, start_s=t + 40)
    after.restore(again.memory())
    assert after.peak_equity_quote == 9_600.0 and not after.drawdown_latched
    assert after.evaluate(calm(t + 41, equity_quote=9_600.0)).state is S.WITHDRAWN
    assert after.drawdown_frac == 0.0

    # Restarted still latched, with no resume: it stays out.
    held = RiskEngine(limits, start_s=t + 50)
    held.restore(memory)
    for u in range(1, 300):
        assert held.evaluate(calm(t + 50 + u, equity_quote=9_650.0)).state is S.WITHDRAWN
    assert held.drawdown_latched


def test_the_flatten_level_must_lie_inside_the_drawdown_band() -> None:
    for bad in (0.01, 0.05, 0.2):
        with pytest.raises(ConfigError, match=r"risk\.drawdown_withdraw_frac must lie between"):
            RiskLimits(drawdown_withdraw_frac=bad)
    # A monitor-only drawdown band keeps the flatten level's own WITHDRAWN.
    monitor = RiskLimits(
        strategy_capital_quote=10_000.0,
        drawdown_frac=Band(0.02, 0.05, S.NORMAL, S.NORMAL),
    )
    engine = RiskEngine(monitor)
    engine.evaluate(calm(0.0, equity_quote=10_000.0))
    assert engine.evaluate(calm(1.0, equity_quote=9_400.0)).state is S.WITHDRAWN


@pytest.mark.parametrize(
    "blocked",
    [
        {"cex_rate_limited": True},
        {"cex_reachable": False},
        {"cex_banned": True},
        {"cex_feed_age_s": 4.0},
        {"cex_feed_age_s": math.nan},
    ],
    ids=["429", "unreachable", "banned", "feed 4 s old", "feed unread"],
)
def test_while_the_hedge_is_blocked_only_the_side_that_reduces_unhedged_exposure_quotes(
    blocked: dict[str, object],
) -> None:
    # The crash under a 429 storm: takers sold us 0.13 BTC, the hedge could not go out, and the
    # bids kept filling (0.19 BTC by the time one hedge got through, 2% lower). A fill we cannot
    # hedge is held through the move: only the reducing side may quote until the hedge works.
    long_unhedged = RiskEngine().evaluate(
        calm(0.0, inventory_base=0.13, hedge_exposure_base=0.13, **blocked)
    )
    assert (long_unhedged.allow_bid, long_unhedged.allow_ask) == (False, True)
    # ... and only as far as flat: a sweep of the reducing side must not overshoot into a new
    # unhedged position (a 0.007 short became a 0.111 long in the live crash).
    assert long_unhedged.ask_room_base == pytest.approx(0.13)
    short_unhedged = RiskEngine().evaluate(
        calm(0.0, inventory_base=-0.2, hedge_exposure_base=-0.05, **blocked)
    )
    assert (short_unhedged.allow_bid, short_unhedged.allow_ask) == (True, False)
    assert short_unhedged.bid_room_base == pytest.approx(0.05)
    # Hedged flat (float noise of a hedged pair included): neither side reduces the exposure,
    # and with both quoted one taker order could fill a whole side unhedged.
    flat = RiskEngine().evaluate(
        calm(0.0, inventory_base=0.186, hedge_exposure_base=0.186 - 0.186000000001, **blocked)
    )
    assert (flat.allow_bid, flat.allow_ask) == (False, False)


def test_an_unhedged_residual_quotes_both_sides_while_the_hedge_works() -> None:
    # The hedge can go out: the residual is the hedger's to close, quoting is not restricted.
    # Without a hedge leg (None) nothing is blocked on the exchange's health either.
    working = RiskEngine().evaluate(calm(0.0, inventory_base=0.13, hedge_exposure_base=0.13))
    assert (working.allow_bid, working.allow_ask) == (True, True)
    assert working.bid_room_base == working.ask_room_base == math.inf
    no_leg = RiskEngine().evaluate(calm(0.0, inventory_base=0.13, cex_reachable=False))
    assert (no_leg.allow_bid, no_leg.allow_ask) == (True, True)
