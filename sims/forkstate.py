"""Forked chain state for stress runs: ``mm-agent fork-state build --out FILE``.

The builder starts a fresh anvil (fixed genesis timestamp, so the same build gives the same
state), deploys one market per funding interval the scenarios need (collateral faucet token,
manual price feed, PerpMarket), funds every role, seeds resting liquidity from the background
makers, trades some history with the taker bots, and dumps the state. Stress runs then serve that
file from an *upstream* node and fork it at the recorded block, exactly as they would fork a real
testnet RPC (``--fork-url``).

Two files are written: the anvil state (``FILE``, for ``anvil --load-state``) and its sidecar
``FILE.meta.json`` (chain id, fork block, one deployment record per market).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.chain.deploy import MarketConfig
from agent.chain.deploy import deploy_market as deploy
from agent.chain.signer import dev_account
from agent.errors import ChainError, ConfigError
from sims.anvil import Anvil, AnvilConfig
from sims.scenario import Scenario, expand, list_scenarios, load_scenario
from sims.world import ChainWorld, MarketDeployment

__all__ = [
    "DEFAULT_DEPOSITS_USD",
    "GENESIS_TS",
    "ForkStateMeta",
    "build_fork_state",
    "deploy_market",
    "market_config",
    "needed_intervals",
]

GENESIS_TS = 1_767_225_600
"""2026-01-01T00:00:00Z: a fixed genesis time makes builds reproducible."""

DEFAULT_DEPOSITS_USD: dict[int, float] = {1: 250_000.0, 2: 3_000_000.0, 3: 3_000_000.0} | {
    i: 400_000.0 for i in (4, 5, 6, 7, 8)
}
"""Collateral per dev account: agent, two background makers, four takers, the arbitrageur."""

_INITIAL_USD = 60_000.0


@dataclass(frozen=True, slots=True)
class ForkStateMeta:
    """The sidecar of a fork-state file."""

    state_file: Path
    chain_id: int
    block: int
    block_timestamp_s: int
    markets: tuple[MarketDeployment, ...]

    def market_for(self, funding_interval_s: float) -> MarketDeployment | None:
        """The market whose funding interval is `funding_interval_s`, if the state has one."""
        for m in self.markets:
            if m.funding_interval_s == round(funding_interval_s):
                return m
        return None

    @staticmethod
    def sidecar(state_file: Path) -> Path:
        """Where the sidecar of `state_file` lives."""
        return state_file.with_name(state_file.name + ".meta.json")

    def save(self) -> Path:
        """Write the sidecar next to the state file."""
        path = self.sidecar(self.state_file)
        payload = {
            "chain_id": self.chain_id,
            "block": self.block,
            "block_timestamp_s": self.block_timestamp_s,
            "markets": [m.to_record() for m in self.markets],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, state_file: Path) -> ForkStateMeta:
        """Read the sidecar of `state_file`.

        Raises
        ------
        ConfigError
            If the state file or its sidecar is missing.
        """
        side = cls.sidecar(state_file)
        if not state_file.is_file() or not side.is_file():
            raise ConfigError(
                f"fork state {state_file} (or its {side.name}) not found: "
                "build it with `mm-agent fork-state build --out FILE`"
            )
        raw = json.loads(side.read_text())
        return cls(
            state_file=state_file,
            chain_id=int(raw["chain_id"]),
            block=int(raw["block"]),
            block_timestamp_s=int(raw["block_timestamp_s"]),
            markets=tuple(MarketDeployment.from_record(m) for m in raw["markets"]),
        )


def needed_intervals(short_s: float | None = None) -> tuple[int, ...]:
    """Funding intervals of the shipped scenarios, full length and shortened to `short_s`."""
    out: set[int] = set()
    for name in list_scenarios():
        sc = load_scenario(name)
        out.add(round(sc.funding.interval_s))
        if short_s is not None:
            out.add(round(sc.short_run(short_s).funding.interval_s))
    return tuple(sorted(out))


def market_config(funding_interval_s: int, initial_usd: float = _INITIAL_USD) -> MarketConfig:
    """A BTC-like market: $0.10 ticks, 0.001 lots, $10 minimum, 10% / 5% margin, 1 bp rebate."""
    return MarketConfig(
        tick_size=10**5,
        lot_size=10**15,
        min_notional=10 * 10**6,
        maker_fee_bps=-1,
        taker_fee_bps=5,
        max_fills=32,
        funding_interval_s=funding_interval_s,
        oracle_max_age_s=120,
        initial_price=round(initial_usd * 1e8),
    )


def deploy_market(
    node: Anvil, funding_interval_s: int, initial_usd: float = _INITIAL_USD
) -> MarketDeployment:
    """Deploy token, price feed and market (agent/chain/deploy.py) from dev account 0."""
    was_automine = bool(node.rpc("anvil_getAutomine"))
    node.set_automine(True)  # the deployer waits for each receipt
    try:
        dep = deploy(node.w3, dev_account(0), market_config(funding_interval_s, initial_usd))
    finally:
        node.set_automine(was_automine)
    return MarketDeployment(dep)


def _history(node: Anvil, dep: MarketDeployment, blocks: int, seed: int) -> None:
    """Fund the roles, seed liquidity and trade `blocks` blocks of calm flow."""
    world = ChainWorld(node, dep)
    world.ensure_funded(DEFAULT_DEPOSITS_USD)
    world.mine(world.last_ts + 1)
    calm: Scenario = load_scenario("calm")
    tl = expand(calm.shortened(max(60.0, float(blocks))), seed)
    start = world.last_ts
    for i in range(min(blocks, len(tl))):
        world.play(tl[i], start)
    world.check_world_receipts()


def build_fork_state(
    out: Path,
    *,
    intervals: Sequence[int] | None = None,
    history_blocks: int = 60,
    seed: int = 0,
) -> ForkStateMeta:
    """Build a fork-state file at `out` (plus its sidecar) and return its metadata."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    chosen = tuple(intervals) if intervals else needed_intervals(short_s=120.0)
    cfg = AnvilConfig(dump_state=out, extra_args=("--timestamp", str(GENESIS_TS)))
    node = Anvil(cfg).start()
    try:
        node.set_automine(False)
        markets = []
        for k, interval in enumerate(chosen):
            dep = deploy_market(node, interval)
            _history(node, dep, history_blocks, seed + k)
            markets.append(dep)
        block = node.latest_block()
        number, ts = int(block["number"], 16), int(block["timestamp"], 16)
        chain_id = int(node.rpc("eth_chainId"), 16)
    finally:
        node.stop()  # anvil writes --dump-state on exit
    if not out.is_file():
        raise ChainError(f"anvil did not write the state file {out}")
    meta = ForkStateMeta(out, chain_id, number, ts, tuple(markets))
    meta.save()
    return meta
