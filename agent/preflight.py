"""``mm-agent run --check``: a live preflight of everything a start needs, one line per check.

Every check runs and prints, even after a failure (an operator fixes them all in one pass); a check
that cannot run because an earlier one failed says so and is not counted twice. Each failed line
names the fix. The exit status is 1 when any check failed.

=================  ===========================================================================
check              passes when
=================  ===========================================================================
``key``            the key source loads (keystore decrypts) and is allowed on the configured
                   chain (anvil's public dev keys only on chain id 31337, whatever the source)
``rpc``            ``chain.rpc_url`` answers, with chain id ``chain.chain_id``
``market``         the deployment record is readable and there is contract code at the market
``collateral``     the key's account has collateral deposited in the market
``gas``            the key's native balance pays ``preflight.min_gas_refreshes`` refreshes and as
                   many cancel-alls at the node's current base fee plus tip
``exchange``       (hedging on) the exchange answers and lists ``hedge.symbol``
``exchange-auth``  (hedging on) the credentials are set and a signed account read succeeds
``telemetry``      ``telemetry.host:telemetry.port`` can be bound (no other process holds it)
=================  ===========================================================================

``mm-agent run --check --offline`` runs only the format checks (config and key reference).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import socket
from collections.abc import Awaitable
from dataclasses import dataclass

from agent.chain.abi import AbiCodec
from agent.chain.contracts import market_abi
from agent.chain.rpc import AsyncRpc, RpcConfig, RpcError
from agent.chain.signer import Signer, load_signer
from agent.config import AgentConfig, key_source, read_deployment
from agent.errors import AgentError

__all__ = ["Check", "CheckStatus", "format_report", "run_preflight"]

_GWEI = 10**9
_WEI_PER_NATIVE = 10**18


class CheckStatus(enum.StrEnum):
    """Outcome of one check."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"
    """Not run: a check it depends on failed (that one carries the fix)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One preflight line."""

    name: str
    status: CheckStatus
    detail: str
    """What was found; for a failure, what to do about it."""

    @property
    def line(self) -> str:
        """Return the printable line, e.g. ``FAIL  rpc: ...``."""
        detail = " ".join(self.detail.split())  # one line, whatever a library put in its message
        return f"{self.status.value:<4}  {self.name}: {detail}"


def _ok(name: str, detail: str) -> Check:
    return Check(name, CheckStatus.OK, detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, CheckStatus.FAIL, detail)


def _skip(name: str, why: str) -> Check:
    return Check(name, CheckStatus.SKIP, f"not checked: {why}")


@dataclass(slots=True)
class _Chain:
    """What the chain checks learned, for the checks that depend on them."""

    rpc: AsyncRpc
    reachable: bool = False
    right_chain: bool = False
    market: str | None = None


async def run_preflight(cfg: AgentConfig) -> list[Check]:
    """Run every live check against the configured node, market, key, exchange and port.

    Parameters
    ----------
    cfg
        A validated configuration (format errors were already refused by :func:`load_config`).

    Returns
    -------
    list[Check]
        One entry per check, in the order of the module docstring's table.
    """
    checks: list[Check] = []
    signer: Signer | None = None
    try:
        signer = load_signer(key_source(cfg), cfg.chain.chain_id)
        checks.append(
            _ok("key", f"{signer.address} loads and may sign on chain id {signer.chain_id}")
        )
    except AgentError as exc:
        checks.append(_fail("key", str(exc)))
    timeout_s = cfg.preflight.timeout_s
    rpc = AsyncRpc(
        RpcConfig(
            url=cfg.chain.rpc_url,
            timeout_s=min(timeout_s, cfg.chain.rpc_timeout_s),
            retry_attempts=2,
            retry_budget_s=timeout_s,
        )
    )
    chain = _Chain(rpc)
    try:
        checks.append(await _bounded("rpc", timeout_s, _check_rpc(cfg, chain)))
        checks.append(await _bounded("market", timeout_s, _check_market(cfg, chain)))
        checks.append(
            await _bounded("collateral", timeout_s, _check_collateral(cfg, chain, signer))
        )
        checks.append(await _bounded("gas", timeout_s, _check_gas(cfg, chain, signer)))
    finally:
        await rpc.aclose()
    checks.extend(await _check_exchange(cfg))
    checks.append(_check_port(cfg))
    return checks


