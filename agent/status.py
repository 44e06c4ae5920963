"""The status and control sink: what the agent shows, and what an operator asks of it.

``status.json`` in the data dir is what ``mm-agent status`` and the dashboard read; it is written
atomically (tmp file + rename) at most once a second. Operator controls from another shell are
files in the same dir: ``HALT`` (the agent halts and cancels) and ``RESUME`` (consumed when read).
"""

from __future__ import annotations

import enum
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HALT_FILE",
    "RESUME_FILE",
    "STATUS_FILE",
    "AgentStatus",
    "ControlRequest",
    "StatusSink",
]

HALT_FILE = "HALT"
RESUME_FILE = "RESUME"
STATUS_FILE = "status.json"


@dataclass
class AgentStatus:
    """What ``mm-agent status`` and the dashboard show."""

    state: str = "STARTING"
    block: int = 0
    block_time_s: int = 0
    index: float | None = None
    mid: float | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    inventory_base: float = 0.0
    inventory_cap_base: float = 0.0
    hedge_base: float = 0.0
    equity: float = 0.0
    pnl: dict[str, float] = field(default_factory=dict)
    base_fee_gwei: float = 0.0
    inclusion_delay_s: float = 0.0
    funding_rate_last: float = 0.0
    funding_rate_predicted: float = 0.0
    funding_in_s: float = 0.0
    quotes: list[tuple[str, float, float]] = field(default_factory=list)
    last_decision: str = ""
    triggers: list[str] = field(default_factory=list)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    fills: int = 0
    quote_txs: int = 0
    skipped: int = 0
    unload_slices: int = 0
    gas_spent_native: float = 0.0
    operator_needed: str = ""
    """Why only an operator can put the agent back to work (HALTED, or withdrawn by the drawdown
    level); empty when nothing waits on one."""


class ControlKind(enum.Enum):
    """What an operator asked for through the data dir."""

    HALT = "halt"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One operator request: halt (with the reason written) or resume (with who asked)."""

    kind: ControlKind
    text: str


class StatusSink:
    """Writes ``status.json`` and reads the operator's control files (no-op without a dir).

    Parameters
    ----------
    data_dir
        The agent's data dir; None keeps everything in memory (simulations).
    clock
        Seconds; stamps ``written_s`` and paces writes.
    """

    def __init__(self, data_dir: Path | None, clock: Callable[[], float]) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self._written_s = -float("inf")

    def write(self, status: AgentStatus) -> None:
        """Write `status` now (atomically)."""
        if self.data_dir is None:
            return
        payload = {k: v for k, v in status.__dict__.items() if k != "events"}
        payload["events"] = list(status.events)
        now = self.clock()
        payload["written_s"] = now
        self._written_s = now
        tmp = self.data_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(payload, default=str))
        tmp.replace(self.data_dir / STATUS_FILE)

    def due(self, min_interval_s: float = 1.0) -> bool:
        """True when the last write is at least `min_interval_s` old (never without a dir).

        Without a dir nothing is written, so nothing is ever due: the runtime's once-a-second
        work beside the write (the journal's WAL checkpoint) then ran on every simulated cycle.
        """
        return self.data_dir is not None and self.clock() - self._written_s >= min_interval_s

    def clear_halt(self) -> None:
        """Remove a HALT file (a resume arrived through the control channel)."""
        if self.data_dir is not None:
            (self.data_dir / HALT_FILE).unlink(missing_ok=True)

    def requests(self, halted: bool) -> list[ControlRequest]:
        """Operator requests waiting in the data dir; a RESUME file is consumed (with HALT).

        A HALT file is reported only while the agent is not halted (it stays in place, so a
        restarted agent halts again until someone resumes it).
        """
        if self.data_dir is None:
            return []
        out: list[ControlRequest] = []
        halt, resume = self.data_dir / HALT_FILE, self.data_dir / RESUME_FILE
        if halt.exists() and not halted:
            out.append(
                ControlRequest(ControlKind.HALT, halt.read_text().strip() or "operator halt")
            )
        if resume.exists():
            who = resume.read_text().strip() or "operator"
            resume.unlink()
            halt.unlink(missing_ok=True)
            out.append(ControlRequest(ControlKind.RESUME, who))
        return out
