"""The transaction pipeline against a real anvil with automine off (blocks only on `mine`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from agent.chain.rpc import AsyncRpc, RpcConfig
from agent.chain.signer import DevKey, EnvKey, Signer, dev_account, load_signer
from agent.chain.txpipe import (
    Dropped,
    Included,
    IntentStatus,
    Replaced,
    Reverted,
    Sent,
    SpedUp,
    TxEvent,
    TxIntent,
    TxPipeline,
    TxPipelineConfig,
)
from agent.errors import GasOverBudget, TxReverted
from agent.store import Journal
from sims.anvil import Anvil, AnvilConfig

pytestmark = pytest.mark.chain

REPO = Path(__file__).resolve().parents[2]
REVERTER_JSON = REPO / "contracts" / "out" / "Reverter.sol" / "Reverter.json"
SINK = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9


class FakeClock:
    """A settable clock, so speed-up timers and delay samples are exact."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def node() -> Iterator[Anvil]:
    with Anvil(AnvilConfig(no_mining=True)) as n:
        yield n


@asynccontextmanager
async def pipeline(
    node: Anvil,
    journal_path: Path,
    *,
    signer: Signer | None = None,
    config: TxPipelineConfig | None = None,
    abis: Sequence[Sequence[dict[str, Any]]] = (),
    clock: FakeClock | None = None,
) -> AsyncIterator[TxPipeline]:
    rpc = AsyncRpc(RpcConfig(node.url, retry_budget_s=0.5, retry_attempts=3))
    journal = Journal(journal_path)
    try:
        pipe = TxPipeline(
            rpc,
            signer or load_signer(DevKey(5), 31337),
            journal,
            config,
            error_abis=abis,
            **({"clock": clock} if clock is not None else {}),
        )
        await pipe.start()
        yield pipe
    finally:
        await rpc.aclose()
        journal.close()


def transfer(intent_id: str, purpose: str = "quote") -> TxIntent:
    return TxIntent(intent_id, purpose, to=SINK, value_wei=1, gas_limit=21_000)


def nonce_of(node: Anvil, address: str, tag: str = "latest") -> int:
    return int(node.rpc("eth_getTransactionCount", [address, tag]), 16)


