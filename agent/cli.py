"""The ``mm-agent`` command.

Each subcommand imports its implementation lazily, so ``mm-agent keys address`` does not pay for
numpy and matplotlib, and a broken optional part cannot take the whole command down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from agent.errors import AgentError

__all__ = ["main"]

# subcommand → (module, function taking the remaining argv, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("agent.runtime", "cli_main", "run the market-making keeper bot (--config mm.toml)"),
    "status": ("agent.runtime", "status_cli_main", "show a running agent's health and state"),
    "cancel-all": ("agent.runtime", "cancel_all_cli_main", "halt the agent, cancel every order"),
    "resume": ("agent.runtime", "resume_cli_main", "let a HALTED agent resume (operator)"),
    "keys": ("agent.chain.signer", "keys_cli_main", "manage signing keys (new | import | address)"),
    "deploy": ("agent.chain.deploy", "cli_main", "deploy a market and write its record"),
    "backtest": ("sims.backtest", "cli_main", "fast backtests (e.g. `backtest as`)"),
    "stress": ("sims.stress", "cli_main", "scripted stress tests on forked chain state"),
    "fork-state": ("sims.stress", "fork_state_cli_main", "build forked chain state (build --out)"),
    "sweep": ("sims.sweep", "cli_main", "parameter sweeps over scenarios and seeds on Ray"),
    "demo": ("sims.stress", "demo_cli_main", "the whole system on an embedded local chain"),
    "cex-sim": ("sims.cex.__main__", "cli_main", "run the CEX exchange simulator on 127.0.0.1"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mm-agent`` command line; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="mm-agent",
        description="On-chain perpetual-DEX market-making agent.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in _COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    if args[0] == "--version":
        from agent import __version__

        print(f"mm-agent {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in _COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"mm-agent: unknown command {name!r}; see mm-agent --help", file=sys.stderr)
        return 2
    module, func, _ = _COMMANDS[name]
    try:
        entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        print(f"mm-agent {name}: not available in this build ({exc})", file=sys.stderr)
        return 2
    try:
        return entry(rest)
    except AgentError as exc:
        print(f"mm-agent {name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
