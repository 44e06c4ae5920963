"""The stress world's arbitrageur against a real market on anvil: it takes quotes resting through
the exchange mid by more than its costs, and leaves every other quote alone."""

from __future__ import annotations

import pytest

from agent.types import Side
from sims.anvil import Anvil
from sims.forkstate import DEFAULT_DEPOSITS_USD, deploy_market
from sims.scenario import ArbitrageSpec
from sims.world import ChainWorld

pytestmark = pytest.mark.chain

FAIR = 60_000.0


@pytest.fixture
def world(anvil: Anvil) -> ChainWorld:
    dep = deploy_market(anvil, 60, FAIR)
    anvil.set_automine(False)
    w = ChainWorld(anvil, dep, arbitrage=ArbitrageSpec(max_size_base=5.0))
    w.push_oracle(FAIR)
    w.mine(w.last_ts + 1)
    w.ensure_funded(DEFAULT_DEPOSITS_USD)
    w.mine(w.last_ts + 1)
    assert w.check_world_receipts() == 0
    return w


def _rest(w: ChainWorld, side: Side, price: float, size_base: float, client_id: int) -> None:
    place = (int(side), 0, w.spec.tick(price), w.spec.lots(size_base, price), client_id, 0)
    w._send(w.agent_address, w.dep.market, w.market.encode_call("place", place), 3_000_000)


def test_arbitrageur_takes_quotes_through_fair_value_only(world: ChainWorld) -> None:
    w = world
    need = w.arbitrage_threshold_bps(FAIR, 0.1, 1.0)
    assert need > w.spec.taker_fee_bps + w.arbitrage.min_edge_bps  # its gas counts too
    _rest(w, Side.ASK, FAIR * (1 - 3 * need * 1e-4), 0.1, 1)  # far through: a gift
    _rest(w, Side.ASK, FAIR * (1 - 0.5 * need * 1e-4), 0.1, 2)  # through, but not by its costs
    _rest(w, Side.BID, FAIR * (1 - 6 * need * 1e-4), 0.1, 3)  # a bid under fair value (and asks)
    w.mine(w.last_ts + 1)
    assert len(w.open_order_ids(w.agent_address)) == 3

    assert w.send_arbitrage(FAIR, base_fee_gwei=1.0) == 1  # one side only: asks
    w.mine(w.last_ts + 1)
    assert w.check_world_receipts() == 0
    _, position_lots, _ = w.account(w.agent_address)
    assert position_lots == -w.spec.lots(0.1, FAIR)  # the gift was taken, nothing else
    assert len(w.open_order_ids(w.agent_address)) == 2
    arb = w.roles.address(w.roles.arbitrageur)
    assert w.account(arb)[1] == w.spec.lots(0.1, FAIR)

    # Nothing left worth taking: the arbitrageur sends nothing.
    assert w.send_arbitrage(FAIR, base_fee_gwei=1.0) == 0


def test_arbitrageur_sells_into_a_bid_above_fair_value(world: ChainWorld) -> None:
    w = world
    _rest(w, Side.BID, FAIR * 1.003, 0.2, 1)
    w.mine(w.last_ts + 1)
    assert w.send_arbitrage(FAIR, base_fee_gwei=1.0) == 1
    w.mine(w.last_ts + 1)
    assert w.account(w.agent_address)[1] == w.spec.lots(0.2, FAIR)
    assert w.stats.arb_orders == 1


def test_mine_sets_timestamp_and_base_fee_in_one_round_trip(world: ChainWorld) -> None:
    w = world
    ts = w.last_ts + 7
    w.mine(ts, base_fee_wei=3 * 10**9)
    head = w.node.latest_block()
    assert int(head["timestamp"], 16) == ts == w.last_ts
    assert int(head["baseFeePerGas"], 16) == 3 * 10**9
    assert int(head["number"], 16) == w.block
    # Without an override the base fee follows EIP-1559 (an empty block: it falls).
    w.mine(ts + 1)
    assert int(w.node.latest_block()["baseFeePerGas"], 16) < 3 * 10**9


def test_book_reads_both_sides_in_one_batch(world: ChainWorld) -> None:
    w = world
    _rest(w, Side.BID, FAIR * 0.999, 0.1, 1)
    _rest(w, Side.ASK, FAIR * 1.001, 0.2, 2)
    w.mine(w.last_ts + 1)
    bids, asks = w.book()
    assert [n for _, n in bids] == [w.spec.lots(0.1, FAIR * 0.999)]
    assert [n for _, n in asks] == [w.spec.lots(0.2, FAIR * 1.001)]
    assert bids[0][0] < FAIR < asks[0][0]
    assert w.best_prices() == (bids[0][0], asks[0][0])


def test_a_steps_sends_land_in_order_in_its_block_and_the_book_comes_with_it(
    world: ChainWorld,
) -> None:
    # What play() does: the step's transactions wait, then go with the block in one pipelined
    # round trip. Pipelined requests run one after another (a JSON-RPC batch would run them
    # concurrently), so every one is in the block, in the order sent, as when each was awaited.
    w = world
    w._deferred = []
    for i in range(8):
        _rest(w, Side.BID if i % 2 else Side.ASK, FAIR * (1 + (-1) ** i * 1e-3 * (i + 1)), 0.1, i)
    assert w.check_world_receipts() == 0  # nothing sent yet
    w.mine(w.last_ts + 1, prefetch_book=True)
    w._deferred = None
    sent = list(w._world_hashes)
    assert len(sent) == 8 and w.check_world_receipts() == 0
    assert w.node.latest_block()["transactions"] == sent
    # The book read with the block is the book a read now returns (nothing mined since).
    assert w._book_at is not None and w._book_at[0] == w.block
    assert w._book_at[1] == w.book()
    assert len(w._book_at[1][0]) == 4 and len(w._book_at[1][1]) == 4
