"""The quoting defaults under live timing: the size skew and the centre drift bound.

``quoting.size_skew_frac`` = 1 carries the inventory skew in the order sizes (the adding side ×
e^(−kΔ), the reducing side × e^(kΔ) up to ``size_skew_max_growth`` = 1.5×), and
``quoting.max_centre_drift_bps`` (0.5 here, tighter than the 0.9 default, so it fires often)
with ``centre_drift_max_cost_quote`` = $0.10 re-centres the tops when they drift from the
target. Unit tests and lock-step stress runs cover them; here the agent's own run loop
(:func:`sims.live.run_live`) quotes against anvil mining on its own
clock (speed 5), every RPC answer delayed 20-60 wall ms by the fault proxy (0.1-0.3 simulated
seconds), in ``scenarios/quoting_drift.toml``: L2 costs, fair value climbing 0.5% over three
minutes and forced buys lifting the asks, so the agent goes short and its tops keep drifting off
fair value. The hedge ratio is 0 (the hedger runs but never trades), so the inventory the skew
leans against is the DEX position on chain.

Everything asserted is read straight from the node (never through the agent or the proxy), at
every block: ``openOrders`` and ``accountState`` at that block, the agent's transactions in it,
their receipts and the market's logs. The agent's decision records are used only to find the
drift refreshes and the fair value each was decided at; each is tied to its transaction on chain
by the intent id its send record carries.

==================  ================================================================================
levels              never more than ``levels`` orders of ours on a side, never two at one side and
                    tick, at any block
no batch twice      no quote calldata mined twice, no client id placed twice (the chain itself mines
                    one transaction per nonce; a batch sent twice lands at a fresh one)
sizes               every order placed ≤ base × growth^(levels−1) × 1.5 and ≥ one lot and the
                    minimum notional; a side's resting total ≤ base × Σ growth^i × 1.5; each whole
                    new ladder level by level ≤ base × growth^level × 1.5
skew direction      every batch that put new tops on both sides while a position was on: its top on
                    the reducing side at least its top on the adding side
drift bound         drift refreshes sent and mined; the ladder each leaves is centred within the
                    bound (plus the reservation's funding and momentum shift and a tick) of the fair
                    value its decision saw, and its tops bracket the world's fair value then
inventory           |position| within the hard cap at every block; every stress-runner invariant
==================  ================================================================================

Wall time about a minute (``pytest tests/e2e/test_quoting_live.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi.abi import decode as abi_decode

from agent.chain.abi import DecodedLog
from agent.model.quoting import ModelParams
from agent.types import Side
from agent.venue.dex import decode_account_state, decode_open_orders
from sims.live import LiveHandle, LiveOptions, run_live
from sims.scenario import expand, load_scenario
from sims.stress import StressOptions, Upstream

pytestmark = [pytest.mark.chain, pytest.mark.slow]

_SCENARIO = Path(__file__).parent / "scenarios" / "quoting_drift.toml"
_SEED = 1
_SPEED = 5.0
_RPC_DELAY_MS = (20.0, 60.0)
_PLACE = "(uint8,uint8,uint24,uint48,uint64,uint32)[]"
_QUIET_BLOCKS = 3
"""Blocks before a batch's that hold the snapshot it was decided from: its transaction is sent
from the snapshot's block or the next, and included one or two blocks later."""

# The stress runner's settings on L2 costs but for three: a hedge ratio of 0; a depth reference
# the other makers' books always meet, so depth shrinks neither side (a size is then base ×
# growth^level × the skew's multiplier × factors of at most 1 that are the same on both sides:
# volatility, risk); and a top size of 0.02, not 0.05 (the value gate pays for fewer re-centres
# of smaller quotes, so the drift bound has more to do: 25-40 forced refreshes a run against
# about 15). Liquidation scans are off: behind a slow node they read up to twenty accounts.
_CONFIG = """
[quoting]
base_size_base = 0.02
inventory_cap_base = 1.0
levels = 3
native_price_quote = 2000.0
l1_data_fee_per_byte_gwei = 8.0
ref_depth_base = 0.5
max_centre_drift_bps = 0.5

[tx]
max_fee_gwei = 200.0

[keeper]
settle_funding = true
liquidate = false

[hedge.policy]
hedge_ratio = 0.0
dead_band_base = 0.04
"""


