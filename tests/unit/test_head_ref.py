"""HeadRef parsing, and the head receipts' completeness check when a pushed head lists no
transactions (pure logic; through a real node: tests/chain/test_dex_snapshot_pushed_head.py)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.types import HeadRef
from agent.venue.dex import _HeadLogs

_HASH = "0x" + "ab" * 32

# A geth newHeads notification's result: no transaction list.
_GETH_HEAD = {
    "number": "0x1b4",
    "hash": _HASH,
    "parentHash": "0x" + "cd" * 32,
    "timestamp": "0x6553f100",
    "baseFeePerGas": "0x3b9aca00",
    "gasUsed": "0x1a0f8",
    "gasLimit": "0x1c9c380",
}


def test_a_pushed_header_parses_without_transactions() -> None:
    head = HeadRef.from_rpc(_GETH_HEAD)
    assert head == HeadRef(436, _HASH, 0x6553F100, 10**9, 0x1A0F8, 30_000_000, None)


def test_a_read_header_keeps_its_transactions() -> None:
    txs = ["0x" + "01" * 32, "0x" + "02" * 32]
    assert HeadRef.from_rpc({**_GETH_HEAD, "transactions": txs}).tx_hashes == tuple(txs)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({k: v for k, v in _GETH_HEAD.items() if k != "hash"}, "'hash'"),
        ({k: v for k, v in _GETH_HEAD.items() if k != "timestamp"}, "'timestamp'"),
        ({**_GETH_HEAD, "number": "latest"}, "not a block header"),
        ({**_GETH_HEAD, "hash": "0x12"}, "not a block hash"),
    ],
)
def test_a_malformed_header_is_refused_naming_the_field(header: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HeadRef.from_rpc(header)


def _receipt(index: int, cumulative_gas: int) -> dict[str, Any]:
    return {
        "transactionHash": f"0x{index:064x}",
        "transactionIndex": hex(index),
        "cumulativeGasUsed": hex(cumulative_gas),
        "blockHash": _HASH,
        "logs": [{"logIndex": hex(index)}],
    }


def _logs(receipts: Any, gas_used: int) -> list[Any]:
    return _HeadLogs(9, 10, _HASH, None, gas_used, receipts).logs_for(9, 10, 10, _HASH)


def test_receipts_that_add_up_to_the_headers_gas_are_the_whole_block() -> None:
    rs = [_receipt(0, 50_000), _receipt(1, 120_000), _receipt(2, 171_000)]
    assert len(_logs(rs, 171_000)) == 3
    assert _logs([], 0) == []


@pytest.mark.parametrize(
    ("receipts", "match"),
    [
        ([_receipt(0, 50_000), _receipt(1, 120_000)], "120000 gas, the header says 171000"),
        ([_receipt(0, 50_000), _receipt(2, 171_000)], r"transactions \[0, 2\]"),
        ([_receipt(0, 50_000), _receipt(0, 50_000), _receipt(2, 171_000)], "not one block's"),
        ([], "0 gas, the header says 171000"),
    ],
)
def test_receipts_missing_one_of_the_block_are_not_used(
    receipts: list[dict[str, Any]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _logs(receipts, 171_000)
