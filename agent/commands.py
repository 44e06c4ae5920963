"""The ``mm-agent`` subcommands that run or control the agent: run, status, cancel-all, resume,
deploy. Each takes the remaining argv and returns the exit code (see :mod:`agent.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from agent.app import Closer, build_agent
from agent.chain.deploy import MarketConfig, SignerAccount, deploy_market
from agent.chain.heads import HeadWatcher, ws_url_for
from agent.chain.signer import load_signer
from agent.config import AgentConfig, key_source, load_config
from agent.errors import ConfigError
from agent.init import DEFAULT_MID, refuse_placeholders
from agent.oracle_keeper import add_signer_flags, signer_from_flags
from agent.status import HALT_FILE, RESUME_FILE, STATUS_FILE
from agent.telemetry import TelemetryServer

__all__ = [
    "cancel_all_cli_main",
    "deploy_cli_main",
    "format_status",
    "resume_cli_main",
    "run_cli_main",
    "status_cli_main",
]

log = logging.getLogger("agent.commands")


async def _close_all(closers: list[Closer]) -> None:
    for close in closers:
        res = close()
        if res is not None:
            await res


async def _run_agent(cfg: AgentConfig) -> int:
    from agent.telemetry import configure_logging

    configure_logging(cfg.telemetry.log_level, json=cfg.telemetry.json_logs)
    agent, closers = await build_agent(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = TelemetryServer(
        agent.metrics,
        agent.health,
        host=cfg.telemetry.host,
        port=cfg.telemetry.port,
        allow_external_bind=cfg.telemetry.allow_external_bind,
    )
    await server.start()
    (cfg.storage.data_dir / "telemetry.port").write_text(str(server.port))
    log.info("telemetry on http://%s:%d (/metrics, /healthz)", cfg.telemetry.host, server.port)
    heads = (
        HeadWatcher(cfg.chain.ws_url or ws_url_for(cfg.chain.rpc_url))
        if cfg.chain.subscribe_heads
        else None
    )
    try:
        await agent.run(stop, poll_interval_s=cfg.chain.poll_interval_s, heads=heads)
    finally:
        await server.stop()
        await _close_all(closers)
    return 0


def run_cli_main(argv: list[str]) -> int:
    """``mm-agent run --config mm.toml``: run the keeper bot until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="mm-agent run", description=run_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path, help="TOML config (see mm.example.toml)")
    ap.add_argument(
        "--check", action="store_true", help="live preflight (node, market, key, gas, exchange)"
    )
    ap.add_argument("--offline", action="store_true", help="with --check: format checks only")
    args = ap.parse_args(argv)
    refuse_placeholders(args.config)  # a profile written by `mm-agent init` not yet filled in
    cfg = load_config(args.config)
    if args.check:
        if args.offline:
            key_source(cfg)
            print(f"{args.config}: OK")
            return 0
        from agent.preflight import format_report, run_preflight

        report, status = format_report(asyncio.run(run_preflight(cfg)), str(args.config))
        print(report)
        return status
    return asyncio.run(_run_agent(cfg))