@dataclass(frozen=True)
class Order:
    order_id: int
    client_id: int
    side: Side
    tick: int
    lots: int


@dataclass(frozen=True)
class AgentTx:
    tx_hash: str
    input: bytes
    ok: bool


@dataclass
class BlockView:
    """What the chain held at one block, for the agent's account."""

    number: int
    orders: tuple[Order, ...]
    position_lots: int
    txs: list[AgentTx]
    logs: list[DecodedLog]
    """The market's logs of this block that concern the agent."""

    def side(self, side: Side) -> list[Order]:
        return [o for o in self.orders if o.side is side]


@dataclass
class ChainRecorder:
    """Read every block the node mines, straight from the node, while the run goes on.

    Each block is read at its own number (``eth_call`` with that block tag), so a recorder that
    falls behind still sees every block's state, not the head's.
    """

    handle: LiveHandle
    blocks: dict[int, BlockView] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def run(self) -> None:
        h = self.handle
        head = await asyncio.to_thread(h.node.block_number)
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                latest = await asyncio.to_thread(h.node.block_number)
                for n in range(head + 1, latest + 1):
                    try:
                        self.blocks[n] = await self._read(client, n)
                    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                        self.errors.append(f"block {n}: {exc}")
                head = max(head, latest)
                await asyncio.sleep(0.25 / h.clock.speed)

    async def _rpc(
        self, client: httpx.AsyncClient, calls: list[tuple[str, list[Any]]]
    ) -> list[Any]:
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answers = {a["id"]: a for a in (await client.post(self.handle.node.url, json=body)).json()}
        out = []
        for i, (method, _) in enumerate(calls):
            if "error" in answers[i]:
                raise RuntimeError(f"{method}: {answers[i]['error']}")
            out.append(answers[i]["result"])
        return out

    async def _read(self, client: httpx.AsyncClient, n: int) -> BlockView:
        w = self.handle.world
        me, market, tag = w.agent_address.lower(), w.dep.market, hex(n)
        orders_call = "0x" + w.market.encode_call("openOrders", w.agent_address).hex()
        account_call = "0x" + w.market.encode_call("accountState", w.agent_address).hex()
        span = {"address": market, "fromBlock": tag, "toBlock": tag}
        block, orders, account, logs = await self._rpc(
            client,
            [
                ("eth_getBlockByNumber", [tag, True]),
                ("eth_call", [{"to": market, "data": orders_call}, tag]),
                ("eth_call", [{"to": market, "data": account_call}, tag]),
                ("eth_getLogs", [span]),
            ],
        )
        mine = [t for t in block["transactions"] if t["from"].lower() == me]
        receipts = (
            await self._rpc(client, [("eth_getTransactionReceipt", [t["hash"]]) for t in mine])
            if mine
            else []
        )
        # Ours: the account is an indexed topic (maker or taker of a fill, owner of an order).
        me_topic = "0x" + me[2:].rjust(64, "0")
        ours = [
            d
            for raw in logs
            if me_topic in [str(t).lower() for t in raw["topics"][1:3]]
            and (d := w.market.decode_log(raw)) is not None
        ]
        return BlockView(
            number=n,
            orders=tuple(
                Order(o[0], o[1], Side(o[2]), o[3], o[4]) for o in decode_open_orders(orders)
            ),
            position_lots=decode_account_state(account)[1],
            txs=[
                AgentTx(
                    t["hash"],
                    bytes.fromhex(t["input"][2:]),
                    r is not None and r["status"] == "0x1",
                )
                for t, r in zip(mine, receipts, strict=True)
            ],
            logs=ours,
        )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mm.toml"
    path.write_text(_CONFIG)
    return path


