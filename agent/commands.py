"""The ``mm-agent`` subcommands that run or control the agent: run, status, cancel-all, halt,
resume, flatten, deploy. Each takes the remaining argv and returns the exit code (see
:mod:`agent.cli`).

``run`` takes the agent's locks (one agent per key and per data dir, :mod:`agent.control`)
before it builds anything. ``cancel-all``, ``halt`` and ``resume`` ask the running agent through
its control socket; only when no agent holds the lock do they act directly (holding the lock
while they do). Every exit status and output line says what happened on each venue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from web3 import Web3

from agent.alerts import Alerter, AlertKind, AlertSettings, Severity
from agent.app import Closer, build_agent, build_hedge_leg, prepare_data_dir
from agent.chain.deploy import MarketConfig, SignerAccount, deploy_market
from agent.chain.heads import HeadWatcher, ws_url_for
from agent.chain.signer import Signer, load_signer
from agent.config import AgentConfig, key_source, load_config
from agent.control import (
    CONTROL_SOCKET,
    AgentLock,
    AlreadyRunning,
    ControlServer,
    ask,
    key_lock_path,
)
from agent.errors import AgentError, ConfigError
from agent.init import DEFAULT_MID, refuse_placeholders
from agent.oracle_keeper import add_signer_flags, signer_from_flags
from agent.status import HALT_FILE, RESUME_FILE, STATUS_FILE
from agent.telemetry import MetricsRegistry, TelemetryServer

__all__ = [
    "cancel_all_cli_main",
    "deploy_cli_main",
    "flatten_cli_main",
    "format_status",
    "halt_cli_main",
    "resume_cli_main",
    "run_cli_main",
    "status_cli_main",
]

log = logging.getLogger("agent.commands")


async def _close_all(closers: list[Closer]) -> None:
    for close in closers:
        with contextlib.suppress(Exception):  # every closer runs; each is bounded on its own
            res = close()
            if res is not None:
                await asyncio.wait_for(res, 2.0)


def _lock_for(cfg: AgentConfig, signer: Signer) -> AgentLock:
    return AgentLock(
        cfg.storage.data_dir,
        key_lock_path(signer.address, cfg.chain.chain_id, cfg.chain.rpc_url),
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, AgentError) else f"{type(exc).__name__}: {text}"


class _Alerts:
    """The agent's alert sink: the webhook when ``MM_ALERT_WEBHOOK_URL`` is set, else nothing."""

    def __init__(self) -> None:
        self.alerter: Alerter | None = None

    def emit(self, kind: AlertKind, severity: Severity, text: str) -> None:
        if self.alerter is not None:
            self.alerter.emit(kind, severity, text)

    async def start(self, metrics: MetricsRegistry) -> None:
        settings = AlertSettings()
        if not os.environ.get(settings.url_env):
            log.info("alerts off: %s is not set", settings.url_env)
            return
        self.alerter = Alerter(settings, settings.url_from_env(), metrics=metrics)
        await self.alerter.start()

    async def aclose(self) -> None:
        if self.alerter is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.alerter.aclose(drain_timeout_s=1.0), 1.5)


