"""Config validation: every bad input names its key and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.chain.txpipe import TxPipelineConfig
from agent.config import format_validation_error, load_config, table_to_dataclass
from agent.errors import ConfigError
from agent.hedge.hedger import HedgerConfig
from agent.model.quoting import ModelParams, QuoteModel
from agent.risk.engine import RiskLimits, RiskState


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
    from agent.risk.engine import RiskLimits, RiskState

    def risk_limits_from_table(table: dict[str, object]) -> RiskLimits:
        return table_to_dataclass(RiskLimits, table, "risk")

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


def test_strategy_capital_is_validated_by_name(tmp_path: Path) -> None:
    ok = load_config(_write(tmp_path, "[risk]\nstrategy_capital_quote = 12000.0\n"), env={})
    assert ok.risk.strategy_capital_quote == 12_000.0
    assert load_config(None, env={}).risk.strategy_capital_quote is None  # derived at start
    bad = (
        ("strategy_capital_quote = -5.0", r"risk\.strategy_capital_quote must be a finite"),
        ("capital_margin_frac = 0.0", r"^risk\.capital_margin_frac: must be in \(0, 1\]"),
        ("drawdown_capital_quote = 1.0", r"^risk\.drawdown_capital_quote: unknown key"),
    )
    for line, match in bad:
        with pytest.raises(ConfigError, match=match):
            load_config(_write(tmp_path, f"[risk]\n{line}\n"), env={})


def test_the_shipped_example_config_is_valid() -> None:
    from agent.config import key_source

    example = Path(__file__).resolve().parents[2] / "mm.example.toml"
    cfg = load_config(example, env={})
    assert isinstance(cfg.quoting, ModelParams) and cfg.quoting.base_size_base == 0.05
    assert isinstance(cfg.tx, TxPipelineConfig)
    assert isinstance(cfg.risk, RiskLimits)
    assert cfg.hedge.policy == HedgerConfig(
        symbol="ETHUSDT",
        twap_threshold_base=5.0,
        dead_band_base=0.04,
        order_style="PASSIVE",
        passive_timeout_s=60.0,
    )
    assert cfg.hedge.policy.dead_band_base < cfg.quoting.base_size_base  # a full fill is hedged
    key_source(cfg)
    assert cfg.execution.unload_max_slippage_bps == 50.0


def test_the_agent_hedges_as_maker_with_a_taker_fallback_by_default(tmp_path: Path) -> None:
    # Taker hedges (~5 bps) on most of the fill volume cost more than a fill earns: the agent's
    # default is the post-only hedge with a minute's taker fallback, also under a partial table.
    for cfg in (
        load_config(None, env={}),
        load_config(_write(tmp_path, "[hedge.policy]\ndead_band_base = 0.04\n"), env={}),
    ):
        assert cfg.hedge.policy.order_style == "PASSIVE"
        assert cfg.hedge.policy.passive_timeout_s == 60.0
    # An explicit style is the operator's: the taker hedge stays one line away.
    ioc = load_config(_write(tmp_path, "[hedge.policy]\norder_style = 'IOC'\n"), env={})
    assert ioc.hedge.policy.order_style == "IOC"
    assert ioc.hedge.policy.dead_band_base == HedgerConfig(symbol="X").dead_band_base


def test_sections_are_the_owners_dataclasses_validated_at_load(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "[quoting]\nmodel = 'as'\nlevels = 5\n[tx]\nmax_fee_gwei = 50\n"
        "[risk]\ncooldown_reduced_s = 5\n[risk.oracle_age_s]\nbreach_state = 'halted'\n"
        "[hedge]\nsymbol = 'ETHUSDT'\n[hedge.policy]\nhedge_ratio = 0.8\n",
    )
    cfg = load_config(p, env={})
    assert cfg.quoting == ModelParams(model=QuoteModel.AS, levels=5)
    assert cfg.tx == TxPipelineConfig(max_fee_gwei=50.0)
    assert cfg.risk.cooldown_reduced_s == 5.0
    assert cfg.risk.oracle_age_s.breach_state is RiskState.HALTED
    assert cfg.risk.oracle_age_s.warn == RiskLimits().oracle_age_s.warn
    assert cfg.hedge.policy == HedgerConfig(
        symbol="ETHUSDT", hedge_ratio=0.8, order_style="PASSIVE", passive_timeout_s=60.0
    )
    with pytest.raises(ConfigError, match=r"^quoting\.gama: unknown key; valid keys are: .*gamma"):
        load_config(_write(tmp_path, "[quoting]\ngama = 1\n"), env={})
    with pytest.raises(ConfigError, match=r"^hedge\.policy\.hedge_ration: unknown key; valid keys"):
        load_config(_write(tmp_path, "[hedge.policy]\nhedge_ration = 1\n"), env={})
    with pytest.raises(
        ConfigError, match=r"^quoting: model params: gamma must be > 0|^quoting\.gamma"
    ):
        load_config(_write(tmp_path, "[quoting]\ngamma = -1\n"), env={})
    with pytest.raises(ConfigError, match=r"^hedge: policy\.symbol 'X' differs from hedge\.symbol"):
        load_config(_write(tmp_path, "[hedge.policy]\nsymbol = 'X'\n"), env={})
    with pytest.raises(ConfigError, match=r"^hedge\.policy: twap_slice_base must be > 0 and"):
        load_config(_write(tmp_path, "[hedge.policy]\ntwap_slice_base = 9.0\n"), env={})


def test_env_overrides_nested_keys_at_any_depth_and_wins_over_the_file(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "[hedge.policy]\nhedge_ratio = 0.9\ndead_band_base = 0.2\n[risk.drawdown_frac]\n"
        "warn = 0.01\n",
    )
    env = {
        "MM_HEDGE__POLICY__HEDGE_RATIO": "0.5",
        "MM_RISK__DRAWDOWN_FRAC__WARN": "0.03",
        "MM_RISK__DRAWDOWN_FRAC__BREACH_STATE": "withdrawn",
        "MM_QUOTING__LEVELS": "4",
        "MM_TX__MAX_FEE_GWEI": "75",
        "MM_CEX_API_KEY": "not-a-config-key",  # no `__`: another tool's variable, ignored
    }
    cfg = load_config(p, env=env)
    assert cfg.hedge.policy.hedge_ratio == 0.5
    assert cfg.hedge.policy.dead_band_base == 0.2  # the file's other keys survive
    band = cfg.risk.drawdown_frac
    assert (band.warn, band.breach_state) == (0.03, RiskState.WITHDRAWN)
    assert band.breach == RiskLimits().drawdown_frac.breach  # the rest of the default band
    assert cfg.quoting.levels == 4
    assert cfg.tx.max_fee_gwei == 75.0


def test_unknown_env_key_under_a_real_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^hedge\.policy\.hedge_rato: unknown key; valid keys are: .* "
        r"\(set by environment variable MM_HEDGE__POLICY__HEDGE_RATO\)$",
    ):
        load_config(None, env={"MM_HEDGE__POLICY__HEDGE_RATO": "0.5"})
    with pytest.raises(ConfigError, match=r"^risk\.drawdown_frac\.wran: unknown key"):
        load_config(None, env={"MM_RISK__DRAWDOWN_FRAC__WRAN": "0.5"})
    with pytest.raises(ConfigError, match=r"^chain\.rpc_ulr: unknown key"):
        load_config(None, env={"MM_CHAIN__RPC_ULR": "http://x"})
    with pytest.raises(ConfigError, match=r"^risk\.drawdown_frac\.warn: must be a finite number"):
        load_config(None, env={"MM_RISK__DRAWDOWN_FRAC__WARN": "nan"})


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        # The reported crash: accepted, then OverflowError in the loop while sending cancel-alls.
        (
            "[quoting]\nlevels = 1e11\ninventory_cap_base = inf\n",
            r"^quoting\.levels: must be in \[1, 50\] ladder levels per side "
            r"\(got 100000000000\.0\) \[and 1 more problem\]",
        ),
        (
            "[quoting]\ninventory_cap_base = inf\n",
            r"^quoting\.inventory_cap_base: must be a finite",
        ),
        ("[quoting]\ngamma = nan\n", r"^quoting\.gamma: must be a finite number"),
        (
            "[quoting]\nbase_size_base = 1e30\n",
            r"^quoting\.base_size_base: must be in \(0, 1e\+09\]",
        ),
        ("[tx]\nmax_fee_gwei = -inf\n", r"^tx\.max_fee_gwei: must be a finite number"),
        ("[tx]\nmax_in_flight = 100000\n", r"^tx\.max_in_flight: must be in \[1, 1024\] trans"),
        (
            "[risk]\ncooldown_reduced_s = 1e12\n",
            r"^risk\.cooldown_reduced_s: must be in \[0, 86400\]",
        ),
        ("[risk.block_age_s]\nbreach = inf\n", r"^risk\.block_age_s\.breach: must be a finite"),
        (
            "[hedge.policy]\nhedge_ratio = 1e6\n",
            r"^hedge\.policy\.hedge_ratio: must be in \[0, 10\]",
        ),
        ("[keeper]\nmin_profit_usd = inf\n", r"^keeper\.min_profit_usd: must be a finite number"),
        (
            "[telemetry]\nstale_heartbeat_s = nan\n",
            r"^telemetry\.stale_heartbeat_s: must be a finite",
        ),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused_by_name(
    tmp_path: Path, toml: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(_write(tmp_path, toml), env={})


def test_format_validation_error_is_one_line_with_the_key_path() -> None:
    from pydantic import BaseModel, ConfigDict, ValidationError

    class _Scenario(BaseModel):
        model_config = ConfigDict(extra="forbid")
        duration_s: float

    try:
        _Scenario.model_validate({"duration_s": "long"})
    except ValidationError as exc:
        line = format_validation_error(exc, where="scenario")
    assert line.startswith("scenario.duration_s: Input should be a valid number")
    assert line.endswith("(got 'long')") and "\n" not in line


def test_a_whole_section_in_one_variable_must_be_json() -> None:
    cfg = load_config(None, env={"MM_QUOTING": '{"levels": 2, "gamma": 0.1}'})
    assert (cfg.quoting.levels, cfg.quoting.gamma) == (2, 0.1)
    with pytest.raises(ConfigError, match=r"^environment: .*\"chain\".*MM_<SECTION>__<KEY>$"):
        load_config(None, env={"MM_CHAIN": "http://x"})


def test_only_load_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import AgentConfig

    # A programmatic config (the stress runner's, a test's) means exactly what it says.
    monkeypatch.setenv("MM_HEDGE__POLICY__HEDGE_RATIO", "0.25")
    assert AgentConfig(hedge={"policy": {"hedge_ratio": 0.75}}).hedge.policy.hedge_ratio == 0.75
    cfg = AgentConfig.model_validate({"hedge": {"policy": {"hedge_ratio": 0.75}}})
    assert cfg.hedge.policy.hedge_ratio == 0.75
    assert load_config(None).hedge.policy.hedge_ratio == 0.25  # default env: os.environ


def test_the_funding_carry_share_is_validated_by_name(tmp_path: Path) -> None:
    ok = load_config(_write(tmp_path, "[quoting]\nfunding_carry_max_cap_frac = 0.1\n"), env={})
    assert ok.quoting.funding_carry_max_cap_frac == 0.1
    assert load_config(None, env={}).quoting.funding_carry_max_cap_frac == 0.25
    for value in ("0.0", "1.5", "nan"):
        with pytest.raises(
            ConfigError, match=r"^quoting\.funding_carry_max_cap_frac: must be (in \(0, 1\]|a fin)"
        ):
            load_config(
                _write(tmp_path, f"[quoting]\nfunding_carry_max_cap_frac = {value}\n"), env={}
            )


def test_the_funding_carry_pullback_is_validated_by_name(tmp_path: Path) -> None:
    ok = load_config(_write(tmp_path, "[quoting]\nfunding_carry_pullback_frac = 0\n"), env={})
    assert ok.quoting.funding_carry_pullback_frac == 0.0
    for value in ("-0.1", "1.5", "nan"):
        with pytest.raises(
            ConfigError, match=r"^quoting\.funding_carry_pullback_frac: must be (in \[0, 1\]|a fin)"
        ):
            load_config(
                _write(tmp_path, f"[quoting]\nfunding_carry_pullback_frac = {value}\n"), env={}
            )


def test_a_removed_quoting_key_names_its_replacement(tmp_path: Path) -> None:
    # An old config must fail with the fix, not a bare "unknown key" (or, worse, be accepted).
    with pytest.raises(
        ConfigError,
        match=r"^quoting\.calldata_bytes_per_refresh: removed key; .*calldata_bytes_per_batch"
        r".*calldata_bytes_per_cancel.*calldata_bytes_per_place",
    ):
        load_config(_write(tmp_path, "[quoting]\ncalldata_bytes_per_refresh = 600\n"), env={})
    with pytest.raises(ConfigError, match=r"^quoting\.calldata_bytes_per_refresh: removed key"):
        load_config(None, env={"MM_QUOTING__CALLDATA_BYTES_PER_REFRESH": "600"})
    ok = load_config(_write(tmp_path, "[quoting]\ncalldata_bytes_per_place = 200\n"), env={})
    assert ok.quoting.calldata_bytes_per_place == 200
    with pytest.raises(ConfigError, match=r"^quoting\.calldata_bytes_per_cancel: must be in"):
        load_config(_write(tmp_path, "[quoting]\ncalldata_bytes_per_cancel = -1\n"), env={})


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        # Accepted, then "ValueError: when sending a str, it must be a hex string" at start.
        (
            "[chain]\nmarket_address = '0x" + "zz" * 20 + "'\n",
            r"^chain\.market_address: must be a 0x-prefixed 20-byte hex address",
        ),
        # Accepted, then a warning and polling for ever.
        ("[chain]\nws_url = 'localhost:8546'\n", r"^chain\.ws_url: must start with ws:// or wss"),
        ("[chain]\nchain_id = 99999999999999999999\n", r"^chain\.chain_id: .*less than or equal"),
        # A swapped band silently turned its trigger upside down (always breached, never halted).
        (
            "[risk.drawdown_frac]\nwarn = 0.5\nbreach = 0.1\n",
            r"^risk: risk\.drawdown_frac: breach \(0\.1\) must be above warn \(0\.5\)",
        ),
        (  # a partial band past the other default flips it the same way
            "[risk.oracle_age_s]\nwarn = 40\n",
            r"^risk: risk\.oracle_age_s: breach \(30\) must be above warn \(40\).*warn 10, breach",
        ),
        (
            "[risk.liq_distance_bps]\nwarn = 400\nbreach = 1000\n",
            r"^risk: risk\.liq_distance_bps: breach \(1000\) must be below warn \(400\)",
        ),
        # A residual inside the dead band is never hedged: a band above the cap hedges nothing.
        (
            "[quoting]\ninventory_cap_base = 1.0\n[hedge.policy]\ndead_band_base = 5.0\n",
            r"^hedge\.policy\.dead_band_base \(5\) must be below quoting\.inventory_cap_base \(1\)",
        ),
    ],
)
def test_contradictions_and_malformed_values_are_refused_by_name(
    tmp_path: Path, toml: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(_write(tmp_path, toml), env={})


def test_band_directions_and_hedge_band_keep_what_is_valid(tmp_path: Path) -> None:
    ok = "[risk.liq_distance_bps]\nwarn = 2000\n[hedge]\nenabled = false\n[hedge.policy]\n"
    cfg = load_config(_write(tmp_path, ok + "dead_band_base = 5.0\n"), env={})
    assert cfg.risk.liq_distance_bps.warn == 2000.0  # still lower-is-worse: valid
    assert cfg.hedge.policy.dead_band_base == 5.0  # no hedging: the band constrains nothing


def test_file_encoding_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "mm.toml"
    p.write_bytes(b"\xef\xbb\xbf[chain]\nchain_id = 5\n")  # a BOM, as some editors write
    assert load_config(p, env={}).chain.chain_id == 5
    p.write_bytes(b"\xff\xfe[chain]\n")  # UTF-16, or a binary file
    with pytest.raises(ConfigError, match=r"not a UTF-8 text file \(byte 0\)"):
        load_config(p, env={})
    # mm.example.toml suggests "~/.mm-agent/maker.json": it was read as a directory named "~".
    monkeypatch.setenv("HOME", str(tmp_path))
    p.write_text(
        "[signer]\nsource = 'keystore'\nkeystore_path = '~/k.json'\npassword_file = '~/pw'\n"
        "[storage]\ndata_dir = '~/data'\n"
    )
    cfg = load_config(p, env={})
    assert cfg.signer.keystore_path == tmp_path / "k.json"
    assert cfg.signer.password_file == tmp_path / "pw"
    assert cfg.storage.data_dir == tmp_path / "data"
