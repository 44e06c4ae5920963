"""Bindings to the perp DEX contracts, loaded from the forge build output (``contracts/out``).

The market is two contracts behind one address: ``PerpMarket`` (the quoting hot path) forwards
every other call to ``PerpMarketExtension`` by delegatecall. Clients therefore talk to the market
address with the full ``IPerpMarket`` ABI, which :func:`market_abi` returns.

:func:`error_decoder` builds an :class:`~agent.chain.abi.ErrorDecoder` over every ABI of the
build, so a failed call reads ``PostOnlyWouldCross(tick=300000, bestOpposite=300000)`` instead of
a hex blob.

Example
-------
>>> art = load_artifact("PerpMarket")  # doctest: +SKIP
>>> error_decoder().decode(revert_data).message  # doctest: +SKIP
'reverted with StaleOracle(updatedAt=1700000000, nowTs=1700003601)'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agent.chain.abi import ErrorDecoder, canonical_type
from agent.errors import ToolchainError

__all__ = [
    "CONTRACTS_DIR",
    "OUT_DIR",
    "ContractArtifact",
    "error_decoder",
    "load_artifact",
    "market_abi",
]

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
"""The Foundry project."""
OUT_DIR = CONTRACTS_DIR / "out"
"""Where ``forge build`` writes one JSON artifact per contract."""


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    """One compiled contract: its ABI and creation / runtime bytecode."""

    name: str
    abi: tuple[Mapping[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes

    @property
    def deployable(self) -> bool:
        """True for a concrete contract (interfaces and abstract contracts have no bytecode)."""
        return len(self.bytecode) > 0


def _missing(path: Path) -> ToolchainError:
    return ToolchainError(
        f"contract build output not found at {path}: run ./scripts/setup "
        "(it builds the contracts with forge into contracts/out)"
    )


def load_artifact(
    name: str, *, source: str | None = None, out_dir: Path | None = None
) -> ContractArtifact:
    """Load contract `name` from the forge build output.

    Parameters
    ----------
    name
        Contract name, e.g. ``"PerpMarket"``.
    source
        Source file stem when it differs from the contract name (``"IPerpMarketTypes"``...).
    out_dir
        Build output directory; defaults to ``contracts/out``.

    Raises
    ------
    ToolchainError
        When the artifact is missing (the contracts were never built).
    """
    root = out_dir or OUT_DIR
    path = root / f"{source or name}.sol" / f"{name}.json"
    if not path.is_file():
        raise _missing(path)
    return _read_artifact(path, name)


@cache
def _read_artifact(path: Path, name: str) -> ContractArtifact:
    data = json.loads(path.read_text())
    return ContractArtifact(
        name=name,
        abi=tuple(data["abi"]),
        bytecode=bytes.fromhex(data["bytecode"]["object"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"]["object"].removeprefix("0x")),
    )


def market_abi(out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Return the full ABI of a market address: ``IPerpMarket`` plus the concrete contracts'
    own entries (``extension()``, flag constants, immutable getters, ``DirectCall``).
    """
    entries: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for name, source in (
        ("IPerpMarket", None),
        ("PerpMarket", None),
        ("PerpMarketExtension", None),
    ):
        for entry in load_artifact(name, source=source, out_dir=out_dir).abi:
            if entry.get("type") == "constructor":
                continue
            key = (
                str(entry.get("type")),
                str(entry.get("name", "")),
                ",".join(canonical_type(i) for i in entry.get("inputs", ())),
            )
            if key in seen:
                continue
            seen.add(key)
            entries.append(dict(entry))
    return entries


def error_decoder(out_dir: Path | None = None) -> ErrorDecoder:
    """Return a decoder that knows the custom errors of every artifact in the build output."""
    root = out_dir or OUT_DIR
    if not root.is_dir():
        raise _missing(root)
    abis = []
    for path in sorted(root.glob("*.sol/*.json")):
        try:
            abis.append(json.loads(path.read_text()).get("abi", []))
        except (OSError, json.JSONDecodeError):
            continue
    return ErrorDecoder(abis)