async def _run_agent(cfg: AgentConfig) -> int:
    from agent.telemetry import configure_logging

    configure_logging(cfg.telemetry.log_level, json=cfg.telemetry.json_logs)
    prepare_data_dir(cfg.storage.data_dir)
    signer = load_signer(key_source(cfg), cfg.chain.chain_id)
    # One agent per key and per data dir, before anything is built or sent.
    lock = _lock_for(cfg, signer)
    lock.acquire()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    alerts = _Alerts()
    closers: list[Closer] = []
    server: TelemetryServer | None = None
    control: ControlServer | None = None
    agent = None
    try:
        # The exchange is reached in Agent.start, after the DEX's orphaned quotes are
        # cancelled: an exchange outage at start never leaves unhedgeable quotes resting.
        agent, closers = await build_agent(cfg, signer=signer, alert=alerts.emit, defer_hedge=True)
        await alerts.start(agent.metrics)
        server = TelemetryServer(
            agent.metrics,
            agent.health,
            host=cfg.telemetry.host,
            port=cfg.telemetry.port,
            allow_external_bind=cfg.telemetry.allow_external_bind,
        )
        try:
            await server.start()
        except OSError as exc:
            server = None
            raise ConfigError(
                f"telemetry.port: cannot listen on {cfg.telemetry.host}:{cfg.telemetry.port} "
                f"({exc.strerror or exc}): another process uses it; pick a free port or 0"
            ) from None
        # Written whole or not at all (temp file + rename): a reader never sees an empty file.
        port_file = cfg.storage.data_dir / "telemetry.port"
        tmp_port = port_file.with_suffix(".port.tmp")
        tmp_port.write_text(str(server.port))
        tmp_port.replace(port_file)
        log.info("telemetry on http://%s:%d (/metrics, /healthz)", cfg.telemetry.host, server.port)
        control = ControlServer(cfg.storage.data_dir, agent.control)
        await control.start()
        heads = (
            HeadWatcher(cfg.chain.ws_url or ws_url_for(cfg.chain.rpc_url))
            if cfg.chain.subscribe_heads
            else None
        )
        clear = await agent.run(stop, poll_interval_s=cfg.chain.poll_interval_s, heads=heads)
    except Exception as exc:
        report = agent.shutdown_report if agent is not None else {}
        rest = "; ".join(f"{k}: {v}" for k, v in report.items() if v != "clear")
        raise AgentError(
            f"start-up failed: {_one_line(exc)}"
            + (f"; ORDERS MAY STILL REST: {rest}" if rest else "")
        ) from None
    finally:
        if control is not None:
            await control.stop()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.stop(), 1.5)
        await alerts.aclose()
        await _close_all(closers)
        lock.release()
    if not clear:
        rest = "; ".join(f"{k}: {v}" for k, v in agent.shutdown_report.items() if v != "clear")
        print(f"mm-agent run: ORDERS MAY STILL REST after shutdown: {rest}", file=sys.stderr)
        return 1
    return 0


def run_cli_main(argv: list[str]) -> int:
    """``mm-agent run --config mm.toml``: run the keeper bot until SIGINT/SIGTERM.

    Exit status: 0 after a clean shutdown (no order of ours rests on either venue), 1 when
    start-up failed or orders may still rest (one line on stderr says which, and until when).
    """
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
    try:
        st = json.loads(path.read_text())
    except ValueError:
        print(f"{path} is not a status file (not JSON): is storage.data_dir this agent's?")
        return 1
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
    # HALTED, or withdrawn by the drawdown level: said first, and what the operator can do.
    needed = st.get("operator_needed") or ""
    return [
        *([f"operator needed: {needed}"] if needed else []),
        f"state {st['state']}  block {st['block']:,}  (status written {age:.0f} s ago)",
        f"index {_px(st['index'])}  mid {_px(st['mid'])}  "
        f"bid {_px(st['best_bid'])}  ask {_px(st['best_ask'])}",
        f"inventory {st['inventory_base']:+.4f} (cap {st['inventory_cap_base']:.4f})  "
        f"hedge {st['hedge_base']:+.4f}  equity {st['equity']:,.2f}",
        "pnl " + "  ".join(f"{k} {v:+,.2f}" for k, v in pnl.items()),
        f"last decision: {st['last_decision']}",
    ]


