"""A small, fast ABI codec built from a contract's JSON ABI.

web3's contract objects are convenient but slow on a hot path (hundreds of microseconds per encoded
call). The quoting loop encodes a batch transaction per decision, so this codec precomputes
selectors and canonical types once and calls eth_abi directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

__all__ = ["AbiCodec", "DecodedLog", "canonical_type"]


def canonical_type(param: Mapping[str, Any]) -> str:
    """Return the canonical ABI type of a JSON-ABI parameter (tuples expanded)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@dataclass(frozen=True, slots=True)
class _Fn:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    names: tuple[str, ...]
    indexed: tuple[bool, ...]
    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One decoded event log."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    @property
    def key(self) -> str:
        """Unique id of the log on its chain branch."""
        return f"{self.tx_hash}:{self.log_index}"


class AbiCodec:
    """Encode calls, decode outputs and logs for one contract ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._fns: dict[str, _Fn] = {}
        self._events: dict[bytes, _Event] = {}
        self._topics: dict[str, str] = {}
        for item in abi:
            if item.get("type") == "function":
                ins = tuple(canonical_type(p) for p in item["inputs"])
                outs = tuple(canonical_type(p) for p in item.get("outputs", []))
                sig = f"{item['name']}({','.join(ins)})"
                self._fns[item["name"]] = _Fn(keccak(text=sig)[:4], ins, outs)
            elif item.get("type") == "event":
                types = tuple(canonical_type(p) for p in item["inputs"])
                topic = keccak(text=f"{item['name']}({','.join(types)})")
                self._events[topic] = _Event(
                    item["name"],
                    tuple(p["name"] for p in item["inputs"]),
                    tuple(bool(p.get("indexed")) for p in item["inputs"]),
                    types,
                )
                self._topics[item["name"]] = "0x" + topic.hex()

    def encode_call(self, fn: str, *args: Any) -> bytes:
        """Return calldata for ``fn(*args)``."""
        f = self._fns[fn]
        return f.selector + abi_encode(f.inputs, args)

    def decode_output(self, fn: str, data: bytes | str) -> tuple[Any, ...]:
        """Decode the return data of `fn`."""
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        return tuple(abi_decode(self._fns[fn].outputs, raw))

    def topic(self, event: str) -> str:
        """Return the 0x-hex topic0 of an event."""
        return self._topics[event]

    def decode_log(self, log: Mapping[str, Any]) -> DecodedLog | None:
        """Decode a JSON-RPC log object; None for events this ABI does not know."""
        topics = log["topics"]
        if not topics:
            return None
        ev = self._events.get(bytes.fromhex(str(topics[0])[2:]))
        if ev is None:
            return None
        data = bytes.fromhex(str(log["data"])[2:])
        plain = [t for t, ix in zip(ev.types, ev.indexed, strict=True) if not ix]
        values = iter(abi_decode(plain, data))
        itopics = iter(topics[1:])
        args: dict[str, Any] = {}
        for name, ix, typ in zip(ev.names, ev.indexed, ev.types, strict=True):
            if ix:
                args[name] = abi_decode([typ], bytes.fromhex(str(next(itopics))[2:]))[0]
            else:
                args[name] = next(values)
        return DecodedLog(
            name=ev.name,
            args=args,
            block_number=int(log["blockNumber"], 16),
            block_hash=str(log["blockHash"]),
            tx_hash=str(log["transactionHash"]),
            log_index=int(log["logIndex"], 16),
        )
