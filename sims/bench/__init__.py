"""Benchmarks. Each module here defines ``run() -> list[BenchResult]``; ``python -m sims.bench``
runs them all (or the ones named on the command line) and prints one table with the machine it ran
on. Targets live here, never in timed tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BenchResult"]


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One measured figure and the target it is held to ("" when there is none)."""

    name: str
    value: str
    target: str = ""
    ok: bool | None = None