async def _with_agent_or_lock(
    cfg: AgentConfig,
    cmd: str,
    args: dict[str, Any],
    direct: Callable[[Signer], Awaitable[int]],
    timeout_s: float,
) -> int:
    """Ask the running agent (control channel) or, when none holds the lock, act directly.

    Acting directly holds the lock throughout, so no agent starts meanwhile.
    """
    prepare_data_dir(cfg.storage.data_dir)
    signer = load_signer(key_source(cfg), cfg.chain.chain_id)
    lock = _lock_for(cfg, signer)
    try:
        lock.acquire()
    except AlreadyRunning as running:
        where = Path(running.data_dir) if running.data_dir else cfg.storage.data_dir
        answer = await ask(where, cmd, args, timeout_s=timeout_s + 15.0)
        if answer is None:
            raise AgentError(
                f"agent pid {running.pid} holds the lock but its control channel "
                f"({where / CONTROL_SOCKET}) does not answer: is it still starting?"
            ) from None
        return _print_answer(cmd, running.pid, answer)
    try:
        return await direct(signer)
    finally:
        lock.release()


def _print_answer(cmd: str, pid: int | None, answer: dict[str, Any]) -> int:
    if "error" in answer:
        print(f"running agent (pid {pid}): {cmd} failed: {answer['error']}")
        return 1
    print(f"running agent (pid {pid}): state {answer.get('state')}")
    ok = True
    if "dex" in answer:
        dex_ok = answer["dex"] == "clear"
        print("dex: " + ("cancelAll done: no order rests" if dex_ok else str(answer["dex"])))
        print(f"cex: {'no open order' if answer['cex'] == 'clear' else answer['cex']}")
        print(
            f"positions unchanged: dex {answer['dex_position_base']:+.6g}, "
            f"cex {answer['cex_position_base']:+.6g}"
        )
        ok = dex_ok and answer["cex"] in ("clear", "no hedge leg")
    if "resumed" in answer:
        print(_resume_line(answer))
    return 0 if ok else 1


def _resume_line(answer: dict[str, Any]) -> str:
    """What a resume did, in the running agent's words."""
    if not answer["resumed"]:
        return (
            f"nothing to resume: {answer.get('state')} is neither HALTED nor held by the "
            "drawdown withdraw level (it steps down on its own as its triggers clear)"
        )
    if answer.get("resumed_from") == "drawdown_latch":
        return (
            "resumed: the drawdown withdraw level is cleared, its peak re-based to the equity now "
            "(the loss is accepted); quoting returns after the usual cooldowns"
        )
    return "resumed: leaves HALTED for WITHDRAWN"


async def _cancel_direct(cfg: AgentConfig, signer: Signer, reason: str, timeout_s: float) -> int:
    """No agent runs: cancel on both venues from here (never an order, never a position)."""
    # Built first: a config refused here (a journal of another key, say) changes nothing.
    agent, closers = await build_agent(cfg, with_hedge=False, signer=signer)
    (cfg.storage.data_dir / HALT_FILE).write_text(reason)  # the next start stays halted
    dex_ok = False
    try:
        await asyncio.wait_for(agent.venue.connect(cfg.chain.chain_id), timeout_s)
        dex_ok = await asyncio.wait_for(
            agent.cancel_all_verified(timeout_s, reason), timeout_s + 1.0
        )
        print(
            "dex: cancelAll done: no order rests"
            if dex_ok
            else f"dex: orders may still rest (they expire {agent._expiry_text()})"
        )
    except Exception as exc:
        print(f"dex: not cancelled: {_one_line(exc)}")
    cex_ok = not cfg.hedge.enabled
    if cfg.hedge.enabled:
        try:
            leg = await asyncio.wait_for(build_hedge_leg(cfg, agent.journal), timeout_s)
            outcome = await leg.close(timeout_s)
            cex_ok = outcome == "clear"
            print(f"cex: {'no open order' if cex_ok else outcome}")
        except Exception as exc:
            print(f"cex: not cancelled: {_one_line(exc)}")
    else:
        print("cex: hedging disabled")
    await _close_all(closers)
    print("no agent was running: acted directly; the next start stays HALTED until resume")
    return 0 if dex_ok and cex_ok else 1


