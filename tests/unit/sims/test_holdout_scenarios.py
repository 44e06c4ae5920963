"""The held-out crisis scenarios (sims/scenarios/holdout) and the format features they use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError
from sims.scenario import SCENARIO_DIR, expand, list_scenarios, load_scenario

HOLDOUT = SCENARIO_DIR / "holdout"
NAMES = sorted(p.stem for p in HOLDOUT.glob("*.toml"))


def test_the_holdout_set_is_there_and_not_in_the_library() -> None:
    assert len(NAMES) >= 6
    # `--all` and the library tests run list_scenarios(): the held-out set must stay out of it,
    # or it would be tuned against like the rest.
    assert not set(NAMES) & set(list_scenarios())


@pytest.mark.parametrize("name", NAMES)
def test_holdout_loads_by_its_library_name_and_says_what_it_tests(name: str) -> None:
    s = load_scenario(f"holdout/{name}")
    assert s.name == name and s.description
    assert s == load_scenario(HOLDOUT / f"{name}.toml")
    first = (HOLDOUT / f"{name}.toml").read_text().splitlines()[0]
    assert first.startswith("# HELD OUT"), "each file opens with a comment saying what it tests"


def test_an_unknown_holdout_name_is_an_error_naming_the_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_scenario("holdout/no_such_scenario")


def _frozen(tmp_path: Path) -> Path:
    p = tmp_path / "frozen.toml"
    p.write_text(
        "duration_s = '10m'\n[price]\nvol_annual = 0.45\n"
        "[[price.shocks]]\nat_s = '3m'\nmove_pct = -2\nduration_s = '2m'\n"
        "[oracle]\nheartbeat_s = 5\n[[oracle.frozen]]\nat_s = '2m'\nduration_s = '5m'\n"
    )
    return p


def test_a_frozen_oracle_keeps_pushing_its_old_answer_with_fresh_timestamps(
    tmp_path: Path,
) -> None:
    tl = expand(load_scenario(_frozen(tmp_path)), 3)
    t = tl.t_s
    inside = (t > 120) & (t <= 420)
    stuck_at = tl.oracle_usd[int(np.argmax(inside)) - 1]
    np.testing.assert_array_equal(tl.oracle_usd[inside], stuck_at)
    # Fresh: pushes keep coming on the heartbeat, so the on-chain age never exceeds it.
    assert tl.oracle_age_s[inside].max() <= 5.0
    assert tl.oracle_update[inside].sum() == pytest.approx(300 / 5, abs=1)
    # Meanwhile the index fell ~2%: the chain's price is wrong, not old.
    assert tl.index_usd[419] / stuck_at == pytest.approx(0.98, abs=0.01)
    # The first push after the window reports the index again.
    after = int(np.argmax((t > 420) & tl.oracle_update))
    assert tl.oracle_usd[after] == tl.index_usd[after]


def test_a_frozen_window_is_named_and_survives_shortening(tmp_path: Path) -> None:
    s = load_scenario(_frozen(tmp_path))
    assert "frozen oracle" in {e.kind for e in s.events()}
    (w,) = s.shortened(240).oracle.frozen
    assert 45.0 <= w.duration_s < 300.0  # scaled, but still longer than a stale-oracle breach
