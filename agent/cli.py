"""The ``mm-agent`` command.

Each subcommand imports its implementation lazily, so ``mm-agent keys address`` does not pay for
numpy and matplotlib, and a broken optional part cannot take the whole command down.

The agent's own commands are listed here. Commands of other installed packages (the simulators'
``backtest``, ``stress``, ``demo``...) arrive through the ``mm_agent.commands`` entry-point group:
each entry names a dict of the same shape as ``_COMMANDS`` (``sims.commands:COMMANDS``), so
nothing in ``agent`` imports ``sims`` and the import-linter contract that says so holds.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points

from agent.errors import AgentError

__all__ = ["main", "positive_float"]

# subcommand → (module, function taking the remaining argv, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("agent.commands", "run_cli_main", "run the market-making keeper bot (--config FILE)"),
    "status": ("agent.commands", "status_cli_main", "show a running agent's health and state"),
    "cancel-all": (
        "agent.commands",
        "cancel_all_cli_main",
        "halt the agent, cancel every order on both venues (positions unchanged)",
    ),
    "halt": ("agent.commands", "halt_cli_main", "halt the running agent (cancel, no new quotes)"),
    "resume": ("agent.commands", "resume_cli_main", "let a HALTED agent resume (operator)"),
    "flatten": (
        "agent.commands",
        "flatten_cli_main",
        "unwind both legs together, reduce-only (--yes; agent stopped)",
    ),
    "keys": ("agent.chain.signer", "keys_cli_main", "manage signing keys (new | import | address)"),
    "deploy": ("agent.commands", "deploy_cli_main", "deploy a market and write its record"),
    "init": (
        "agent.init",
        "init_cli_main",
        "write mm.toml for a profile (--network local|testnet)",
    ),
    "deposit": ("agent.account", "deposit_cli_main", "approve and deposit collateral"),
    "withdraw": ("agent.account", "withdraw_cli_main", "withdraw free collateral"),
    "oracle": ("agent.oracle_keeper", "oracle_cli_main", "keep a test feed at the exchange mid"),
}

_PLUGIN_GROUP = "mm_agent.commands"


def positive_float(what: str = "") -> Callable[[str], float]:
    """An argparse ``type`` for a finite number > 0 (NaN, infinities, 0 and negatives refused
    in one usage line naming ``what``)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and v > 0):
            suffix = f" ({what})" if what else ""
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number > 0{suffix}")
        return v

    return parse


def _commands() -> dict[str, tuple[str, str, str]]:
    """The agent's commands plus those registered by installed packages (entry points)."""
    out = dict(_COMMANDS)
    for ep in entry_points(group=_PLUGIN_GROUP):
        try:
            extra: Mapping[str, tuple[str, str, str]] = ep.load()
        except ImportError as exc:  # a broken plug-in must not take the agent's commands down
            print(f"mm-agent: commands of {ep.value} unavailable ({exc})", file=sys.stderr)
            continue
        for name, spec in extra.items():
            out.setdefault(name, spec)  # the agent's own commands cannot be shadowed
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mm-agent`` command line; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="mm-agent",
        description="On-chain perpetual-DEX market-making agent.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _commands()
    for name, (_, _, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    if args[0] == "--version":
        from agent import __version__

        print(f"mm-agent {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in commands:
        parser.print_usage(sys.stderr)
        print(f"mm-agent: unknown command {name!r}; see mm-agent --help", file=sys.stderr)
        return 2
    module, func, _ = commands[name]
    try:
        entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        print(f"mm-agent {name}: not available in this build ({exc})", file=sys.stderr)
        return 2
    try:
        code = entry(rest)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`mm-agent status | head -1`): what it wanted it has. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except AgentError as exc:
        print(f"mm-agent {name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
