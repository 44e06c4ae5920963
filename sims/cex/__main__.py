"""``python -m sims.cex``: run the exchange simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from decimal import Decimal

from sims.cex.clock import ManualClock, SimClock, WallClock
from sims.cex.exchange import SimConfig, SymbolSpec
from sims.cex.server import Faults, SimServer

__all__ = ["cli_main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sims.cex",
        description="Binance USDⓈ-M-compatible exchange simulator on 127.0.0.1 "
        "(admin: POST /_sim/price, /_sim/faults, /_sim/funding, /_sim/clock; GET /_sim/state).",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    p.add_argument("--symbol", default="ETHUSDT")
    p.add_argument("--mid", type=Decimal, default=Decimal("2000"), help="initial mid price")
    p.add_argument("--latency-ms", type=float, default=250.0)
    p.add_argument("--jitter-ms", type=float, default=50.0)
    p.add_argument("--partial-fill-prob", type=float, default=0.0)
    p.add_argument("--api-key", default="sim-api-key")
    p.add_argument("--api-secret", default="sim-api-secret")
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