@dataclass(frozen=True)
class Batch:
    """One mined quote batch of ours and the ladder it left (before any later fill)."""

    block: int
    tx: AgentTx
    cancel_ids: frozenset[int]
    placed: tuple[Order, ...]
    """Orders the batch put on the book (``OrderPlaced`` of its transaction)."""
    ladder: tuple[Order, ...]
    """What rested once it ran: the orders before the block less its cancels, plus ``placed``."""
    kept: tuple[Order, ...]
    complete: bool
    """Every place of the calldata rests (none skipped as crossing, none filled on arrival)."""


def _batches(blocks: dict[int, BlockView], selector: bytes) -> list[Batch]:
    out = []
    for n in sorted(blocks):
        b, before = blocks[n], blocks.get(n - 1)
        quote_txs = [t for t in b.txs if t.ok and t.input[:4] == selector]
        if before is None or len(b.txs) != 1 or not quote_txs:
            continue  # the ladder before is unknown, or two of ours share the block
        (tx,) = quote_txs
        cancels, places = abi_decode(["uint256[]", _PLACE], tx.input[4:])
        placed = tuple(
            Order(
                int(e.args["orderId"]),
                int(e.args["clientId"]),
                Side(int(e.args["side"])),
                int(e.args["tick"]),
                int(e.args["lots"]),
            )
            for e in b.logs
            if e.name == "OrderPlaced" and e.tx_hash == tx.tx_hash
        )
        kept = tuple(o for o in before.orders if o.order_id not in set(cancels))
        complete = len(placed) == len(places)
        out.append(Batch(n, tx, frozenset(cancels), placed, kept + placed, kept, complete))
    return out


def _best(orders: tuple[Order, ...] | list[Order], side: Side) -> Order | None:
    on_side = [o for o in orders if o.side is side]
    if not on_side:
        return None
    return (
        max(on_side, key=lambda o: o.tick)
        if side is Side.BID
        else min(on_side, key=lambda o: o.tick)
    )


def _ranked(orders: tuple[Order, ...], side: Side) -> list[Order]:
    """Our orders on `side`, best first."""
    on_side = [o for o in orders if o.side is side]
    return sorted(on_side, key=lambda o: -o.tick if side is Side.BID else o.tick)


def _decisions(journal: Path) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The send records (ts and payload) and every intent's transaction hashes."""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        sends = [
            {"ts_ms": ts, **json.loads(p)}
            for ts, p in db.execute(
                "SELECT ts_ms, payload FROM decisions WHERE kind = 'send' ORDER BY id"
            )
        ]
        hashes: dict[str, list[str]] = {}
        for intent, tx_hash in db.execute("SELECT intent_id, tx_hash FROM txs"):
            hashes.setdefault(intent, []).append(str(tx_hash).lower())
    finally:
        db.close()
    return sends, hashes


@dataclass
class Run:
    """One live run's chain record, and what the checks need to read it."""

    blocks: dict[int, BlockView]
    params: ModelParams
    """The agent's quoting parameters (the market's tick, lot and minimum read at its start)."""
    levels: int
    hard_cap_base: float
    batch_selector: bytes
    batches: list[Batch] = field(default_factory=list)
    filled: set[int] = field(default_factory=set)
    """Blocks with a fill of ours (as maker or taker)."""

    def __post_init__(self) -> None:
        self.batches = _batches(self.blocks, self.batch_selector)
        self.filled = {
            e.block_number for b in self.blocks.values() for e in b.logs if e.name == "Fill"
        }

    def quiet(self, block: int) -> bool:
        """No fill of ours in `block` nor in the :data:`_QUIET_BLOCKS` before it: the agent
        decided from the book and position the chain shows there (its snapshot is a block or
        two old), not from an order it still saw that had filled since."""
        blocks = range(block - _QUIET_BLOCKS, block + 1)
        return all(n in self.blocks for n in blocks) and not any(n in self.filled for n in blocks)

    def placed(self) -> list[DecodedLog]:
        return [e for b in self.blocks.values() for e in b.logs if e.name == "OrderPlaced"]


