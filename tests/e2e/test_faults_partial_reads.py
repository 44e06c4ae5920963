"""Fault harness: one view of the snapshot fails for a stretch while every other read works.

The agent's own run loop (``sims.live``: anvil mining on its own 15× clock, the real contracts,
the real exchange simulator) reads the node through :class:`sims.faults.RpcProxy`, which fails
*selected* ``eth_call`` reads by selector — in the batch and in the agent's re-read at the head's
block — with a JSON-RPC error or a garbage answer, one view after the other, each for a stretch of
simulated seconds with a recovery stretch after it.

The policy each stretch is held to (``agent/venue/dex.py``, ``DexVenue.snapshot``):

==================================  ============================================================
``markPrice`` error                 optional: the mark reads as missing; quoting goes on (fair
                                    value prices it; the risk equity keeps both legs)
``accountState`` error              required: the cycle fails, nothing new is sent, and after a
                                    few failed cycles the fail-safe cancel-all pulls the quotes
``openOrders`` garbage              required, as ``accountState``: without its orders the agent
                                    cannot diff, so it must neither place nor stay exposed
``latestRoundData`` garbage         optional: the oracle's age reads as unknown; the index is
                                    still read, so it must not halt
==================================  ============================================================

For every stretch: the loop never dies and never fails unexpectedly (a decoding crash), the
risk engine never goes HALTED, no side ever rests more than ``levels`` orders of ours, and both
sides quote again within the recovery stretch. Where a required view fails, no order of ours
appears on chain that was not resting when the stretch began (nothing is added while the agent
cannot see its position or its orders), and the quotes are gone before the stretch ends.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.risk.engine import RiskState
from agent.types import Side
from sims.faults.rpcproxy import CallFault
from sims.live import LiveHandle, LiveOptions, run_live
from sims.scenario import load_scenario
from sims.stress import StressOptions, Upstream

pytestmark = [pytest.mark.chain, pytest.mark.slow]

_LATEST_ROUND = "0xfeaf968c"  # latestRoundData() on the oracle
_WARMUP_S = 40.0
_RECOVER_S = 25.0


@dataclass(frozen=True)
class Stretch:
    view: str
    fault: CallFault
    required: bool
    """A view the snapshot cannot do without: its failure fails the cycle."""
    length_s: float = 25.0


STRETCHES = (
    Stretch("markPrice", "error", required=False),
    Stretch("accountState", "error", required=True),
    Stretch("openOrders", "garbage", required=True),
    # A transient loss (shorter than the oracle-age band): the last round read stands in.
    Stretch("latestRoundData", "garbage", required=False, length_s=8.0),
)


def _phases() -> list[tuple[float, float, int | None]]:
    """(start, end, stretch) in simulated seconds from the clock's start."""
    out: list[tuple[float, float, int | None]] = [(0.0, _WARMUP_S, None)]
    for i, st in enumerate(STRETCHES):
        t = out[-1][1]
        out += [(t, t + st.length_s, i), (t + st.length_s, t + st.length_s + _RECOVER_S, None)]
    return out


@dataclass
class Sample:
    t_s: float
    stretch: int | None
    """Index into STRETCHES while its fault is on; None in warm-up and recovery."""
    since_s: float
    """Simulated seconds since the current phase began."""
    state: RiskState
    orders: dict[int, Side]
    """Our resting orders on chain (read straight from the node): id -> side."""

    def sides(self) -> tuple[int, int]:
        bids = sum(1 for s in self.orders.values() if s is Side.BID)
        return bids, len(self.orders) - bids


@dataclass
class Record:
    samples: list[Sample] = field(default_factory=list)
    at_start: dict[int, dict[int, Side]] = field(default_factory=dict)
    """Per stretch, our resting orders when its fault went on."""
    calls_failed: int = 0


