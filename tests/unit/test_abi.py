"""The fast ABI codec agrees with web3's encoder and decodes logs by name."""

from __future__ import annotations

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from agent.chain.abi import AbiCodec

ABI = [
    {
        "type": "function",
        "name": "batch",
        "inputs": [
            {"name": "cancelIds", "type": "uint256[]"},
            {
                "name": "places",
                "type": "tuple[]",
                "components": [
                    {"name": "side", "type": "uint8"},
                    {"name": "flags", "type": "uint8"},
                    {"name": "tick", "type": "uint24"},
                    {"name": "lots", "type": "uint48"},
                    {"name": "clientId", "type": "uint64"},
                    {"name": "expiry", "type": "uint32"},
                ],
            },
        ],
        "outputs": [{"name": "newIds", "type": "uint256[]"}],
        "stateMutability": "nonpayable",
    },
    {
        "type": "event",
        "name": "FundingPaid",
        "anonymous": False,
        "inputs": [
            {"name": "account", "type": "address", "indexed": True},
            {"name": "amount", "type": "int256", "indexed": False},
        ],
    },
]


def test_encode_matches_web3() -> None:
    codec = AbiCodec(ABI)
    args = ([7, 9], [(0, 1, 60_000, 5, 42, 0), (1, 1, 60_010, 5, 43, 1_700_000_000)])
    c = Web3().eth.contract(abi=ABI)
    expected = c.encode_abi("batch", args=list(args))
    assert "0x" + codec.encode_call("batch", *args).hex() == expected


def test_decode_output_and_log() -> None:
    codec = AbiCodec(ABI)
    assert codec.decode_output("batch", "0x" + encode(["uint256[]"], [[1, 2]]).hex()) == ((1, 2),)
    who = "0x" + "11" * 20
    log = {
        "topics": [
            "0x" + keccak(text="FundingPaid(address,int256)").hex(),
            "0x" + "00" * 12 + "11" * 20,
        ],
        "data": "0x" + encode(["int256"], [-5]).hex(),
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": "0x3",
    }
    d = codec.decode_log(log)
    assert d is not None
    assert d.name == "FundingPaid" and d.args == {"account": who, "amount": -5}
    assert d.block_number == 16 and d.key == "0x" + "cd" * 32 + ":3"
    assert codec.topic("FundingPaid") == log["topics"][0]
    assert codec.decode_log({**log, "topics": ["0x" + "00" * 32]}) is None


def test_place_skipped_decodes_from_the_market_abi_and_tracks_nothing() -> None:
    """``PlaceSkipped`` (a batch's post-only place that met a live order) decodes with the built
    market ABI, and the venue turns it into no order event: nothing rests, nothing is tracked."""
    from dataclasses import dataclass

    from agent.chain.contracts import market_abi
    from agent.venue.dex import DexMarketParams, DexVenue

    codec = AbiCodec(market_abi())
    me = "0x" + "11" * 20
    sig = "PlaceSkipped(address,uint64,uint8,uint24,uint48,uint24)"
    assert codec.topic("PlaceSkipped") == "0x" + keccak(text=sig).hex()
    log = {
        "topics": [codec.topic("PlaceSkipped"), "0x" + "00" * 12 + "11" * 20],
        "data": "0x"
        + encode(
            ["uint64", "uint8", "uint24", "uint48", "uint24"], [42, 1, 599_345, 6, 599_345]
        ).hex(),
        "blockNumber": "0x20",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": "0x1",
    }
    d = codec.decode_log(log)
    assert d is not None and d.name == "PlaceSkipped"
    assert d.args == {
        "account": me,
        "clientId": 42,
        "side": 1,
        "tick": 599_345,
        "lots": 6,
        "bestOpposite": 599_345,
    }

    @dataclass
    class _Pipe:
        address: str = me

    venue = DexVenue(rpc=None, pipe=_Pipe(), codec=codec, market="0x" + "22" * 20)  # type: ignore[arg-type]
    venue.params = DexMarketParams("0x", "0x", 1, 1, 1, 1, 1, 0, 0, 1, 3600, 60, 0, 6)
    assert venue._route(d) == []
    assert venue.places_skipped == 1
