"""``mm-agent flatten --yes``: unwind both legs together, reduce-only, from confirmed positions.

The one command that changes positions on purpose (``cancel-all`` never does). It runs only
when no agent holds the lock (the caller holds it throughout), and goes in slices:

1. cancel every order on both venues (nothing resting may add exposure back);
2. read the DEX position from the chain; send a reduce-only IOC slice (at most ``slice_base``,
   priced no worse than ``max_slippage_bps`` from the best opposite price);
3. read the DEX position again and bring the exchange position to ``−position × hedge_ratio``
   with a reduce-only IOC order, so the pair stays hedged between slices;
4. repeat until both are flat, or stop when a slice fills nothing (no liquidity within the
   slippage cap) or an exchange answer is ambiguous (never resent: look it up first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from agent.app import build_agent, build_hedge_leg
from agent.chain.signer import Signer
from agent.config import AgentConfig
from agent.errors import AgentError, ExchangeError
from agent.hedge.binance import OrderRequest, StatusUnknown
from agent.hedging import HedgeLeg
from agent.runtime import Agent
from agent.types import Side
from agent.unload import best_other, unload_limit_tick

__all__ = ["flatten"]

_MAX_STALLS = 2


async def flatten(
    cfg: AgentConfig,
    signer: Signer,
    *,
    slice_base: float,
    max_slippage_bps: float,
    timeout_s: float,
    say: Callable[[str], None] = print,
) -> int:
    """Unwind both legs; return 0 when both are flat, 1 otherwise (each step is printed)."""
    agent, closers = await build_agent(cfg, with_hedge=False, signer=signer)
    leg: HedgeLeg | None = None
    try:
        venue = agent.venue
        await asyncio.wait_for(venue.connect(cfg.chain.chain_id), timeout_s)
        if not await agent.cancel_all_verified(timeout_s, "flatten"):
            say("dex: orders still rest after cancel-all: not flattening")
            return 1
        if cfg.hedge.enabled:
            leg = await build_hedge_leg(cfg, agent.journal)
            if (outcome := await leg.cancel_open(timeout_s)) != "clear":
                say(f"cex: {outcome}: not flattening")
                return 1
        info = venue.market_info()
        lot, tick = info.lot_size, info.tick_size
        band = max_slippage_bps / 1e4
        slice_lots = max(1, round(slice_base / lot))
        ratio = Decimal(str(cfg.hedge.policy.hedge_ratio))
        symbol = cfg.hedge.symbol
        stalls = 0
        deadline = time.monotonic() + 30 * timeout_s
        while time.monotonic() < deadline:
            snap = await venue.snapshot()
            if snap.position is None:
                say("dex: position unreadable: stopping")
                return 1
            dex_lots = snap.position.size_lots
            cex = await leg.client.position(symbol) if leg is not None else Decimal(0)
            say(f"dex {dex_lots * lot:+.6g}  cex {cex:+f}")
            if dex_lots == 0 and cex == 0:
                say("flat on both venues")
                return 0
            moved = False
            if dex_lots != 0:
                side = Side.ASK if dex_lots > 0 else Side.BID  # sell a long, buy back a short
                ref = best_other(snap, Side.BID if side is Side.ASK else Side.ASK, tick)
                if ref is None:
                    say("dex: no opposite price on the book: stopping")
                    return 1
                handle = await venue.reduce(
                    side, min(abs(dex_lots), slice_lots), unload_limit_tick(side, ref, band, tick)
                )
                await _settle(agent, handle, timeout_s)
                after = await venue.snapshot()
                if after.position is None:
                    say("dex: position unreadable after a slice: stopping")
                    return 1
                moved = after.position.size_lots != dex_lots
                dex_lots = after.position.size_lots
            if leg is not None:
                moved |= await _reduce_cex(
                    leg, -Decimal(dex_lots) * Decimal(str(lot)) * ratio, band
                )
            stalls = 0 if moved else stalls + 1
            if stalls >= _MAX_STALLS:
                say("nothing filled within the slippage cap: stopping (raise --max-slippage-bps?)")
                return 1
        say("flatten: out of time")
        return 1
    except StatusUnknown as exc:
        say(f"cex: an order's outcome is unknown ({exc}): check the exchange before retrying")
        return 1
    finally:
        if leg is not None:
            await leg.close(5.0)
        for close in closers:
            res = close()
            if res is not None:
                await res


async def _settle(agent: Agent, handle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while agent.venue.in_flight(handle):
        if time.monotonic() > deadline:
            raise AgentError(f"dex: the reduce-only slice was not mined within {timeout_s:g} s")
        await agent.absorb_outcomes()
        await asyncio.sleep(0.2)


async def _reduce_cex(leg: HedgeLeg, target: Decimal, band: float) -> bool:
    """Move the exchange position toward `target`, reduce-only; True when it moved."""
    client, symbol = leg.client, leg.symbol
    cex = await client.position(symbol)
    gap = target - cex
    if gap == 0 or cex == 0 or (gap > 0) == (cex > 0):
        return False  # only ever reduce: a gap that would add exposure is left alone
    qty = min(abs(gap), abs(cex))
    bt = await client.book_ticker(symbol)
    buy = gap > 0
    factor = Decimal(str(1 + band)) if buy else Decimal(str(1 - band))
    price = (bt.ask_price if buy else bt.bid_price) * factor
    coid = f"mmflat{int(time.time() * 1000)}"
    try:
        state = await client.place_order(
            OrderRequest(
                symbol,
                "BUY" if buy else "SELL",
                qty,
                coid,
                "LIMIT",
                "IOC",
                price,
                reduce_only=True,
            )
        )
    except StatusUnknown:
        raise  # never resent: the caller stops and says so
    except ExchangeError as exc:
        raise AgentError(f"cex: reduce-only order refused: {exc}") from None
    return state.executed_qty_base > 0
