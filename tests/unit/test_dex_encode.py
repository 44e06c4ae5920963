"""The hand-written batch encoder and view decoders agree with eth_abi on the market ABI."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.errors import VenueError
from agent.types import Lots, Quote, Side, Tick
from agent.venue.dex import (
    FLAG_POST_ONLY,
    DexVenue,
    decode_account_state,
    decode_book_levels,
    decode_funding_state,
    decode_open_orders,
    encode_batch_call,
)


@dataclass
class _Pipe:  # encode_batch is pure: it needs only the signing address
    address: str = "0x" + "11" * 20


def _venue() -> DexVenue:
    codec = AbiCodec(market_abi())
    return DexVenue(rpc=None, pipe=_Pipe(), codec=codec, market="0x" + "22" * 20)  # type: ignore[arg-type]


quotes = st.lists(
    st.builds(
        Quote,
        st.sampled_from([Side.BID, Side.ASK]),
        st.integers(1, (1 << 24) - 1).map(Tick),
        st.integers(1, (1 << 48) - 1).map(Lots),
    ),
    max_size=8,
)


@given(st.lists(st.integers(0, (1 << 256) - 1), max_size=6), quotes, st.integers(0, (1 << 32) - 1))
def test_matches_eth_abi(ids: list[int], qs: list[Quote], expiry: int) -> None:
    venue = _venue()
    got = venue.encode_batch(ids, qs, expiry)
    places = [
        (int(q.side), FLAG_POST_ONLY, int(q.price_ticks), int(q.size_lots), n + 1, expiry)
        for n, q in enumerate(qs)
    ]
    assert got == AbiCodec(market_abi()).encode_call("batch", ids, places)


def test_refuses_what_the_market_cannot_represent() -> None:
    venue = _venue()
    with pytest.raises(VenueError, match="outside the market's range"):
        venue.encode_batch([], [Quote(Side.BID, Tick(1 << 24), Lots(1))])
    with pytest.raises(VenueError, match="uint32"):
        venue.encode_batch([], [Quote(Side.BID, Tick(5), Lots(1))], expiry_s=1 << 32)


# -- the hand-written view decoders against eth_abi's decoding of the same answers --------------

_CODEC = AbiCodec(market_abi())
_u256 = st.integers(0, (1 << 256) - 1)
_i256 = st.integers(-(1 << 255), (1 << 255) - 1)


def _answer(fn: str, values: list[object]) -> str:
    # eth_abi encodes what the node would answer: the function's outputs.
    from eth_abi import encode

    outputs = next(e["outputs"] for e in market_abi() if e.get("name") == fn)

    def t(o: dict[str, object]) -> str:
        comps = o.get("components")
        if comps is None:
            return str(o["type"])
        inner = "(" + ",".join(t(c) for c in comps) + ")"  # type: ignore[attr-defined]
        return inner + str(o["type"])[len("tuple") :]

    return "0x" + encode([t(o) for o in outputs], values).hex()


@given(st.lists(st.tuples(_u256, _u256), max_size=12))
def test_book_levels_decode_as_eth_abi(levels: list[tuple[int, int]]) -> None:
    raw = _answer("bookLevels", [[t for t, _ in levels], [n for _, n in levels]])
    ticks, lots = _CODEC.decode_output("bookLevels", raw)
    assert decode_book_levels(raw) == (list(ticks), list(lots))


@given(
    st.lists(
        st.tuples(
            _u256,
            st.integers(0, (1 << 64) - 1),
            st.integers(0, 1),
            st.integers(0, (1 << 24) - 1),
            st.integers(0, (1 << 48) - 1),
            st.integers(0, (1 << 32) - 1),
        ),
        max_size=8,
    )
)
def test_open_orders_decode_as_eth_abi(orders: list[tuple[int, ...]]) -> None:
    raw = _answer("openOrders", [orders])
    want = [tuple(int(v) for v in o) for o in _CODEC.decode_output("openOrders", raw)[0]]
    assert decode_open_orders(raw) == want


@given(st.tuples(*([_i256] * 6 + [_u256] * 3)))
def test_account_state_decodes_as_eth_abi(state: tuple[int, ...]) -> None:
    raw = _answer("accountState", [state])
    assert decode_account_state(raw) == tuple(_CODEC.decode_output("accountState", raw)[0])


@given(st.tuples(_u256, _u256, _i256, _i256, _i256))
def test_funding_state_decodes_as_eth_abi(state: tuple[int, ...]) -> None:
    raw = _answer("fundingState", list(state))
    assert decode_funding_state(raw) == tuple(_CODEC.decode_output("fundingState", raw))


@pytest.mark.parametrize(
    "decode,raw",
    [
        (decode_book_levels, "0x"),  # empty (a reverted call's answer)
        (decode_book_levels, "0x" + "00" * 31),  # not whole words
        (decode_book_levels, "0x" + f"{64:064x}" + f"{64:064x}" + f"{5:064x}"),  # runs past
        (decode_open_orders, "0x" + f"{32:064x}" + f"{1:064x}" + "00" * 32 * 5),  # one word short
        (decode_open_orders, "0x" + f"{32:064x}" + f"{1:064x}" + "00" * 64 + "ff" * 32 + "00" * 96),
        (decode_account_state, "0x" + "00" * 32 * 8),  # a field missing
        (decode_funding_state, "0xzz" + "00" * 159),
    ],
)
def test_malformed_answers_raise(decode: object, raw: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        decode(raw)  # type: ignore[operator]


_places = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, (1 << 8) - 1),
        st.integers(0, (1 << 24) - 1),
        st.integers(0, (1 << 48) - 1),
        st.integers(0, (1 << 64) - 1),
        st.integers(0, (1 << 32) - 1),
    ),
    max_size=12,
)


@given(st.lists(_u256, max_size=12), _places)
def test_batch_call_with_any_flags_and_client_ids_matches_eth_abi(
    ids: list[int], places: list[tuple[int, ...]]
) -> None:
    # The world's makers and the agent share this encoder (flags and client ids of their own).
    selector = _CODEC.encode_call("batch", [], [])[:4]
    assert encode_batch_call(selector, ids, places) == _CODEC.encode_call("batch", ids, places)


def test_batch_call_refuses_a_value_outside_its_field() -> None:
    selector = _CODEC.encode_call("batch", [], [])[:4]
    with pytest.raises(ValueError, match="uint24"):
        encode_batch_call(selector, [], [(0, 0, 1 << 24, 1, 0, 0)])
    with pytest.raises(ValueError, match="uint256"):
        encode_batch_call(selector, [-1], [])