def _check_levels_and_resends(run: Run) -> list[str]:
    problems = []
    blocks, levels = run.blocks, run.levels
    over = [
        (n, len(b.side(Side.BID)), len(b.side(Side.ASK)))
        for n, b in sorted(blocks.items())
        if max(len(b.side(Side.BID)), len(b.side(Side.ASK))) > levels
    ]
    if over:
        problems.append(f"more than {levels} orders a side: (block, bids, asks) {over[:5]}")
    stacked = [
        (n, key)
        for n, b in sorted(blocks.items())
        for key, c in Counter((o.side.name, o.tick) for o in b.orders).items()
        if c > 1
    ]
    if stacked:
        problems.append(f"two orders of ours at one side and tick: {stacked[:5]}")
    # The chain mines one transaction per nonce; a batch sent twice lands at a fresh nonce with
    # the same calldata (and so the same client ids).
    mined = [t for b in blocks.values() for t in b.txs if t.input[:4] == run.batch_selector]
    twice = [c for c in Counter(t.input for t in mined).values() if c > 1]
    if twice:
        problems.append(f"{len(twice)} quote batches mined more than once")
    clients = Counter(int(e.args["clientId"]) for e in run.placed())
    if any(c > 1 for c in clients.values()):
        problems.append(f"client ids placed more than once: {clients.most_common(3)}")
    return problems


def _check_sizes(run: Run) -> tuple[list[str], int]:
    """Every order against the size bounds; each whole new ladder level by level.

    A whole ladder: nothing of ours kept, every place resting, quiet blocks before it (so the
    agent meant no kept order above what it placed). Its orders on a side, best first, are
    levels 0, 1, ... Returns the problems and how many whole ladders were checked.
    """
    p, lot, tick, levels = run.params, run.params.lot_size, run.params.tick_size, run.levels
    growth, skew_cap = p.level_size_growth, p.size_skew_max_growth
    problems = []
    max_order = p.base_size_base * growth ** (levels - 1) * skew_cap / lot
    max_side = p.base_size_base * sum(growth**i for i in range(levels)) * skew_cap / lot
    placed = run.placed()
    too_big = [
        (e.block_number, e.args["lots"]) for e in placed if e.args["lots"] > max_order + 1e-6
    ]
    if too_big:
        problems.append(
            f"{len(too_big)} orders placed above {max_order:.0f} lots (base × growth^"
            f"{levels - 1} × {skew_cap}): (block, lots) {too_big[:5]}"
        )
    too_small = [
        (e.block_number, e.args["lots"])
        for e in placed
        if e.args["lots"] < 1 or e.args["lots"] * lot * e.args["tick"] * tick < p.min_notional
    ]
    if too_small:
        problems.append(f"orders below one lot or the minimum notional: {too_small[:5]}")
    heavy = [
        (n, s.name, total)
        for n, b in sorted(run.blocks.items())
        for s in Side
        if (total := sum(o.lots for o in b.side(s))) > max_side + 1e-6
    ]
    if heavy:
        problems.append(f"a side resting more than {max_side:.0f} lots: {heavy[:5]}")
    whole = [bt for bt in run.batches if not bt.kept and bt.complete and run.quiet(bt.block)]
    over_level = [
        (bt.block, s.name, i, o.lots)
        for bt in whole
        for s in Side
        for i, o in enumerate(_ranked(bt.placed, s))
        if o.lots > p.base_size_base * growth**i * skew_cap / lot + 1e-6
    ]
    if over_level:
        problems.append(
            f"{len(over_level)} orders of {len(whole)} whole ladders above base × growth^level × "
            f"{skew_cap}: (block, side, level, lots) {over_level[:5]}"
        )
    return problems, len(whole)