def status_cli_main(argv: list[str]) -> int:
    """``mm-agent status --config mm.toml``: health, risk state, inventory and P&L."""
    ap = argparse.ArgumentParser(prog="mm-agent status", description=status_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--json", action="store_true", help="print the raw status JSON")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    path = cfg.storage.data_dir / STATUS_FILE
    if not path.is_file():
        print(f"no status at {path}: is the agent running with this config?")
        return 1
    st = json.loads(path.read_text())
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print("\n".join(format_status(st, time.time())))
    return 0


def _px(v: Any) -> str:
    """A price as ``2,998.45``; ``-`` when there is none (an empty side, no oracle)."""
    return "-" if v is None else f"{float(v):,.2f}"


def format_status(st: dict[str, Any], now_s: float) -> list[str]:
    """The lines ``mm-agent status`` prints for a ``status.json`` payload `st`."""
    age = now_s - float(st.get("written_s", 0))
    pnl = st.get("pnl", {})
    return [
        f"state {st['state']}  block {st['block']:,}  (status written {age:.0f} s ago)",
        f"index {_px(st['index'])}  mid {_px(st['mid'])}  "
        f"bid {_px(st['best_bid'])}  ask {_px(st['best_ask'])}",
        f"inventory {st['inventory_base']:+.4f} (cap {st['inventory_cap_base']:.4f})  "
        f"hedge {st['hedge_base']:+.4f}  equity {st['equity']:,.2f}",
        "pnl " + "  ".join(f"{k} {v:+,.2f}" for k, v in pnl.items()),
        f"last decision: {st['last_decision']}",
    ]


def cancel_all_cli_main(argv: list[str]) -> int:
    """``mm-agent cancel-all --config mm.toml``: halt the running agent and cancel every order."""
    ap = argparse.ArgumentParser(
        prog="mm-agent cancel-all", description=cancel_all_cli_main.__doc__
    )
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--reason", default="operator cancel-all")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    # Halt first: a running agent must not re-quote after our cancel lands.
    (cfg.storage.data_dir / HALT_FILE).write_text(args.reason)

    async def go() -> int:
        agent, closers = await build_agent(cfg, with_hedge=cfg.hedge.enabled)
        try:
            await agent.venue.connect(cfg.chain.chain_id)
            # The same verified path as a shutdown: re-read the book, re-send a cancel that
            # lost its nonce (e.g. to the running agent's last quote), until nothing rests. No
            # status write: status.json belongs to the running agent.
            clear = await agent.cancel_all_verified(args.timeout, args.reason)
            if agent.hedger is not None:
                await agent.hedger.close(cancel_open=True)
            print("cancelAll done: no order rests" if clear else "orders may still rest")
            if not clear:
                return 1
        finally:
            await _close_all(closers)
        return 0

    return asyncio.run(go())


def resume_cli_main(argv: list[str]) -> int:
    """``mm-agent resume --config mm.toml``: let a HALTED agent resume (operator decision)."""
    ap = argparse.ArgumentParser(prog="mm-agent resume", description=resume_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--who", default=os.environ.get("USER", "operator"))
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.storage.data_dir / RESUME_FILE).write_text(args.who)
    print(
        "resume requested: the agent leaves HALTED on its next cycle "
        "(to WITHDRAWN, then steps down)"
    )
    return 0


def deploy_cli_main(argv: list[str]) -> int:
    """``mm-agent deploy --config mm.toml --out deployments/NAME.json``: deploy a market.

    The RPC, chain id and signing key come from the config (``[chain]``, ``[signer]``); market
    parameters from flags (defaults: an ETH-like market with $0.01 ticks and 0.001 lots). Without
    ``--token`` / ``--oracle`` a faucet token and a manual price feed are deployed (test chains).
    ``--keystore`` / ``--key-env`` / ``--dev-index`` sign with a deployer key other than the
    config's: only the deployer can push the manual feed (``mm-agent oracle``).
    """
    ap = argparse.ArgumentParser(prog="mm-agent deploy", description=deploy_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="deployment record to write")
    ap.add_argument("--token", help="existing 6-decimal collateral token")
    ap.add_argument("--oracle", help="existing Chainlink AggregatorV3 feed (8 decimals)")
    defaults = MarketConfig()
    ap.add_argument("--tick-size", type=int, default=defaults.tick_size)
    ap.add_argument("--lot-size", type=int, default=defaults.lot_size)
    ap.add_argument(
        "--initial-price",
        type=float,
        default=DEFAULT_MID,
        help=f"manual feed's first price (default {DEFAULT_MID:,.0f}, the simulator's mid)",
    )
    ap.add_argument("--funding-interval-s", type=int, default=defaults.funding_interval_s)
    # The deployer may differ from the maker: only it can push a manual feed (`mm-agent oracle`),
    # and the two must not share a key (they would race for nonces).
    add_signer_flags(ap, "deployer")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    w3 = Web3(Web3.HTTPProvider(cfg.chain.rpc_url, request_kwargs={"timeout": 60}))
    if int(w3.eth.chain_id) != cfg.chain.chain_id:
        raise ConfigError(
            f"chain.chain_id: config says {cfg.chain.chain_id}, the RPC is chain {w3.eth.chain_id}"
        )
    signer = load_signer(signer_from_flags(args) or key_source(cfg), cfg.chain.chain_id)
    config = MarketConfig(
        tick_size=args.tick_size,
        lot_size=args.lot_size,
        funding_interval_s=args.funding_interval_s,
        initial_price=int(args.initial_price * 10**8),
    )
    dep = deploy_market(
        w3,
        SignerAccount(signer),
        config,
        token=args.token,
        oracle=args.oracle,
        record_path=args.out,
    )
    print(f"market {dep.market} on chain {dep.chain_id} at block {dep.block_number}")
    print(f"record written to {args.out}: point chain.deployment_file at it")
    return 0
