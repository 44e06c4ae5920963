"""The simulators' ``mm-agent`` subcommands, registered through an entry point.

``pyproject.toml`` names this dict in the ``mm_agent.commands`` entry-point group; ``agent.cli``
merges it into its own table. Each entry is (module, function taking the remaining argv, help);
the module is imported only when its command runs.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS: dict[str, tuple[str, str, str]] = {
    "backtest": ("sims.backtest", "cli_main", "fast backtests (e.g. `backtest as`)"),
    "stress": ("sims.stress", "cli_main", "scripted stress tests on forked chain state"),
    "fork-state": ("sims.stress", "fork_state_cli_main", "build forked chain state (build --out)"),
    "sweep": ("sims.sweep", "cli_main", "parameter sweeps over scenarios and seeds on Ray"),
    "demo": ("sims.stress", "demo_cli_main", "the whole system on an embedded local chain"),
    "cex-sim": ("sims.cex.__main__", "cli_main", "run the CEX exchange simulator on 127.0.0.1"),
}