def _check_skew_direction(run: Run) -> tuple[list[str], int]:
    """Each batch that put a new top on both sides (a whole ladder, or a touch of both tops: on
    each side its best place beats every order it kept), in quiet blocks with a position on
    chain: its top on the reducing side at least its top on the adding side. Returns the
    problems and how many batches were checked."""
    checked, wrong = 0, []
    for bt in run.batches:
        if not (bt.complete and run.quiet(bt.block)):
            continue
        q = run.blocks[bt.block - 1].position_lots  # no fill since: what the agent decided at
        bid, ask = _best(bt.placed, Side.BID), _best(bt.placed, Side.ASK)
        if q == 0 or bid is None or ask is None:
            continue
        if _best(bt.ladder, Side.BID) != bid or _best(bt.ladder, Side.ASK) != ask:
            continue
        reducing, adding = (ask, bid) if q > 0 else (bid, ask)
        checked += 1
        if reducing.lots < adding.lots:
            wrong.append((bt.block, q, bid.lots, ask.lots))
    if wrong:
        return [
            f"{len(wrong)} of {checked} new tops larger on the side that adds to the position: "
            f"(block, position lots, top bid lots, top ask lots) {wrong[:5]}"
        ], checked
    return [], checked


@dataclass(frozen=True)
class DriftCheck:
    sends: int
    mined: int
    checked: int
    max_off_bps: float


def _check_drift_refreshes(
    run: Run, journal: Path, start_s: float, fair_path: list[float], block_time_s: float
) -> tuple[list[str], DriftCheck]:
    """Each mined drift refresh against the fair value its decision saw (and the world's).

    The ladder it left (the orders before its block less its cancels, plus its places) must
    have its tops' centre within the bound of the target's centre, which is the reservation
    price to half a tick: so within ``max_centre_drift_bps`` + |reservation − fair value| +
    a tick of the decision's fair value. Its tops must also bracket the world's fair value at
    the decision's time (where takers and the arbitrageur trade). Only quiet batches are
    judged, each with every place resting: an order filled after the agent's snapshot, or a
    place skipped as crossing, moves the centre of what is left.
    """
    p, tick = run.params, run.params.tick_size
    sends, hashes = _decisions(journal)
    drift = [s for s in sends if str(s["why"]).startswith("centre_drift")]
    by_hash = {bt.tx.tx_hash.lower(): bt for bt in run.batches}
    mined_hashes = {t.tx_hash.lower() for b in run.blocks.values() for t in b.txs}
    problems, off, outside, errs = [], [], [], []
    mined = 0
    for s in drift:
        landed = [h for h in hashes.get(str(s.get("intent")), []) if h in mined_hashes]
        if not landed:
            continue  # replaced at its nonce by a newer batch
        mined += 1
        bt = by_hash.get(landed[0])
        if bt is None or not bt.complete or not run.quiet(bt.block):
            continue
        bid, ask = _best(bt.ladder, Side.BID), _best(bt.ladder, Side.ASK)
        if bid is None or ask is None:
            continue
        fair = float(s["fair_value"])
        centre = 0.5 * (bid.tick + ask.tick) * tick
        err = abs(centre - fair) / fair * 1e4
        bound = p.max_centre_drift_bps + abs(float(s["reservation"]) - fair) / fair * 1e4
        bound += tick / fair * 1e4
        errs.append(err)
        if err > bound:
            off.append((bt.block, round(err, 3), round(bound, 3)))
        step = round((float(s["ts_ms"]) / 1000 - start_s) / block_time_s) - 1
        world = fair_path[min(max(step, 0), len(fair_path) - 1)]
        if not bid.tick * tick < world < ask.tick * tick:
            outside.append((bt.block, bid.tick * tick, round(world, 2), ask.tick * tick))
    if off:
        problems.append(
            f"{len(off)} of {len(errs)} drift refreshes left the centre too far from the "
            f"decision's fair value: (block, bps, bound bps) {off[:5]}"
        )
    if outside:
        problems.append(
            f"{len(outside)} of {len(errs)} drift refreshes left tops that miss the world's fair "
            f"value: (block, bid, fair, ask) {outside[:5]}"
        )
    return problems, DriftCheck(len(drift), mined, len(errs), max(errs, default=math.nan))


