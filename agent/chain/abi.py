"""A small, fast ABI codec built from a contract's JSON ABI, and the custom-error decoder.

web3's contract objects are convenient but slow on a hot path (hundreds of microseconds per encoded
call). The quoting loop encodes a batch transaction per decision, so this codec precomputes
selectors and canonical types once and calls eth_abi directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

__all__ = [
    "AbiCodec",
    "DecodedError",
    "DecodedLog",
    "ErrorDecoder",
    "canonical_type",
    "order_id_side_tick",
]


def canonical_type(param: Mapping[str, Any]) -> str:
    """Return the canonical ABI type of a JSON-ABI parameter (tuples expanded)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


def order_id_side_tick(order_id: int) -> tuple[int, int]:
    """Return the side (0 bid, 1 ask) and tick a market order id encodes.

    The layout is part of the market's ABI (see ``IPerpMarket``): bits [0,40) queue index,
    [40,64) tick, bit 64 side, [65,105) sequence. ``Fill`` events carry the maker order's side
    and tick only through ``makerOrderId``.
    """
    return (order_id >> 64) & 1, (order_id >> 40) & 0xFF_FFFF


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


_PANIC_CODES = {
    0x01: "assert failed",
    0x11: "arithmetic overflow",
    0x12: "division by zero",
    0x21: "bad enum value",
    0x31: "pop on empty array",
    0x32: "index out of bounds",
    0x41: "out of memory",
    0x51: "uninitialised function pointer",
}


@dataclass(frozen=True, slots=True)
class DecodedError:
    """A decoded revert payload: the custom error's name and arguments, or why it is unknown."""

    name: str | None
    """None when the payload is empty or its selector is in none of the ABIs."""
    args: tuple[Any, ...]
    selector: str
    message: str
    arg_names: tuple[str, ...] = ()

    def named(self) -> dict[str, Any]:
        """The arguments by parameter name (``arg0``… where the ABI leaves them unnamed)."""
        return dict(zip(self.arg_names, self.args, strict=False))

    def __str__(self) -> str:
        return self.message


class ErrorDecoder:
    """Decode revert payloads against the custom errors of a set of ABIs.

    ``Error(string)`` and ``Panic(uint256)`` are always known. :meth:`decode` never raises: an empty
    payload, an unknown selector or malformed arguments still give a :class:`DecodedError` that
    says so.
    """

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
            keccak(text="Error(string)")[:4]: ("Error", ("string",), ("message",)),
            keccak(text="Panic(uint256)")[:4]: ("Panic", ("uint256",), ("code",)),
        }
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                inputs = item.get("inputs", ())
                types = tuple(canonical_type(p) for p in inputs)
                names = tuple(str(p.get("name") or f"arg{i}") for i, p in enumerate(inputs))
                sig = f"{item['name']}({','.join(types)})"
                self._errors[keccak(text=sig)[:4]] = (str(item["name"]), types, names)

    @property
    def names(self) -> frozenset[str]:
        """Every error name the decoder knows."""
        return frozenset(n for n, _, _ in self._errors.values())

    def decode(self, data: bytes | str) -> DecodedError:
        """Decode `data` (selector + ABI-encoded arguments; bytes or 0x-hex)."""
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
        if len(raw) < 4:
            return DecodedError(None, (), "0x", "reverted without data")
        selector, body = raw[:4], raw[4:]
        sel = "0x" + selector.hex()
        known = self._errors.get(selector)
        if known is None:
            return DecodedError(None, (), sel, f"reverted with unknown error {sel}")
        name, types, names = known
        try:
            args = tuple(abi_decode(list(types), body))
        except Exception:  # malformed payload: report the name, never crash the caller
            args = ()
        if name == "Error" and args:
            message = f"reverted: {args[0]}"
        elif name == "Panic" and args:
            message = f"panic 0x{args[0]:02x} ({_PANIC_CODES.get(args[0], 'unknown')})"
        else:
            inner = ", ".join(f"{k}={v!r}" for k, v in zip(names, args, strict=False))
            message = f"reverted with {name}({inner})"
        return DecodedError(name, args, sel, message, names)
