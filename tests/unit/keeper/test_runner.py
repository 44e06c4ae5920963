"""The keeper runner's liquidation scan covers every known account, however many."""

from __future__ import annotations

import math

import pytest

from agent.keeper.duties import KeeperPolicy
from agent.keeper.runner import KeeperRunner
from agent.venue.base import AccountHealthReading, MarketInfo
from tests.unit.snapshots import snapshot

MARKET = MarketInfo(0.01, 0.01, 10.0, -1.0, 5.0, 3600, 6, keeper_reward=50.0)


class _Accounts:
    """The two venue calls a liquidation scan makes, over a table of account healths."""

    def __init__(self, health: dict[str, AccountHealthReading]) -> None:
        self.health = health
        self.reads: list[str] = []
        self.liquidated: list[str] = []

    async def account_health(self, account: str) -> AccountHealthReading | None:
        self.reads.append(account)
        return self.health.get(account)

    async def liquidate(self, account: str) -> str:
        self.liquidated.append(account)
        return f"liq-{account}"

    async def settle_funding(self) -> str:
        return "settle"


def _runner(venue: _Accounts, per_round: int = 20) -> KeeperRunner:
    policy = KeeperPolicy(settle_funding=False, liquidate=True, min_profit_usd=0.0)
    return KeeperRunner(
        venue,  # type: ignore[arg-type]  # only the scan's calls are needed
        policy,
        own_account="0xME",
        scan_every_blocks=1,
        scan_per_round=per_round,
    )


@pytest.mark.asyncio
async def test_an_underwater_account_learnt_after_the_first_twenty_is_liquidated() -> None:
    names = [f"0x{i:040x}" for i in range(45)]
    healthy = AccountHealthReading(equity=1_000.0, maintenance_margin=10.0, position_lots=5)
    venue = _Accounts({n: healthy for n in names})
    venue.health[names[44]] = AccountHealthReading(
        equity=1.0, maintenance_margin=10.0, position_lots=5
    )
    runner = _runner(venue)
    for n in [*names, "0xme"]:
        runner.learn(n)
    assert "0xme" not in runner.accounts
    rounds = math.ceil(45 / 20)
    for block in range(rounds):
        await runner.run(snapshot(block=block), MARKET, gas_price_wei=10**9, native=1.0)
    assert sorted(set(venue.reads)) == sorted(names), "every known account is read"
    assert venue.liquidated == [names[44]]


def test_the_scan_continues_round_robin_where_it_stopped() -> None:
    runner = _runner(_Accounts({}), per_round=3)
    for n in "abcde":
        runner.learn(n)
    assert runner.next_scan() == ["a", "b", "c"]
    assert runner.next_scan() == ["d", "e", "a"]
    assert runner.next_scan() == ["b", "c", "d"]
    runner.learn("f")  # a newcomer joins the rotation
    seen = set(runner.next_scan() + runner.next_scan())
    assert "f" in seen


class _BatchedAccounts(_Accounts):
    """A venue that reads a whole scan in one call, as DexVenue does (one JSON-RPC batch)."""

    def __init__(self, health: dict[str, AccountHealthReading]) -> None:
        super().__init__(health)
        self.batches: list[list[str]] = []

    async def account_health_many(self, accounts: list[str]) -> list[AccountHealthReading | None]:
        self.batches.append(list(accounts))
        return [self.health.get(a) for a in accounts]


@pytest.mark.asyncio
async def test_a_venue_with_batched_reads_gets_one_call_per_scan() -> None:
    names = [f"0x{i:040x}" for i in range(25)]
    healthy = AccountHealthReading(equity=1_000.0, maintenance_margin=10.0, position_lots=5)
    venue = _BatchedAccounts({n: healthy for n in names})
    venue.health[names[22]] = AccountHealthReading(
        equity=1.0, maintenance_margin=10.0, position_lots=5
    )
    runner = _runner(venue)
    for n in names:
        runner.learn(n)
    for block in range(2):
        await runner.run(snapshot(block=block), MARKET, gas_price_wei=10**9, native=1.0)
    assert [len(b) for b in venue.batches] == [20, 20]  # one call per scan, none per account
    assert venue.reads == []
    assert sorted({a for b in venue.batches for a in b}) == sorted(names)
    assert venue.liquidated == [names[22]]
