"""The world around the agent in a stress run: a forked chain driven block by block.

:class:`ChainWorld` plays one :class:`~sims.scenario.Step` at a time against a forked anvil node
whose automine is off, in this order::

    next block timestamp ─► base-fee override ─► oracle push (unless stale) ─► background makers
        ─► taker bots ─► arbitrageur ─► funding fallback ─► mempool faults (drop / hold the
        agent's txs) ─► mine

Nothing is mined during a stall: transactions wait in the pool and time still passes. Every world
transaction is sent by an anvil dev account (unlocked on every anvil, forks included) with an
explicit nonce, gas limit and fees, so the node never estimates and the same seed always builds the
same blocks.

Actors (anvil dev account indices, see :class:`Roles`)

==============  ==================================================================================
oracle updater  pushes the index into the ``ManualPriceFeed`` when the timeline says so
makers          background liquidity: a ladder around the timeline's target DEX mid (index plus
                premium), refreshed by one ``batch`` when the target moves or the ladder ages
takers          IOC orders ``aggressiveness_bps`` through fair value (the index plus the
                scripted premium), never through a DEX mid that contains our own quotes; they
                push the DEX mid toward the target and so make funding
arbitrageur     takes any DEX level resting through fair value (the exchange mid plus the
                premium) as it saw it ``latency_s`` ago, when the edge pays its taker fee, its
                gas and ``min_edge_bps``
keeper          calls ``settleFunding`` when a boundary passed and nobody settled it
==============  ==================================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import socket
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from agent.chain.abi import AbiCodec
from agent.chain.contracts import load_artifact, market_abi
from agent.chain.deploy import Deployment
from agent.chain.signer import dev_account
from agent.errors import ChainError, ConfigError, RpcUnavailable
from agent.types import Side
from agent.venue.dex import (
    decode_account_state,
    decode_book_levels,
    decode_funding_state,
    decode_open_orders,
    encode_batch_call,
)
from sims.anvil import Anvil
from sims.scenario import ArbitrageSpec, Step, TakerOrder

__all__ = [
    "ChainWorld",
    "MakerLadder",
    "MarketDeployment",
    "MarketSpec",
    "Roles",
    "WorldStats",
]

_WAD = 10**18
_GWEI = 10**9
_FLAG_IOC = 2
_MAX_DRIP_RAW = 1_000_000 * 10**6
_WORLD_TIP_WEI = 1 * _GWEI
_WORLD_MAX_FEE_WEI = 50_000 * _GWEI
_GAS_ORACLE = 120_000
_GAS_TAKER = 3_000_000
_GAS_MAKER = 4_000_000
_GAS_KEEPER = 1_500_000
_GAS_SIMPLE = 300_000

_Book = tuple[list[tuple[float, int]], list[tuple[float, int]]]
"""Bids and asks as (price, lots), best first."""


@dataclass(frozen=True, slots=True)
class MarketDeployment:
    """Where one market lives: a deployment record of agent/chain/deploy.py, plus its interval."""

    record: Deployment

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> MarketDeployment:
        """Validate a deployment record (the JSON :meth:`Deployment.save` writes).

        Raises
        ------
        ConfigError
            If a field is missing or unknown.
        """
        try:
            return cls(Deployment(**rec))
        except TypeError as exc:
            raise ConfigError(f"deployment record: {exc}") from None

    def to_record(self) -> dict[str, Any]:
        """The record, as the agent's ``chain.deployment_file`` reads it."""
        return dataclasses.asdict(self.record)

    @property
    def market(self) -> str:
        """Market address."""
        return _checksum(self.record.market)

    @property
    def collateral(self) -> str:
        """Collateral token address."""
        return _checksum(self.record.token)

    @property
    def oracle(self) -> str:
        """Price feed address."""
        return _checksum(self.record.oracle)

    @property
    def block(self) -> int:
        """Deployment block."""
        return self.record.block_number

    @property
    def funding_interval_s(self) -> int:
        """Funding interval from the recorded parameters (0 when not recorded)."""
        return int(self.record.params.get("funding_interval_s", 0))


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """The market's parameters the world needs, read from its ``MarketCreated`` event."""

    tick_size_usd: float
    lot_size_base: float
    min_notional_usd: float
    funding_interval_s: int
    collateral_unit: int
    """Raw collateral units per 1.0 (1e6 for a 6-decimal token)."""
    oracle_decimals: int
    taker_fee_bps: float = 0.0

    def tick(self, price_usd: float) -> int:
        """The nearest tick to a price (at least 1)."""
        return max(1, round(price_usd / self.tick_size_usd))

    def lots(self, size_base: float, price_usd: float) -> int:
        """Lots for a size, at least one lot and at least the minimum notional."""
        lots = max(1, round(size_base / self.lot_size_base))
        need = math.ceil(self.min_notional_usd / max(price_usd * self.lot_size_base, 1e-12))
        return max(lots, need)


