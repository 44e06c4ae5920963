"""``mm-agent oracle --from-exchange``: keep a test deployment's manual price feed fresh.

``mm-agent deploy`` without ``--oracle`` creates a ``ManualPriceFeed`` that only its deployer can
push, and that goes stale like a real feed when nobody does: the agent's risk engine then pulls
its quotes. This process is the missing pusher for test deployments. It reads the exchange's mid
(``/fapi/v1/ticker/bookTicker`` of ``[hedge] symbol`` at ``[hedge] base_url``, a public endpoint:
no credentials) and pushes it every ``--interval-s`` seconds, or sooner when the mid has moved by
``--deviation-bps`` (how Chainlink feeds behave: a heartbeat plus a deviation threshold). Set
``[chain] oracle_heartbeat_s`` to the same interval so the agent's oracle-age limits match.

It signs with the deployer's key, given by its own flags (``--keystore``/``--key-env``/
``--dev-index``), never the maker's: two processes sharing one key would race for nonces.
Production markets use a real Chainlink feed and need no keeper.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType

import httpx
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from agent.chain.contracts import error_decoder, load_artifact, market_abi
from agent.chain.deploy import SignerAccount, TxSigner, send_transaction
from agent.chain.signer import DevKey, EnvKey, KeySource, KeystoreKey, load_signer
from agent.cli import positive_float
from agent.errors import AgentError, ChainError, ConfigError, TxError

__all__ = [
    "FeedPusher",
    "KeeperSettings",
    "add_signer_flags",
    "exchange_mid",
    "oracle_cli_main",
    "signer_from_flags",
]

log = logging.getLogger("agent.oracle")


@dataclass(frozen=True, slots=True)
class KeeperSettings:
    """When to push."""

    interval_s: float = 5.0
    """Push at least this often (the feed's heartbeat)."""
    deviation_bps: float = 10.0
    """Push sooner when the exchange mid moved this much from the last pushed answer."""
    poll_s: float = 1.0
    """How often the exchange is read."""


def exchange_mid(client: httpx.Client, symbol: str) -> Decimal:
    """The exchange's mid, (best bid + best ask) / 2, from its public book ticker."""
    r = client.get("/fapi/v1/ticker/bookTicker", params={"symbol": symbol})
    r.raise_for_status()
    d = r.json()
    return (Decimal(d["bidPrice"]) + Decimal(d["askPrice"])) / 2


class FeedPusher:
    """Pushes answers to a ``ManualPriceFeed`` with its updater's key."""

    def __init__(self, w3: Web3, account: TxSigner, market: str) -> None:
        self._w3 = w3
        self._account = account
        m = w3.eth.contract(address=to_checksum_address(market), abi=market_abi())
        self.feed: Contract = w3.eth.contract(
            address=to_checksum_address(m.functions.oracle().call()),
            abi=list(load_artifact("ManualPriceFeed").abi),
        )
        try:
            updater = str(self.feed.functions.updater().call())
            self.decimals = int(self.feed.functions.decimals().call())
        except Exception as exc:
            raise ConfigError(
                f"the market's oracle {self.feed.address} is not a ManualPriceFeed ({exc}): a "
                "real feed keeps itself fresh; set [chain] oracle_heartbeat_s to its heartbeat"
            ) from exc
        if updater.lower() != account.address.lower():
            raise ConfigError(
                f"the feed {self.feed.address} accepts pushes only from its deployer {updater}; "
                f"this key is {account.address}: pass the deployer's key (--keystore/--key-env)"
            )
        self._decoder = error_decoder()

    def answer(self) -> tuple[Decimal, int]:
        """The feed's current answer (as a price) and its ``updatedAt`` (unix seconds)."""
        _, ans, _, updated, _ = self.feed.functions.latestRoundData().call()
        return Decimal(int(ans)) / 10**self.decimals, int(updated)

    def push(self, price: Decimal) -> str:
        """Publish `price`; return the transaction hash once mined."""
        raw = int(price * 10**self.decimals)
        data = self.feed.encode_abi("push", args=[raw])
        receipt = send_transaction(
            self._w3,
            self._account,
            {"to": self.feed.address, "data": HexBytes(data)},
            decoder=self._decoder,
        )
        return str(receipt["transactionHash"].to_0x_hex())


def run_keeper(
    push: Callable[[Decimal], str],
    read_mid: Callable[[], Decimal],
    settings: KeeperSettings,
    stop: threading.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Push until `stop` is set; return the number of pushes.

    `push` publishes a price and returns the transaction hash (:meth:`FeedPusher.push`);
    `read_mid` returns the exchange mid. A failed read or push is logged and retried at the next
    poll (the feed then ages, and the agent's risk engine sees it).
    """
    last_price: Decimal | None = None
    last_push = -float("inf")
    pushes = 0
    while not stop.is_set():
        try:
            mid = read_mid()
            now = clock()
            moved = (
                last_price is None
                or abs(mid - last_price) / last_price * 10_000 >= settings.deviation_bps
            )
            if moved or now - last_push >= settings.interval_s:
                tx = push(mid)
                last_price, last_push = mid, now
                pushes += 1
                log.info("oracle pushed %s (tx %s)", f"{mid:.2f}", tx)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("oracle: exchange read failed: %s", exc)
        except (TxError, ChainError) as exc:
            log.warning("oracle: push failed: %s", exc)
        stop.wait(settings.poll_s)
    return pushes


def add_signer_flags(ap: argparse.ArgumentParser, role: str) -> None:
    """Add ``--keystore/--password-file/--password-env/--key-env/--dev-index`` for `role`."""
    g = ap.add_argument_group(f"{role} key (instead of the config's [signer])")
    g.add_argument("--keystore", type=Path, help=f"the {role}'s encrypted keystore")
    g.add_argument("--password-file", type=Path, help="the keystore's password file")
    g.add_argument("--password-env", help="env var holding the keystore's password")
    g.add_argument("--key-env", help=f"env var holding the {role}'s hex key")
    g.add_argument("--dev-index", type=int, help="anvil dev account (chain 31337 only)")


def signer_from_flags(args: argparse.Namespace) -> KeySource | None:
    """The key the flags of :func:`add_signer_flags` name, or None when none was given."""
    if args.keystore is not None:
        return KeystoreKey(args.keystore, args.password_file, args.password_env)
    if args.key_env:
        return EnvKey(args.key_env)
    if args.dev_index is not None:
        return DevKey(args.dev_index)
    return None


def oracle_cli_main(argv: list[str]) -> int:
    """``mm-agent oracle --config mm.toml --from-exchange --keystore deployer.json ...``.

    Keep the deployment's manual price feed at the exchange mid until SIGINT/SIGTERM.
    """
    from agent.config import key_source, load_config, read_deployment
    from agent.telemetry import configure_logging

    ap = argparse.ArgumentParser(prog="mm-agent oracle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, type=Path, help="the agent's config (RPC, market)")
    ap.add_argument(
        "--from-exchange",
        action="store_true",
        required=True,
        help="price source: the mid of [hedge] symbol at [hedge] base_url",
    )
    d = KeeperSettings()
    # 0 (or NaN) pushed a transaction every poll, and a 0 s poll spun: refused here.
    ap.add_argument("--interval-s", type=positive_float(), default=d.interval_s, help="heartbeat")
    ap.add_argument("--deviation-bps", type=positive_float(), default=d.deviation_bps)
    ap.add_argument("--poll-s", type=positive_float(), default=d.poll_s)
    add_signer_flags(ap, "deployer")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    configure_logging(cfg.telemetry.log_level, json=False)
    source = signer_from_flags(args)
    if source is None:
        raise ConfigError(
            "name the feed deployer's key (--keystore PATH --password-file PATH, "
            "--key-env NAME or --dev-index N); the maker's key must not push"
        )
    w3 = Web3(Web3.HTTPProvider(cfg.chain.rpc_url, request_kwargs={"timeout": 30}))
    if int(w3.eth.chain_id) != cfg.chain.chain_id:
        raise ConfigError(
            f"chain.chain_id: config says {cfg.chain.chain_id}, the RPC is chain {w3.eth.chain_id}"
        )
    market, _ = read_deployment(cfg)
    signer = load_signer(source, cfg.chain.chain_id)
    if signer.address.lower() == load_signer(key_source(cfg), cfg.chain.chain_id).address.lower():
        raise ConfigError(
            f"{signer.address} is also the agent's key ([signer]); two processes on one "
            "key race for nonces. Deploy the market with a separate key (mm-agent deploy "
            "--keystore ...) and keep its feed with that key"
        )
    pusher = FeedPusher(w3, SignerAccount(signer), market)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    settings = KeeperSettings(args.interval_s, args.deviation_bps, args.poll_s)
    with httpx.Client(base_url=cfg.hedge.base_url, timeout=5.0) as client:
        try:
            exchange_mid(client, cfg.hedge.symbol)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise AgentError(
                f"cannot read {cfg.hedge.symbol} at {cfg.hedge.base_url}: {exc}"
            ) from exc
        # One parseable line so a supervisor (or a test) knows the keeper is up.
        print(
            f"oracle keeper: feed {pusher.feed.address} <- {cfg.hedge.symbol} mid at "
            f"{cfg.hedge.base_url} every {settings.interval_s:g} s "
            f"(or {settings.deviation_bps:g} bps)",
            flush=True,
        )
        n = run_keeper(pusher.push, lambda: exchange_mid(client, cfg.hedge.symbol), settings, stop)
    print(f"oracle keeper stopped after {n} pushes", flush=True)
    return 0
