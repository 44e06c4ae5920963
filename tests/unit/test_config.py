"""Config validation: every bad input names its key and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import load_config, table_to_dataclass
from agent.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mm.toml"
    p.write_text(text)
    return p


def test_defaults_load_without_a_file() -> None:
    cfg = load_config(None, env={})
    assert cfg.chain.chain_id == 31337
    assert cfg.journal_path.name == "journal.sqlite"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "[chain]\nrpc_ulr = 'http://x'\n")
    with pytest.raises(ConfigError, match=r"chain\.rpc_ulr: unknown key"):
        load_config(p, env={})


def test_out_of_range_value_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "[chain]\npoll_interval_s = -1\n")
    with pytest.raises(ConfigError, match=r"chain\.poll_interval_s: .*greater than 0.*-1"):
        load_config(p, env={})


def test_bad_url_and_non_loopback_metrics(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"chain\.rpc_url: .*http://"):
        load_config(_write(tmp_path, "[chain]\nrpc_url = 'localhost:8545'\n"), env={})
    with pytest.raises(ConfigError, match=r"telemetry\.host: .*loopback"):
        load_config(_write(tmp_path, "[telemetry]\nhost = '0.0.0.0'\n"), env={})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[chain\n"), env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_env_overlay_overrides_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "[chain]\nrpc_url = 'http://a:1'\n")
    cfg = load_config(p, env={"MM_CHAIN__RPC_URL": "http://b:2", "MM_CHAIN__CHAIN_ID": "5"})
    assert cfg.chain.rpc_url == "http://b:2"
    assert cfg.chain.chain_id == 5


@dataclass(frozen=True)
class _Params:
    gamma: float = 0.1
    levels: int = 2

    def __post_init__(self) -> None:
        if self.gamma <= 0:
            raise ValueError("gamma must be > 0")


def test_table_to_dataclass_rejects_unknown_and_bad_values() -> None:
    assert table_to_dataclass(_Params, {"gamma": 0.5}, "quoting") == _Params(gamma=0.5)
    with pytest.raises(ConfigError, match=r"quoting\.gama: unknown key; valid keys are: gamma"):
        table_to_dataclass(_Params, {"gama": 1}, "quoting")
    with pytest.raises(ConfigError, match=r"quoting\.levels"):
        table_to_dataclass(_Params, {"levels": "many"}, "quoting")
    with pytest.raises(ConfigError, match="gamma must be > 0"):
        table_to_dataclass(_Params, {"gamma": -1.0}, "quoting")


def test_risk_band_tables_merge_over_defaults_and_accept_state_names() -> None:
    from agent.app import risk_limits_from_table
    from agent.risk.engine import RiskLimits, RiskState

    lim = risk_limits_from_table({"drawdown_frac": {"warn": 0.03}, "cooldown_reduced_s": 5.0})
    assert lim.drawdown_frac.warn == 0.03
    assert lim.drawdown_frac.breach == RiskLimits().drawdown_frac.breach
    assert lim.cooldown_reduced_s == 5.0
    lim = risk_limits_from_table({"oracle_age_s": {"breach_state": "halted"}})
    assert lim.oracle_age_s.breach_state is RiskState.HALTED
    with pytest.raises(ConfigError, match=r"risk\.oracle_age_s\.breach_state: 'panic'"):
        risk_limits_from_table({"oracle_age_s": {"breach_state": "panic"}})
    with pytest.raises(ConfigError, match=r"risk\.drawdown_fracc: unknown key"):
        risk_limits_from_table({"drawdown_fracc": {"warn": 1}})


def test_the_shipped_example_config_is_valid() -> None:
    from agent.app import key_source, risk_limits_from_table
    from agent.chain.txpipe import TxPipelineConfig
    from agent.hedge.hedger import HedgerConfig
    from agent.model.quoting import ModelParams

    example = Path(__file__).resolve().parents[2] / "mm.example.toml"
    cfg = load_config(example, env={})
    table_to_dataclass(ModelParams, cfg.quoting, "quoting")
    table_to_dataclass(TxPipelineConfig, cfg.tx, "tx")
    table_to_dataclass(HedgerConfig, {"symbol": cfg.hedge.symbol, **cfg.hedge.policy}, "hedge")
    risk_limits_from_table(cfg.risk)
    key_source(cfg)
    assert cfg.execution.unload_max_slippage_bps == 50.0