@dataclass(frozen=True, slots=True)
class Roles:
    """Which anvil dev account plays which part."""

    oracle_updater: int = 0
    agent: int = 1
    makers: tuple[int, ...] = (2, 3)
    takers: tuple[int, ...] = (4, 5, 6, 7)
    arbitrageur: int = 8
    keeper: int = 9

    def address(self, index: int) -> str:
        """Checksummed address of dev account `index`."""
        return str(dev_account(index).address)


@dataclass(frozen=True, slots=True)
class MakerLadder:
    """Background liquidity: levels at ``offsets_bps`` either side of the target mid."""

    offsets_bps: tuple[float, ...] = (6.0, 12.0, 20.0, 35.0, 60.0)
    sizes_base: tuple[float, ...] = (0.4, 0.8, 1.5, 3.0, 6.0)
    refresh_s: float = 6.0
    """Re-post at least this often."""
    move_bps: float = 3.0
    """Re-post at once when the target moved this much since the last post."""


@dataclass(slots=True)
class WorldStats:
    """What the world did (for the report and for tests)."""

    blocks_mined: int = 0
    stalled_steps: int = 0
    oracle_pushes: int = 0
    taker_orders: int = 0
    maker_refreshes: int = 0
    funding_settled_by_world: int = 0
    agent_txs_dropped: int = 0
    agent_txs_held: int = 0
    world_txs: int = 0
    world_txs_reverted: int = 0
    arb_orders: int = 0
    arb_base: float = 0.0
    """Size the arbitrageur sent (an upper bound on what it took: its orders are IOC)."""


@dataclass(slots=True)
class _Held:
    raw: str
    release_block: int


@dataclass(slots=True)
class _MakerState:
    center_usd: float = 0.0
    posted_s: float = -math.inf


