"""Bindings to the perp DEX contracts, loaded from the forge build output (``contracts/out``).

The market is two contracts behind one address: ``PerpMarket`` (the quoting hot path) forwards
every other call to ``PerpMarketExtension`` by delegatecall. Clients therefore talk to the market
address with the full ``IPerpMarket`` ABI, which :func:`market_abi` returns.

:class:`ErrorDecoder` turns revert data into the custom error's name and arguments using every ABI
of the build, so a failed call reads ``PostOnlyWouldCross(tick=300000, bestOpposite=300000)``
instead of a hex blob.

Example
-------
>>> art = load_artifact("PerpMarket")  # doctest: +SKIP
>>> ErrorDecoder.from_build().decode(revert_data)  # doctest: +SKIP
DecodedError(name='StaleOracle', args={'updatedAt': 1700000000, 'nowTs': 1700003601})
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from agent.errors import ToolchainError

__all__ = [
    "CONTRACTS_DIR",
    "OUT_DIR",
    "ContractArtifact",
    "DecodedError",
    "ErrorDecoder",
    "load_artifact",
    "market_abi",
]

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
"""The Foundry project."""
OUT_DIR = CONTRACTS_DIR / "out"
"""Where ``forge build`` writes one JSON artifact per contract."""

_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to a zero-initialized function",
}


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
                ",".join(_canonical(i) for i in entry.get("inputs", ())),
            )
            if key in seen:
                continue
            seen.add(key)
            entries.append(dict(entry))
    return entries


def _canonical(param: Mapping[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@dataclass(frozen=True, slots=True)
class DecodedError:
    """A decoded revert: custom error name and its named arguments."""

    name: str
    args: dict[str, Any]

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({inner})"


@dataclass(frozen=True, slots=True)
class _ErrorSig:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


class ErrorDecoder:
    """Decode revert data by custom-error selector, ``Error(string)`` and ``Panic(uint256)``."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        self._by_selector: dict[bytes, _ErrorSig] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                inputs = entry.get("inputs", ())
                types = tuple(_canonical(i) for i in inputs)
                sig = f"{entry['name']}({','.join(types)})"
                self._by_selector[keccak(text=sig)[:4]] = _ErrorSig(
                    name=str(entry["name"]),
                    arg_names=tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)),
                    arg_types=types,
                )

    @classmethod
    def from_build(cls, out_dir: Path | None = None) -> ErrorDecoder:
        """Build a decoder from every artifact in the forge build output."""
        root = out_dir or OUT_DIR
        if not root.is_dir():
            raise _missing(root)
        abis = []
        for path in sorted(root.glob("*.sol/*.json")):
            try:
                abis.append(json.loads(path.read_text()).get("abi", []))
            except (OSError, json.JSONDecodeError):
                continue
        return cls(abis)

    @property
    def names(self) -> frozenset[str]:
        """Every custom error name the decoder knows."""
        return frozenset(s.name for s in self._by_selector.values())

    def decode(self, data: bytes | str) -> DecodedError | None:
        """Decode `data` (bytes or 0x-hex); None when the selector is unknown or data is empty."""
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
        if len(raw) < 4:
            return None
        selector, body = raw[:4], raw[4:]
        try:
            if selector == keccak(text="Error(string)")[:4]:
                (msg,) = abi_decode(["string"], body)
                return DecodedError("Error", {"message": msg})
            if selector == keccak(text="Panic(uint256)")[:4]:
                (code,) = abi_decode(["uint256"], body)
                reason = _PANIC_REASONS.get(int(code), "unknown panic")
                return DecodedError("Panic", {"code": int(code), "reason": reason})
            sig = self._by_selector.get(selector)
            if sig is None:
                return None
            values = abi_decode(list(sig.arg_types), body)
        except DecodingError:
            return None
        return DecodedError(sig.name, dict(zip(sig.arg_names, values, strict=True)))
