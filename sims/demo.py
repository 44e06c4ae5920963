"""``mm-agent demo``: the whole system on an embedded local chain, in about real time.

It builds a fork-state file, serves it from a local upstream anvil, and plays the ``demo``
scenario (shortened to ``--duration-s``) through the stress runner with simulated time paced to
the wall clock, showing the live dashboard fed from the agent's status. Ctrl-C stops the scenario;
the agent still shuts down cleanly (cancel all on the DEX and the CEX) and the report is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sims.dashboard import (
    DashboardEvent,
    DashboardSnapshot,
    DecisionView,
    LadderLevel,
    LiveDashboard,
)
from sims.forkstate import build_fork_state
from sims.scenario import Scenario, ScriptedEvent, Step, load_scenario
from sims.stress import StressOptions, StressResult, open_upstream, run_scenario
from sims.world import ChainWorld

__all__ = ["dashboard_snapshot", "run_demo"]

_DEFAULT_DURATION_S = 180.0


def scripted_now(events: Sequence[ScriptedEvent], t_s: float) -> tuple[str, ...]:
    """Labels of the scripted events in force at `t_s` (started, not yet over)."""
    return tuple(
        f"{e.label} (since t+{e.at_s:.0f}s)"
        for e in events
        if e.at_s < t_s <= max(e.end_s, e.at_s + 5)
    )


def starting(events: Sequence[ScriptedEvent], prev_t_s: float, t_s: float) -> list[ScriptedEvent]:
    """The scripted events that start in ``(prev_t_s, t_s]``."""
    return [e for e in events if prev_t_s < e.at_s <= t_s]


def dashboard_snapshot(
    agent: Any,
    world: ChainWorld,
    step: Step,
    scenario: Scenario | None = None,
    announced: Sequence[DashboardEvent] = (),
) -> DashboardSnapshot:
    """Build the dashboard's view of the agent after one step (plain numbers and strings).

    `scenario` names the scripted events in force; `announced` are the scenario's event starts
    already shown, merged into the recent-events list.
    """
    st = agent.status
    now = dt.datetime.fromtimestamp(agent.clock(), dt.UTC).strftime("%H:%M:%S")
    bids = sorted(
        (LadderLevel(px, sz) for side, px, sz in st.quotes if side == "BID"),
        key=lambda lv: -lv.price,
    )
    asks = sorted(
        (LadderLevel(px, sz) for side, px, sz in st.quotes if side == "ASK"),
        key=lambda lv: lv.price,
    )
    native = agent.params.native_price_quote
    decision = DecisionView(
        action="refresh",
        sent=st.last_decision.startswith("sent"),
        note=st.last_decision.removeprefix("sent: ").removeprefix("skipped "),
    )
    return DashboardSnapshot(
        market="BTC-PERP (demo)",
        clock=f"{now} sim, t+{step.t_s:.0f}s",
        block_number=st.block,
        index_price=st.index if st.index is not None else step.index_usd,
        dex_mid=st.mid,
        best_bid=st.best_bid,
        best_ask=st.best_ask,
        bids=tuple(bids),
        asks=tuple(asks),
        inventory_base=st.inventory_base,
        inventory_cap_base=st.inventory_cap_base,
        hedge_position_base=st.hedge_base,
        pnl_usd=tuple((k, v) for k, v in st.pnl.items() if k != "total"),
        base_fee_gwei=st.base_fee_gwei,
        max_fee_gwei=agent.max_fee_gwei,
        gas_spent_usd=st.gas_spent_native * native,
        inclusion_delay_s=st.inclusion_delay_s if st.quote_txs else None,
        pending_txs=agent.venue.io_health().pending,
        funding_last_rate=st.funding_rate_last,
        funding_predicted_rate=st.funding_rate_predicted,
        next_funding_in_s=st.funding_in_s,
        risk_state=st.state,
        risk_triggers=tuple(st.triggers),
        last_decision=decision,
        events=(
            *announced[-3:],
            *(DashboardEvent(clock="", text=e) for e in reversed(st.events)),
        ),
        scripted=() if scenario is None else scripted_now(scenario.events(), step.t_s),
    )


async def _demo(args: argparse.Namespace, stop: asyncio.Event) -> StressResult | None:
    scenario = load_scenario("demo")
    if args.duration_s < scenario.duration_s:
        # Shortened here, not by the runner, so the dashboard names the events of this run.
        scenario = scenario.short_run(args.duration_s)
    events = scenario.events()
    announced: list[DashboardEvent] = []
    last_t = [0.0]
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            print(
                "\nstopping: cancelling the agent's orders, then writing the report ...",
                file=sys.stderr,
                flush=True,
            )
        stop.set()

    # The node processes run in their own sessions (sims/anvil.py), so a Ctrl-C reaches only
    # this process: the agent shuts down against a live chain, then the nodes stop, in order.
    loop.add_signal_handler(signal.SIGINT, on_signal)
    loop.add_signal_handler(signal.SIGTERM, on_signal)
    board = LiveDashboard(interval_s=5.0)

    def show(agent: Any, world: ChainWorld, step: Step) -> None:
        for ev in starting(events, last_t[0], step.t_s):
            announced.append(
                DashboardEvent(
                    clock=f"t+{ev.at_s:.0f}s", text=f"scenario: {ev.label} starts", level="warn"
                )
            )
        last_t[0] = step.t_s
        board.update(dashboard_snapshot(agent, world, step, scenario, announced))

    opts = StressOptions(seed=args.seed, pace=1.0 / args.speed)
    out = Path(args.out or f"runs/demo-{args.seed}")
    try:
        with tempfile.TemporaryDirectory(prefix="mm-demo-") as tmp:
            print("building the local chain (deploy, fund, seed liquidity) ...", flush=True)
            meta = await asyncio.to_thread(build_fork_state, Path(tmp) / "state.json")
            if stop.is_set():
                return None
            print("starting the chain, the exchange simulator and the agent ...", flush=True)
            with open_upstream(state_file=meta.state_file) as up:
                return await run_scenario(scenario, up, out, opts, on_step=show, stop=stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def run_demo(argv: list[str]) -> int:
    """Parse `argv`, run the demo, print where the report is; exit 1 if an invariant failed."""
    ap = argparse.ArgumentParser(prog="mm-agent demo", description=__doc__)
    ap.add_argument(
        "--duration-s",
        type=float,
        default=_DEFAULT_DURATION_S,
        help=f"simulated seconds to run, 60..300 (default {_DEFAULT_DURATION_S:g})",
    )
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="report directory (default runs/demo-<seed>)")
    args = ap.parse_args(argv)
    if not args.duration_s >= 60.0 or args.speed <= 0:
        ap.error("--duration-s must be at least 60 and --speed positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("agent").setLevel(logging.ERROR)
    res: StressResult | None = None
    stop = asyncio.Event()  # set by SIGINT/SIGTERM
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handlers are in place
        res = asyncio.run(_demo(args, stop))
    if res is None:
        print("\ndemo interrupted during set-up: nothing ran, no report", file=sys.stderr)
        return 130
    verdict = "all invariants held" if res.passed else "INVARIANTS FAILED"
    ended = "stopped early (Ctrl-C)" if stop.is_set() else "finished"
    print(
        f"\ndemo {ended}: {res.steps} blocks, {verdict}.\n"
        f"report: {res.paths.html.resolve()}\n"
        f"        {res.paths.json.resolve()}"
    )
    return 0 if res.passed else 1
