"""The agent's loop against a real anvil, the real market and the exchange simulator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from agent.app import build_agent
from agent.config import AgentConfig
from agent.risk.engine import RiskState
from agent.runtime import Agent
from agent.types import HeadRef, Lots, Quote, Side, Tick
from agent.venue.base import StaleSnapshot
from sims.anvil import Anvil
from sims.cex import Faults, SimServer
from sims.cex.exchange import SimConfig, SymbolSpec

pytestmark = [pytest.mark.chain]

BID, ASK, POST, IOC = 0, 1, 1, 2


class FakeClock:
    """Wall-clock seconds that tests move forward explicitly."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def _config(dex: Any, anvil: Anvil, tmp_path: Path, **over: Any) -> AgentConfig:
    raw: dict[str, Any] = {
        "chain": {"rpc_url": anvil.url, "deployment_file": str(dex.record)},
        "signer": {"source": "dev", "dev_index": 1},  # the "maker" account
        "hedge": {"enabled": False},
        "storage": {"data_dir": str(tmp_path / "data")},
        "quoting": {
            "base_size_base": 0.1,
            "ref_depth_base": 0.5,
            "inventory_cap_base": 2.0,
            "native_price_quote": 100.0,
        },
    }
    for section, values in over.items():
        raw.setdefault(section, {}).update(values)
    return AgentConfig.model_validate(raw)


async def _agent(cfg: AgentConfig, clock: Callable[[], float]) -> tuple[Agent, list[Any]]:
    agent, closers = await build_agent(cfg, clock=clock)
    await agent.start()
    return agent, closers


async def _close(agent: Agent, closers: list[Any]) -> None:
    await agent.shutdown(timeout_s=3.0)
    for c in closers:
        r = c()
        if asyncio.iscoroutine(r):
            await r


def _market_setup(dex: Any, accounts: dict[str, LocalAccount]) -> None:
    dex.fund(accounts["maker"], 100_000)
    dex.fund(accounts["taker"], 100_000)
    # Background liquidity so the book is two-sided around $3000.
    dex.place(accounts["taker"], BID, 2990.0, 0.5)
    dex.place(accounts["taker"], ASK, 3010.0, 0.5)


def _our_side_prices(dex: Any, who: str) -> tuple[list[float], list[float]]:
    orders = dex.open_orders(who)
    bids = sorted((o[3] * 0.01 for o in orders if o[2] == BID), reverse=True)
    asks = sorted(o[3] * 0.01 for o in orders if o[2] == ASK)
    return bids, asks


@pytest_asyncio.fixture
async def cex() -> AsyncIterator[SimServer]:
    cfg = SimConfig(symbols=(SymbolSpec(initial_mid=Decimal("3000")),))
    async with SimServer(cfg, faults=Faults(latency_ms=10.0, jitter_ms=2.0)) as sim:
        yield sim


