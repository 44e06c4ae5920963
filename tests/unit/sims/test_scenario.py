"""Scenario format, strict loader, shortening and the deterministic expander."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.types import Side
from sims.scenario import (
    GasSpike,
    Scenario,
    eip1559_base_fee,
    expand,
    list_scenarios,
    load_scenario,
    parse_duration_s,
)

REQUIRED = {
    "calm",
    "flash_crash",
    "vol_shock_3x",
    "funding_flip",
    "gas_spike",
    "mempool_stall",
    "cex_outage",
    "stale_oracle",
    "liquidation_cascade",
    "combined_crisis",
    "demo",
}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_every_required_scenario_ships_and_loads() -> None:
    assert set(list_scenarios()) >= REQUIRED
    for name in list_scenarios():
        s = load_scenario(name)
        assert s.name == name
        assert s.description


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[gas.spikes]]\nat_s = 10\nmultiplier = 5000\n",
            "scenario.gas.spikes.0.multiplier: Input should be less than or equal to 1000",
        ),
        (
            "[gas]\nbase_fee = 3\n",
            "scenario.gas.base_fee: unknown key (did you mean 'base_fee_gwei'",
        ),
        (
            "[price]\nvol_annual = 'high'\n",
            "scenario.price.vol_annual: Input should be a valid number",
        ),
        (
            "[[mempool.stalls]]\nat_s = '2d'\nduration_s = 5\n",
            "scenario.mempool.stalls.0.at_s: Value error, bad unit 'd'",
        ),
        ("[[price.shocks]]\nat_s = 10\n", "scenario.price.shocks.0.move_pct: Field required"),
        (
            "duration_s = '10m'\n[[cex.outages]]\nat_s = '9m'\nduration_s = '2m'\n",
            "scenario: Value error, cex.outages[0] ends at 660 s, after the scenario ends (600 s)",
        ),
        (
            "[takers]\n[[takers.cascades]]\nat_s = 1\ntotal_base = 1\nside = 'up'\n",
            "scenario.takers.cascades.0.side: Input should be 'buy' or 'sell'",
        ),
        (
            "[mempool]\ninclusion_delay_blocks = 1.5\n",
            "scenario.mempool.inclusion_delay_blocks: Input should be a valid integer",
        ),
        ("[mempool]\nautomine = 1\n", "scenario.mempool.automine: Input should be a valid boolean"),
        (
            "[price]\nvol_annual = nan\n",
            "scenario.price.vol_annual: Input should be a finite number",
        ),
        (
            "block_time_s = 0.01\n",
            "scenario.block_time_s: Input should be greater than or equal to 0.1",
        ),
        ("nonsense = 1\n", "scenario.nonsense: unknown key"),
        ("[price]\nvol_annual = inf\n", "scenario.price.vol_annual: Input should be a finite"),
        ("[chain]\nprofile = 'l3'\n", "scenario.chain.profile: Input should be 'l1' or 'l2'"),
        (
            "[price]\ndrift_annual = -1\ndrift_pct_per_hour = -0.5\n",
            "scenario.price: Value error, give drift_annual or drift_pct_per_hour, not both",
        ),
    ],
)
def test_loader_names_the_key_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(_write(tmp_path, text))
    assert message in str(info.value)


def test_unknown_scenario_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"choose one of .*calm"):
        load_scenario("no_such_scenario")


def test_durations_accept_units() -> None:
    assert parse_duration_s("1h15m") == 4500.0
    assert parse_duration_s("500ms") == 0.5
    assert parse_duration_s(90) == 90.0
    with pytest.raises(ConfigError, match="bad unit"):
        parse_duration_s("3 weeks", "k")


def test_defaults_from_a_minimal_file(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, "duration_s = '10m'\n"))
    assert s.name == "s"
    assert s.duration_s == 600.0
    assert s.n_steps == 600
    assert s.price.initial_usd == 60_000.0


def test_same_seed_same_timeline_other_seed_differs() -> None:
    s = load_scenario("demo")
    a, b, c = expand(s, 7), expand(s, 7), expand(s, 8)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert a[100] == b[100]


def test_taker_changes_leave_the_price_path_alone() -> None:
    s = load_scenario("calm")
    busier = s.model_copy(update={"takers": s.takers.model_copy(update={"rate_per_min": 60.0})})
    a, b = expand(s, 3), expand(busier, 3)
    np.testing.assert_array_equal(a.index_usd, b.index_usd)
    assert len(b.takers) > 5 * len(a.takers)


def test_flash_crash_moves_the_index_by_the_scripted_shock() -> None:
    tl = expand(load_scenario("flash_crash"), 1)
    # 22 min into the run (end of the 2-min move) the index sits ~25% under the 20-min level.
    before = tl.index_usd[20 * 60 - 2]
    bottom = tl.index_usd[22 * 60 + 30]
    assert bottom / before == pytest.approx(0.75, abs=0.03)
    assert tl.index_usd[-1] / before == pytest.approx(1 - 0.25 * 0.2, abs=0.04)


def test_stall_blocks_are_unmined_and_freeze_the_oracle() -> None:
    tl = expand(load_scenario("mempool_stall"), 5)
    stalled = ~tl.mined
    assert int(stalled.sum()) == 90 + 60
    assert not tl.oracle_update[stalled].any()
    assert tl.oracle_age_s.max() >= 90.0
    assert not tl.drop_txs[stalled].any()


def test_gas_spike_holds_then_decays_like_eip1559() -> None:
    t = np.arange(1.0, 121.0)
    mined = np.ones(t.size, dtype=np.bool_)
    mined[60:70] = False  # a stall freezes the decay: no blocks, no base-fee update
    fee = eip1559_base_fee(t, mined, GasSpike(at_s=10.0, multiplier=40.0, hold_s=30.0), 1.0, 0.125)
    assert math.isnan(fee[9]) and fee[10] == 40.0 and fee[39] == 40.0
    assert fee[40] == pytest.approx(40.0 * 0.875)
    assert fee[59] == pytest.approx(40.0 * 0.875**20)
    assert fee[69] == fee[59]
    # Back within 1% of the quiet fee: the override ends and the chain decides again.
    assert math.isnan(fee[-1])


def test_funding_flip_lands_inside_one_interval() -> None:
    s = load_scenario("funding_flip")
    tl = expand(s, 11)
    snaps = tl.t_s[tl.funding_snapshot]
    np.testing.assert_allclose(snaps, [1200.0, 2400.0, 3600.0])
    early = tl.premium_bps[(tl.t_s > 600) & (tl.t_s < 1600)].mean()
    late = tl.premium_bps[(tl.t_s > 2000) & (tl.t_s < 2400)].mean()
    assert early > 3.0 and late < -6.0


def test_cascade_orders_are_forced_sells_of_the_scripted_total() -> None:
    s = load_scenario("liquidation_cascade")
    tl = expand(s, 2)
    liq = [o for o in tl.takers if o.liquidation]
    assert len(liq) == 120
    assert sum(o.size_base for o in liq) == pytest.approx(40.0)
    assert all(o.side is Side.ASK and not o.informed for o in liq)
    assert all(25 * 60 <= o.t_s <= 28 * 60 + 1 for o in liq)
    # The step view hands the bots exactly the orders of that step.
    step = tl[liq[0].step]
    assert liq[0] in step.takers and all(o.step == step.index for o in step.takers)


def test_informed_takers_trade_with_the_future_move() -> None:
    tl = expand(load_scenario("stale_oracle"), 4)
    n = len(tl)
    right = total = 0
    for o in tl.takers:
        if o.informed:
            ahead = min(o.step + 60, n - 1)
            move = tl.index_usd[ahead] - tl.index_usd[o.step]
            total += 1
            right += (move > 0) == (o.side is Side.BID)
    assert total > 20 and right == total


def test_cex_faults_follow_the_windows() -> None:
    tl = expand(load_scenario("cex_outage"), 1)
    assert tl[15 * 60 + 10].cex.outage and tl[15 * 60 + 10].cex.any_fault
    assert not tl[10].cex.any_fault
    assert tl[30 * 60 + 60].cex.latency_ms >= 800.0
    assert tl[45 * 60 + 30].cex.reject_429_prob == 0.9


@pytest.mark.parametrize("name", sorted(REQUIRED - {"demo", "calm"}))
def test_shortened_versions_keep_their_stress(name: str) -> None:
    full = load_scenario(name)
    short = full.shortened(600.0)
    assert short.duration_s == 600.0
    a, b = expand(full, 9), expand(short, 9)
    assert len(b) == 600
    if full.mempool.stalls:
        assert (~b.mined).sum() >= 60  # still longer than the risk engine's 45 s block-age breach
    if full.oracle.stale:
        assert b.oracle_age_s.max() > 30.0
    if full.cex.outages:
        assert b.cex_outage.sum() >= 30
    if full.gas.spikes:
        assert np.nanmax(b.base_fee_override_gwei) == np.nanmax(a.base_fee_override_gwei)
    if full.price.shocks:
        worst = min(sh.move_pct for sh in full.price.shocks) / 100
        assert b.index_usd.min() / b.index_usd[0] < 1 + 0.6 * worst
    if full.takers.cascades:
        liq = sum(o.size_base for o in b.takers if o.liquidation)
        assert liq == pytest.approx(sum(c.total_base for c in full.takers.cascades))
    if full.funding.flips:
        assert b.funding_snapshot.sum() >= 2


def test_shortened_rejects_a_longer_duration() -> None:
    with pytest.raises(ConfigError, match="shortened"):
        Scenario(duration_s=600.0).shortened(900.0)


def test_timeline_is_read_only() -> None:
    tl = expand(Scenario(duration_s=120.0), 0)
    with pytest.raises(ValueError, match="read-only"):
        tl.index_usd[0] = 1.0


MIRRORS = {
    "flash_crash": "flash_pump",
    "liquidation_cascade": "short_squeeze",
    "stale_oracle": "stale_oracle_rally",
    "combined_crisis": "combined_rally",
}


@pytest.mark.parametrize(("crash", "mirror"), sorted(MIRRORS.items()))
def test_every_crash_ships_with_its_mirror(crash: str, mirror: str) -> None:
    want = load_scenario(crash).mirrored(mirror).model_dump(exclude={"description"})
    got = load_scenario(mirror).model_dump(exclude={"description"})
    for a, b in zip(want["price"]["shocks"], got["price"]["shocks"], strict=True):
        assert a.pop("move_pct") == pytest.approx(b.pop("move_pct"), rel=1e-6)
    assert want == got


def test_every_scenario_with_a_down_move_has_a_mirror() -> None:
    mirrored = set(MIRRORS) | set(MIRRORS.values()) | {"demo"}  # demo is a tour, not a test
    for name in list_scenarios():
        s = load_scenario(name)
        if any(sh.move_pct < 0 for sh in s.price.shocks):
            assert name in mirrored, f"{name} has no mirror scenario"


def test_mirror_reverses_the_path_in_log_space() -> None:
    s = load_scenario("flash_crash")
    down, up = expand(s, 4), expand(s.mirrored(), 4)
    # Same GBM draws, scripted move reversed: at the bottom of the crash the pump is at its top.
    i = 22 * 60 + 30
    drift = down.index_usd[i] * up.index_usd[i] / s.price.initial_usd**2
    assert up.index_usd[i] / down.index_usd[i] == pytest.approx(1 / 0.75**2 * drift, rel=0.02)


def test_short_run_keeps_the_crash_speed() -> None:
    full = load_scenario("flash_crash")
    short = full.shortened(full.min_shortened_s)
    (sh,) = short.price.shocks
    assert sh.duration_s == 120.0 and sh.move_pct == -25.0  # still -25% over two minutes
    assert sh.at_s >= 60.0  # quiet time before the move, compressed but not gone
    tl = expand(short, 3)
    i0 = round(sh.at_s) - 1  # the step ending at the move's start
    assert tl.index_usd[i0 + 120] / tl.index_usd[i0] == pytest.approx(0.75, abs=0.03)
    # Three seconds in, about 1/40 of the move is done, as in the full run (not a 20 s crash).
    assert tl.index_usd[i0 + 3] / tl.index_usd[i0] > 0.98
    with pytest.raises(ConfigError, match="longest scripted move"):
        full.shortened(120.0)


def test_short_cascade_keeps_its_intensity() -> None:
    full = load_scenario("liquidation_cascade")
    (c,) = full.shortened(full.min_shortened_s).takers.cascades
    assert c.duration_s == 180.0 and c.total_base == 40.0


def test_slow_bleed_of_half_a_percent_an_hour(tmp_path: Path) -> None:
    s = load_scenario(
        _write(
            tmp_path,
            "duration_s = '4h'\nblock_time_s = 10\n[price]\nvol_annual = 0\n"
            "drift_pct_per_hour = -0.5\n",
        )
    )
    tl = expand(s, 0)
    assert tl.index_usd[-1] / s.price.initial_usd == pytest.approx(0.995**4, rel=1e-9)
    annual = load_scenario(_write(tmp_path, "[price]\ndrift_annual = -43.8\n"))
    assert annual.price.drift_log_annual == -43.8


def test_chain_profiles_and_the_override() -> None:
    s = load_scenario("gas_spike")
    assert s.chain.profile == "l1" and s.quiet_base_fee_gwei == 1.0
    assert s.chain.resolved.l1_data_fee_per_byte_gwei == 0.0
    l2 = s.with_chain_profile("l2")
    assert 0.01 <= l2.quiet_base_fee_gwei <= 0.05
    assert l2.chain.resolved.l1_data_fee_per_byte_gwei > 0
    a, b = expand(s, 1), expand(l2, 1)
    # Spikes are multiples of the quiet fee, so they scale with the profile.
    ratio = np.nanmax(b.base_fee_override_gwei) / np.nanmax(a.base_fee_override_gwei)
    assert ratio == pytest.approx(l2.quiet_base_fee_gwei)


def test_exchange_mid_follows_the_index_with_its_own_basis() -> None:
    tl = expand(load_scenario("calm"), 2)
    basis_bps = (tl.cex_mid_usd / tl.index_usd - 1) * 1e4
    assert not np.allclose(basis_bps, 0.0)
    assert 0.5 < basis_bps.std() < 5.0  # the calm scenario's 2 bps, give or take sampling
    # The arbitrageur prices the perp off the exchange plus the premium, and a second late.
    fair = tl.cex_mid_usd * (1 + tl.premium_bps * 1e-4)
    np.testing.assert_allclose(tl.arb_reference_usd[1:], fair[:-1])


def test_events_name_what_the_dashboard_announces() -> None:
    kinds = {e.kind for e in load_scenario("demo").events()}
    assert {"gas spike", "stall", "exchange blip", "funding flip", "cascade"} <= kinds
    labels = [e.label for e in load_scenario("flash_crash").events()]
    assert "price shock -25%" in labels
