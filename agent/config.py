"""Validated settings for ``mm-agent run``: a TOML file, overlaid by ``MM_*`` environment variables.

Every model here is frozen and strict: an unknown key, a bad unit, a non-finite number or an
out-of-range value is one :class:`~agent.errors.ConfigError` line that names the key and says how
to fix it (``quoting.gama: unknown key; valid keys are: ...``). Secrets are never stored here, only
referenced (an env var name, a keystore path, a password file path).

Sections whose parameters are owned by another part are validated, at load time, directly into
that part's own frozen dataclass, so each parameter is defined once, next to the code that uses it:

==================  ===========================================  ===============================
section             type of ``cfg.<section>``                    owner
==================  ===========================================  ===============================
``[quoting]``       :class:`~agent.model.quoting.ModelParams`    ``agent/model/quoting.py``
``[risk]``          :class:`~agent.risk.engine.RiskLimits`       ``agent/risk/engine.py``
``[tx]``            :class:`~agent.chain.txpipe.TxPipelineConfig` ``agent/chain/txpipe.py``
``[hedge.policy]``  :class:`~agent.hedge.hedger.HedgerConfig`    ``agent/hedge/hedger.py``
==================  ===========================================  ===============================

Those dataclasses check their own consistency; the *magnitudes* they accept are bounded here, in
``_BOUNDS`` (each with its unit), so ``levels = 1e11`` or an infinite inventory cap is refused at
load time instead of overflowing in the loop. Every float anywhere must be finite.

Environment overlay (pydantic-settings): ``MM_<SECTION>__<KEY>[__<KEY>...]=value`` overrides the
file at any depth, e.g. ``MM_CHAIN__RPC_URL``, ``MM_HEDGE__POLICY__HEDGE_RATIO=0.5`` or
``MM_RISK__DRAWDOWN_FRAC__WARN=0.03``. An ``MM_`` variable that names a real section but a wrong
key is the same named error as a wrong key in the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from agent.chain.deploy import Deployment
from agent.chain.signer import DevKey, EnvKey, KeySource, KeystoreKey
from agent.chain.txpipe import TxPipelineConfig
from agent.errors import ConfigError
from agent.hedge.hedger import HedgerConfig
from agent.model.quoting import ModelParams
from agent.risk.engine import Band, RiskLimits, RiskState

__all__ = [
    "AgentConfig",
    "ChainSettings",
    "ExecutionSettings",
    "HedgeSettings",
    "KeeperSettings",
    "PreflightSettings",
    "SignerSettings",
    "StorageSettings",
    "TelemetrySettings",
    "format_validation_error",
    "key_source",
    "load_config",
    "read_deployment",
    "table_to_dataclass",
]

T = TypeVar("T")

ENV_PREFIX = "MM_"
ENV_DELIMITER = "__"


# -- bounds of the dataclass sections ------------------------------------------------------------


class _Bound(NamedTuple):
    """Accepted range of one numeric parameter, and its unit for the error message."""

    lo: float
    hi: float
    unit: str
    lo_open: bool = False
    """True when ``lo`` itself is refused (a strictly positive quantity)."""
    hi_open: bool = False


_DAY_S = 86_400.0
_POS = True  # readability: _Bound(0, x, unit, _POS) is "> 0"

# Generous on purpose: each range holds every sane deployment and refuses values that can only be
# typos or unit mix-ups (a size in wei, a count in the billions) and would blow up in the loop.
_BOUNDS: dict[type[Any], dict[str, _Bound]] = {
    ModelParams: {
        "gamma": _Bound(0, 1e6, "per (price unit × base unit)", _POS),
        "horizon_s": _Bound(0, 30 * _DAY_S, "seconds"),
        "tick_size": _Bound(0, 1e9, "price units per tick", _POS),
        "lot_size": _Bound(0, 1e9, "base units per lot", _POS),
        "min_notional": _Bound(0, 1e12, "quote currency"),
        "maker_fee_bps": _Bound(-100, 100, "bps (negative: rebate)"),
        "taker_fee_bps": _Bound(-100, 100, "bps"),
        "gas_units_per_refresh": _Bound(0, 30_000_000, "gas units (one block holds ~30M)", _POS),
        "gas_units_per_batch": _Bound(0, 30_000_000, "gas units per quote batch"),
        "gas_units_per_cancel": _Bound(0, 30_000_000, "gas units per cancelled order"),
        "calldata_bytes_per_batch": _Bound(0, 1_000_000, "calldata bytes per quote batch"),
        "calldata_bytes_per_cancel": _Bound(0, 1_000_000, "calldata bytes per cancelled order"),
        "calldata_bytes_per_place": _Bound(0, 1_000_000, "calldata bytes per placed order"),
        "native_price_quote": _Bound(0, 1e9, "quote currency per native token", _POS),
        "gas_spike_weight": _Bound(0, 1, "weight"),
        "levels": _Bound(1, 50, "ladder levels per side"),
        "level_step_ticks": _Bound(1, 1_000_000, "ticks"),
        "level_step_frac": _Bound(0, 100, "fraction of the half-spread"),
        "level_size_growth": _Bound(0, 10, "ratio of level i+1 to level i", _POS),
        "base_size_base": _Bound(0, 1e9, "base units", _POS),
        "inventory_cap_base": _Bound(0, 1e9, "base units", _POS),
        "ref_sigma_rel_per_sqrt_s": _Bound(0, 1, "relative σ per √s", _POS),
        "ref_depth_base": _Bound(0, 1e12, "base units", _POS),
        "adverse_bps": _Bound(0, 10_000, "bps of mid"),
        "adverse_sigma_mult": _Bound(0, 100, "σ·√delay multiples"),
        "quote_life_s": _Bound(0, _DAY_S, "seconds", _POS),
        "min_expected_fills": _Bound(0, 1e6, "fills per quote life", _POS),
        "funding_interval_s": _Bound(0, 30 * _DAY_S, "seconds", _POS),
        "expected_holding_s": _Bound(0, 365 * _DAY_S, "seconds", _POS),
        "settlement_window_s": _Bound(0, 30 * _DAY_S, "seconds"),
        "settlement_skew_mult": _Bound(1, 100, "multiplier"),
        "settlement_size_mult": _Bound(0, 1, "multiplier", _POS),
        "funding_carry_max_cap_frac": _Bound(0, 1, "fraction of the inventory cap", _POS),
        "funding_carry_pullback_frac": _Bound(0, 1, "fraction of the carry's funding value"),
        "l1_data_fee_per_byte_gwei": _Bound(0, 1e6, "gwei per calldata byte"),
        "momentum_z": _Bound(0, 100, "standard errors"),
        "max_centre_drift_bps": _Bound(0, 100, "bps of fair value (0: off)"),
        "centre_drift_max_cost_quote": _Bound(0, 1e6, "quote currency per forced re-centre"),
        "size_skew_frac": _Bound(0, 1, "share of the inventory skew taken by size"),
        "size_skew_max_growth": _Bound(1, 10, "multiplier on the reducing side's sizes"),
    },
    RiskLimits: {
        "index_jump_window_s": _Bound(0, _DAY_S, "seconds", _POS),
        "collar_sigmas": _Bound(0, 100, "standard deviations", _POS),
        "collar_horizon_s": _Bound(0, _DAY_S, "seconds", _POS),
        "collar_min_bps": _Bound(0, 10_000, "bps"),
        "funding_window_s": _Bound(0, 30 * _DAY_S, "seconds"),
        "funding_min_inventory_frac": _Bound(0, 10, "fraction of the inventory cap"),
        "funding_min_abs_rate_bps": _Bound(0, 10_000, "bps per funding interval"),
        "cex_degraded_inventory_cap_mult": _Bound(0, 1, "multiplier", _POS),
        "cooldown_reduced_s": _Bound(0, _DAY_S, "seconds"),
        "cooldown_widened_s": _Bound(0, _DAY_S, "seconds"),
        "cooldown_hedging_s": _Bound(0, _DAY_S, "seconds"),
        "cooldown_withdrawn_s": _Bound(0, _DAY_S, "seconds"),
        "sweep_fills": _Bound(0, 1000, "own fills on one side (0: guard off)"),
        "sweep_window_s": _Bound(0, _DAY_S, "seconds", _POS),
        "sweep_pause_s": _Bound(0, _DAY_S, "seconds"),
        "reduced_size_mult": _Bound(0, 1, "multiplier", _POS),
        "widened_spread_mult": _Bound(1, 100, "multiplier"),
        "hedging_size_mult": _Bound(0, 1, "multiplier", _POS),
        "hedging_spread_mult": _Bound(1, 100, "multiplier"),
        "unload_target_frac": _Bound(0, 1, "fraction of the effective cap", _POS),
        "unload_horizon_s": _Bound(0, _DAY_S, "seconds", _POS),
        "unload_urgent_horizon_s": _Bound(0, _DAY_S, "seconds", _POS),
        "unload_min_remaining_s": _Bound(0, _DAY_S, "seconds", _POS),
        "capital_margin_frac": _Bound(0, 1, "fraction of the inventory cap's notional", _POS),
        "drawdown_withdraw_frac": _Bound(0, 1, "fraction of the strategy capital (0: off)"),
    },
    Band: {
        "warn": _Bound(0, 1e12, "the trigger's unit (see agent/risk/engine.py)", _POS),
        "breach": _Bound(0, 1e12, "the trigger's unit (see agent/risk/engine.py)", _POS),
        "release_frac": _Bound(0, 1, "fraction of the threshold", hi_open=True),
    },
    TxPipelineConfig: {
        "max_fee_gwei": _Bound(0, 1e6, "gwei", _POS),
        "base_fee_multiplier": _Bound(1, 100, "multiplier"),
        "tip_percentile": _Bound(0, 100, "percentile"),
        "tip_floor_gwei": _Bound(0, 1e6, "gwei"),
        "fee_history_blocks": _Bound(1, 1024, "blocks"),
        "fee_max_age_s": _Bound(0, 3600, "seconds"),
        "bump_pct": _Bound(0, 1000, "percent", _POS),
        "speedup_after_blocks": _Bound(1, 100_000, "blocks"),
        "speedup_after_s": _Bound(0, _DAY_S, "seconds", _POS),
        "max_in_flight": _Bound(1, 1024, "transactions"),
        "external_after_polls": _Bound(1, 1000, "polls"),
    },
    HedgerConfig: {
        "hedge_ratio": _Bound(0, 10, "CEX base per DEX base"),
        "dead_band_base": _Bound(0, 1e9, "base units"),
        "max_slippage_bps": _Bound(0, 10_000, "bps", _POS),
        "max_escalated_slippage_bps": _Bound(0, 10_000, "bps", _POS),
        "twap_threshold_base": _Bound(0, 1e9, "base units", _POS),
        "twap_slice_base": _Bound(0, 1e9, "base units", _POS),
        "twap_interval_s": _Bound(0, 3600, "seconds"),
        "max_orders_per_step": _Bound(1, 100, "orders"),
        "reconcile_interval_s": _Bound(0, _DAY_S, "seconds", _POS),
        "taker_fee_bps": _Bound(0, 100, "bps", hi_open=True),
    },
}
# A numeric field another part adds later, before it gets a row above: finite and not absurd.
_FALLBACK_BOUND = _Bound(-1e12, 1e12, "(no specific bound yet; see the field's docstring)")


def _check_bound(name: str, bound: _Bound) -> Callable[[float], float]:
    def check(v: float) -> float:
        low_ok = v > bound.lo if bound.lo_open else v >= bound.lo
        high_ok = v < bound.hi if bound.hi_open else v <= bound.hi
        if not (low_ok and high_ok):
            lo, hi = ("(" if bound.lo_open else "["), (")" if bound.hi_open else "]")
            raise PydanticCustomError(
                "out_of_bounds",
                "must be in {range} {unit}",
                {"range": f"{lo}{bound.lo:g}, {bound.hi:g}{hi}", "unit": bound.unit},
            )
        return v

    check.__name__ = f"bound_{name}"
    return check


def _state_by_name(v: Any) -> Any:
    # Risk states may be written by name, any case ("halted"); numbers still validate as the enum.
    if isinstance(v, str) and not isinstance(v, RiskState):
        try:
            return RiskState[v.strip().upper()]
        except KeyError:
            valid = ", ".join(st.name for st in RiskState)
            raise PydanticCustomError(
                "unknown_state",
                "{got} is not a state; use one of {valid}",
                {"got": repr(v), "valid": valid},
            ) from None
    return v


# -- strict models and dataclass sections ---------------------------------------------------------


# Keys a section no longer has, by the section's type name: the error says what replaced them, so
# an old config fails with the fix instead of a bare "unknown key".
_REMOVED_KEYS: dict[str, dict[str, str]] = {
    ModelParams.__name__: {
        "calldata_bytes_per_refresh": (
            "a batch is now priced by what it changes: set calldata_bytes_per_batch (fixed part, "
            "default 132), calldata_bytes_per_cancel (32) and calldata_bytes_per_place (192) "
            "instead, or delete the key to keep those defaults"
        ),
    },
}


def _reject_unknown(model: type[BaseModel], data: Any) -> Any:
    """Refuse unknown keys with the list of valid ones (``extra="forbid"`` does not list them)."""
    if isinstance(data, Mapping):
        removed = _REMOVED_KEYS.get(model.__name__, {})
        gone = sorted(str(k) for k in data if k in removed)
        if gone:
            raise PydanticCustomError(
                "removed_key", "removed key; {fix}", {"key": gone[0], "fix": removed[gone[0]]}
            )
        unknown = sorted(str(k) for k in set(data) - set(model.model_fields))
        if unknown:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key {key}; valid keys are: {valid}",
                {"key": unknown[0], "valid": ", ".join(sorted(model.model_fields))},
            )
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        return _reject_unknown(cls, data)


def _field_type(cls: type[Any], name: str, tp: Any) -> Any:
    """The annotation a dataclass field validates with: its own type plus bounds and helpers."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _section(tp)
    if tp is RiskState:
        return Annotated[RiskState, BeforeValidator(_state_by_name)]
    if tp in (int, float):
        bound = _BOUNDS.get(cls, {}).get(name, _FALLBACK_BOUND)
        return Annotated[tp, AfterValidator(_check_bound(name, bound))]
    return tp