def format_report(checks: list[Check], where: str) -> tuple[str, int]:
    """Return the printed report and the exit status (1 when any check failed)."""
    failed = sum(c.status is CheckStatus.FAIL for c in checks)
    lines = [c.line for c in checks]
    if failed:
        lines.append(f"{where}: {failed} of {len(checks)} checks FAILED: fix the lines above")
    else:
        lines.append(f"{where}: OK (live preflight passed)")
    return "\n".join(lines), 1 if failed else 0


async def _bounded(name: str, timeout_s: float, check: Awaitable[Check]) -> Check:
    # A stalled node must not hang the preflight: each check gets a wall-clock bound.
    try:
        return await asyncio.wait_for(check, timeout=2 * timeout_s)
    except TimeoutError:
        return _fail(name, f"no answer within {2 * timeout_s:g} s (raise preflight.timeout_s?)")
    except AgentError as exc:  # the node failed between two checks, or refused one call
        return _fail(name, f"{exc}: check the node at chain.rpc_url")


# -- chain ---------------------------------------------------------------------------------------


async def _check_rpc(cfg: AgentConfig, chain: _Chain) -> Check:
    url = cfg.chain.rpc_url
    try:
        chain_id = int(await chain.rpc.call("eth_chainId"), 16)
    except AgentError as exc:
        return _fail("rpc", f"{url} unreachable ({exc}): start the node or fix chain.rpc_url")
    chain.reachable = True
    if chain_id != cfg.chain.chain_id:
        return _fail(
            "rpc",
            f"{url} is chain id {chain_id}, config says chain.chain_id = {cfg.chain.chain_id}: "
            "point chain.rpc_url at the right network or fix chain.chain_id",
        )
    chain.right_chain = True
    return _ok("rpc", f"{url} answers with chain id {chain_id}")


async def _check_market(cfg: AgentConfig, chain: _Chain) -> Check:
    try:
        market, _ = read_deployment(cfg)
    except AgentError as exc:
        return _fail("market", str(exc))
    if not chain.right_chain:
        return _skip("market", "the rpc check failed")
    code = await chain.rpc.call("eth_getCode", [market, "latest"])
    if code in (None, "0x", "0x0"):
        return _fail(
            "market",
            f"no contract code at {market} on chain id {cfg.chain.chain_id}: deploy a market "
            "(mm-agent deploy) or fix chain.deployment_file / chain.market_address",
        )
    chain.market = market
    return _ok("market", f"contract code at {market}")


async def _check_collateral(cfg: AgentConfig, chain: _Chain, signer: Signer | None) -> Check:
    if signer is None:
        return _skip("collateral", "the key check failed")
    if chain.market is None:
        return _skip("collateral", "the market check failed")
    codec = AbiCodec(market_abi())
    data = "0x" + codec.encode_call("accountState", signer.address).hex()
    try:
        raw = await chain.rpc.call("eth_call", [{"to": chain.market, "data": data}, "latest"])
    except RpcError as exc:
        return _fail(
            "collateral",
            f"accountState({signer.address}) reverted ({exc}): the market's oracle may be "
            "stale; push a fresh price and retry",
        )
    collateral = int(codec.decode_output("accountState", raw)[0][0])
    if collateral <= 0:
        return _fail(
            "collateral",
            f"{signer.address} has no collateral in market {chain.market}: approve the "
            "collateral token and call deposit(amount) on the market from this key",
        )
    return _ok("collateral", f"{collateral} raw collateral units deposited by {signer.address}")


