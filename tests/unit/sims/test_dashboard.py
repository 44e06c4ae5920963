"""Dashboard rendering: content, width, colours, and the TTY / non-TTY live modes."""

from __future__ import annotations

import io
import re

import pytest

from sims.dashboard import (
    DashboardEvent,
    DashboardSnapshot,
    DecisionView,
    LadderLevel,
    LiveDashboard,
    render_dashboard,
    status_line,
)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _snapshot(**over: object) -> DashboardSnapshot:
    base: dict[str, object] = {
        "market": "BTC-PERP",
        "clock": "12:00:05",
        "block_number": 1234,
        "index_price": 60_000.0,
        "dex_mid": 60_003.0,
        "best_bid": 59_998.0,
        "best_ask": 60_008.0,
        "bids": (LadderLevel(59_994.0, 0.1), LadderLevel(59_988.0, 0.2)),
        "asks": (LadderLevel(60_012.0, 0.1), LadderLevel(60_018.0, 0.2)),
        "inventory_base": 0.42,
        "inventory_cap_base": 1.0,
        "hedge_position_base": -0.4,
        "pnl_usd": (
            ("spread", 12.4),
            ("inventory", -3.1),
            ("funding", 0.5),
            ("fees", -0.0),
            ("gas", -0.88),
            ("hedge", 0.0),
            ("basis", 0.0),
        ),
        "base_fee_gwei": 1.2,
        "max_fee_gwei": 50.0,
        "gas_spent_usd": 0.42,
        "gas_budget_usd": 10.0,
        "inclusion_delay_s": 2.1,
        "pending_txs": 3,
        "funding_last_rate": 0.0001,
        "funding_predicted_rate": -0.00006,
        "next_funding_in_s": 461.0,
        "risk_state": "WIDENED",
        "risk_triggers": ("base_fee_budget_ratio 1.4 (warn)",),
        "last_decision": DecisionView("refresh", True, 1.84, 0.41, 0.19, 0.02),
        "events": tuple(DashboardEvent(f"12:00:0{i}", f"event {i}") for i in range(8)),
    }
    base.update(over)
    return DashboardSnapshot(**base)  # type: ignore[arg-type]


def test_render_shows_every_section() -> None:
    text = render_dashboard(_snapshot())
    for needle in (
        "BTC-PERP",
        "block 1,234",
        "index 60,000.00",
        "DEX mid 60,003.00 (+0.5 bps)",
        "book 59,998.00 / 60,008.00",
        "59,994.00 x 0.1000 | 59,988.00 x 0.2000",
        "60,012.00 x 0.1000",
        "spread 3.0 bps",
        "+0.4200 / cap 1.0000",
        "hedge -0.4000",
        "net +0.0200",
        "spread +12.40",
        "inventory -3.10",
        "total +8.92 USD",
        "base fee 1.20 gwei / max 50.00",
        "spent 0.42 / budget 10.00 USD",
        "inclusion delay 2.1 s   3 pending",
        "last +0.0100%",
        "predicted -0.0060%",
        "snapshot in 07:41",
        "triggers: base_fee_budget_ratio 1.4 (warn)",
        "refresh sent: value 1.84 > cost 0.62 (gas 0.41, exposure 0.19, funding 0.02)",
    ):
        assert needle in text, needle
    # Only the newest six events.
    assert "event 7" in text and "event 2" in text and "event 1" not in text


def test_skipped_decisions_and_idle_quotes() -> None:
    gated = render_dashboard(
        _snapshot(last_decision=DecisionView("refresh", False, 0.3, 0.41, 0.19, 0.02))
    )
    assert "refresh skipped: value 0.30 <= cost 0.62" in gated
    withdrawn = render_dashboard(
        _snapshot(
            bids=(),
            asks=(),
            dex_mid=None,
            next_funding_in_s=None,
            last_decision=DecisionView("refresh", False, note="risk WITHDRAWN: oracle_age_s 41"),
        )
    )
    assert "bids not quoting" in withdrawn and "asks not quoting" in withdrawn
    assert "refresh skipped: risk WITHDRAWN: oracle_age_s 41" in withdrawn
    assert "snapshot in –" in withdrawn and "DEX mid –" in withdrawn