_TABLES: dict[type[Any], type[BaseModel]] = {}


def _table_model(cls: type[Any]) -> type[BaseModel]:
    """A strict pydantic model with the fields, defaults and bounds of dataclass ``cls``."""
    if cls in _TABLES:
        return _TABLES[cls]
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (_field_type(cls, f.name, hints[f.name]), default)
    model: type[BaseModel] = create_model(
        cls.__name__, __base__=_Strict, __module__=__name__, **fields
    )
    _TABLES[cls] = model
    return model


def _merge_nested(cls: type[Any], data: Any) -> Any:
    # A nested table may set only some fields (a risk band's `warn`): the rest keep that field's
    # default (the default band), not the nested type's bare defaults.
    if not isinstance(data, Mapping):
        return data
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    out = dict(data)
    for key, value in data.items():
        d = defaults.get(key)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(d) and not isinstance(d, type):
            out[key] = {**_as_table(d), **value}
    return out


def _as_table(obj: Any) -> dict[str, Any]:
    """A dataclass instance's init fields, one level deep (nested dataclasses stay instances)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


def _section(cls: type[Any]) -> GetPydanticSchema:
    """Pydantic metadata validating a TOML table (or an instance) into the frozen dataclass cls.

    Keys, types and bounds are checked by :func:`_table_model` (so errors carry the key path);
    then the dataclass is built, and its own ``__post_init__`` checks become a named error too.
    """

    def to_instance(table: BaseModel) -> Any:
        try:
            return cls(**{name: getattr(table, name) for name in type(table).model_fields})
        except (ConfigError, TypeError, ValueError) as exc:
            raise PydanticCustomError("invalid_section", "{why}", {"why": str(exc)}) from None

    def from_input(v: Any) -> Any:
        if isinstance(v, cls):
            v = _as_table(v)
        return _merge_nested(cls, v)

    def schema(_tp: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            from_input,
            core_schema.no_info_after_validator_function(to_instance, handler(_table_model(cls))),
            serialization=core_schema.plain_serializer_function_ser_schema(dataclasses.asdict),
        )

    return GetPydanticSchema(schema)


QuotingSection = Annotated[ModelParams, _section(ModelParams)]
RiskSection = Annotated[RiskLimits, _section(RiskLimits)]
TxSection = Annotated[TxPipelineConfig, _section(TxPipelineConfig)]
HedgePolicySection = Annotated[HedgerConfig, _section(HedgerConfig)]


# -- the sections --------------------------------------------------------------------------------


_MAX_CHAIN_ID = 9_223_372_036_854_775_771
"""The largest chain id a signature can carry (EIP-2294)."""
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")


def _expand_home(v: Any) -> Any:
    # `~/.mm-agent/maker.json`, as mm.example.toml writes it: a path, not a file named "~".
    return Path(v).expanduser() if isinstance(v, (str, Path)) else v


HomePath = Annotated[Path, BeforeValidator(_expand_home)]


class ChainSettings(_Strict):
    """Where the market lives."""

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = Field(31337, gt=0, le=_MAX_CHAIN_ID)
    deployment_file: HomePath | None = None
    """Deployment record written by the deployer (addresses, block, parameters)."""
    market_address: str | None = None
    """Overrides the deployment record's market address."""
    poll_interval_s: float = Field(0.25, gt=0, le=60)
    """Cycle at least this often (timers, the CEX, risk cooldowns), new heads or not."""
    subscribe_heads: bool = True
    """Wake on every new block through an ``eth_subscribe`` WebSocket; falls back to polling."""
    ws_url: str | None = None
    """The node's WebSocket URL; by default ``rpc_url`` with ws:// (same host and port)."""
    cancel_max_fee_gwei: float | None = Field(None, gt=0, le=1e6)
    """Fee ceiling for risk-driven cancels (default 5 × tx.max_fee_gwei): a gas spike must not
    block the cancel it demands."""
    rpc_timeout_s: float = Field(5.0, gt=0, le=120)
    oracle_heartbeat_s: float | None = Field(None, gt=0)
    """The price feed's heartbeat, seconds: a Chainlink feed's published one, or the
    ``--interval-s`` of ``mm-agent oracle``. When set, the risk engine's oracle-age limits are
    1.5 and 3 heartbeats (``[risk] oracle_age_s`` still overrides); unset keeps 10 / 30 s."""

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must start with http://, https://, ws:// or wss://")
        return v

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError(
                "must start with ws:// or wss:// (the node's WebSocket endpoint); leave it out "
                "to use rpc_url's host and port"
            )
        return v

    @field_validator("market_address")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS_RE.fullmatch(v):
            raise ValueError("must be a 0x-prefixed 20-byte hex address (0x and 40 hex digits)")
        return v


