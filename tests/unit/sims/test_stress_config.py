"""The agent configuration the stress runner writes: what an operator would set for the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.app import risk_limits
from sims.scenario import load_scenario
from sims.stress import _agent_config

_TOXIC = Path(__file__).parents[2] / "e2e" / "scenarios" / "toxic_sweeps.toml"


@pytest.mark.parametrize(
    ("scenario", "heartbeat_s"),
    [("calm", 5.0), ("holdout/oracle_frozen", 5.0), (str(_TOXIC), 30.0)],
)
def test_the_agent_is_told_its_feeds_heartbeat(
    scenario: str, heartbeat_s: float, tmp_path: Path
) -> None:
    sc = load_scenario(scenario)
    assert sc.oracle.heartbeat_s == heartbeat_s
    cfg = _agent_config(
        "http://127.0.0.1:8545",
        tmp_path / "deployment.json",
        tmp_path,
        "http://127.0.0.1:1",
        None,
        sc,
    )
    assert cfg.chain.oracle_heartbeat_s == heartbeat_s
    # The oracle-age band the risk engine runs on is the heartbeat's, not the 10 / 30 s default.
    limits = risk_limits(cfg)
    band = limits.oracle_band()
    assert limits.oracle_heartbeat_s == heartbeat_s
    assert (band.warn, band.breach) == (
        heartbeat_s * limits.oracle_warn_heartbeats,
        heartbeat_s * limits.oracle_breach_heartbeats,
    )
    # The chain profile's costs still come from the scenario.
    assert cfg.quoting.native_price_quote == sc.chain.resolved.native_price_usd
