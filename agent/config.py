"""Validated settings for ``mm-agent run``: a TOML file, overlaid by ``MM_*`` environment variables.

Every model here is frozen and strict: an unknown key, a bad unit or an out-of-range value is one
:class:`~agent.errors.ConfigError` that names the key and says how to fix it. Secrets are never
stored here, only referenced (an env var name, a keystore path, a password file path).

Sections whose parameters are owned by another part (``[quoting]``, ``[risk]``, ``[tx]``,
``[hedge.policy]``) are validated directly into that part's own frozen dataclass, so each parameter
is defined exactly once, next to the code that uses it.

Environment overlay: ``MM_<SECTION>__<KEY>=value`` (e.g. ``MM_CHAIN__RPC_URL``) overrides the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from agent.errors import ConfigError

__all__ = [
    "AgentConfig",
    "ChainSettings",
    "ExecutionSettings",
    "HedgeSettings",
    "KeeperSettings",
    "SignerSettings",
    "StorageSettings",
    "TelemetrySettings",
    "load_config",
    "table_to_dataclass",
]

T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class ChainSettings(_Strict):
    """Where the market lives."""

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = Field(31337, gt=0)
    deployment_file: Path | None = None
    """Deployment record written by the deployer (addresses, block, parameters)."""
    market_address: str | None = None
    """Overrides the deployment record's market address."""
    poll_interval_s: float = Field(0.25, gt=0, le=60)
    """Cycle at least this often (timers, the CEX, risk cooldowns), new heads or not."""
    subscribe_heads: bool = True
    """Wake on every new block through an ``eth_subscribe`` WebSocket; falls back to polling."""
    ws_url: str | None = None
    """The node's WebSocket URL; by default ``rpc_url`` with ws:// (same host and port)."""
    cancel_max_fee_gwei: float | None = Field(None, gt=0)
    """Fee ceiling for risk-driven cancels (default 5 × tx.max_fee_gwei): a gas spike must not
    block the cancel it demands."""
    rpc_timeout_s: float = Field(5.0, gt=0, le=120)

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must start with http://, https://, ws:// or wss://")
        return v

    @field_validator("market_address")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 42 or not v.startswith("0x")):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v


class SignerSettings(_Strict):
    """Which key signs. Only references: the key itself never enters the config."""

    source: Literal["keystore", "env", "dev"] = "dev"
    keystore_path: Path | None = None
    password_file: Path | None = None
    password_env: str | None = None
    key_env: str | None = None
    """Name of the env var holding a raw hex key (source = "env")."""
    dev_index: int = Field(1, ge=0, le=9)
    """anvil dev account index (source = "dev"; refused unless chain id is 31337)."""


class HedgeSettings(_Strict):
    """The centralized exchange used for hedging."""

    enabled: bool = True
    base_url: str = "http://127.0.0.1:9800"
    symbol: str = "BTCUSDT"
    api_key_env: str = "MM_CEX_API_KEY"
    api_secret_env: str = "MM_CEX_API_SECRET"  # noqa: S105 - the name of an env var, not a secret
    recv_window_ms: int = Field(5000, gt=0, le=60000)
    request_timeout_s: float = Field(2.0, gt=0, le=30)
    policy: dict[str, Any] = Field(default_factory=dict)
    """Hedger policy parameters (hedge ratio, dead band, slices): see agent/hedge/hedger.py."""


class KeeperSettings(_Strict):
    """Permissionless duties the agent may perform for a reward."""

    settle_funding: bool = True
    liquidate: bool = True
    min_profit_usd: float = Field(0.0, ge=0)
    """Act only when reward − gas cost exceeds this."""


class ExecutionSettings(_Strict):
    """How the runtime trades out of inventory when risk asks for a time-weighted unload."""

    unload_max_slippage_bps: float = Field(50.0, gt=0, le=1000)
    """Reduce-only orders go no further than this from the opposite best price."""
    unload_min_interval_s: float = Field(2.0, ge=0, le=3600)
    """At most one unload slice per this many seconds (and one in flight at a time)."""


class TelemetrySettings(_Strict):
    """Logs, metrics and health."""

    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    """0 picks a free port (tests); the chosen port is written to the data dir."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = True
    stale_heartbeat_s: float = Field(30.0, gt=0)

    @field_validator("host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if v not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the metrics/health server binds to loopback only (127.0.0.1)")
        return v


class StorageSettings(_Strict):
    """Where the journal and run files live."""

    data_dir: Path = Path(".mm-agent")
    journal_file: str = "journal.sqlite"
    journal_fsync: bool = True
    """fsync every signed transaction before broadcast (survives power loss). False keeps
    kill -9 safety and saves 2-8 ms per quote update; see agent/store.py."""


class AgentConfig(_Strict):
    """The whole configuration of one agent."""

    chain: ChainSettings = Field(default_factory=ChainSettings)
    signer: SignerSettings = Field(default_factory=SignerSettings)
    hedge: HedgeSettings = Field(default_factory=HedgeSettings)
    keeper: KeeperSettings = Field(default_factory=KeeperSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    quoting: dict[str, Any] = Field(default_factory=dict)
    """Model parameters: see agent/model (validated by :func:`table_to_dataclass`)."""
    risk: dict[str, Any] = Field(default_factory=dict)
    """Risk limits: see agent/risk/engine.py."""
    tx: dict[str, Any] = Field(default_factory=dict)
    """Transaction pipeline: see agent/chain/txpipe.py."""

    @property
    def journal_path(self) -> Path:
        """Full path of the SQLite journal."""
        return self.storage.data_dir / self.storage.journal_file


def table_to_dataclass(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Validate a TOML table into a frozen dataclass, rejecting unknown keys.

    Parameters
    ----------
    cls
        The target dataclass (defaults come from it).
    table
        The raw table.
    where
        The table's key path, for error messages (e.g. ``"risk"``).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; valid keys are: {', '.join(sorted(known))}"
        )
    try:
        return TypeAdapter(cls).validate_python(dict(table))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None
    except (TypeError, ValueError) as exc:  # raised by the dataclass's own __post_init__
        raise ConfigError(f"{where}: {exc}") from None


def _explain(exc: ValidationError, where: str = "") -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = f"{where}.{loc}" if where and loc else (where or loc)
    got = first.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    extra = len(exc.errors()) - 1
    more = f" [and {extra} more problem{'s' if extra > 1 else ''}]" if extra else ""
    hint = first["msg"]
    if first["type"] == "extra_forbidden":
        hint = "unknown key: check the spelling against the example config (mm.example.toml)"
    return f"{key}: {hint}{shown}{more}"


format_validation_error = _explain  # public name (the scenario loader shares the error format)


def _env_overlay(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for name, value in env.items():
        if not name.startswith("MM_") or "__" not in name:
            continue
        section, _, key = name[3:].lower().partition("__")
        if section not in AgentConfig.model_fields:
            continue
        out.setdefault(section, {})[key] = value
    return out


def load_config(path: Path | str | None, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Load and validate a config file (None: defaults only) plus the ``MM_*`` env overlay.

    Raises
    ------
    ConfigError
        For a missing or unparsable file, or any invalid key, naming the key and the fix.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found: pass --config with an existing file")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    raw = _env_overlay(raw, os.environ if env is None else env)
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