class SignerSettings(_Strict):
    """Which key signs. Only references: the key itself never enters the config."""

    source: Literal["keystore", "env", "dev"] = "dev"
    keystore_path: HomePath | None = None
    password_file: HomePath | None = None
    password_env: str | None = None
    key_env: str | None = None
    """Name of the env var holding a raw hex key (source = "env")."""
    dev_index: int = Field(1, ge=0, le=9)
    """anvil dev account index (source = "dev"; refused unless chain id is 31337)."""


# Exchange symbols as Binance lists them (ETHUSDT, 1000PEPEUSDT, BTCUSDT_250328).
_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9_]{0,31}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class HedgeSettings(_Strict):
    """The centralized exchange used for hedging."""

    enabled: bool = True
    base_url: str = "http://127.0.0.1:9800"
    symbol: str = "ETHUSDT"
    api_key_env: str = "MM_CEX_API_KEY"
    api_secret_env: str = "MM_CEX_API_SECRET"  # noqa: S105 - the name of an env var, not a secret
    recv_window_ms: int = Field(5000, gt=0, le=60000)
    request_timeout_s: float = Field(2.0, gt=0, le=30)
    policy: HedgePolicySection = HedgerConfig(
        symbol="BTCUSDT", order_style="PASSIVE", passive_timeout_s=60.0
    )
    """Hedger policy (hedge ratio, dead band, slices): agent/hedge/hedger.py ``HedgerConfig``.
    Its ``symbol`` is always ``hedge.symbol``. A partial ``[hedge.policy]`` keeps these defaults
    for the fields it leaves out.

    The agent hedges as maker by default: a post-only order at our side's touch, taken as taker
    (capped IOC) after a minute or at once under the risk engine's HEDGING. Taker hedging costs
    ~5 bps (fee + slippage) on most of the fill volume, more than the ~2 bps a fill earns against
    fair value; the maker hedge pays the maker fee and lets the band be priced at that cost. A
    minute is long against the fill flow's pace and short against a funding interval; in the
    funding-flip stress scenario it took the hedge leg from -14.7 to -6.4 USD per 600 s."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(
                "must start with http:// or https:// (the exchange's REST base URL, e.g. "
                "https://fapi.binance.com, or `mm-agent cex-sim`'s http://127.0.0.1:9800)"
            )
        return v

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        if not _SYMBOL_RE.fullmatch(v):
            raise ValueError(
                "must be the exchange's symbol as it lists it: capital letters and digits, "
                "e.g. ETHUSDT"
            )
        return v

    @field_validator("api_key_env", "api_secret_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME_RE.fullmatch(v):
            raise ValueError(
                "must be the name of an environment variable (letters, digits, _), e.g. "
                "MM_CEX_API_KEY; the secret itself goes in that variable, never in the file"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _policy_symbol(cls, data: Any) -> Any:
        # The policy trades the section's symbol: one place to write it, never two that disagree.
        if not isinstance(data, Mapping):
            return data
        symbol = data.get("symbol", cls.model_fields["symbol"].default)
        policy = data.get("policy", {})
        if isinstance(policy, HedgerConfig):
            policy = _as_table(policy)
        if isinstance(policy, Mapping):
            # The fields a partial table leaves out keep this section's defaults (a maker hedge
            # with a taker fallback), not the hedger's bare ones.
            policy = {**_as_table(cls.model_fields["policy"].default), "symbol": symbol, **policy}
            if policy.get("symbol", symbol) != symbol:
                raise PydanticCustomError(
                    "symbol_in_policy",
                    "policy.symbol {got} differs from hedge.symbol {want}: remove it from "
                    "[hedge.policy] (the policy always trades hedge.symbol)",
                    {"got": repr(policy["symbol"]), "want": repr(symbol)},
                )
            data = {**data, "policy": {**policy, "symbol": symbol}}
        return data


class KeeperSettings(_Strict):
    """Permissionless duties the agent may perform for a reward."""

    settle_funding: bool = True
    liquidate: bool = True
    min_profit_usd: float = Field(0.0, ge=0, le=1e9)
    """Act only when reward − gas cost exceeds this."""


class ExecutionSettings(_Strict):
    """How the runtime trades out of inventory when risk asks for a time-weighted unload."""

    unload_max_slippage_bps: float = Field(50.0, gt=0, le=1000)
    """Reduce-only orders go no further than this from the opposite best price."""
    unload_min_interval_s: float = Field(2.0, ge=0, le=3600)
    """At most one unload slice per this many seconds (and one in flight at a time)."""
    quote_expiry_s: float = Field(90.0, ge=0, le=86_400)
    """Quotes die on chain this many seconds after they are sent (0: never), so a crashed or
    blind agent's quotes do not rest for ever; a few quote lives (the model's prior is 30 s)."""


class TelemetrySettings(_Strict):
    """Logs, metrics and health."""

    # allow_external_bind comes before host: host's validator reads it (fields validate in order).
    allow_external_bind: bool = False
    """Allow a non-loopback ``host`` (e.g. ``0.0.0.0`` in a container): the metrics carry
    positions and P&L, so exposing them must be a decision."""
    host: str = "127.0.0.1"
    """Address of /metrics and /healthz: loopback unless ``allow_external_bind`` is true."""
    port: int = Field(9464, ge=0, le=65535)
    """0 picks a free port (tests); the chosen port is written to the data dir."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = True
    stale_heartbeat_s: float = Field(30.0, gt=0, le=86_400)

    @field_validator("host")
    @classmethod
    def _loopback(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("allow_external_bind", False) or v == "localhost":
            return v
        try:
            loopback = ipaddress.ip_address(v).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                "not a loopback address: bind 127.0.0.1, or set "
                "telemetry.allow_external_bind = true to expose /metrics and /healthz"
            )
        return v