class ChainWorld:
    """Drive a forked chain through a scenario timeline (see the module docstring).

    Parameters
    ----------
    node
        The forked anvil node (automine off).
    deployment
        The market to drive.
    roles
        Account roles.
    ladder
        Background makers' ladder.
    arbitrage
        The arbitrageur's latency, edge and size (enabled by default).
    native_price_usd
        Price of the gas token, for the arbitrageur's gas cost.
    tip_gwei
        Priority fee of every world transaction: the chain's going rate, which the agent's fee
        estimator reads from the blocks.
    """

    def __init__(
        self,
        node: Anvil,
        deployment: MarketDeployment,
        roles: Roles | None = None,
        ladder: MakerLadder | None = None,
        arbitrage: ArbitrageSpec | None = None,
        native_price_usd: float = 2000.0,
        tip_gwei: float = _WORLD_TIP_WEI / _GWEI,
    ) -> None:
        self.node = node
        self.dep = deployment
        self.roles = roles or Roles()
        self.ladder = ladder or MakerLadder()
        self.arbitrage = arbitrage or ArbitrageSpec()
        self.native_price_usd = native_price_usd
        self.tip_wei = round(tip_gwei * _GWEI)
        self.market = _codec("PerpMarket")
        self.erc20 = _codec("FaucetUSD")
        self.feed = _codec("ManualPriceFeed")
        self.stats = WorldStats()
        self.spec = self._read_spec()
        self.agent_address = self.roles.address(self.roles.agent)
        self._nonces: dict[str, int] = {}
        self._makers = {i: _MakerState() for i in self.roles.makers}
        self._taker_turn = 0
        self._held: list[_Held] = []
        self._hold_seen: dict[str, int] = {}
        self._world_hashes: list[str] = []
        self._deferred: list[dict[str, str]] | None = None
        """While :meth:`play` runs: the step's transactions, sent with its block."""
        self._pipe = _Pipeline(node)
        self._book_at: tuple[int, _Book] | None = None
        """(block, book) read right after `mine` built that block (the next step's book)."""
        self._calldata: dict[tuple[Any, ...], bytes] = {}
        self._batch_selector = self.market.encode_call("batch", [], [])[:4]
        self.last_ts = int(self.node.latest_block()["timestamp"], 16)
        self.block = self.node.block_number()
        self.updater = self._oracle_updater()

    def close(self) -> None:
        """Close the world's own connection to the node (the node keeps running)."""
        self._pipe.close()

    # -- set-up --------------------------------------------------------------------------------

    def _read_spec(self) -> MarketSpec:
        logs = self.node.rpc(
            "eth_getLogs",
            [
                {
                    "address": self.dep.market,
                    "fromBlock": hex(self.dep.block),
                    "toBlock": "latest",
                    "topics": [self.market.topic("MarketCreated")],
                }
            ],
        )
        if not logs:
            raise ChainError(
                f"MarketCreated not found for {self.dep.market} from block {self.dep.block}"
            )
        decoded = self.market.decode_log(logs[0])
        assert decoded is not None
        p = decoded.args["params"]
        decimals = int(self._call(p[0], self.erc20.encode_call("decimals")), 16)
        unit = 10**decimals
        feed_dec = int(self._call(p[1], self.feed.encode_call("decimals")), 16)
        return MarketSpec(
            tick_size_usd=int(p[3]) / unit,
            lot_size_base=int(p[4]) / _WAD,
            min_notional_usd=int(p[5]) / unit,
            funding_interval_s=int(p[11]),
            collateral_unit=unit,
            oracle_decimals=feed_dec,
            taker_fee_bps=float(p[9]),
        )

    def _oracle_updater(self) -> str:
        # A ManualPriceFeed names its updater; on a fork of someone else's chain we impersonate it.
        try:
            raw = self._call(self.dep.oracle, self.feed.encode_call("updater"))
            addr = to_checksum_address("0x" + raw[-40:])
        except ChainError:
            return self.roles.address(self.roles.oracle_updater)
        if addr != self.roles.address(self.roles.oracle_updater):
            self.node.impersonate(addr)
            self.node.set_balance(addr, 10**22)
        return addr

    def _call(self, to: str, data: bytes) -> str:
        res: str = self.node.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        return res

    def ensure_funded(self, deposits_usd: Mapping[int, float]) -> int:
        """Top every role up to its deposit (faucet drip, approve, deposit); return txs sent.

        Works on any fork whose collateral token has a ``drip`` faucet; accounts already funded
        (as in a fork-state file) cost one read each.
        """
        sent = 0
        unit = self.spec.collateral_unit
        for index, usd in deposits_usd.items():
            who = self.roles.address(index)
            raw = self._call(self.dep.market, self.market.encode_call("accountState", who))
            collateral = int(self.market.decode_output("accountState", raw)[0][0])
            want = int(usd * unit)
            if collateral >= want // 2:
                continue
            need = want - max(collateral, 0)
            left = need
            while left > 0:
                amt = min(left, _MAX_DRIP_RAW)
                self._send(who, self.dep.collateral, self.erc20.encode_call("drip", who, amt))
                left -= amt
            self._send(
                who, self.dep.collateral, self.erc20.encode_call("approve", self.dep.market, need)
            )
            self._send(who, self.dep.market, self.market.encode_call("deposit", need))
            sent += 3
        return sent

    # -- transactions --------------------------------------------------------------------------

    def _nonce(self, who: str) -> int:
        if who not in self._nonces:
            self._nonces[who] = int(self.node.rpc("eth_getTransactionCount", [who, "pending"]), 16)
        n = self._nonces[who]
        self._nonces[who] = n + 1
        return n

    def _send(self, who: str, to: str, data: bytes, gas: int = _GAS_SIMPLE) -> None:
        tx = {
            "from": who,
            "to": to,
            "data": "0x" + data.hex(),
            "gas": hex(gas),
            "nonce": hex(self._nonce(who)),
            "maxFeePerGas": hex(_WORLD_MAX_FEE_WEI),
            "maxPriorityFeePerGas": hex(self.tip_wei),
        }
        if self._deferred is not None:
            self._deferred.append(tx)  # sent with the step's block (`play`)
            return
        try:
            h = str(self.node.rpc("eth_sendTransaction", [tx]))
        except ChainError:
            self._nonces.pop(who, None)  # re-read the nonce next time
            raise
        self._sent(h)

    def _sent(self, tx_hash: str) -> None:
        self.stats.world_txs += 1
        self._world_hashes.append(tx_hash)

    def _flush(
        self,
        mine_calls: list[tuple[str, list[Any]]] | None = None,
        reads: Sequence[bytes] = (),
    ) -> list[str]:
        """Send the deferred transactions, in order, then the mining batch, then `reads`.

        All of it is one write on the pipeline's connection, answered in order: a step's sends,
        its block and the next step's reads cost one round trip, and each request still runs
        only after the previous one finished (see :class:`_Pipeline`), exactly as when each
        waited for its answer. `reads` (market views) see the block just mined. Returns their
        raw answers.
        """
        txs = self._deferred or []
        if self._deferred is not None:
            self._deferred = []
        if not txs and not reads:
            if mine_calls:
                self.node.batch(mine_calls)
            return []
        bodies: list[Any] = [("eth_sendTransaction", [tx]) for tx in txs]
        if mine_calls:
            bodies.append(mine_calls)
        if reads:
            bodies.append([self._eth_call(d) for d in reads])
        answers = self._pipe.call_all(bodies)
        error: ChainError | None = None
        for tx, ans in zip(txs, answers, strict=False):
            if isinstance(ans, ChainError):
                self._nonces.pop(tx["from"], None)  # re-read the nonce next time
                error = error or ans
            else:
                self._sent(str(ans))
        for ans in answers[len(txs) :]:
            if isinstance(ans, ChainError):
                error = error or ans
        if error is not None:
            raise error
        return [str(r) for r in answers[-1]] if reads else []

    def mine(
        self, timestamp_s: int, base_fee_wei: int | None = None, *, prefetch_book: bool = False
    ) -> None:
        """Mine one block at `timestamp_s` (strictly after the last block), in one round trip.

        `base_fee_wei` overrides the block's base fee. The override and ``evm_mine [ts]`` go in
        one JSON-RPC batch: a block costs one round trip, not three. The node starts a batch's
        calls in order and the override completes without waiting, so it is set before the block
        is built (reads or sends after ``evm_mine`` in the same batch would not be ordered: the
        node answers them while the block is still being mined). Transactions :meth:`play`
        deferred go first, in the same round trip (pipelined requests, not batch entries).
        `prefetch_book` reads the arbitrageur's view of the new block's book in that round trip
        too (the next :meth:`play` uses it while no other block was mined).
        """
        ts = max(timestamp_s, self.last_ts + 1)
        calls: list[tuple[str, list[Any]]] = []
        if base_fee_wei is not None:
            calls.append(("anvil_setNextBlockBaseFeePerGas", [hex(base_fee_wei)]))
        calls.append(("evm_mine", [ts]))
        reads = [self._book_call(side, 5) for side in (0, 1)] if prefetch_book else []
        raws = self._flush(calls, reads)
        self.last_ts = ts
        self.block += 1
        self.stats.blocks_mined += 1
        if raws:
            self._book_at = (self.block, self._decode_book(raws))

    def check_world_receipts(self) -> int:
        """Count reverted world transactions since the last check (one batch of receipts)."""
        hashes, self._world_hashes = self._world_hashes, []
        if not hashes:
            return 0
        reverted = 0
        for h in hashes:
            r = self.node.rpc("eth_getTransactionReceipt", [h])
            if r is not None and r.get("status") == "0x0":
                reverted += 1
        self.stats.world_txs_reverted += reverted
        return reverted

    # -- reads ---------------------------------------------------------------------------------

    def best_prices(self) -> tuple[float | None, float | None]:
        """(best bid, best ask) of the book in USD, live levels only."""
        bids, asks = self.book(depth=1)
        return (bids[0][0] if bids else None), (asks[0][0] if asks else None)

    def book(self, depth: int = 5) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        """(bids best first, asks best first) as (price USD, lots), live levels only."""
        # Both sides in one round trip (the arbitrageur reads the book every block).
        return self._decode_book(self._call_many([self._book_call(s, depth) for s in (0, 1)]))

    def _decode_book(self, raws: Sequence[str]) -> _Book:
        out: list[list[tuple[float, int]]] = []
        for raw in raws:
            ticks, lots = decode_book_levels(raw)
            out.append(
                [(t * self.spec.tick_size_usd, int(n)) for t, n in zip(ticks, lots, strict=True)
                 if n > 0]
            )  # fmt: skip
        return out[0], out[1]

    def _book_call(self, side: int, depth: int) -> bytes:
        return self._encoded("bookLevels", side, depth)

    def _encoded(self, fn: str, *args: Any) -> bytes:
        """Calldata of a market view, encoded once per arguments (the step reads the same few)."""
        key = (fn, *args)
        data = self._calldata.get(key)
        if data is None:
            data = self._calldata[key] = self.market.encode_call(fn, *args)
        return data

    def _call_many(self, datas: Sequence[bytes]) -> list[str]:
        """``eth_call`` the market with each of `datas`, all in one JSON-RPC batch."""
        return [str(r) for r in self.node.batch([self._eth_call(d) for d in datas])]

    def _eth_call(self, data: bytes) -> tuple[str, list[Any]]:
        return ("eth_call", [{"to": self.dep.market, "data": "0x" + data.hex()}, "latest"])

    def account(self, who: str) -> tuple[int, int, int]:
        """(collateral raw, position lots, equity raw) of `who` (raises if the view reverts)."""
        raw = self._call(self.dep.market, self._encoded("accountState", who))
        a = decode_account_state(raw)
        return a[0], a[1], a[5]

    def open_order_ids(self, who: str) -> list[int]:
        """Ids of `who`'s live resting orders."""
        raw = self._call(self.dep.market, self._encoded("openOrders", who))
        return self._decode_order_ids(raw)

    def _decode_order_ids(self, raw: str) -> list[int]:
        return [o[0] for o in decode_open_orders(raw)]

    def funding_next_boundary(self) -> int:
        """The market's next funding boundary (unix s)."""
        raw = self._call(self.dep.market, self._encoded("fundingState"))
        return self._decode_next_boundary(raw)

    def _decode_next_boundary(self, raw: str) -> int:
        return decode_funding_state(raw)[1]

    # -- actors --------------------------------------------------------------------------------

    def push_oracle(self, price_usd: float) -> None:
        """Publish `price_usd` through the feed (lands in the next mined block)."""
        answer = round(price_usd * 10**self.spec.oracle_decimals)
        self._send(
            self.updater, self.dep.oracle, self.feed.encode_call("push", answer), _GAS_ORACLE
        )
        self.stats.oracle_pushes += 1

    def _makers_due(self, center_usd: float, now_s: float, force: bool = False) -> list[int]:
        """The makers whose ladder is old or off-centre (all of them with `force`)."""
        due = []
        for index, st in self._makers.items():
            moved = abs(center_usd / st.center_usd - 1.0) * 1e4 if st.center_usd else math.inf
            if (
                force
                or moved >= self.ladder.move_bps
                or now_s - st.posted_s >= self.ladder.refresh_s
            ):
                due.append(index)
        return due

    def refresh_makers(
        self,
        center_usd: float,
        now_s: float,
        force: bool = False,
        open_ids: Mapping[int, list[int]] | None = None,
    ) -> int:
        """Re-post the background ladders that are old or off-centre; return how many.

        `open_ids` are the due makers' resting order ids when already read (by :meth:`play`).
        """
        n = 0
        for index in self._makers_due(center_usd, now_s, force):
            st = self._makers[index]
            who = self.roles.address(index)
            known = open_ids.get(index) if open_ids is not None else None
            cancel = known if known is not None else self.open_order_ids(who)
            places = []
            for k, (off, size) in enumerate(
                zip(self.ladder.offsets_bps, self.ladder.sizes_base, strict=True)
            ):
                for side, sign in ((Side.BID, -1.0), (Side.ASK, 1.0)):
                    px = center_usd * (1.0 + sign * off * 1e-4)
                    # Two makers interleave (the second a hair wider) so levels are not all equal.
                    px *= 1.0 + sign * 0.5e-4 * (index - self.roles.makers[0])
                    places.append(
                        (int(side), 0, self.spec.tick(px), self.spec.lots(size, px), 1000 + k, 0)
                    )
            data = encode_batch_call(self._batch_selector, cancel, places)
            self._send(who, self.dep.market, data, _GAS_MAKER)
            st.center_usd, st.posted_s = center_usd, now_s
            self.stats.maker_refreshes += 1
            n += 1
        return n

    def send_takers(self, orders: Sequence[TakerOrder], reference_usd: float) -> None:
        """Send each taker order as an IOC limit `aggressiveness_bps` through `reference_usd`."""
        for o in orders:
            sign = 1.0 if o.side is Side.BID else -1.0
            px = reference_usd * (1.0 + sign * o.aggressiveness_bps * 1e-4)
            index = self.roles.takers[self._taker_turn % len(self.roles.takers)]
            self._taker_turn += 1
            place = (
                int(o.side),
                _FLAG_IOC,
                self.spec.tick(px),
                self.spec.lots(o.size_base, px),
                7,
                0,
            )
            self._send(
                self.roles.address(index),
                self.dep.market,
                self.market.encode_call("place", place),
                _GAS_TAKER,
            )
            self.stats.taker_orders += 1

    def _arbitrage_on(self) -> bool:
        return self.arbitrage.enabled and self.arbitrage.max_size_base > 0

    def arbitrage_threshold_bps(
        self, price_usd: float, size_base: float, base_fee_gwei: float
    ) -> float:
        """Edge (bps of notional) the arbitrageur needs: taker fee + its gas + its minimum."""
        gas_usd = self.arbitrage.gas_units * base_fee_gwei * 1e-9 * self.native_price_usd
        notional = max(price_usd * size_base, 1e-9)
        return self.spec.taker_fee_bps + gas_usd / notional * 1e4 + self.arbitrage.min_edge_bps

    def send_arbitrage(
        self,
        reference_usd: float,
        base_fee_gwei: float,
        book: tuple[list[tuple[float, int]], list[tuple[float, int]]] | None = None,
    ) -> int:
        """Take DEX levels resting through `reference_usd` by more than the arb's costs.

        One IOC per side at most: limited at the price where the edge is exactly the threshold,
        sized to the levels through it (capped at ``max_size_base``). Returns orders sent.
        `book` is :meth:`book` when already read (by :meth:`play`).
        """
        if not self._arbitrage_on():
            return 0
        arb = self.arbitrage
        bids, asks = book if book is not None else self.book()
        sent = 0
        lot = self.spec.lot_size_base
        for side, levels, sign in ((Side.BID, asks, 1.0), (Side.ASK, bids, -1.0)):
            # Buy asks below the reference, sell into bids above it.
            through = [(px, n) for px, n in levels if sign * (reference_usd - px) > 0]
            if not through:
                continue
            size = min(sum(n for _, n in through) * lot, arb.max_size_base)
            need = self.arbitrage_threshold_bps(reference_usd, size, base_fee_gwei)
            limit = reference_usd * (1.0 - sign * need * 1e-4)
            take = [(px, n) for px, n in through if sign * (limit - px) >= 0]
            if not take:
                continue
            size = min(sum(n for _, n in take) * lot, arb.max_size_base)
            lots = max(1, round(size / lot))
            place = (int(side), _FLAG_IOC, self.spec.tick(limit), lots, 8, 0)
            self._send(
                self.roles.address(self.roles.arbitrageur),
                self.dep.market,
                self.market.encode_call("place", place),
                _GAS_TAKER,
            )
            self.stats.arb_orders += 1
            self.stats.arb_base += lots * lot
            sent += 1
        return sent

    def _settle_window(self, grace_s: float) -> bool:
        """True in the two seconds starting `grace_s` after a funding boundary."""
        interval = self.spec.funding_interval_s
        since = self.last_ts - self.last_ts // interval * interval
        return grace_s <= since < grace_s + 2

    def settle_funding_if_due(self, grace_s: float, next_boundary: int | None = None) -> bool:
        """Call ``settleFunding`` when a boundary passed `grace_s` ago and is still open.

        `next_boundary` is :meth:`funding_next_boundary` when already read (by :meth:`play`).
        """
        if not self._settle_window(grace_s):
            return False
        return self.settle_funding_now(next_boundary)

    def settle_funding_now(self, next_boundary: int | None = None) -> bool:
        """Call ``settleFunding`` if a boundary has passed and is still open; True if sent."""
        nb = next_boundary if next_boundary is not None else self.funding_next_boundary()
        if nb > self.last_ts:
            return False  # the agent's keeper duty (or a trade) already closed it
        self._send(
            self.roles.address(self.roles.keeper),
            self.dep.market,
            self.market.encode_call("settleFunding"),
            _GAS_KEEPER,
        )
        self.stats.funding_settled_by_world += 1
        return True

    # -- mempool faults ------------------------------------------------------------------------

    def _agent_pending(self) -> list[str]:
        content = self.node.txpool_content()
        hashes: list[str] = []
        for group in ("pending", "queued"):
            by_sender = content.get(group, {})
            for sender, txs in by_sender.items():
                if sender.lower() == self.agent_address.lower():
                    hashes += [
                        str(tx["hash"]) for _, tx in sorted(txs.items(), key=lambda kv: int(kv[0]))
                    ]
        return hashes

    def drop_agent_txs(self) -> int:
        """Drop every pending transaction of the agent from the pool (the network lost them)."""
        hashes = self._agent_pending()
        for h in hashes:
            self.node.drop_transaction(h)
        self.stats.agent_txs_dropped += len(hashes)
        return len(hashes)

    def hold_agent_txs(self, delay_blocks: int) -> None:
        """Keep the agent's new transactions out of the next `delay_blocks` blocks.

        Each pending transaction is taken out of the pool (its signed bytes kept) and re-sent once
        that many blocks have been mined since it was first seen, as a congested network would
        include it late.
        """
        if delay_blocks <= 0 and not self._held:
            return
        if delay_blocks > 0:
            for h in self._agent_pending():
                first = self._hold_seen.setdefault(h, self.block)
                raw = self.node.rpc("eth_getRawTransactionByHash", [h])
                if raw is None:
                    continue
                self.node.drop_transaction(h)
                self._held.append(_Held(str(raw), first + delay_blocks))
                self.stats.agent_txs_held += 1
        keep: list[_Held] = []
        for held in self._held:
            if held.release_block <= self.block:
                # It may have been replaced meanwhile (same nonce, higher fee): then it is refused.
                with contextlib.suppress(ChainError):
                    self.node.rpc("eth_sendRawTransaction", [held.raw])
            else:
                keep.append(held)
        self._held = keep

    # -- one step ------------------------------------------------------------------------------

    def play(
        self,
        step: Step,
        start_ts: int,
        *,
        settle_grace_s: float = 3.0,
        quiet_base_fee_gwei: float | None = None,
    ) -> None:
        """Apply one timeline step to the chain (mine, or not during a stall).

        `quiet_base_fee_gwei` holds the base fee at the scenario's quiet level outside spikes
        (a busy network's steady state); None lets the mostly empty local blocks decay it.
        """
        fee = step.base_fee_override_gwei
        # The override rides in the mining batch below: nothing before it reads the base fee.
        next_base_fee: int | None = None
        if step.mined and (fee is not None or quiet_base_fee_gwei is not None):
            gwei = fee if fee is not None else quiet_base_fee_gwei
            assert gwei is not None
            next_base_fee = int(gwei * _GWEI)
        now_s = start_ts + step.t_s
        self._deferred = []
        try:
            self._play(
                step, start_ts, now_s, fee, next_base_fee, settle_grace_s, quiet_base_fee_gwei
            )
        finally:
            self._deferred = None

    def _play(
        self,
        step: Step,
        start_ts: int,
        now_s: float,
        fee: float | None,
        next_base_fee: int | None,
        settle_grace_s: float,
        quiet_base_fee_gwei: float | None,
    ) -> None:
        # Every read of the step first, in one round trip: they all read the last mined block,
        # which nothing sent below changes, so reading them together reads the same values.
        # The book as the last block left it may have come with that block (`mine`'s prefetch):
        # nothing was mined since, so it is what a read now would return.
        makers = self._makers_due(step.target_dex_mid_usd, now_s)
        want_book = step.mined and self._arbitrage_on()
        book = None
        if want_book and self._book_at is not None and self._book_at[0] == self.block:
            book, want_book = self._book_at[1], False
        want_funding = step.mined and self._settle_window(settle_grace_s)
        datas = [self._book_call(side, 5) for side in (0, 1)] if want_book else []
        datas += [self._encoded("openOrders", self.roles.address(i)) for i in makers]
        if want_funding:
            datas.append(self._encoded("fundingState"))
        raws = self._call_many(datas) if datas else []
        if want_book:
            book = self._decode_book(raws[:2])
        at = 2 if want_book else 0
        open_ids = {i: self._decode_order_ids(raws[at + k]) for k, i in enumerate(makers)}
        next_boundary = self._decode_next_boundary(raws[-1]) if want_funding else None

        if step.oracle_update and step.mined:
            self.push_oracle(step.oracle_usd)
        self.refresh_makers(step.target_dex_mid_usd, now_s, open_ids=open_ids)
        if step.takers:
            # Fair value, not the book's mid: a mid made of our own quotes would let a quote
            # that is off the market drag the takers' prices along with it.
            self.send_takers(step.takers, step.target_dex_mid_usd)
        if step.mined:
            fee_gwei = fee if fee is not None else (quiet_base_fee_gwei or 0.0)
            self.send_arbitrage(step.arb_reference_usd, fee_gwei, book)
        if not step.mined:
            self.stats.stalled_steps += 1
            self._flush()
            return
        self.settle_funding_if_due(settle_grace_s, next_boundary)
        if step.drop_txs or step.inclusion_delay_blocks > 0 or self._held:
            # The mempool faults touch the pool: the world's transactions go in before, as
            # they always did.
            self._flush()
        if step.drop_txs:
            self.drop_agent_txs()
        if next_base_fee is not None and self._held:
            # A held transaction re-sent below meets the node's pool check against the next
            # base fee: set it first, as a separate call, so such steps behave as they always did.
            self.node.set_next_base_fee(next_base_fee)
            next_base_fee = None
        self.hold_agent_txs(step.inclusion_delay_blocks)
        self.mine(start_ts + round(step.t_s), next_base_fee, prefetch_book=self._arbitrage_on())


