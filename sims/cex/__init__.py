"""A Binance USDⓈ-M-compatible exchange simulator: a real HTTP server on 127.0.0.1.

In-process::

    async with SimServer(faults=Faults(latency_ms=30)) as sim:
        sim.exchange.set_mid("ETHUSDT", 2500)      # or set_price_path(...)
        sim.set_faults(partial_fill_prob=0.3)
        ... point the hedge client at sim.url ...
        sim.state()                                # orders, fills, positions, invariants

From outside: ``python -m sims.cex --port 8765`` and the ``/_sim/*`` admin endpoints.
"""

from sims.cex.clock import ManualClock, SimClock, WallClock
from sims.cex.exchange import BookShape, Exchange, SimConfig, SimError, SymbolSpec
from sims.cex.server import Faults, SimServer

__all__ = [
    "BookShape",
    "Exchange",
    "Faults",
    "ManualClock",
    "SimClock",
    "SimConfig",
    "SimError",
    "SimServer",
    "SymbolSpec",
    "WallClock",
]