class StorageSettings(_Strict):
    """Where the journal and run files live."""

    data_dir: HomePath = Path(".mm-agent")
    journal_file: str = "journal.sqlite"
    journal_fsync: bool = True
    """fsync every signed transaction before broadcast (survives power loss). False keeps
    kill -9 safety and saves 2-8 ms per quote update; see agent/store.py."""


class PreflightSettings(_Strict):
    """What ``mm-agent run --check`` (the live preflight) demands before a start."""

    min_gas_refreshes: int = Field(500, ge=1, le=10_000_000)
    """The key's native balance must pay for at least this many quote refreshes *and* as many
    cancel-alls, at the node's current base fee plus tip (``quoting.gas_units_per_refresh`` and
    ``cancel_gas_units`` gas each)."""
    cancel_gas_units: int = Field(150_000, ge=21_000, le=30_000_000)
    """Gas of one cancel-all (the DEX venue's cancel-all gas limit)."""
    timeout_s: float = Field(5.0, gt=0, le=120)
    """Bound on each network check (RPC, exchange), so a dead endpoint fails fast."""


class AgentConfig(BaseSettings):
    """The whole configuration of one agent.

    Constructing or validating one directly reads no environment, so a programmatic config (the
    stress runner's, a test's) means exactly what it says. :func:`load_config` is the entry point
    that applies the ``MM_*`` overlay, with pydantic-settings' env source over this model's
    ``env_prefix`` and ``env_nested_delimiter``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
    )

    chain: ChainSettings = ChainSettings()
    signer: SignerSettings = SignerSettings()
    hedge: HedgeSettings = HedgeSettings()
    keeper: KeeperSettings = KeeperSettings()
    execution: ExecutionSettings = ExecutionSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    storage: StorageSettings = StorageSettings()
    preflight: PreflightSettings = PreflightSettings()
    quoting: QuotingSection = ModelParams()
    """Quote model, market and cost settings: agent/model/quoting.py ``ModelParams``."""
    risk: RiskSection = RiskLimits()
    """Risk limits: agent/risk/engine.py ``RiskLimits`` (bands may be partial; states by name)."""
    tx: TxSection = TxPipelineConfig()
    """Transaction pipeline: agent/chain/txpipe.py ``TxPipelineConfig``."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        return _reject_unknown(cls, data)

    @model_validator(mode="after")
    def _hedge_band_below_cap(self) -> AgentConfig:
        # A residual inside the dead band is never hedged: a band at or above the cap hedges
        # nothing the quoting ever holds, silently.
        band, cap = self.hedge.policy.dead_band_base, self.quoting.inventory_cap_base
        if self.hedge.enabled and band >= cap:
            raise PydanticCustomError(
                "contradiction",
                "hedge.policy.dead_band_base ({band}) must be below quoting.inventory_cap_base "
                "({cap}): no inventory the cap allows would ever be hedged; lower the band "
                "(or set hedge.enabled = false)",
                {"band": f"{band:g}", "cap": f"{cap:g}"},
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read only what is passed in: the environment is applied by :func:`load_config`."""
        return (init_settings,)

    @property
    def journal_path(self) -> Path:
        """Full path of the SQLite journal."""
        return self.storage.data_dir / self.storage.journal_file


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source over an explicit mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._env.items()}


def format_validation_error(exc: ValidationError, where: str = "") -> str:
    """Return one line naming the first invalid key of ``exc`` and how to fix it.

    Parameters
    ----------
    exc
        A pydantic validation error.
    where
        Key path the validated object lives at (``"risk"``), prefixed to every key.

    Returns
    -------
    str
        ``<key.path>: <what is wrong and the fix> (got <value>)[ and N more problems]``.
    """
    errors = exc.errors()
    first = errors[0]
    path = [str(p) for p in first["loc"]]
    ctx = first.get("ctx") or {}
    kind = first["type"]
    if kind == "unknown_key":
        path.append(str(ctx["key"]))
        msg = f"unknown key; valid keys are: {ctx['valid']}"
    elif kind == "removed_key":
        path.append(str(ctx["key"]))
        msg = f"removed key; {ctx['fix']}"
    elif kind == "extra_forbidden":
        msg = "unknown key: check the spelling against the example config (mm.example.toml)"
    elif kind == "finite_number":
        msg = "must be a finite number (NaN and infinities are refused): write a bounded value"
    else:
        msg = first["msg"].removeprefix("Value error, ")
    key = ".".join([where, *path] if where else path)
    got = first.get("input")
    shown = ""
    # Values already quoted in the message, and whole tables, are not repeated.
    quiet = (
        "unknown_key",
        "removed_key",
        "extra_forbidden",
        "invalid_section",
        "symbol_in_policy",
        "unknown_state",
    )
    if kind not in quiet and not isinstance(got, (Mapping, BaseModel)):
        shown = f" (got {got!r})"
    extra = len(errors) - 1
    more = f" [and {extra} more problem{'s' if extra > 1 else ''}]" if extra else ""
    return f"{key}: {msg}{shown}{more}" if key else f"{msg}{shown}{more}"


def table_to_dataclass(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Validate a TOML table into a frozen dataclass: unknown keys, types and bounds checked.

    Parameters
    ----------
    cls
        The target dataclass (defaults come from it; bounds from this module's table).
    table
        The raw table.
    where
        The table's key path, for error messages (e.g. ``"risk"``).

    Raises
    ------
    ConfigError
        One line naming the first invalid key.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    try:
        # mypy cannot type an Annotated form built at run time; the result is a `cls` instance.
        adapter: TypeAdapter[T] = TypeAdapter(Annotated[cls, _section(cls)])  # type: ignore[arg-type]
        result = adapter.validate_python(table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    return result


def _env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", ENV_DELIMITER).upper()


def load_config(path: Path | str | None, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Load and validate a config file (None: defaults only), overridden by ``MM_*`` variables.

    Parameters
    ----------
    path
        The TOML file, or None for defaults plus environment.
    env
        The environment to read (default ``os.environ``); tests pass their own.

    Raises
    ------
    ConfigError
        For a missing or unparsable file, or any invalid key (in the file or the environment),
        naming the key and the fix.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found: pass --config with an existing file")
        try:
            # utf-8-sig: a byte-order mark (some Windows editors write one) is not TOML's concern.
            raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{p}: not a UTF-8 text file (byte {exc.start}): pass the TOML config itself"
            ) from None
        except OSError as exc:
            raise ConfigError(f"config file {p}: cannot read it: {exc.strerror or exc}") from None
    environ = os.environ if env is None else env
    sources = (_MappingEnvSource(AgentConfig, environ), InitSettingsSource(AgentConfig, raw))
    merged: dict[str, Any] = {}
    try:
        for source in reversed(sources):  # lowest priority first; the environment wins
            merged = _deep_merge(merged, source())
    except SettingsError as exc:  # a whole section in one variable that is not JSON
        raise ConfigError(
            f"environment: {exc}: a whole section must be a JSON object; set one key as "
            f"{ENV_PREFIX}<SECTION>{ENV_DELIMITER}<KEY>"
        ) from None
    try:
        return AgentConfig.model_validate(merged)
    except ValidationError as exc:
        line = format_validation_error(exc)
        key = line.partition(":")[0]
        if key and _env_name(key) in {k.upper() for k in environ}:
            line += f" (set by environment variable {_env_name(key)})"
        raise ConfigError(line) from None


def key_source(cfg: AgentConfig) -> KeySource:
    """Return the signer reference the config names (a reference only: no key is read)."""
    s = cfg.signer
    if s.source == "dev":
        return DevKey(s.dev_index)
    if s.source == "env":
        if not s.key_env:
            raise ConfigError(
                "signer.key_env: required when signer.source = 'env' (an env var name)"
            )
        return EnvKey(s.key_env)
    if s.keystore_path is None:
        raise ConfigError("signer.keystore_path: required when signer.source = 'keystore'")
    return KeystoreKey(s.keystore_path, s.password_file, s.password_env)


def read_deployment(cfg: AgentConfig) -> tuple[str, int]:
    """Return (market address, deployment block) from the config and its deployment record."""
    market, block = cfg.chain.market_address, 0
    if cfg.chain.deployment_file is not None:
        path = cfg.chain.deployment_file
        if not path.is_file():
            raise ConfigError(
                f"chain.deployment_file: {path} not found (deploy a market first, or set "
                "chain.market_address)"
            )
        rec = Deployment.load(path)
        if rec.chain_id != cfg.chain.chain_id:
            raise ConfigError(
                f"chain.deployment_file: {path} is for chain {rec.chain_id}, "
                f"config says chain.chain_id = {cfg.chain.chain_id}"
            )
        market = market or rec.market
        block = rec.block_number
    if market is None:
        raise ConfigError("chain.market_address or chain.deployment_file: one is required")
    return market, block


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
