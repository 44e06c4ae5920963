"""``mm-agent init --network NAME``: write a working ``mm.toml`` for a deployment profile.

=========  =====================================================================================
profile    what it writes
=========  =====================================================================================
local      anvil on 127.0.0.1:8545 (chain 31337), anvil dev key 1, the exchange simulator on
           127.0.0.1:9800, a manual feed kept by ``mm-agent oracle`` every 5 s: runs as written
testnet    a keystore key, chain 11155111 (Sepolia), the Binance futures testnet; each value only
           you know (RPC URL, keystore, password file, the oracle's heartbeat) is ``FILL_ME``,
           and ``mm-agent run`` (with or without ``--check``) refuses the file while one is left
=========  =====================================================================================

Flags fill placeholders directly (``--rpc-url``, ``--keystore``...), so a script can write a
complete file in one command.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

__all__ = [
    "DEFAULT_MID",
    "DEFAULT_SYMBOL",
    "PLACEHOLDER",
    "PROFILES",
    "init_cli_main",
    "refuse_placeholders",
    "render_profile",
    "unfilled_placeholders",
]

PLACEHOLDER = "FILL_ME"
"""Marks a value the user must set; :func:`unfilled_placeholders` finds every one left."""

DEFAULT_SYMBOL = "ETHUSDT"
"""The default market everywhere: ``mm-agent deploy``, ``mm-agent cex-sim`` and the configs."""
DEFAULT_MID = 3000.0
"""Its price: the first answer of the feed ``deploy`` creates and the simulator's first mid."""

_LOCAL = """\
# mm-agent config, profile `local`: anvil (chain 31337) + the exchange simulator.
# Written by `mm-agent init --network local`; every key is explained in mm.example.toml.

[chain]
rpc_url = "{rpc_url}"
chain_id = {chain_id}
# Written by `mm-agent deploy --config mm.toml --out deployments/local.json --dev-index 0`
# (deployed by dev account 0, so the maker, account 1, does not share its nonces).
deployment_file = "{deployment_file}"
# The manual feed `deploy` creates is kept fresh by `mm-agent oracle --config mm.toml
# --from-exchange --interval-s 5 --dev-index 0`: the oracle-age limits are 1.5 and 3 heartbeats.
oracle_heartbeat_s = {oracle_heartbeat_s}

[signer]
source = "dev"      # anvil's public dev keys: refused on any chain but 31337
dev_index = 1

[quoting]
base_size_base = 0.05
inventory_cap_base = 1.0
ref_depth_base = 1.0     # a test market is thin: full size from 1 unit of depth per side
# Test gas has no market price: the cost gate prices a refresh at this many USD per unit of the
# gas token. On a real chain set the token's price, or the gate sends updates that do not pay.
native_price_quote = 1.0

[hedge]
base_url = "{cex_url}"   # `mm-agent cex-sim --port 9800` (prints its credentials)
symbol = "{symbol}"
api_key_env = "MM_CEX_API_KEY"          # names of env vars, never the secrets
api_secret_env = "MM_CEX_API_SECRET"

[telemetry]
port = {metrics_port}
json_logs = false

[storage]
data_dir = ".mm-agent"
"""

_TESTNET = """\
# mm-agent config, profile `testnet`. Written by `mm-agent init --network testnet`.
# Every value marked FILL_ME is yours to set; `mm-agent run` refuses this file until none is
# left. Every key is explained in mm.example.toml; the steps are in the README ("Pointing it at
# a testnet or a fork").

[chain]
rpc_url = "{rpc_url}"   # your testnet's HTTPS RPC URL
chain_id = {chain_id}   # 11155111 = Sepolia; checked against the RPC
deployment_file = "{deployment_file}"   # `mm-agent deploy ... --out` writes it
# The price feed's heartbeat in seconds: a Chainlink feed's published heartbeat, or the
# --interval-s of `mm-agent oracle --from-exchange` for a test deployment's manual feed.
# The oracle-age limits are 1.5 and 3 heartbeats.
oracle_heartbeat_s = {oracle_heartbeat_s}

[signer]
source = "keystore"                     # `mm-agent keys new --out PATH`
keystore_path = "{keystore}"
password_file = "{password_file}"   # or password_env = "VAR"

[tx]
max_fee_gwei = 50.0

[quoting]
base_size_base = 0.05
inventory_cap_base = 1.0
ref_depth_base = 1.0     # a test market is thin: full size from 1 unit of depth per side
# Test gas has no market price: the cost gate prices a refresh at this many USD per unit of the
# gas token. On a real chain set the token's price, or the gate sends updates that do not pay.
native_price_quote = 1.0

[hedge]
base_url = "{cex_url}"   # the Binance USD-M futures testnet, or `mm-agent cex-sim`
symbol = "{symbol}"
api_key_env = "MM_CEX_API_KEY"          # names of env vars holding the exchange API key pair
api_secret_env = "MM_CEX_API_SECRET"

[telemetry]
port = {metrics_port}
json_logs = true

[storage]
data_dir = ".mm-agent"
"""