def test_over_cap_inventory_is_flagged() -> None:
    text = render_dashboard(_snapshot(inventory_base=-1.5))
    assert "[##########|..........]!" in text
    assert "[.....|" not in render_dashboard(_snapshot(inventory_base=0.0))


def test_width_is_respected_with_and_without_colour() -> None:
    for width in (60, 100, 140):
        for color in (False, True):
            text = render_dashboard(_snapshot(), width, color=color)
            assert max(len(ANSI.sub("", line)) for line in text.splitlines()) <= width


def test_colour_marks_the_risk_state() -> None:
    plain = render_dashboard(_snapshot(risk_state="WITHDRAWN"))
    coloured = render_dashboard(_snapshot(risk_state="WITHDRAWN"), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31mWITHDRAWN\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_status_line_is_one_line() -> None:
    line = status_line(_snapshot())
    assert "\n" not in line
    assert "risk=WIDENED" in line and "pnl=+8.92" in line and "funding_in=07:41" in line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_dashboard_redraws_in_place_on_a_tty() -> None:
    out = _Tty()
    live = LiveDashboard(out, width=100)
    assert live.is_tty
    assert live.update(_snapshot()) and live.update(_snapshot())
    assert out.getvalue().count("\x1b[H\x1b[2J") == 2
    assert "\x1b[33mWIDENED" in out.getvalue()  # colour on by default on a terminal


def test_live_dashboard_throttles_status_lines_off_a_tty() -> None:
    now = [0.0]
    out = io.StringIO()
    live = LiveDashboard(out, interval_s=5.0, clock=lambda: now[0])
    assert live.update(_snapshot())
    now[0] = 4.9
    assert not live.update(_snapshot())
    now[0] = 5.0
    assert live.update(_snapshot())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("12:00:05 block=1234") for line in lines)
    assert "\x1b[" not in out.getvalue()


def test_scenario_line_names_the_scripted_events() -> None:
    text = render_dashboard(_snapshot(scripted=("gas spike x30 (since t+600s)", "stall")))
    line = next(x for x in text.splitlines() if x.startswith("SCENARIO"))
    assert "gas spike x30" in line and "stall" in line
    assert not any(x.startswith("SCENARIO") for x in render_dashboard(_snapshot()).splitlines())


def test_live_dashboard_follows_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Tty()
    live = LiveDashboard(out, color=False)
    for columns in (160, 72):
        monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
        assert live.width == columns
        out.seek(0)
        out.truncate()
        live.update(_snapshot())
        widest = max(len(x) for x in out.getvalue().removeprefix("\x1b[H\x1b[2J").splitlines())
        assert widest <= columns
        assert widest > 60  # the rule line spans the width
    monkeypatch.setenv("COLUMNS", "20")
    assert live.width == 60  # never narrower than the layout needs
    assert LiveDashboard(out, width=90).width == 90


def test_demo_announces_each_scripted_event_as_it_starts() -> None:
    from sims.demo import scripted_now, starting
    from sims.scenario import load_scenario

    events = load_scenario("demo").events()
    seen: list[str] = []
    for t in range(1, 301):
        seen += [e.kind for e in starting(events, t - 1, t)]
    assert seen == [e.kind for e in events]  # each once, in order
    assert {"gas spike", "stall", "exchange blip", "funding flip", "cascade"} <= set(seen)
    spike = next(e for e in events if e.kind == "gas spike")
    assert any(s.startswith(spike.label) for s in scripted_now(events, spike.at_s + 1))
    assert not any(s.startswith(spike.label) for s in scripted_now(events, spike.at_s))
