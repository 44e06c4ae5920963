"""The status and control sink: atomic status writes, HALT and RESUME from another shell."""

from __future__ import annotations

import json
from pathlib import Path

from agent.status import HALT_FILE, RESUME_FILE, STATUS_FILE, AgentStatus, ControlKind, StatusSink


def test_status_is_written_atomically_and_paced(tmp_path: Path) -> None:
    now = [100.0]
    sink = StatusSink(tmp_path, lambda: now[0])
    st = AgentStatus(state="NORMAL", block=7)
    st.events.appendleft("hello")
    assert sink.due()
    sink.write(st)
    data = json.loads((tmp_path / STATUS_FILE).read_text())
    assert data["state"] == "NORMAL" and data["events"] == ["hello"] and data["written_s"] == 100.0
    assert not (tmp_path / (STATUS_FILE + ".tmp")).exists()
    now[0] += 0.5
    assert not sink.due(1.0)
    now[0] += 0.5
    assert sink.due(1.0)


def test_halt_stays_until_resume_which_is_consumed(tmp_path: Path) -> None:
    sink = StatusSink(tmp_path, lambda: 0.0)
    (tmp_path / HALT_FILE).write_text("fat finger")
    reqs = sink.requests(halted=False)
    assert [(r.kind, r.text) for r in reqs] == [(ControlKind.HALT, "fat finger")]
    assert sink.requests(halted=True) == []  # already halted: nothing new
    (tmp_path / RESUME_FILE).write_text("alice")
    reqs = sink.requests(halted=True)
    assert [(r.kind, r.text) for r in reqs] == [(ControlKind.RESUME, "alice")]
    assert not (tmp_path / HALT_FILE).exists() and not (tmp_path / RESUME_FILE).exists()


def test_without_a_data_dir_nothing_is_written_or_read() -> None:
    sink = StatusSink(None, lambda: 0.0)
    sink.write(AgentStatus())
    assert sink.requests(halted=False) == []
    assert not sink.due()  # nothing to write, so the cycle never does the write's work