PROFILES: dict[str, tuple[str, dict[str, str]]] = {
    "local": (
        _LOCAL,
        {
            "rpc_url": "http://127.0.0.1:8545",
            "chain_id": "31337",
            "deployment_file": "deployments/local.json",
            "oracle_heartbeat_s": "5.0",
            "cex_url": "http://127.0.0.1:9800",
        },
    ),
    "testnet": (
        _TESTNET,
        {
            "rpc_url": f"https://{PLACEHOLDER}.invalid",
            "chain_id": "11155111",
            "deployment_file": "deployments/testnet.json",
            "oracle_heartbeat_s": f'"{PLACEHOLDER}"',
            "keystore": f"{PLACEHOLDER}/maker.json",
            "password_file": f"{PLACEHOLDER}/maker.pass",
            "cex_url": "https://testnet.binancefuture.com",
        },
    ),
}
"""Profile name → (template, default values)."""


def render_profile(network: str, overrides: dict[str, str | None] | None = None) -> str:
    """Return the ``mm.toml`` text of `network` with `overrides` (None values keep the default)."""
    if network not in PROFILES:
        raise ConfigError(f"init --network {network}: unknown profile; use one of {list(PROFILES)}")
    template, defaults = PROFILES[network]
    values = {"symbol": DEFAULT_SYMBOL, "metrics_port": "9464", **defaults}
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    text = template.format(**values)
    tomllib.loads(text)  # a template or an override that breaks TOML is a bug: fail here
    return text


def unfilled_placeholders(path: Path) -> list[str]:
    """The dotted keys of `path` whose value still contains :data:`PLACEHOLDER`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # load_config reports an unreadable file with its own message

    def walk(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [k for key, v in node.items() for k in walk(v, f"{prefix}{key}.")]
        return [prefix[:-1]] if isinstance(node, str) and PLACEHOLDER in node else []

    return walk(raw, "")


def refuse_placeholders(path: Path) -> None:
    """Raise :class:`ConfigError` naming every ``FILL_ME`` value left in `path`."""
    left = unfilled_placeholders(path)
    if left:
        raise ConfigError(
            f"{path}: {', '.join(left)} still {PLACEHOLDER}: set "
            f"{'it' if len(left) == 1 else 'them'} (see the comments in the file)"
        )


def init_cli_main(argv: list[str]) -> int:
    """``mm-agent init --network local|testnet [--out mm.toml]``: write a config for a profile."""
    ap = argparse.ArgumentParser(prog="mm-agent init", description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", required=True, choices=sorted(PROFILES))
    ap.add_argument("--out", type=Path, default=Path("mm.toml"))
    ap.add_argument("--force", action="store_true", help="overwrite an existing file")
    ap.add_argument("--rpc-url")
    ap.add_argument("--chain-id", type=int)
    ap.add_argument("--deployment-file")
    ap.add_argument("--oracle-heartbeat-s", type=float)
    ap.add_argument("--keystore", help="testnet: the maker's keystore")
    ap.add_argument("--password-file", help="testnet: the keystore's password file")
    ap.add_argument("--cex-url", help="the exchange (or simulator) base URL")
    ap.add_argument("--metrics-port", type=int, help="/metrics and /healthz port (0: any free)")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: pass --force to overwrite it")

    def opt(v: object) -> str | None:
        return None if v is None else str(v)

    text = render_profile(
        args.network,
        {
            "rpc_url": args.rpc_url,
            "chain_id": opt(args.chain_id),
            "deployment_file": args.deployment_file,
            "oracle_heartbeat_s": opt(args.oracle_heartbeat_s),
            "keystore": args.keystore,
            "password_file": args.password_file,
            "cex_url": args.cex_url,
            "metrics_port": opt(args.metrics_port),
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    left = unfilled_placeholders(args.out)
    print(f"wrote {args.out} (profile {args.network})")
    if left:
        print(f"fill in before running: {', '.join(left)} (marked {PLACEHOLDER})")
    return 0
