"""The keeper runner: funding settlement and a liquidation scan over every known account.

Accounts are learnt from trades (the event book reports them). Each scan reads up to
``scan_per_round`` accounts, continuing round-robin where the last scan stopped, so every known
account is read within ``ceil(n / scan_per_round)`` scans however many there are (the scan that
stopped at the first 20 accounts it learnt, forever, is what this replaced).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from agent.errors import GasOverBudget
from agent.keeper.duties import (
    AccountHealth,
    KeeperPolicy,
    should_liquidate,
    should_settle_funding,
)
from agent.types import VenueSnapshot
from agent.venue.base import AccountHealthReading, MarketInfo, Venue

__all__ = ["KeeperRunner"]

_SETTLE_GAS_UNITS = 200_000
_LIQUIDATE_GAS_UNITS = 600_000


@runtime_checkable
class _BatchedHealth(Protocol):
    """A venue that reads many accounts' health in one round trip (DexVenue does)."""

    async def account_health_many(
        self, accounts: Sequence[str]
    ) -> Sequence[AccountHealthReading | None]: ...


class KeeperRunner:
    """Runs the keeper duties a policy enables, against a :class:`~agent.venue.base.Venue`.

    Parameters
    ----------
    venue, policy
        Where duties are sent, and which are worth their gas.
    own_account
        Never a liquidation candidate.
    scan_every_blocks
        Liquidation scans run on blocks divisible by this.
    scan_per_round
        Accounts read per scan: one JSON-RPC batch on a venue with ``account_health_many``
        (:class:`~agent.venue.dex.DexVenue`), one ``eth_call`` each otherwise.
    note
        Human-readable notes for the status page and the log.
    """

    def __init__(
        self,
        venue: Venue,
        policy: KeeperPolicy,
        *,
        own_account: str,
        scan_every_blocks: int = 5,
        scan_per_round: int = 20,
        note: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.venue = venue
        self.policy = policy
        self.scan_every_blocks = max(1, scan_every_blocks)
        self.scan_per_round = max(1, scan_per_round)
        self._me = own_account.lower()
        self._note = note
        self.accounts: dict[str, AccountHealth] = {}
        self._cursor = 0
        self._settle_tried_epoch = -1

    def learn(self, account: str) -> None:
        """Add `account` to the liquidation candidates (idempotent)."""
        a = account.lower()
        if a != self._me and a not in self.accounts:
            self.accounts[a] = AccountHealth(a, math.inf, 0.0, 1)

    def settle_failed(self) -> None:
        """The last ``settleFunding`` reverted: try again on a later block."""
        self._settle_tried_epoch = -1

    def next_scan(self) -> list[str]:
        """The accounts the next scan reads: round-robin from where the last one stopped."""
        keys = list(self.accounts)
        if not keys:
            return []
        n = min(self.scan_per_round, len(keys))
        start = self._cursor % len(keys)
        self._cursor = (start + n) % len(keys)
        return [keys[(start + i) % len(keys)] for i in range(n)]

    async def run(
        self, snap: VenueSnapshot, market: MarketInfo, gas_price_wei: int | None, native: float
    ) -> None:
        """Do what is due at `snap`: settle funding, then scan for liquidations."""
        if gas_price_wei is None:
            return
        reward = market.keeper_reward
        epoch = snap.funding.epoch
        # The market refuses to settle on a stale oracle: only try with a fresh index.
        due = snap.block_time_s >= snap.funding.next_boundary_s and snap.index is not None
        if due and epoch != self._settle_tried_epoch:
            d = should_settle_funding(
                self.policy,
                snap.block_time_s,
                snap.funding.next_boundary_s,
                reward,
                _SETTLE_GAS_UNITS,
                gas_price_wei,
                native,
            )
            if d.act:
                self._settle_tried_epoch = epoch
                try:
                    await self.venue.settle_funding()
                    self._note("keeper: settleFunding sent")
                except GasOverBudget:
                    self._settle_tried_epoch = -1  # try again when the base fee is back down
        if not self.policy.liquidate or snap.block_number % self.scan_every_blocks:
            return
        scan = self.next_scan()
        readings: Sequence[AccountHealthReading | None]
        if isinstance(self.venue, _BatchedHealth):
            readings = await self.venue.account_health_many(scan)
        else:
            readings = [await self.venue.account_health(a) for a in scan]
        for acct, h in zip(scan, readings, strict=True):
            if h is None:
                continue
            health = AccountHealth(acct, h.equity, h.maintenance_margin, h.position_lots)
            self.accounts[acct] = health
            d = should_liquidate(
                self.policy, health, reward, _LIQUIDATE_GAS_UNITS, gas_price_wei, native
            )
            if d.act:
                try:
                    await self.venue.liquidate(acct)
                    self._note(
                        f"keeper: liquidate {acct[:10]} (equity {h.equity:.2f} < "
                        f"{h.maintenance_margin:.2f})"
                    )
                except GasOverBudget:
                    return
