"""Fingerprint every decision of a few event-simulator runs, to compare two trees of the code.

A performance change must not move a decision. Run this file on both trees (the other one, e.g.
main's, checked out elsewhere and put first on ``PYTHONPATH``: run by path, the file imports
whichever tree that names) and compare the two JSON files::

    python sims/bench/_decisions.py /tmp/new.json
    PYTHONPATH=/tmp/main python sims/bench/_decisions.py /tmp/old.json
    cmp /tmp/old.json /tmp/new.json

Four configurations (the ``eventsim`` benchmark's, its ``every_tick`` baseline, live estimators,
the defaults) × three seeds, 900 decisions each. Per decision it hashes the model's reason, send
flag, quotes, fair value, reservation price, half spread, value and cost, the risk directive,
the status line, the resting quotes and the P&L split; per run it keeps the final P&L and
counts. Not a benchmark: the leading underscore keeps it out of ``scripts/bench``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from agent.runtime import Agent
from sims.bench.eventsim import bench_config
from sims.eventsim import EventSimConfig, run_event_sim
from sims.simvenue import SimVenue

__all__ = ["fingerprint"]


def _configs() -> dict[str, EventSimConfig]:
    bench = bench_config()
    return {
        "bench": bench,
        "every_tick": replace(bench, refresh="every_tick"),
        "live_est": replace(bench, live_estimators=True),
        "default": EventSimConfig(duration_s=1800.0),
    }


def fingerprint(seeds: tuple[int, ...] = (1, 2, 3)) -> dict[str, dict[str, object]]:
    """Return, per configuration and seed, a hash of every decision and the run's outcome."""
    out: dict[str, dict[str, object]] = {}
    logging.disable(logging.WARNING)
    try:
        for name, cfg in _configs().items():
            for seed in seeds:
                rows: list[str] = []

                def on_step(agent: Agent, venue: SimVenue, rows: list[str] = rows) -> None:
                    d, dd, st = agent.decision, agent.directive, agent.status
                    rows.append(
                        repr(
                            (
                                None
                                if d is None
                                else (
                                    str(d.reason), d.send, d.quotes, d.fair_value,
                                    d.reservation_price, d.half_spread, d.value, d.cost,
                                ),
                                None
                                if dd is None
                                else (
                                    dd.state.name, dd.size_mult, dd.spread_mult,
                                    dd.inventory_cap_base,
                                ),
                                st.last_decision, tuple(st.quotes), st.pnl,
                            )
                        )
                    )  # fmt: skip

                r = run_event_sim(cfg, seed, on_step=on_step)
                out[f"{name}/{seed}"] = {
                    "rows_sha": hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16],
                    "n": len(rows),
                    "pnl_total": r.pnl_total,
                    "sent": r.updates_sent,
                    "skipped": r.updates_skipped,
                    "fills": r.fills,
                    "gas": r.gas_units_spent,
                }
    finally:
        logging.disable(logging.NOTSET)
    return out


if __name__ == "__main__":  # pragma: no cover
    Path(sys.argv[1]).write_text(json.dumps(fingerprint(), indent=1, sort_keys=True))
