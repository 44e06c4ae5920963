"""The hand-written batch encoder is byte-for-byte eth_abi's encoding of the market ABI."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.errors import VenueError
from agent.types import Lots, Quote, Side, Tick
from agent.venue.dex import FLAG_POST_ONLY, DexVenue


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
