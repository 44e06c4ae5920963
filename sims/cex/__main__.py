"""``python -m sims.cex``: run the exchange simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from decimal import Decimal

from agent.init import DEFAULT_MID, DEFAULT_SYMBOL
from sims.cex.clock import ManualClock, SimClock, WallClock
from sims.cex.exchange import SimConfig, SymbolSpec
from sims.cex.server import Faults, SimServer

__all__ = ["SIM_API_KEY", "SIM_API_SECRET", "cli_main"]

SIM_API_KEY: str = SimConfig().api_key
"""The simulator's published test credentials (not secrets): printed at start, in the README."""
SIM_API_SECRET: str = SimConfig().api_secret


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sims.cex",
        description="Binance USDⓈ-M-compatible exchange simulator on 127.0.0.1 "
        "(admin: POST /_sim/price, /_sim/faults, /_sim/funding, /_sim/clock; GET /_sim/state).",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    p.add_argument("--symbol", default=DEFAULT_SYMBOL, help=f"default {DEFAULT_SYMBOL}")
    p.add_argument(
        "--mid",
        type=Decimal,
        default=Decimal(str(DEFAULT_MID)),
        help=f"initial mid price (default {DEFAULT_MID:g}, the price `mm-agent deploy` starts at)",
    )
    p.add_argument("--latency-ms", type=float, default=250.0)
    p.add_argument("--jitter-ms", type=float, default=50.0)
    p.add_argument("--partial-fill-prob", type=float, default=0.0)
    p.add_argument(
        "--api-key", default=SIM_API_KEY, help=f"accepted API key (default {SIM_API_KEY})"
    )
    p.add_argument(
        "--api-secret", default=SIM_API_SECRET, help=f"its secret (default {SIM_API_SECRET})"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--manual-clock",
        action="store_true",
        help="exchange time moves only via POST /_sim/clock {advance_ms}",
    )
    return p


async def _serve(args: argparse.Namespace) -> None:
    clock: SimClock = ManualClock() if args.manual_clock else WallClock()
    config = SimConfig(
        symbols=(SymbolSpec(symbol=args.symbol, initial_mid=args.mid),),
        api_key=args.api_key,
        api_secret=args.api_secret,
        seed=args.seed,
    )
    faults = Faults(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        partial_fill_prob=args.partial_fill_prob,
    )
    sim = SimServer(config, clock=clock, faults=faults, port=args.port)
    url = await sim.start()
    # One parseable line on stdout so a parent process can find the port.
    print(f"cex-sim listening on {url} symbol={args.symbol} mid={args.mid}", flush=True)
    # A simulator's credentials are not secrets: print them where the user needs them.
    print(
        f"credentials: export MM_CEX_API_KEY={args.api_key} MM_CEX_API_SECRET={args.api_secret}",
        flush=True,
    )
    try:
        await sim.serve_forever()
    finally:
        await sim.stop()


def cli_main(argv: list[str]) -> int:
    """Run the simulator (the body of ``python -m sims.cex`` / ``mm-agent cex-sim``)."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))
