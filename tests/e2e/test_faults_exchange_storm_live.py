"""The exchange blocks us mid-run: the side rule and its room cap, live, end to end.

The agent's real run loop against anvil mining on its own (scaled) clock and the real exchange
simulator behind a fault proxy (:class:`sims.faults.CexFaultProxy`), with takers filling our
quotes. Between 30 and 45 simulated s (once the unhedged residual is what the run wants: some,
or flat) the proxy starts refusing every request 429 (``Retry-After``); at 70 s it drops every
connection without an answer instead; at 90 s it lets everything through again. No hedge can be
placed meanwhile, so every DEX fill is exposure held through whatever the market does. 5 s into
the block one taker order sweeps the side we rest (and the makers' better levels): the fill the
room cap is for.

From the chain (our resting orders, our position) and the exchange's own record, never the
agent's view of them:

* while blocked, the unhedged exposure ``|DEX position + hedge position|`` never exceeds what it
  was when the block began plus one top-quote size (a fill already in flight);
* once the agent knows (its next cycle, a block for the cancel), it rests only orders on the
  side that reduces the exposure, no more than the exposure (room), and nothing while flat;
* no hedge order is sent twice (every client order id accepted once), none while blocked;
* after the block lifts the residual is hedged: the exposure is back inside the hedge band
  within 25 s and at the end, what was hedged is no more than the residual plus the DEX fills
  since, and the hedge never over-shoots the DEX position.

About 25 s of wall time per case (speed 10).
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ChainError
from agent.runtime import Agent
from agent.types import Side
from agent.venue.dex import decode_open_orders
from sims.faults import ProxyFault
from sims.live import LiveHandle, LiveOptions, run_live
from sims.scenario import Scenario, Step, TakerOrder, load_scenario
from sims.stress import StressOptions, Upstream
from sims.world import ChainWorld

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SPEED = 10.0
RUN_S = 120.0
BLOCK_AT_S = 30.0
BLOCK_BY_S = 45.0
"""The block starts at the first moment after BLOCK_AT_S the unhedged residual is at least
_MIN_RESIDUAL, and by BLOCK_BY_S whatever it is."""
DROP_AT_S = 70.0
LIFT_AT_S = 90.0
GRACE_S = 5.0
"""Simulated seconds from the block to the agent's one-sided book on chain: its next cycle sees
the refused reads, its cancel is sent and mined (1 s blocks) through the live loop's lag."""
SETTLE_S = 25.0
"""Simulated seconds after the lift by which the residual must be hedged."""
_SYMBOL = "BTCUSDT"
_VIEW_ERRORS: list[tuple[int, str]] = []
_HEDGE_LAG_S = 5.0
_MIN_RESIDUAL = 0.005
_SWEEP_BASE = 1.0
"""The sweeping taker's size: more than the makers' levels before ours and all of ours."""


def _flow(start: str) -> Scenario:
    """calm with steady two-way flow. ``residual``: takers mostly inside the hedge band (0.04),
    residuals the hedger keeps, so the block begins with unhedged exposure and a side that
    reduces it; ``flat``: takers above the band, each fill hedged in full, to flat."""
    sc = load_scenario("calm")
    median = 0.02 if start == "residual" else 0.05
    takers = sc.takers._replace(rate_per_min=30.0, size_median_base=median, size_sigma=0.2)
    return sc._replace(takers=takers)


def _chain_book(world: ChainWorld) -> tuple[float, float, float, dict[Side, int]]:
    """(resting bid base, resting ask base, largest single order base, deepest tick per side)
    of the agent, read from the chain."""
    raw = world._call(world.dep.market, world.market.encode_call("openOrders", world.agent_address))
    lot = world.spec.lot_size_base
    bids = asks = largest = 0.0
    deepest: dict[Side, int] = {}
    for _, _, side, tick, lots, _ in decode_open_orders(raw):
        size = lots * lot
        largest = max(largest, size)
        if int(side) == int(Side.BID):
            bids += size
            deepest[Side.BID] = min(deepest.get(Side.BID, tick), tick)
        else:
            asks += size
            deepest[Side.ASK] = max(deepest.get(Side.ASK, tick), tick)
    return bids, asks, largest, deepest