class _Unexpected(logging.Handler):
    """The runtime's unexpected cycle failures (a decoder crash, a KeyError): must be none."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "unexpectedly" in record.getMessage():
            self.lines.append(f"{record.getMessage()}: {record.exc_text or record.exc_info}")


def _orders(handle: LiveHandle) -> dict[int, Side]:
    w = handle.world
    raw = w._call(w.dep.market, w.market.encode_call("openOrders", w.agent_address))
    return {int(o[0]): Side(int(o[2])) for o in w.market.decode_output("openOrders", raw)[0]}


async def _drive(handle: LiveHandle, rec: Record) -> None:
    """Switch the faults on and off on the shared clock; sample what the chain holds."""
    proxy = handle.proxy
    assert proxy is not None
    codec, me = handle.world.market, handle.world.agent_address
    calls = {v: codec.encode_call(v) for v in ("markPrice",)}
    calls |= {v: codec.encode_call(v, me) for v in ("accountState", "openOrders")}
    selectors = {v: "0x" + c[:4].hex() for v, c in calls.items()} | {
        "latestRoundData": _LATEST_ROUND
    }
    t0 = handle.clock()
    for start, end, stretch in _phases():
        # Phases start on the simulated clock, whatever the sampling loop's lag.
        await asyncio.sleep(max(0.0, start - (handle.clock() - t0)) / handle.clock.speed)
        begin = handle.clock()
        length = end - start
        if stretch is not None:
            s = STRETCHES[stretch]
            rec.at_start[stretch] = await asyncio.to_thread(_orders, handle)
            proxy.fail_calls({selectors[s.view]: s.fault})
        else:
            proxy.fail_calls({})
        while handle.clock() - begin < length:
            orders = await asyncio.to_thread(_orders, handle)
            now = handle.clock()
            rec.samples.append(
                Sample(now - t0, stretch, now - begin, handle.agent.risk.state, orders)
            )
            await asyncio.sleep(0.02)
    proxy.fail_calls({})
    rec.calls_failed = proxy.stats.calls_failed


def test_each_snapshot_view_failing_for_a_stretch(upstream: Upstream, tmp_path: Path) -> None:
    rec = Record()
    total_s = _phases()[-1][1] + 10.0
    unexpected = _Unexpected()
    runtime_log = logging.getLogger("agent.runtime")
    runtime_log.addHandler(unexpected)

    async def on_start(handle: LiveHandle) -> None:
        await _drive(handle, rec)

    try:
        res = asyncio.run(
            run_live(
                load_scenario("calm"),
                upstream,
                tmp_path / "run",
                StressOptions(seed=3, short_s=total_s),
                LiveOptions(speed=15.0, rpc_delay_ms=(0.0, 0.0)),
                on_start=on_start,
            )
        )
    finally:
        runtime_log.removeHandler(unexpected)

    # Every check runs and every problem is reported at once: which stretch broke what.
    problems = [f"invariant {i.name}: {i.detail}" for i in res.invariants if not i.passed]
    problems += [f"unexpected cycle failure: {line}" for line in unexpected.lines[:3]]
    live = res.report["live"]
    levels = live["levels"]
    if live["samples_over_levels"]:
        problems.append(f"more than {levels} a side (the harness's samples): {live['over_levels']}")
    assert rec.calls_failed > 0, "the proxy failed no call: the selectors are wrong"
    samples = rec.samples
    assert samples and samples[-1].t_s >= total_s - 15.0, "the driver did not run to the end"
    halted = [s for s in samples if s.state is RiskState.HALTED]
    if halted:
        problems.append(f"HALTED at {halted[0].t_s:.1f} s (stretch {halted[0].stretch})")
    over = [(round(s.t_s, 1), s.sides()) for s in samples if max(s.sides()) > levels]
    if over:
        problems.append(f"more than {levels} a side: {over[:5]}")
    warm = [s for s in samples if s.stretch is None and s.t_s < _WARMUP_S]
    if not any(min(s.sides()) >= 1 for s in warm):
        problems.append("never quoting both sides before the faults")

    for i, st in enumerate(STRETCHES):
        what = f"{st.view} {st.fault}"
        during = [s for s in samples if s.stretch == i]
        assert during, f"{what}: no samples"
        if st.required:
            # Nothing added while the agent cannot see its position or its orders: every
            # order of ours on chain rested before the fault (or is gone).
            known = rec.at_start[i]
            new = {oid for s in during for oid in s.orders if oid not in known}
            if new:
                problems.append(f"{what}: {len(new)} new orders placed while blind")
            tail = [s for s in during if s.since_s >= st.length_s - 10.0]
            resting = [(round(s.t_s, 1), s.sides()) for s in tail if s.orders]
            if resting:
                problems.append(f"{what}: quotes not pulled: {resting[:5]}")
        else:
            # An optional view's loss is not a reason to stop quoting: both sides still rest
            # at the end of the stretch.
            tail = [s for s in during if s.since_s >= st.length_s - 3.0]
            if not (tail and all(min(s.sides()) >= 1 for s in tail)):
                problems.append(f"{what}: stopped quoting")
        # Recovery: both sides quoted again within the stretch after the fault.
        _, end, _ = next(p for p in _phases() if p[2] == i)
        after = [s for s in samples if s.stretch is None and end <= s.t_s < end + _RECOVER_S]
        if not any(min(s.sides()) >= 1 for s in after):
            problems.append(f"{what}: no quotes on both sides within {_RECOVER_S:.0f} s after")
    assert not problems, "\n".join(problems)