class _Pipeline:
    """JSON-RPC requests written back to back on one keep-alive connection, answered in order.

    anvil's HTTP server (hyper) reads a connection's next request only once it has answered the
    previous one, so pipelined requests run one after another, each after the previous finished,
    as if each had waited for its answer; the calls of one JSON-RPC *batch* instead run
    concurrently inside the node, so a send there could miss the block mined beside it. The
    world sends a step's transactions and its block this way: one round trip instead of one per
    transaction. A connection that fails is closed and opened again for the next call; what it
    carried is not retried (it may have run).

    The node does not set ``TCP_NODELAY``: its second answer waits (Nagle) until the first is
    acknowledged, and a delayed ACK holds that for 40 ms, so every read here first asks the
    kernel to acknowledge at once (``TCP_QUICKACK``, Linux; measured 44 ms → 0.4 ms for a
    pipelined pair). Where that option does not exist, requests go one at a time.
    """

    def __init__(self, node: Anvil) -> None:
        self._node = node
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = 0

    def call_all(
        self, calls: Sequence[tuple[str, list[Any]] | list[tuple[str, list[Any]]]]
    ) -> list[Any]:
        """Send `calls` (a call, or a list of calls for one batch) pipelined; return each result.

        A call that failed is returned as its :class:`~agent.errors.ChainError` (a batch as the
        error of its first failed call), so the caller sees every answer; a broken connection
        raises :class:`~agent.errors.RpcUnavailable`.
        """
        requests: list[bytes] = []
        for call in calls:
            if isinstance(call, tuple):
                body: Any = self._body(*call)
            else:
                body = [self._body(m, p) for m, p in call]
            data = json.dumps(body).encode()
            requests.append(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
            )
        try:
            sock = self._connection()
            if _QUICKACK is None:
                answers = []
                for call, req in zip(calls, requests, strict=True):
                    sock.sendall(req)
                    answers.append(self._answer(call, self._read_json()))
            else:
                self._quickack()
                sock.sendall(b"".join(requests))
                answers = [self._answer(call, self._read_json()) for call in calls]
        except (OSError, ValueError, ChainError) as exc:
            self.close()
            raise RpcUnavailable(f"pipelined calls to anvil at {self._node.url}: {exc!r}") from exc
        return answers

    def close(self) -> None:
        """Close the connection (a next call opens a new one)."""
        if self._sock is not None:
            _close_quietly(self._sock)
        self._sock, self._buf = None, b""

    def _body(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._ids += 1
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}

    def _connection(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(("127.0.0.1", self._node.port), timeout=30.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buf = sock, b""
            # A world dropped without close() still closes its connection.
            weakref.finalize(self, _close_quietly, sock)
        return self._sock

    def _quickack(self) -> None:
        if _QUICKACK is not None and self._sock is not None:
            self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _fill(self) -> None:
        assert self._sock is not None
        self._quickack()  # the kernel drops back to delayed ACKs on its own: ask every time
        data = self._sock.recv(65536)
        if not data:
            raise ValueError("anvil closed the connection")
        self._buf += data

    def _line(self) -> bytes:
        while (i := self._buf.find(b"\r\n")) < 0:
            self._fill()
        line, self._buf = self._buf[: i + 2], self._buf[i + 2 :]
        return line

    def _read_json(self) -> Any:
        """Read one HTTP/1.1 answer with a Content-Length body; return its JSON."""
        status = self._line()
        parts = status.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP answer: {status!r}")
        length: int | None = None
        while (line := self._line()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ValueError(f"answer without Content-Length ({status!r})")
        while len(self._buf) < length:
            self._fill()
        body, self._buf = self._buf[:length], self._buf[length:]
        if int(parts[1]) >= 400:
            raise ValueError(f"HTTP {int(parts[1])}: {body[:200]!r}")
        return json.loads(body)

    @staticmethod
    def _answer(call: tuple[str, list[Any]] | list[tuple[str, list[Any]]], msg: Any) -> Any:
        items = [(call, msg)] if isinstance(call, tuple) else list(zip(call, msg, strict=True))
        results = []
        for (method, _), m in items:
            if "error" in m:
                return ChainError(f"{method} failed: {m['error'].get('message', m['error'])}")
            results.append(m.get("result"))
        return results[0] if isinstance(call, tuple) else results


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux's ``TCP_QUICKACK`` (None elsewhere: the pipeline then sends one request at a time)."""


def _close_quietly(*closeables: socket.socket) -> None:
    for c in closeables:
        with contextlib.suppress(OSError):
            c.close()


@functools.cache
def _checksum(address: str) -> str:
    """The checksummed form of `address` (a keccak per call: the step asks for a few each time)."""
    return str(to_checksum_address(address))


@functools.cache
def _codec(name: str) -> AbiCodec:
    if name == "PerpMarket":
        return AbiCodec(market_abi())
    return AbiCodec(load_artifact(name).abi)