@pytest.mark.parametrize("start", ["residual", "flat"])
def test_side_rule_and_room_hold_while_the_exchange_blocks_us_live(
    start: str, upstream: Upstream, tmp_path: Path
) -> None:
    """``residual``: the block begins with an unhedged residual (the reducing side rests, within
    its room, and is swept); ``flat``: with the hedge flat (neither side may rest)."""
    samples: list[dict[str, Any]] = []
    box: dict[str, Any] = {}
    _VIEW_ERRORS.clear()

    async def on_start(handle: LiveHandle) -> None:
        """Block the exchange (429, then dropped connections), sweep us, lift at LIFT_AT_S."""
        try:
            await _storm(handle)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the run cancels this task silently: keep the reason
            box["storm_error"] = "".join(traceback.format_exception(exc))
            raise

    async def _storm(handle: LiveHandle) -> None:
        box["handle"] = handle
        proxy = handle.cex_proxy
        assert proxy is not None
        t0 = box["t0"] = handle.clock()
        await _until(handle, t0 + BLOCK_AT_S)

        # Block with a residual the hedger keeps (inside its band), or hedged flat.
        async def ready() -> bool:
            e = abs(await _exposure(handle))
            return e >= _MIN_RESIDUAL if start == "residual" else e < 1e-9

        while not await ready() and handle.clock() < t0 + BLOCK_BY_S:
            await _until(handle, handle.clock() + 0.5)
        box["exposure0"] = await _exposure(handle)
        box["block_s"] = handle.clock()
        proxy.inject(
            ProxyFault("rate_limit_429", method="*", path="*", count=10**9, retry_after_s=1 / SPEED)
        )
        await _until(handle, box["block_s"] + GRACE_S)
        await _sweep(handle, box)
        await _until(handle, t0 + DROP_AT_S)
        proxy.clear()
        proxy.inject(ProxyFault("drop", method="*", path="*", count=10**9))
        await _until(handle, t0 + LIFT_AT_S)
        proxy.clear()
        box["lift_s"] = handle.clock()
        box["exposure_lift"] = await _exposure(handle)
        await asyncio.Event().wait()

    async def on_step(agent: Agent, world: ChainWorld, step: Step) -> None:
        handle = box.get("handle")
        if handle is None:
            return
        bids, asks, largest, _ = _chain_book(world)
        pos = _positions(handle)
        if pos is None:
            return
        dex, cex = pos
        samples.append(
            {
                "t": handle.clock() - box["t0"],
                "dex": dex,
                "cex": cex,
                "bids": bids,
                "asks": asks,
                "largest": largest,
                "band": agent.hedger.hedger.band_base() if agent.hedger else 0.0,
            }
        )
        if step.t_s >= RUN_S - 4.0 and "state" not in box:
            assert handle.cex is not None
            box["state"] = handle.cex.exchange.state()

    async def run() -> None:
        res = await run_live(
            _flow(start),
            upstream,
            tmp_path / "run",
            StressOptions(seed=3, short_s=RUN_S, chain_profile="l2"),
            LiveOptions(speed=SPEED, cex_proxy=True),
            on_start=on_start,
            on_step=on_step,
        )
        failed = [f"{i.name}: {i.detail}" for i in res.invariants if not i.passed]
        assert not failed, failed

    asyncio.run(run())
    print(f"accountState reverted in {len(_VIEW_ERRORS)} reads: {_VIEW_ERRORS[:3]}")
    assert "storm_error" not in box, box["storm_error"]
    assert "exposure_lift" in box, "the run ended before the block lifted"

    def exposure(s: dict[str, Any]) -> float:
        return float(s["dex"] + s["cex"])

    block_at = box["block_s"] - box["t0"]
    before = [s for s in samples if s["t"] < block_at]
    blocked = [s for s in samples if block_at <= s["t"] < LIFT_AT_S]
    lifted = [s for s in samples if s["t"] >= LIFT_AT_S]
    top = max(s["largest"] for s in before)
    lot = min(s["largest"] for s in before if s["largest"] > 0)
    assert top > 0, "the agent never quoted before the block"
    e0, e_lift = box["exposure0"], box["exposure_lift"]
    dex_blocked = sorted({round(s["dex"], 9) for s in blocked})
    print(
        f"top quote {top}; exposure at the block {e0:+.4f}, at the lift {e_lift:+.4f}, worst "
        f"while blocked {max(abs(exposure(s)) for s in blocked):.4f}; DEX positions while "
        f"blocked {dex_blocked}; sweep (taker, our bids, our asks, exposure) {box['sweep']}"
    )

    # 1. The exposure while blocked: what it was at the block, plus one quote in flight.
    bound = abs(e0) + top + 1e-9
    worst = max(blocked, key=lambda s: abs(exposure(s)))
    assert abs(exposure(worst)) <= bound, (worst, bound)

    # 2. Once the agent knows, only the reducing side rests, within the room. A fill changes
    # the exposure; its cancel needs the agent's next cycle and a block, so a sample is judged
    # once the exposure has stood for two samples.
    judged = exercised = 0
    for prev2, prev, s in zip(blocked, blocked[1:], blocked[2:], strict=False):
        if s["t"] < block_at + GRACE_S or not prev2["dex"] == prev["dex"] == s["dex"]:
            continue
        judged += 1
        e = exposure(s)
        # Something to judge: an order resting (its side and room), or the flat case.
        exercised += bool(s["bids"] or s["asks"] or abs(e) <= 1e-9)
        if e > 1e-9:
            assert s["bids"] == 0.0, f"bids resting while long and blocked: {s}"
            assert s["asks"] <= e + lot / 2, f"asks beyond the room: {s}"
        elif e < -1e-9:
            assert s["asks"] == 0.0, f"asks resting while short and blocked: {s}"
            assert s["bids"] <= -e + lot / 2, f"bids beyond the room: {s}"
        else:
            assert s["bids"] == s["asks"] == 0.0, f"resting while hedged flat and blocked: {s}"
    assert judged >= 10
    assert exercised or len(dex_blocked) > 1, "nothing rested, nothing filled: nothing checked"

    # 3. Never twice: each client order id accepted once, none while blocked.
    state = box["state"]
    orders = state["orders"]
    assert not state["client_ids_accepted_more_than_once"]
    assert len({o["clientOrderId"] for o in orders}) == len(orders)
    block_ms, lift_ms = box["block_s"] * 1000, box["lift_s"] * 1000
    # (an order already on the wire when the block began may land in its first instant)
    during = [o for o in orders if block_ms + 300 < int(o["time"]) < lift_ms]
    assert not during, during

    # 4. After the lift the residual is hedged, once: the exposure comes back inside the band
    # within SETTLE_S, and by the exchange's own record the hedges of those SETTLE_S (net)
    # leave the residual plus the DEX moves meanwhile inside the band (the residual hedged
    # twice would leave it reversed).
    back = next((s for s in lifted if abs(exposure(s)) <= s["band"] + 1e-9), None)
    assert back is not None and back["t"] <= LIFT_AT_S + SETTLE_S, (e_lift, lifted[:5])
    settled = [s for s in lifted if s["t"] <= LIFT_AT_S + SETTLE_S]
    settle_ms = (box["t0"] + settled[-1]["t"]) * 1000
    net = sum(
        float(o["executedQty"]) * (1 if o["side"] == "BUY" else -1)
        for o in orders
        if lift_ms <= int(o["time"]) <= settle_ms
    )
    # From the last sample before the lift: a reading at the lift itself can land after the
    # first hedge when the chain read has to wait out an accountState revert.
    dex_move = settled[-1]["dex"] - blocked[-1]["dex"]
    left = exposure(blocked[-1]) + dex_move + net
    band = max(s["band"] for s in settled)
    assert abs(left) <= band + 1e-9, (exposure(blocked[-1]), dex_move, net, band)
    end = samples[-1]
    assert abs(exposure(end)) <= end["band"] + 1e-9, end
    # ... and never over the DEX position while it can be hedged (not while blocked, when the
    # DEX may move toward the hedge): the hedge is opposite a DEX position of the last few
    # seconds (the hedger follows fills a block or two late) and no larger than it.
    for s in before + [s for s in lifted if s["t"] >= LIFT_AT_S + _HEDGE_LAG_S]:
        if abs(s["cex"]) > 1e-9:
            recent = [r["dex"] for r in samples if s["t"] - _HEDGE_LAG_S <= r["t"] <= s["t"]]
            assert any(d * s["cex"] < 0 and abs(s["cex"]) <= abs(d) + 1e-9 for d in recent), s