async def _check_gas(cfg: AgentConfig, chain: _Chain, signer: Signer | None) -> Check:
    if signer is None:
        return _skip("gas", "the key check failed")
    if not chain.right_chain:
        return _skip("gas", "the rpc check failed")
    history, balance_hex = await asyncio.gather(
        chain.rpc.call("eth_feeHistory", [1, "latest", []]),
        chain.rpc.call("eth_getBalance", [signer.address, "latest"]),
    )
    base_fee = int(history["baseFeePerGas"][-1], 16)  # the next block's base fee
    tip = round(cfg.tx.tip_floor_gwei * _GWEI)
    with contextlib.suppress(RpcError):  # not every node serves it; the floor still prices a tip
        tip = max(tip, int(await chain.rpc.call("eth_maxPriorityFeePerGas"), 16))
    balance = int(balance_hex, 16)
    p = cfg.preflight
    gas_units = p.min_gas_refreshes * (cfg.quoting.gas_units_per_refresh + p.cancel_gas_units)
    needed = gas_units * (base_fee + tip)
    fee = f"{(base_fee + tip) / _GWEI:.4g} gwei"
    if balance < needed:
        return _fail(
            "gas",
            f"{signer.address} holds {balance / _WEI_PER_NATIVE:.6g} native, "
            f"{p.min_gas_refreshes} refreshes and cancels at {fee} need "
            f"{needed / _WEI_PER_NATIVE:.6g}: fund the key (or lower preflight.min_gas_refreshes)",
        )
    refreshes = balance // max(1, needed // p.min_gas_refreshes)
    return _ok(
        "gas",
        f"{balance / _WEI_PER_NATIVE:.6g} native pays ~{refreshes} refreshes and cancels at {fee}",
    )


# -- exchange ------------------------------------------------------------------------------------


async def _check_exchange(cfg: AgentConfig) -> list[Check]:
    if not cfg.hedge.enabled:
        skipped = "hedging is off (hedge.enabled = false)"
        return [_skip("exchange", skipped), _skip("exchange-auth", skipped)]
    from agent.errors import ConfigError
    from agent.hedge.binance import (
        AuthError,
        BinanceFuturesClient,
        ClientConfig,
        Credentials,
    )

    h = cfg.hedge
    timeout_s = min(cfg.preflight.timeout_s, h.request_timeout_s)
    client_cfg = ClientConfig(
        base_url=h.base_url,
        recv_window_ms=h.recv_window_ms,
        timeout_s=timeout_s,
        read_attempts=2,
        max_rate_limit_wait_s=timeout_s,
    )
    creds: Credentials | None
    try:
        creds = Credentials.from_env(h.api_key_env, h.api_secret_env)
    except ConfigError as exc:
        creds = None
        missing = str(exc)
    # exchangeInfo and the server time are public: the symbol is checked even without a key.
    async with BinanceFuturesClient(client_cfg, creds or Credentials("", "")) as client:
        try:
            await client.sync_time()
            await client.load_filters([h.symbol])
            listed = _ok("exchange", f"{h.base_url} lists {h.symbol}")
        except ConfigError:
            listed = _fail(
                "exchange",
                f"{h.symbol} is not listed on {h.base_url}: fix hedge.symbol (or hedge.base_url)",
            )
        except AgentError as exc:
            reason = f"{h.base_url} unreachable or failing ({exc})"
            return [
                _fail("exchange", f"{reason}: start the exchange or fix hedge.base_url"),
                _skip("exchange-auth", "the exchange check failed"),
            ]
        if creds is None:
            return [listed, _fail("exchange-auth", missing)]
        try:
            await client.balances()
        except AuthError as exc:
            return [
                listed,
                _fail(
                    "exchange-auth",
                    f"{h.base_url} refused the credentials in {h.api_key_env} / "
                    f"{h.api_secret_env} ({exc}): set a valid API key and secret with futures "
                    "trading allowed",
                ),
            ]
        except AgentError as exc:
            return [listed, _fail("exchange-auth", f"signed account read failed: {exc}")]
    return [listed, _ok("exchange-auth", f"signed account read with {h.api_key_env} succeeded")]


# -- telemetry -----------------------------------------------------------------------------------


def _check_port(cfg: AgentConfig) -> Check:
    t = cfg.telemetry
    if t.port == 0:
        return _ok("telemetry", "port 0: a free port is picked at start")
    try:
        _try_bind(t.host, t.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(
                "telemetry",
                f"{t.host}:{t.port} is in use by another process: stop it (another agent?) or "
                "set telemetry.port to a free port",
            )
        return _fail("telemetry", f"cannot bind {t.host}:{t.port} ({exc}): fix telemetry.port")
    return _ok("telemetry", f"{t.host}:{t.port} is free")


def _try_bind(host: str, port: int) -> None:
    # Bind the way the server will (SO_REUSEADDR, as asyncio does): a port held only by
    # TIME_WAIT leftovers is free for it, one with a listener is not.
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
