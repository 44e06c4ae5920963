"""The one exception root of the agent, and its small tree.

Every error says what happened and what to do about it.

::

    AgentError
    ├── ConfigError            bad or missing setting (names the key and the fix)
    ├── ToolchainError         anvil/forge/solc missing or failing to start
    ├── ChainError             node / RPC trouble
    │   ├── RpcUnavailable     connection refused, timeout, 5xx (retryable)
    │   └── TxError            a transaction could not be built, sent or confirmed
    │       ├── GasOverBudget  base fee above the configured ceiling; nothing was sent
    │       └── TxReverted     the call reverted (custom error decoded when known)
    ├── SignerError            key material could not be loaded or is not allowed here
    ├── VenueError             a venue refused or failed an operation
    └── ExchangeError          the centralized exchange answered with an error (has `code`)
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ChainError",
    "ConfigError",
    "ExchangeError",
    "GasOverBudget",
    "RpcUnavailable",
    "SignerError",
    "ToolchainError",
    "TxError",
    "TxReverted",
    "VenueError",
]


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A setting is missing, unknown or out of range."""


class ToolchainError(AgentError):
    """A required tool (anvil, forge, solc) is missing or failed to start."""


class ChainError(AgentError):
    """The node or the RPC link misbehaved."""


class RpcUnavailable(ChainError):
    """The RPC could not be reached (refused, timed out, 5xx). Safe to retry."""


class TxError(ChainError):
    """A transaction could not be built, sent or confirmed."""


class GasOverBudget(TxError):
    """The base fee is above the configured ceiling; the intent was not sent."""

    def __init__(self, base_fee_wei: int, ceiling_wei: int) -> None:
        self.base_fee_wei = base_fee_wei
        self.ceiling_wei = ceiling_wei
        super().__init__(
            f"gas over budget: base fee {base_fee_wei / 1e9:.3f} gwei is above the ceiling "
            f"{ceiling_wei / 1e9:.3f} gwei (raise max_fee_gwei or wait for the spike to decay)"
        )


class TxReverted(TxError):
    """A transaction or call reverted; `error_name` is the decoded custom error, if known."""

    def __init__(self, message: str, error_name: str | None = None, tx_hash: str | None = None):
        self.error_name = error_name
        self.tx_hash = tx_hash
        super().__init__(message)


class SignerError(AgentError):
    """Key material could not be loaded, or is not allowed on this chain."""


class VenueError(AgentError):
    """A venue refused or failed an operation."""


class ExchangeError(AgentError):
    """The centralized exchange answered with an error code."""

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        self.code = code
        self.http_status = http_status
        super().__init__(f"exchange error {code}: {message}")