def test_size_skew_and_drift_bound_under_live_timing(
    upstream: Upstream, tmp_path: Path, config: Path
) -> None:
    scenario = load_scenario(_SCENARIO)
    holder: dict[str, Any] = {}

    async def on_start(handle: LiveHandle) -> None:
        holder.update(handle=handle, rec=ChainRecorder(handle))
        await holder["rec"].run()

    res = asyncio.run(
        run_live(
            scenario,
            upstream,
            tmp_path / "run",
            StressOptions(seed=_SEED, config_path=config),
            LiveOptions(speed=_SPEED, rpc_delay_ms=_RPC_DELAY_MS),
            on_start=on_start,
        )
    )
    handle: LiveHandle = holder["handle"]
    rec: ChainRecorder = holder["rec"]
    agent = handle.agent
    timeline = expand(scenario, _SEED)
    assert len(rec.blocks) >= 0.9 * len(timeline), (
        f"recorder: {len(rec.blocks)} blocks, {rec.errors[:3]}"
    )
    proxy = res.report["live"]["proxy"]
    assert proxy is not None and proxy["requests"] > 0, "no RPC answer went through the proxy"
    run = Run(
        blocks=rec.blocks,
        params=agent.base_params,
        levels=handle.levels,
        hard_cap_base=agent.base_params.inventory_cap_base
        * agent.risk.limits.inventory_cap_ratio.breach,
        batch_selector=handle.world.market.encode_call("batch", [], [])[:4],
    )

    # Every check runs and every problem is reported at once.
    problems = [f"invariant {i.name}: {i.detail}" for i in res.invariants if not i.passed]
    live = res.report["live"]
    if live["samples_over_levels"]:
        problems.append(f"over {run.levels} a side (the harness's samples): {live['over_levels']}")
    problems += _check_levels_and_resends(run)
    size_problems, whole = _check_sizes(run)
    skew_problems, skewed = _check_skew_direction(run)
    drift_problems, drift = _check_drift_refreshes(
        run,
        agent.journal.path,
        handle.clock.start_s,
        [s.target_dex_mid_usd for s in timeline],
        scenario.block_time_s,
    )
    problems += size_problems + skew_problems + drift_problems
    lot = run.params.lot_size
    peak = max(abs(b.position_lots) for b in run.blocks.values()) * lot
    if peak > run.hard_cap_base:
        problems.append(f"|position| {peak:g} over the hard cap {run.hard_cap_base:g}")
    summary = (
        f"{len(run.blocks)} blocks, {len(run.batches)} quote batches ({whole} whole ladders, "
        f"{skewed} new tops with a position), max |position| {peak:.3f}; drift refreshes: "
        f"{drift.sends} sent, {drift.mined} mined, {drift.checked} judged, centre at most "
        f"{drift.max_off_bps:.2f} bps off the decision's fair value"
    )
    print(summary)
    assert not problems, summary + "\n" + "\n".join(problems)
    # The run shows something only if the world did what it is for.
    assert drift.mined >= 5 and drift.checked >= 3, f"too few drift refreshes: {summary}"
    # (8-15 new tops with a position in a run here; a flipped skew failed every one of them.)
    assert skewed >= 2 and whole >= 3, f"too few ladders to judge the sizes by: {summary}"
    assert peak >= 2 * run.params.base_size_base, f"the inventory never built: {summary}"
