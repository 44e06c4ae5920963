"""Pure parts of the pipeline: EIP-1559 fee quotes, replacement bumps, revert decoding."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from agent.chain.abi import ErrorDecoder
from agent.chain.txpipe import TxPipelineConfig, bump_fees, gwei_to_wei, quote_fees
from agent.errors import GasOverBudget

GWEI = 10**9


def _history(base_fees: list[int], rewards: list[int]) -> dict[str, Any]:
    return {
        "oldestBlock": hex(100),
        "baseFeePerGas": [hex(b) for b in base_fees],
        "reward": [[hex(r)] for r in rewards],
    }


def test_max_fee_is_multiplier_times_next_base_fee_plus_tip() -> None:
    cfg = TxPipelineConfig(base_fee_multiplier=2.0, tip_floor_gwei=0.01)
    q = quote_fees(_history([GWEI, GWEI, 3 * GWEI], [0, 2 * GWEI]), cfg, 100 * GWEI, 5.0)
    assert q.base_fee_wei == 3 * GWEI  # the last entry is the next block's
    assert q.tip_wei == 2 * GWEI  # empty blocks (zero reward) are ignored
    assert q.max_fee_wei == 2 * 3 * GWEI + 2 * GWEI
    assert (q.block, q.fetched_s) == (101, 5.0)


def test_tip_has_a_floor_and_max_fee_is_capped_by_the_ceiling() -> None:
    cfg = TxPipelineConfig(tip_floor_gwei=0.5)
    q = quote_fees(_history([GWEI, GWEI], [1, 1]), cfg, 100 * GWEI, 0.0)
    assert q.tip_wei == GWEI // 2
    q = quote_fees(_history([GWEI, 8 * GWEI], [0, 0]), cfg, 10 * GWEI, 0.0)
    assert q.max_fee_wei == 10 * GWEI  # base fee still payable, headroom capped


def test_tip_leaves_out_blocks_that_include_our_own_transactions() -> None:
    # L2: the chain tips 0.01 gwei; our own txs (at 1 gwei) sit in blocks 101-106. The median over
    # all blocks would be our own 1 gwei, and we would keep paying it forever.
    cfg = TxPipelineConfig(tip_floor_gwei=0.001)
    ours, chain = GWEI, GWEI // 100
    rewards = [chain, ours, ours, ours, ours, ours, ours, chain, chain, ours]
    history = _history([GWEI // 100] * 11, rewards)
    assert quote_fees(history, cfg, 100 * GWEI, 0.0).tip_wei == ours
    own = {101, 102, 103, 104, 105, 106, 109}
    assert quote_fees(history, cfg, 100 * GWEI, 0.0, own).tip_wei == chain
    # Every block is ours: nothing to learn from, the floor (never our own tip back).
    every = set(range(100, 110))
    assert quote_fees(history, cfg, 100 * GWEI, 0.0, every).tip_wei == gwei_to_wei(0.001)


def test_base_fee_above_ceiling_is_gas_over_budget() -> None:
    with pytest.raises(GasOverBudget) as exc:
        quote_fees(_history([GWEI, 12 * GWEI], [0, 0]), TxPipelineConfig(), 10 * GWEI, 0.0)
    assert (exc.value.base_fee_wei, exc.value.ceiling_wei) == (12 * GWEI, 10 * GWEI)
    assert "raise max_fee_gwei" in str(exc.value)


@given(
    prev_max=st.integers(1, 10**12),
    tip_frac=st.floats(0.0, 1.0),
    bump_pct=st.floats(10.0, 50.0),
)
def test_bump_raises_both_fields_by_at_least_the_percentage(
    prev_max: int, tip_frac: float, bump_pct: float
) -> None:
    prev_tip = int(prev_max * tip_frac)
    out = bump_fees(prev_max, prev_tip, None, bump_pct, 2**200)
    assert out is not None
    max_fee, tip = out
    bps = round(bump_pct * 100)
    assert max_fee * 10_000 >= prev_max * (10_000 + bps) and max_fee > prev_max
    assert tip * 10_000 >= prev_tip * (10_000 + bps) and tip > prev_tip
    assert tip <= max_fee


def test_bump_follows_a_higher_fresh_quote_and_respects_the_ceiling() -> None:
    cfg = TxPipelineConfig()
    fresh = quote_fees(_history([GWEI, 50 * GWEI], [0, 0]), cfg, 2**200, 0.0)
    assert bump_fees(2 * GWEI, GWEI // 100, fresh, 12.5, 2**200) == (
        fresh.max_fee_wei,
        int(GWEI // 100 * 1.125),
    )
    # 80 -> 90 is exactly +12.5%: allowed at a 90 ceiling, refused at 89.
    assert bump_fees(80 * GWEI, GWEI, None, 12.5, 90 * GWEI) == (90 * GWEI, GWEI * 1125 // 1000)
    assert bump_fees(80 * GWEI, GWEI, None, 12.5, 89 * GWEI) is None


REVERTER_ERRORS = [
    {
        "type": "error",
        "name": "InsufficientMargin",
        "inputs": [
            {"name": "account", "type": "address"},
            {"name": "requiredWei", "type": "uint256"},
            {"name": "availableWei", "type": "uint256"},
        ],
    },
    {"type": "error", "name": "MarketHalted", "inputs": []},
    {
        "type": "error",
        "name": "BadQuote",
        "inputs": [
            {
                "name": "q",
                "type": "tuple[]",
                "components": [
                    {"name": "tick", "type": "int24"},
                    {"name": "lots", "type": "uint64"},
                ],
            }
        ],
    },
    {"type": "function", "name": "poke", "inputs": [], "outputs": []},
]


def test_decoder_names_custom_errors_with_arguments() -> None:
    dec = ErrorDecoder([REVERTER_ERRORS])
    addr = "0x" + "11" * 20
    payload = keccak(text="InsufficientMargin(address,uint256,uint256)")[:4] + encode(
        ["address", "uint256", "uint256"], [addr, 5, 3]
    )
    r = dec.decode(payload)
    assert (r.name, r.args) == ("InsufficientMargin", (addr, 5, 3))
    assert dec.decode(keccak(text="MarketHalted()")[:4]).name == "MarketHalted"
    tup = keccak(text="BadQuote((int24,uint64)[])")[:4] + encode(["(int24,uint64)[]"], [[(-5, 2)]])
    assert dec.decode(tup).args == (((-5, 2),),)


def test_decoder_builtin_and_unknown_errors() -> None:
    dec = ErrorDecoder()
    reason = keccak(text="Error(string)")[:4] + encode(["string"], ["too late"])
    assert dec.decode(reason).message == "reverted: too late"
    panic = keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x12])
    assert dec.decode(panic).message == "panic 0x12 (division by zero)"
    unknown = dec.decode(b"\xaa\xbb\xcc\xdd")
    assert unknown.name is None and unknown.selector == "0xaabbccdd"
    assert dec.decode(b"").message == "reverted without data"
    truncated = dec.decode(keccak(text="Error(string)")[:4] + b"\x00")
    assert truncated.name == "Error" and truncated.args == ()