@pytest.mark.asyncio
async def test_quotes_both_sides_books_fills_from_web3_and_cast_and_hedges(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: SimServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _market_setup(dex, accounts)
    monkeypatch.setenv("MM_CEX_API_KEY", "sim-api-key")
    monkeypatch.setenv("MM_CEX_API_SECRET", "sim-api-secret")
    cfg = _config(
        dex,
        anvil,
        tmp_path,
        hedge={
            "enabled": True,
            "base_url": cex.url,
            "symbol": "ETHUSDT",
            # Taker hedging, so the fill's hedge is filled once the hedger drains (the default,
            # a passive maker order first, is tested in tests/hedge).
            "policy": {"dead_band_base": 0.01, "twap_threshold_base": 10.0, "order_style": "IOC"},
        },
        # The hedge band is sized by inventory risk against hedge cost, at most a quarter of
        # the cap: a cap of 0.16 keeps it under the 0.05 fill, which must then be hedged.
        quoting={"inventory_cap_base": 0.16},
    )
    clock = FakeClock()
    agent, closers = await _agent(cfg, clock)
    try:
        await agent.step()
        maker = accounts["maker"].address
        bids, asks = _our_side_prices(dex, maker)
        assert bids and asks, "the agent must quote both sides"
        assert max(bids) < min(asks)
        assert 2990.0 < max(bids) < 3000.0 < min(asks) < 3010.0

        # A taker lifts our best ask with web3 (IOC buy of 0.05).
        dex.place(accounts["taker"], BID, min(asks), 0.05, flags=IOC, cid=9)
        clock.advance(1.0)
        await agent.step()
        assert agent.status.fills == 1
        assert agent.status.inventory_base == pytest.approx(-0.05)
        assert dex.position_lots(maker) == -5
        assert agent.status.pnl["spread"] > 0
        # The hedge goes to the exchange: we are short 0.05 on the DEX, so it buys 0.05.
        assert agent.hedger is not None
        await agent.hedger.hedger.drain()
        assert float(cex.exchange.position_qty("ETHUSDT")) == pytest.approx(0.05)

        # Another taker hits our best bid with cast (no Python involved).
        bids, _ = _our_side_prices(dex, maker)
        cast = Path(__file__).resolve().parents[2] / "contracts/node_modules/.bin/cast"
        dex.fund(accounts["keeper"], 10_000)
        out = subprocess.run(
            [
                str(cast),
                "send",
                "--json",
                "--rpc-url",
                anvil.url,
                "--private-key",
                accounts["keeper"].key.hex(),
                dex.market.address,
                "place((uint8,uint8,uint24,uint48,uint64,uint32))",
                f"(1,{IOC},{round(max(bids) / 0.01)},5,11,0)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] in ("0x1", 1), out.stdout
        clock.advance(1.0)
        await agent.step()
        assert agent.status.fills == 2
        assert agent.status.inventory_base == pytest.approx(0.0)
        assert len(agent.journal.fills()) == 2
        await agent.step()
        await agent.hedger.hedger.drain()
        assert float(cex.exchange.position_qty("ETHUSDT")) == pytest.approx(0.0)
        assert cex.state()["client_ids_accepted_more_than_once"] == []
        await agent.step()  # books the hedge executions into the ledger
        assert agent.ledger.hedge_position == pytest.approx(0.0, abs=1e-9)
        assert agent.ledger.snapshot().hedge < 0  # two hedge trades: edge vs mark minus fees
        # Both links reported their requests into the agent's own registry (operator metrics).
        text = agent.metrics.render()
        assert 'mm_rpc_requests_total{method="batch"}' in text
        assert 'mm_rpc_latency_seconds_count{method="batch"}' in text
        assert 'mm_exchange_latency_seconds_count{endpoint="/fapi/v1/order"}' in text
    finally:
        await _close(agent, closers)
    assert dex.open_orders(accounts["maker"].address) == []


@pytest.mark.asyncio
async def test_the_pnl_ledger_marks_the_hedge_leg_at_the_exchange_mid_read_this_cycle(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex: SimServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hedger re-reads its own mark only at reconciliations (10 s); marked there, a hedged
    # residual in a trend carried up to 10 s of the move as P&L (the crash/pump gap).
    _market_setup(dex, accounts)
    monkeypatch.setenv("MM_CEX_API_KEY", "sim-api-key")
    monkeypatch.setenv("MM_CEX_API_SECRET", "sim-api-secret")
    hedge = {"enabled": True, "base_url": cex.url, "symbol": "ETHUSDT"}
    cfg = _config(dex, anvil, tmp_path, hedge=hedge)
    clock = FakeClock()
    agent, closers = await _agent(cfg, clock)
    try:
        await agent.step()
        cex.exchange.set_mid("ETHUSDT", 3006.0)  # 20 bps: below the jump detector's 50
        clock.advance(1.0)
        await agent.step()
        assert agent.hedger is not None
        assert agent.hedger.cex_mid() != pytest.approx(3006.0, abs=0.5)  # its mark is older
        assert agent.ledger._cex_mark == pytest.approx(3006.0, abs=0.5)
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_funding_boundary_is_settled_by_the_keeper_and_shows_in_pnl(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    try:
        await agent.step()
        _, asks = _our_side_prices(dex, accounts["maker"].address)
        dex.place(accounts["taker"], BID, min(asks), 0.1, flags=IOC, cid=9)  # we go short 0.1
        await agent.step()
        assert agent.status.inventory_base == pytest.approx(-0.1)
        boundary = int(dex.market.functions.fundingState().call()[1])
        anvil.set_next_block_timestamp(boundary + 5)
        dex.push_price(3000.0)  # keeps the oracle fresh in the new block
        clock.advance(5.0)
        await agent.step()  # sees the boundary passed: the keeper duty sends settleFunding
        anvil.mine()
        clock.advance(1.0)
        await agent.step()
        assert any("funding settled" in e for e in agent.status.events), agent.status.events
        assert int(dex.market.functions.fundingState().call()[0]) >= 1
        # Longs pay shorts at a positive rate (interest only here): we are short, we receive.
        assert agent.status.pnl["funding"] > 0
    finally:
        await _close(agent, closers)


async def _steps_until(
    agent: Agent, dex: Any, clock: FakeClock, state: RiskState, dt: float, n: int
) -> None:
    # Time moves in small steps, as in the live loop: a transaction sent in one step has its
    # receipt polled in the next, so inclusion delay reads true; the oracle is pushed every
    # block, as a live feed would be, so only the cooldowns stand between the agent and NORMAL.
    for _ in range(n):
        if agent.risk.state is state:
            return
        clock.advance(dt)
        dex.push_price(3000.0)  # one block
        await agent.step()
    assert agent.risk.state is state, list(agent.status.events)


@pytest.mark.asyncio
async def test_stale_oracle_withdraws_quotes_and_recovery_steps_down(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    maker = accounts["maker"].address
    try:
        await agent.step()
        assert dex.open_orders(maker)
        anvil.increase_time(4_000)  # past the market's 3600 s oracle max age, no push
        anvil.mine()
        await agent.step()
        assert agent.risk.state is RiskState.WITHDRAWN
        anvil.mine()  # the risk cancel is in the pool (automine mined it already)
        await agent.step()
        assert dex.open_orders(maker) == []
        dex.push_price(3000.0)
        await _steps_until(agent, dex, clock, RiskState.NORMAL, dt=3.0, n=150)
        await agent.step()
        assert dex.open_orders(maker), "quotes come back once the state is NORMAL again"
        states = [t[2] for t in agent.journal.risk_transitions()]
        assert states[0] == "WITHDRAWN" and states[-1] == "NORMAL"
        assert len(states) >= 3, "de-escalation goes one level at a time"
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_gas_spike_over_budget_withdraws_and_the_cancel_still_lands(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    _market_setup(dex, accounts)
    clock = FakeClock()
    cfg = _config(dex, anvil, tmp_path, tx={"max_fee_gwei": 5.0})
    agent, closers = await _agent(cfg, clock)
    maker = accounts["maker"].address
    try:
        await agent.step()
        assert dex.open_orders(maker)
        anvil.set_next_base_fee(12 * 10**9)  # 12 gwei next: over the 5 gwei budget
        anvil.mine()
        clock.advance(1.0)
        await agent.step()
        assert agent.risk.state is RiskState.WITHDRAWN
        # The cancel may pay up to 5 × the budget: it lands although quotes could not.
        for _ in range(3):
            anvil.mine()
            clock.advance(1.0)
            await agent.step()
        assert dex.open_orders(maker) == []
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_reorg_undoes_a_fill(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    try:
        await agent.step()
        _, asks = _our_side_prices(dex, accounts["maker"].address)
        dex.place(accounts["taker"], BID, min(asks), 0.05, flags=IOC, cid=9)
        await agent.step()
        assert len(agent.journal.fills()) == 1
        spread_before = agent.ledger.snapshot().spread
        anvil.reorg(2)  # the taker's block is replaced by empty ones
        clock.advance(1.0)
        await agent.step()
        assert agent.journal.fills() == []
        assert any("reorg" in e for e in agent.status.events)
        assert agent.ledger.snapshot().spread < spread_before
        assert agent.status.inventory_base == pytest.approx(0.0)
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_inventory_over_the_cap_is_unloaded_in_reduce_only_slices(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    _market_setup(dex, accounts)
    maker = accounts["maker"].address
    # The agent's account starts long 0.3 (it bought the taker's ask before the agent ran).
    dex.place(accounts["maker"], BID, 3010.0, 0.3, flags=IOC, cid=5)
    assert dex.position_lots(maker) == 30
    clock = FakeClock()
    cfg = _config(dex, anvil, tmp_path, quoting={"inventory_cap_base": 0.05})
    agent, closers = await _agent(cfg, clock)
    try:
        for _ in range(60):
            clock.advance(2.0)
            anvil.mine()
            await agent.step()
            if dex.position_lots(maker) <= 5:
                break
        lots = dex.position_lots(maker)
        assert 0 < lots <= 5, (
            lots,
            agent.risk.state,
            agent.directive,
            list(agent.status.events),
        )  # target 0.8 × cap = 4 lots, never flips
        unloads = [e for e in agent.status.events if e.startswith("unload ASK")]
        assert unloads or any("unload" in e for e in agent.status.events)
        assert agent.status.fills >= 2  # several slices, not one sweep
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_malformed_rpc_answers_never_crash_the_loop_and_blind_cycles_pull_quotes(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    maker = accounts["maker"].address
    try:
        await agent.step()
        assert dex.open_orders(maker)
        real_snapshot = agent.venue.snapshot

        async def malformed(head: HeadRef | None = None) -> Any:
            raise KeyError("number")  # what parsing a block without its number does

        monkeypatch.setattr(agent.venue, "snapshot", malformed)
        for _ in range(3):
            clock.advance(1.0)
            await agent.step()  # must not raise
        assert 'kind="unexpected"' in agent.metrics.render()
        monkeypatch.setattr(agent.venue, "snapshot", real_snapshot)
        anvil.mine()
        assert dex.open_orders(maker) == [], list(agent.status.events)
        clock.advance(1.0)
        await agent.step()
        clock.advance(1.0)
        await agent.step()
        assert dex.open_orders(maker), "answers are sane again: quoting resumes"
    finally:
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_shutdown_cancel_that_loses_its_nonce_to_the_mined_quote_is_sent_again(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    """The CI failure of session 1: the shutdown cancel-all "replaced" a quote tx that was
    already mined, lost the nonce race, and shutdown gave up with the quotes still resting."""
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    maker = accounts["maker"].address
    anvil.set_automine(False)
    await agent.step()  # the first quote batch waits in the mempool
    assert agent.venue.quote_in_flight() is not None
    original = agent.venue.cancel_all
    raced = []

    async def quote_lands_first() -> str:
        if not raced:  # the quote is mined between our last poll and the replacement
            raced.append(True)
            anvil.mine()
            anvil.set_automine(True)
        return await original()

    agent.venue.cancel_all = quote_lands_first  # type: ignore[method-assign]
    await agent.shutdown(timeout_s=10.0)
    for c in closers:
        r = c()
        if asyncio.iscoroutine(r):
            await r
    assert raced, "the race was staged"
    assert dex.open_orders(maker) == []


@pytest.mark.asyncio
async def test_a_pending_batch_is_not_replaced_by_the_same_ladder(
    dex: Any, anvil: Anvil, accounts: dict[str, LocalAccount], tmp_path: Path
) -> None:
    """Live, the agent decides several times per block. Each cycle inside the block that carries
    its batch saw "nothing rests" and sent the same ladder again (its expiry one second later),
    replacing the pending batch at the same nonce with a fee bump each time: 7 identical
    replacements in one 1 s block. A pending batch is what the gate values a new decision
    against, so an unchanged market sends nothing until the batch lands."""
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    maker = accounts["maker"].address
    anvil.set_automine(False)
    try:
        await agent.step()  # the first batch waits in the mempool
        first = agent.venue.quote_in_flight()
        assert first is not None and agent.status.quote_txs == 1
        for _ in range(5):  # cycles inside the same block: nothing has changed but the clock
            clock.advance(0.2)
            await agent.step()
        assert agent.status.quote_txs == 1, agent.status.last_decision
        assert agent.venue.quote_in_flight() == first, "the pending batch was replaced"
        anvil.mine()
        clock.advance(0.2)
        await agent.step()
        assert agent.venue.quote_in_flight() is None
        orders = dex.open_orders(maker)
        levels = agent.params.levels
        per_side = {side: sum(1 for o in orders if o[2] == side) for side in (BID, ASK)}
        assert 0 < per_side[BID] <= levels and 0 < per_side[ASK] <= levels, per_side
    finally:
        anvil.set_automine(True)
        await _close(agent, closers)


@pytest.mark.asyncio
async def test_a_batch_mined_after_the_snapshot_is_not_sent_again_at_a_fresh_nonce(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13 item 7: under live timing the agent sent the same batch twice (12 orders on 6
    levels). The cycle read its snapshot while the previous batch was pending; the batch was
    mined; the receipt poll then said "nothing in flight" and the stale snapshot said "nothing
    rests", so the same ladder went out again at the next nonce."""
    _market_setup(dex, accounts)
    clock = FakeClock()
    agent, closers = await _agent(_config(dex, anvil, tmp_path), clock)
    maker = accounts["maker"].address
    levels = agent.params.levels
    anvil.set_automine(False)
    try:
        await agent.step()  # the first batch waits in the mempool
        assert agent.venue.quote_in_flight() is not None
        assert dex.open_orders(maker) == []
        real_snapshot = agent.venue.snapshot
        mined: list[int] = []

        async def snapshot_then_block(head: HeadRef | None = None) -> Any:
            snap = await real_snapshot(head)
            if not mined:  # the batch is mined right after this cycle read the chain
                anvil.mine()
                mined.append(snap.block_number)
            return snap

        monkeypatch.setattr(agent.venue, "snapshot", snapshot_then_block)
        clock.advance(1.0)
        await agent.step()
        assert mined, "the race was staged"
        monkeypatch.setattr(agent.venue, "snapshot", real_snapshot)
        for _ in range(2):  # whatever the cycle sent lands; the next cycle sees it
            anvil.mine()
            clock.advance(1.0)
            await agent.step()
        anvil.mine()
        orders = dex.open_orders(maker)
        per_side = {side: sum(1 for o in orders if o[2] == side) for side in (BID, ASK)}
        assert 0 < per_side[BID] <= levels and 0 < per_side[ASK] <= levels, per_side
        # The venue refuses such a batch on its own too (whoever decides from the old block).
        with pytest.raises(StaleSnapshot):
            await agent.venue.replace_quotes(
                [], [Quote(Side.BID, Tick(290_000), Lots(1))], based_on_block=mined[0]
            )
        assert not agent.venue.quote_in_flight()
    finally:
        anvil.set_automine(True)
        await _close(agent, closers)