def of_type(events: Sequence[TxEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def mine_and_poll(node: Anvil, pipe: TxPipeline) -> list[TxEvent]:
    node.mine(1)
    return await pipe.poll()


# -- stuck, replaced, sped up -------------------------------------------------------------


@pytest.mark.asyncio
async def test_stuck_tx_below_spiked_base_fee_is_replaced_with_bumps_and_mined(
    node: Anvil, tmp_path: Path
) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        h = await pipe.submit(transfer("q1"))
        assert h.status is IntentStatus.SENT
        node.set_next_base_fee(50 * GWEI)  # the pending tx's max fee (~2 gwei) is now too low
        events = await pipe.poll()
        assert of_type(events, SpedUp), events
        events = await mine_and_poll(node, pipe)
        (inc,) = of_type(events, Included)
        assert inc.intent_id == "q1"

    with Journal(tmp_path / "j.db") as j:
        attempts = j.txs_for("q1")
    assert len(attempts) >= 2
    for prev, new in itertools.pairwise(attempts):
        assert new.max_fee_wei * 1000 >= prev.max_fee_wei * 1125
        assert new.tip_wei * 1000 >= prev.tip_wei * 1125
    assert inc.tx_hash == attempts[-1].tx_hash
    block = node.rpc("eth_getBlockByNumber", [inc.receipt["blockNumber"], False])
    assert int(block["baseFeePerGas"], 16) == 50 * GWEI


@pytest.mark.asyncio
async def test_speed_up_after_timeout_bumps_by_exactly_the_minimum(
    node: Anvil, tmp_path: Path
) -> None:
    clock = FakeClock()
    cfg = TxPipelineConfig(speedup_after_s=5.0, speedup_after_blocks=1000)
    async with pipeline(node, tmp_path / "j.db", config=cfg, clock=clock) as pipe:
        await pipe.submit(transfer("q1"))
        clock.t += 4.0
        assert not of_type(await pipe.poll(), SpedUp)  # not stale yet
        clock.t += 2.0
        (sped,) = of_type(await pipe.poll(), SpedUp)
        (first, second) = pipe.pending()[0], None
        assert first.attempts == 2 and second is None
        clock.t += 1.5
        (inc,) = of_type(await mine_and_poll(node, pipe), Included)
    assert inc.tx_hash == sped.tx_hash
    assert inc.delay.delay_s == pytest.approx(7.5)
    assert inc.delay.delay_blocks == 1
    with Journal(tmp_path / "j.db") as j:
        a, b = j.txs_for("q1")
        (sample,) = j.inclusion_delays()
    # Fees did not move, so the bump is the configured minimum (rounded up to the wei).
    assert b.max_fee_wei == a.max_fee_wei + -(-a.max_fee_wei * 1250 // 10_000)
    assert b.tip_wei == a.tip_wei + -(-a.tip_wei * 1250 // 10_000)
    assert sample.tx_hash == inc.tx_hash and sample.delay_s == pytest.approx(7.5)


@pytest.mark.asyncio
async def test_cancel_all_pre_empts_pending_quote_at_same_nonce(
    node: Anvil, tmp_path: Path
) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        quote = await pipe.submit(transfer("quote-1"))
        cancel = await pipe.replace("quote-1", transfer("cancel-all-1", "cancel_all"))
        assert cancel.nonce == quote.nonce
        assert {p.intent_id for p in pipe.pending()} == {"quote-1", "cancel-all-1"}
        events = await mine_and_poll(node, pipe)
        assert [e.intent_id for e in of_type(events, Included)] == ["cancel-all-1"]
        (rep,) = of_type(events, Replaced)
        assert (rep.intent_id, rep.by_intent_id) == ("quote-1", "cancel-all-1")
        assert pipe.status("quote-1") is IntentStatus.REPLACED
        assert pipe.pending() == []
        # Replacing an intent that is no longer pending sends the new one at a fresh nonce.
        late = await pipe.replace("quote-1", transfer("cancel-all-2", "cancel_all"))
        assert late.nonce == quote.nonce + 1  # type: ignore[operator]
        (inc,) = of_type(await mine_and_poll(node, pipe), Included)
        assert inc.intent_id == "cancel-all-2"
    assert nonce_of(node, pipe.address) == 2


@pytest.mark.asyncio
async def test_cancel_is_a_zero_value_self_transfer_at_the_same_nonce(
    node: Anvil, tmp_path: Path
) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        await pipe.submit(transfer("q1"))
        await pipe.cancel("q1")
        events = await mine_and_poll(node, pipe)
        (inc,) = of_type(events, Included)
    tx = node.rpc("eth_getTransactionByHash", [inc.tx_hash])
    assert inc.intent_id == "q1:cancel"
    assert tx["to"].lower() == tx["from"].lower() == pipe.address.lower()
    assert int(tx["value"], 16) == 0 and int(tx["nonce"], 16) == 0


# -- nonces: external txs, drops ----------------------------------------------------------


def _external_tx(node: Anvil, index: int, nonce: int) -> str:
    acct = dev_account(index)
    signed = acct.sign_transaction(
        {
            "chainId": 31337,
            "nonce": nonce,
            "to": SINK,
            "value": 7,
            "gas": 21_000,
            "maxFeePerGas": 10 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
    )
    return str(node.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))


@pytest.mark.asyncio
async def test_external_tx_from_same_key_mined_then_nonce_too_low_resyncs(
    node: Anvil, tmp_path: Path
) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        _external_tx(node, 5, 0)
        node.mine(1)
        h = await pipe.submit(transfer("q1"))  # signed at nonce 0, refused, re-signed at 1
        assert (h.nonce, h.status) == (1, IntentStatus.SENT)
        (inc,) = of_type(await mine_and_poll(node, pipe), Included)
        assert inc.intent_id == "q1" and inc.nonce == 1
    assert nonce_of(node, pipe.address) == 2


@pytest.mark.asyncio
async def test_external_tx_pending_in_pool_is_followed_by_poll(node: Anvil, tmp_path: Path) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        await pipe.submit(transfer("q1"))
        _external_tx(node, 5, 1)
        await pipe.poll()
        h = await pipe.submit(transfer("q2"))
        assert h.nonce == 2
        events = await mine_and_poll(node, pipe)
        assert sorted(e.intent_id for e in of_type(events, Included)) == ["q1", "q2"]
    assert nonce_of(node, pipe.address) == 3


@pytest.mark.asyncio
async def test_external_tx_taking_a_sent_nonce_marks_intent_replaced(
    node: Anvil, tmp_path: Path
) -> None:
    cfg = TxPipelineConfig(external_after_polls=1)
    async with pipeline(node, tmp_path / "j.db", config=cfg) as pipe:
        await pipe.submit(transfer("q1"))
        # anvil lets any same-nonce tx replace a pooled one; the external one wins the nonce.
        _external_tx(node, 5, 0)
        events = await mine_and_poll(node, pipe)
        (rep,) = of_type(events, Replaced)
        assert (rep.intent_id, rep.by_intent_id) == ("q1", None)
        h = await pipe.submit(transfer("q2"))
        assert h.nonce == 1
        assert of_type(await mine_and_poll(node, pipe), Included)[0].intent_id == "q2"


@pytest.mark.asyncio
async def test_dropped_tx_is_rebroadcast_and_leaves_no_nonce_gap(
    node: Anvil, tmp_path: Path
) -> None:
    async with pipeline(node, tmp_path / "j.db") as pipe:
        h1 = await pipe.submit(transfer("q1"))
        node.drop_transaction(h1.tx_hash)  # type: ignore[arg-type]
        await pipe.submit(transfer("q2"))  # nonce 1 waits behind the gap at nonce 0
        assert node.txpool_status() == {"pending": 0, "queued": 1}
        events = await pipe.poll()
        (drop,) = of_type(events, Dropped)
        assert (drop.intent_id, drop.action) == ("q1", "rebroadcast")
        assert node.txpool_status()["pending"] == 2
        events = await mine_and_poll(node, pipe)
        assert sorted(e.intent_id for e in of_type(events, Included)) == ["q1", "q2"]
    assert nonce_of(node, pipe.address) == 2


# -- gas budget ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_base_fee_above_ceiling_is_gas_over_budget_and_nothing_is_broadcast(
    node: Anvil, tmp_path: Path
) -> None:
    cfg = TxPipelineConfig(max_fee_gwei=5.0)
    async with pipeline(node, tmp_path / "j.db", config=cfg) as pipe:
        node.set_next_base_fee(40 * GWEI)
        node.mine(1)  # next base fee is now 35 gwei (EIP-1559 decay of an empty block)
        await pipe.poll()
        with pytest.raises(GasOverBudget) as exc:
            await pipe.submit(transfer("q1"))
        assert exc.value.ceiling_wei == 5 * GWEI
        assert exc.value.base_fee_wei > 30 * GWEI
        assert node.txpool_status() == {"pending": 0, "queued": 0}
        assert pipe.status("q1") is None and pipe.pending() == []
        # A per-intent ceiling (risk's cancel-all may pay more) is honoured.
        h = await pipe.submit(
            TxIntent("c1", "cancel_all", to=SINK, gas_limit=21_000, max_fee_gwei=200.0)
        )
        assert h.nonce == 0 and h.status is IntentStatus.SENT
    with Journal(tmp_path / "j.db") as j:
        assert [t.intent_id for t in j.txs_at_nonce(0)] == ["c1"]


# -- reverts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reverter_abi() -> list[dict[str, Any]]:
    if not REVERTER_JSON.exists():
        forge = REPO / "contracts" / "node_modules" / ".bin" / "forge"
        subprocess.run(
            [str(forge), "build", "test/mocks/Reverter.sol"],
            cwd=REPO / "contracts",
            check=True,
            capture_output=True,
            timeout=120,
        )
    abi: list[dict[str, Any]] = json.loads(REVERTER_JSON.read_text())["abi"]
    return abi


def _deploy_reverter(node: Anvil) -> str:
    bytecode = json.loads(REVERTER_JSON.read_text())["bytecode"]["object"]
    deployer = dev_account(9).address
    tx_hash = node.rpc("eth_sendTransaction", [{"from": deployer, "data": bytecode}])
    node.mine(1)
    receipt = node.rpc("eth_getTransactionReceipt", [tx_hash])
    return str(receipt["contractAddress"])


def _calldata(sig: str, types: list[str], args: list[Any]) -> bytes:
    return keccak(text=sig)[:4] + encode(types, args)


@pytest.mark.asyncio
async def test_reverted_tx_reports_custom_error_by_name(
    node: Anvil, tmp_path: Path, reverter_abi: list[dict[str, Any]]
) -> None:
    target = _deploy_reverter(node)
    data = _calldata("failWithArgs(uint256,uint256)", ["uint256", "uint256"], [500, 20])
    intent = TxIntent("r1", "quote", to=target, data=data, gas_limit=100_000)
    async with pipeline(node, tmp_path / "j.db", abis=[reverter_abi]) as pipe:
        with pytest.raises(TxReverted) as pre:
            await pipe.preflight(
                TxIntent("r0", "quote", to=target, data=_calldata("failPlain()", [], []))
            )
        assert pre.value.error_name == "MarketHalted"
        await pipe.submit(intent)
        (rev,) = of_type(await mine_and_poll(node, pipe), Reverted)
        assert pipe.status("r1") is IntentStatus.REVERTED
    assert rev.error.name == "InsufficientMargin"
    assert rev.error.args == (pipe.address.lower(), 500, 20)
    assert int(rev.receipt["status"], 16) == 0
    with Journal(tmp_path / "j.db") as j:
        row = j.intent("r1")
    assert row is not None and row.error is not None and "InsufficientMargin" in row.error


# -- crash safety -------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from agent.chain.rpc import AsyncRpc, RpcConfig
    from agent.chain.signer import DevKey, load_signer
    from agent.chain.txpipe import TxIntent, TxPipeline
    from agent.store import Journal

    url, path, point = sys.argv[1:4]

    def hook(where):
        if where == point:
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        rpc = AsyncRpc(RpcConfig(url))
        pipe = TxPipeline(rpc, load_signer(DevKey(7), 31337), Journal(path), fault_hook=hook)
        await pipe.start()
        await pipe.submit(TxIntent("crash-1", "quote", to="{sink}", value_wei=1, gas_limit=21000))
        print("not killed")

    asyncio.run(main())
    """
).replace("{sink}", SINK)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("point", "mined_before_restart", "in_pool_after_kill"),
    [("journaled", False, 0), ("broadcast", False, 1), ("broadcast", True, 1)],
)
async def test_kill_9_then_restart_sends_exactly_once(
    node: Anvil,
    tmp_path: Path,
    point: str,
    mined_before_restart: bool,
    in_pool_after_kill: int,
) -> None:
    path = tmp_path / "j.db"
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CHILD, node.url, str(path), point],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr.decode()
    assert node.txpool_status()["pending"] == in_pool_after_kill
    if mined_before_restart:
        node.mine(1)
    async with pipeline(node, path, signer=load_signer(DevKey(7), 31337)) as pipe:
        again = await pipe.submit(transfer("crash-1"))  # the caller retries: no new tx
        assert again.nonce == 0
        events = await mine_and_poll(node, pipe)
        (inc,) = of_type(events, Included)
        assert inc.intent_id == "crash-1"
    with Journal(path) as j:
        assert j.count_txs() == 1
    assert nonce_of(node, pipe.address) == 1


# -- RPC outage ---------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.slow
async def test_rpc_outage_with_node_restart_is_survived(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with Anvil(AnvilConfig(no_mining=True, extra_args=("--state", str(state)))) as node:
        async with pipeline(node, tmp_path / "j.db") as pipe:
            await pipe.submit(transfer("q1"))
            await mine_and_poll(node, pipe)
            await pipe.submit(transfer("q2"))  # pending when the node goes away
            assert of_type(await pipe.poll(), Sent)
            node.stop()
            assert await pipe.poll() == []
            assert not pipe.health.ok and pipe.health.consecutive_failures >= 1
            down = await pipe.submit(transfer("q3"))  # fee quote cached: journaled, not sent
            assert down.status is IntentStatus.QUEUED
            node.start()  # same port; state reloaded, pool lost
            assert node.txpool_status()["pending"] == 0
            events = await pipe.poll()
            assert pipe.health.ok
            assert [e.intent_id for e in of_type(events, Sent)] == ["q3"]
            events = await mine_and_poll(node, pipe)
            assert sorted(e.intent_id for e in of_type(events, Included)) == ["q2", "q3"]
            assert nonce_of(node, pipe.address) == 3


# -- key hygiene --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_key_never_appears_in_logs_output_or_journal(
    node: Anvil,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct = Account.create()
    key_hex = acct.key.hex().removeprefix("0x").lower()
    monkeypatch.setenv("MM_TEST_KEY", "0x" + key_hex)
    node.set_balance(acct.address, 10**20)
    caplog.set_level(logging.DEBUG)
    signer = load_signer(EnvKey("MM_TEST_KEY"), 31337)
    logging.getLogger("test").debug("signer loaded: %r / %s", signer, signer)
    async with pipeline(node, tmp_path / "j.db", signer=signer) as pipe:
        await pipe.submit(transfer("q1"))
        node.set_next_base_fee(50 * GWEI)
        await pipe.poll()  # speed-up path logs too
        await mine_and_poll(node, pipe)
        await pipe.submit(transfer("q2"))
        node.drop_transaction(pipe.pending()[0].tx_hash)
        await pipe.poll()
        await mine_and_poll(node, pipe)
    out = capsys.readouterr()
    journal_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("j.db*"))
    text = (caplog.text + out.out + out.err + repr(signer)).lower()
    assert "debug" in caplog.text.lower() or caplog.records  # logging really was captured
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert key_hex not in text
    assert bytes.fromhex(key_hex) not in journal_bytes
    assert key_hex.encode() not in journal_bytes.lower()
    assert os.environ["MM_TEST_KEY"]  # the env var itself is untouched