def cancel_all_cli_main(argv: list[str]) -> int:
    """``mm-agent cancel-all --config mm.toml``: halt the agent, cancel every order on both venues.

    Never changes a position (``mm-agent flatten`` unwinds). Through the running agent when
    one holds the lock, directly otherwise. Exit 0 only when both venues show no open order.
    """
    ap = argparse.ArgumentParser(
        prog="mm-agent cancel-all", description=cancel_all_cli_main.__doc__
    )
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--reason", default="operator cancel-all")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per venue (default 30)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)

    async def direct(signer: Signer) -> int:
        return await _cancel_direct(cfg, signer, args.reason, args.timeout)

    return asyncio.run(
        _with_agent_or_lock(
            cfg,
            "cancel-all",
            {"reason": args.reason, "timeout_s": args.timeout},
            direct,
            args.timeout,
        )
    )


def halt_cli_main(argv: list[str]) -> int:
    """``mm-agent halt --config mm.toml``: enter HALTED (cancel everything; no new quotes)."""
    ap = argparse.ArgumentParser(prog="mm-agent halt", description=halt_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--reason", default="operator halt")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)

    async def direct(signer: Signer) -> int:
        (cfg.storage.data_dir / HALT_FILE).write_text(args.reason)
        print(
            "no agent is running: HALT recorded; the next start stays HALTED until "
            "`mm-agent resume` (orders already resting expire on their own; "
            "`mm-agent cancel-all` cancels them now)"
        )
        return 0

    return asyncio.run(_with_agent_or_lock(cfg, "halt", {"reason": args.reason}, direct, 30.0))


def resume_cli_main(argv: list[str]) -> int:
    """``mm-agent resume --config mm.toml``: let a HALTED agent resume (operator decision).

    Also clears the drawdown withdraw level's latch (``risk.drawdown_withdraw_frac``), which a
    flat, withdrawn agent never earns back: the drawdown peak is re-based to the equity now.
    """
    ap = argparse.ArgumentParser(prog="mm-agent resume", description=resume_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--who", default=os.environ.get("USER", "operator"))
    args = ap.parse_args(argv)
    cfg = load_config(args.config)

    async def direct(signer: Signer) -> int:
        (cfg.storage.data_dir / RESUME_FILE).write_text(args.who)
        print(
            "no agent is running: resume recorded; the next start leaves HALTED "
            "(to WITHDRAWN, then steps down) or the drawdown withdraw level (peak re-based)"
        )
        return 0

    return asyncio.run(_with_agent_or_lock(cfg, "resume", {"who": args.who}, direct, 10.0))


def flatten_cli_main(argv: list[str]) -> int:
    """``mm-agent flatten --config mm.toml --yes``: unwind both legs together, reduce-only.

    Cancels every order, then reduces the DEX position in reduce-only IOC slices and the
    exchange hedge with it (reduce-only, sized to the DEX position read after each slice).
    Only with no agent running (stop it first). Exit 0 when both legs are flat.
    """
    ap = argparse.ArgumentParser(prog="mm-agent flatten", description=flatten_cli_main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--yes", action="store_true", help="confirm: this trades on both venues")
    ap.add_argument("--slice-base", type=float, default=1.0, help="DEX slice, base units")
    ap.add_argument("--max-slippage-bps", type=float, default=50.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per step (default 30)")
    args = ap.parse_args(argv)
    if not args.yes:
        print("mm-agent flatten trades both venues to zero: run it again with --yes")
        return 2
    cfg = load_config(args.config)
    from agent.flatten import flatten

    async def go() -> int:
        prepare_data_dir(cfg.storage.data_dir)
        signer = load_signer(key_source(cfg), cfg.chain.chain_id)
        with _lock_for(cfg, signer):  # AlreadyRunning: one line naming the running agent
            return await flatten(
                cfg,
                signer,
                slice_base=args.slice_base,
                max_slippage_bps=args.max_slippage_bps,
                timeout_s=args.timeout,
            )

    return asyncio.run(go())


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
