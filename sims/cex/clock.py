"""Clocks for the exchange simulator: wall time for demos, a manual clock for driven stress runs."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["ManualClock", "SimClock", "WallClock"]


@runtime_checkable
class SimClock(Protocol):
    """The simulator's notion of exchange time, in Unix milliseconds."""

    def now_ms(self) -> int:
        """Return the current exchange time in Unix milliseconds."""
        ...


class WallClock:
    """Real time (``time.time``), for demos and client-vs-simulator tests."""

    def now_ms(self) -> int:
        """Return the wall-clock time in Unix milliseconds."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to, so a stress run can drive hours in seconds.

    Parameters
    ----------
    start_ms
        Initial time in Unix milliseconds.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        """Return the current simulated time in Unix milliseconds."""
        return self._now_ms

    def advance(self, delta_ms: int) -> int:
        """Move time forward by ``delta_ms`` (never backwards) and return the new time."""
        if delta_ms < 0:
            raise ValueError(f"time cannot go backwards (delta_ms={delta_ms})")
        self._now_ms += delta_ms
        return self._now_ms

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms``; refuses to go backwards, as exchange time never does."""
        if now_ms < self._now_ms:
            raise ValueError(f"time cannot go backwards ({now_ms} < {self._now_ms})")
        self._now_ms = now_ms