async def _sweep(handle: LiveHandle, box: dict[str, Any]) -> None:
    """A taker takes the whole of the larger side we rest (and anything better), in one order:
    the fill the room cap is for. Nothing resting: nothing to take."""
    world = handle.world
    async with handle._world_lock:
        bids, asks, _, deepest = await asyncio.to_thread(_chain_book, world)
        if bids == asks == 0.0:
            box["sweep"] = None
            return
        ours = Side.BID if bids >= asks else Side.ASK
        taker = Side.ASK if ours is Side.BID else Side.BID  # a sell takes our bids
        # Limited at our deepest level: it takes the makers' better levels and all of ours.
        limit_usd = deepest[ours] * world.spec.tick_size_usd
        order = TakerOrder(0, 0.0, taker, _SWEEP_BASE, 0.0, informed=False, liquidation=False)
        box["sweep"] = (taker.name, bids, asks, await _exposure(handle))
        await asyncio.to_thread(world.send_takers, [order], limit_usd)


async def _until(handle: LiveHandle, t: float) -> None:
    """Sleep until the shared (scaled) clock reads `t` simulated seconds."""
    await asyncio.sleep(max(0.0, t - handle.clock()) / SPEED)


def _positions(handle: LiveHandle) -> tuple[float, float] | None:
    """(DEX position, exchange position) of the agent in base units, from chain and exchange."""
    world = handle.world
    try:
        lots = world.account(world.agent_address)[1]
    except ChainError as exc:
        # The market's accountState view reverts (panic 0x11) in some blocks of these runs and
        # answers again a block later; not this test's subject: the sample is skipped.
        _VIEW_ERRORS.append((world.node.block_number(), str(exc)[:80]))
        return None
    assert handle.cex is not None
    cex = float(handle.cex.exchange.position_qty(_SYMBOL))
    return lots * world.spec.lot_size_base, cex


async def _exposure(handle: LiveHandle) -> float:
    """DEX position + hedge position now (the next readable block's)."""
    while (pos := _positions(handle)) is None:
        await _until(handle, handle.clock() + 1.0)
    return pos[0] + pos[1]
