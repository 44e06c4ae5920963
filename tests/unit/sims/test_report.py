"""Stress report: figures computed from a synthetic run record, and the files written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sims.report import (
    CentreBasis,
    EventRecord,
    FillRecord,
    FundingSnapshotRecord,
    HedgeRecord,
    InvariantResult,
    PnlSnapshot,
    RunMeta,
    RunRecord,
    Sample,
    TransitionRecord,
    TxRecord,
    build_report,
    format_table,
    summary_row,
    write_report,
)

TOTALS = [0.0, 5.0, 2.0, 8.0, 1.0, 3.0]  # max drawdown 7 (peak 8 at t=30, trough 1 at t=40)
INVENTORY = [0.0, 0.5, 1.2, 1.5, -0.4, 0.0]
FUNDING = [0.0, 1.0, 1.0, 0.5, 0.5, 2.0]  # received 1 + 1.5, paid 0.5
STATES = ["NORMAL", "NORMAL", "WIDENED", "WITHDRAWN", "WIDENED", "NORMAL"]


def _record(invariant_ok: bool = True) -> RunRecord:
    samples = []
    for i, (tot, inv, fund, state) in enumerate(
        zip(TOTALS, INVENTORY, FUNDING, STATES, strict=True)
    ):
        quoting = state != "WITHDRAWN"
        samples.append(
            Sample(
                t_s=10.0 * i,
                index=60_000.0 + i,
                dex_mid=60_001.0 + i,
                our_bid=59_994.0 if quoting else None,
                our_ask=60_006.0 if quoting else None,
                inventory_base=inv,
                pnl=PnlSnapshot(spread=tot - fund, funding=fund, total=tot),
                base_fee_gwei=1.0 if i != 3 else 40.0,
                inclusion_delay_s=None if i == 0 else 2.0,
                risk_state=state,
                hedge_position_base=-inv / 2,
            )
        )
    return RunRecord(
        meta=RunMeta(
            scenario="synthetic",
            seed=7,
            started_at="2025-01-01T00:00:00+00:00",
            duration_s=60.0,
            chain="http://127.0.0.1:8546 @ 100",
            agent_config={"gamma": 0.1, "spread_floor_bps": 4.0},
            native_price_usd=3000.0,
            inventory_cap_base=1.0,
        ),
        samples=samples,
        fills=[
            FillRecord(5.0, "buy", 59_994.0, 0.5, 0.3, "maker"),
            FillRecord(15.0, "buy", 59_994.0, 0.7, 0.4, "maker"),
            FillRecord(35.0, "sell", 60_006.0, 1.9, 2.0, "taker"),
        ],
        transitions=[
            TransitionRecord(20.0, "NORMAL", "WIDENED", "base_fee_budget_ratio 1.4 >= 1.0"),
            TransitionRecord(30.0, "WIDENED", "WITHDRAWN", "inventory <script>"),
        ],
        txs=[
            TxRecord(1.0, "quote", 150_000, 2.0, "success", 1.0),
            TxRecord(30.0, "cancel_all", 50_000, 40.0, "reverted", 3.0),
            TxRecord(31.0, "quote", 100_000, 40.0, "dropped", None),
        ],
        hedges=[
            HedgeRecord(16.0, "sell", 1.0, 1.0, 59_990.0, 2.0),
            HedgeRecord(36.0, "buy", 1.0, 0.5, 60_010.0, 8.0),
        ],
        invariants=[
            InvariantResult("pnl components sum to total", True, "max error 0"),
            InvariantResult("no quotes while WITHDRAWN", invariant_ok, "checked 6 samples"),
        ],
    )


def test_figures_match_the_synthetic_run() -> None:
    r = build_report(_record())
    assert r["max_drawdown"] == {"usd": 7.0, "peak_t_s": 30.0, "trough_t_s": 40.0}
    assert r["pnl"]["total"] == 3.0 and r["pnl"]["funding"] == 2.0
    assert r["funding"] == {"received_usd": 2.5, "paid_usd": 0.5, "net_usd": 2.0}
    inv = r["inventory"]
    assert inv["max_base"] == 1.5 and inv["min_base"] == -0.4
    assert inv["mean_base"] == pytest.approx(np.mean(INVENTORY))  # equal 10 s steps
    assert inv["abs_mean_base"] == pytest.approx(np.mean(np.abs(INVENTORY)))
    assert inv["time_over_cap_s"] == 20.0  # 1.2 and 1.5 are over the cap of 1
    assert r["quoting"]["uptime_frac"] == pytest.approx(5 / 6)
    assert r["quoting"]["avg_spread_bps"] == pytest.approx(12.0 / 60_000.0 * 1e4)
    assert r["fills"]["count"] == 3 and r["fills"]["volume_base"] == pytest.approx(3.1)
    assert r["fills"]["maker_count"] == 2
    native = (150_000 * 2.0 + 50_000 * 40.0 + 100_000 * 40.0) * 1e-9
    assert r["gas"]["native"] == pytest.approx(native)
    assert r["gas"]["usd"] == pytest.approx(native * 3000.0)
    assert r["gas"]["failed_count"] == 2 and r["gas"]["max_delay_s"] == 3.0
    assert r["hedges"]["avg_slippage_bps"] == pytest.approx((1.0 * 2.0 + 0.5 * 8.0) / 1.5)
    assert r["hedges"]["fill_ratio"] == pytest.approx(0.75)
    assert r["risk"]["worst_state"] == "WITHDRAWN"
    assert r["risk"]["time_in_state_s"] == {"NORMAL": 30.0, "WIDENED": 20.0, "WITHDRAWN": 10.0}
    assert [s["state"] for s in r["risk"]["segments"]] == [
        "NORMAL", "WIDENED", "WITHDRAWN", "WIDENED", "NORMAL",
    ]  # fmt: skip
    assert r["passed"] is True


def test_a_failed_invariant_fails_the_run() -> None:
    assert build_report(_record(invariant_ok=False))["passed"] is False


def test_drawdown_from_the_start_counts() -> None:
    rec = _record()
    losing = [
        Sample(**{**{f: getattr(s, f) for f in Sample.__slots__}, "pnl": PnlSnapshot(total=-v)})
        for s, v in zip(rec.samples, [0, 1, 2, 3, 4, 5], strict=True)
    ]
    r = build_report(RunRecord(meta=rec.meta, samples=losing))
    assert r["max_drawdown"]["usd"] == 5.0
    assert r["passed"] is True  # no invariants: nothing failed
    assert r["hedges"]["avg_slippage_bps"] is None


def test_write_report_files(tmp_path: Path) -> None:
    paths = write_report(_record(), tmp_path / "out")
    assert set(paths.plots) == {"price", "inventory", "pnl", "gas", "risk"}
    for p in paths.plots.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    data = json.loads(paths.json.read_text())
    assert data["max_drawdown"]["usd"] == 7.0
    assert data["meta"]["scenario"] == "synthetic"
    page = paths.html.read_text()
    for name in paths.plots:
        assert f"src='{name}.png'" in page
    assert "inventory &lt;script&gt;" in page and "<script>" not in page
    assert "no quotes while WITHDRAWN" in page and "PASS" in page
    assert "http" not in page.replace("http://127.0.0.1:8546", "")  # self-contained


def test_summary_table_aligns() -> None:
    good = summary_row(build_report(_record()))
    bad = summary_row(build_report(_record(invariant_ok=False)))
    assert good["max_dd_usd"] == 7.0 and good["invariants"] == "2/2" and bad["invariants"] == "1/2"
    table = format_table([good, bad])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("scenario")
    assert "PASS" in lines[2] and "FAIL" in lines[3]
    # Right-aligned numbers: every data row ends its pnl column at the same character.
    col = lines[0].index("pnl_usd") + len("pnl_usd")
    assert lines[2][col - 4 : col] == "3.00" and lines[3][col - 4 : col] == "3.00"
    assert format_table([]) == "(no rows)"


def test_empty_record_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        build_report(RunRecord(meta=_record().meta, samples=()))


def _with(**changes: object) -> RunRecord:
    from dataclasses import replace

    return replace(_record(), **changes)  # type: ignore[arg-type]


def test_every_signed_transaction_is_counted() -> None:
    """The demo's `8 (0)` against a journal of 15 with 7 reverts: the count is the journal's."""
    txs = [TxRecord(float(i), "quote", 90_000, 1.0, "success", 1.0) for i in range(8)]
    txs += [TxRecord(10.0 + i, "quote", 60_000, 1.0, "reverted", 1.0) for i in range(7)]
    r = build_report(_with(txs=txs))
    assert r["gas"]["tx_count"] == 15 and r["gas"]["failed_count"] == 7
    assert r["gas"]["by_status"] == {"reverted": 7, "success": 8}
    txs += [
        TxRecord(30.0, "quote", 0, 0.0, "replaced", None),
        TxRecord(31.0, "cancel_all", 0, 0.0, "dropped", None),
        TxRecord(32.0, "quote", 0, 0.0, "pending", None),
    ]
    r = build_report(_with(txs=txs))
    assert r["gas"]["tx_count"] == 18 and r["gas"]["failed_count"] == 10
    assert r["gas"]["by_status"]["replaced"] == 1 and r["gas"]["by_status"]["pending"] == 1
    assert summary_row(r)["txs"] == 18 and summary_row(r)["txs_failed"] == 10


def test_html_shows_the_full_transaction_count(tmp_path: Path) -> None:
    txs = [TxRecord(1.0, "quote", 1, 1.0, "success", 1.0)] * 8
    txs += [TxRecord(2.0, "quote", 1, 1.0, "reverted", 1.0)] * 7
    page = write_report(_with(txs=txs), tmp_path).html.read_text()
    assert "<td class=n>15 (7)</td>" in page
    assert "reverted 7, success 8" in page


def test_l2_data_fee_is_part_of_gas_and_pnl() -> None:
    base = build_report(_record())
    txs = [
        TxRecord(1.0, "quote", 150_000, 0.02, "success", 1.0, 500, 500 * 8e-9),
        TxRecord(2.0, "quote", 0, 0.0, "replaced", None),
    ]
    r = build_report(_with(txs=txs))
    fee = 500 * 8e-9
    assert r["gas"]["l1_data_fee_native"] == pytest.approx(fee)
    assert r["gas"]["calldata_bytes"] == 500
    assert r["gas"]["native"] == pytest.approx(150_000 * 0.02e-9 + fee)
    # The ledger never saw the data fee: the report takes it off gas and the total.
    assert r["pnl"]["gas"] == pytest.approx(base["pnl"]["gas"] - fee * 3000.0)
    assert r["pnl"]["total"] == pytest.approx(base["pnl"]["total"] - fee * 3000.0)


def test_plots_mark_the_scripted_events(tmp_path: Path) -> None:
    events = [EventRecord(20.0, 50.0, "gas spike", "gas spike x40"),
              EventRecord(30.0, 40.0, "stall", "stall")]  # fmt: skip
    plain = write_report(_record(), tmp_path / "a")
    marked = write_report(_with(events=events), tmp_path / "b")
    data = json.loads(marked.json.read_text())
    assert [e["label"] for e in data["events"]] == ["gas spike x40", "stall"]
    for name in ("price", "pnl", "gas"):
        assert plain.plots[name].read_bytes() != marked.plots[name].read_bytes(), name


def _edge_record() -> RunRecord:
    """Fair value 2,000 then 2,010 (index 1,990 throughout: the premium moves fair, not index)."""
    rows = [
        # t, fair, bid, ask
        (0.0, 2_000.0, 1_999.0, 2_003.0),  # centre 2,001: +5 bps
        (1.0, 2_000.0, 1_996.0, 2_002.0),  # centre 1,999: -5 bps
        (2.0, 2_010.0, None, 2_012.0),  # one side only: not a centre step
        (3.0, 2_010.0, 2_000.0, 2_004.0),  # centre 2,002: about -39.8 bps
    ]
    samples = [
        Sample(
            t_s=t,
            index=1_990.0,
            fair=fair,
            dex_mid=1_990.0,
            our_bid=bid,
            our_ask=ask,
            inventory_base=0.0,
            pnl=PnlSnapshot(),
            base_fee_gwei=0.01,
            inclusion_delay_s=None,
            risk_state="NORMAL",
            hedge_position_base=0.0,
        )
        for t, fair, bid, ask in rows
    ]
    fills = [
        # bought 2 bps under fair 2,000 (t=1.5 reads the sample at t=1)
        FillRecord(1.5, "buy", 1_999.6, 3.0, 0.0, "maker"),
        # sold 10 bps under fair 2,010: a loss of 10 bps (t=2 reads t=2 exactly)
        FillRecord(2.0, "sell", 2_007.99, 1.0, 0.0, "maker"),
        FillRecord(float("nan"), "sell", 9_999.0, 5.0, 0.0, "maker"),  # block never seen: skipped
    ]
    return RunRecord(
        meta=RunMeta("edge", 0, "2025-01-01T00:00:00+00:00", 4.0, "x"),
        samples=samples,
        fills=fills,
    )


def test_edge_and_centre_are_against_the_worlds_fair_value() -> None:
    e = build_report(_edge_record())["edge"]
    buy = (2_000.0 - 1_999.6) / 2_000.0 * 1e4  # +2 bps
    sell = (2_007.99 - 2_010.0) / 2_010.0 * 1e4  # -10 bps
    assert e["buy_bps"] == pytest.approx(buy) and e["sell_bps"] == pytest.approx(sell)
    # size-weighted (3 : 1), not the plain mean of the two (-4 bps), not against the index
    assert e["per_fill_bps"] == pytest.approx((3.0 * buy + 1.0 * sell) / 4.0)
    assert e["per_fill_bps"] == pytest.approx(-1.0, abs=0.01)
    assert e["fills_measured"] == 2
    offs = [5.0, -5.0, (2_002.0 - 2_010.0) / 2_010.0 * 1e4]
    assert e["centre_steps"] == 3
    assert e["centre_abs_bps"] == pytest.approx(np.mean(np.abs(offs)))
    assert e["centre_signed_bps"] == pytest.approx(np.mean(offs))
    row = summary_row(build_report(_edge_record()))
    assert row["edge_bps"] == e["per_fill_bps"] and row["centre_bps"] == e["centre_abs_bps"]


def test_the_centre_error_splits_into_its_causes() -> None:
    # Quotes 1,999 / 2,003 (centre 2,001) priced at fair 1,999.5 by an agent that read 1,999.7,
    # skewed r up 0.9 (inventory 1.0, funding -0.3, momentum +0.2) to 2,000.6; the model's prices
    # averaged 2,000.95 before the tick; the world's fair value is now 2,000.
    basis = CentreBasis(
        model_centre=2_000.95,
        reservation=2_000.6,
        funding_shift=-0.3,
        momentum_shift=0.2,
        fair_estimate=1_999.7,
        fair_then=1_999.5,
    )
    rec = _edge_record()
    first = replace(rec.samples[0], centre_basis=basis)
    e = build_report(replace(rec, samples=[first, *rec.samples[1:]]))["edge"]
    d = e["centre_decomposition"]
    bps = 1e4 / 2_000.0
    expected = {
        "rounding": 0.05 * bps,
        "shape": 0.35 * bps,
        "skew_inventory": 1.0 * bps,
        "skew_funding": -0.3 * bps,
        "skew_momentum": 0.2 * bps,
        "fair_estimate": 0.2 * bps,
        "stale": -0.5 * bps,
    }
    assert d["steps"] == 1 and d["signed_bps"] == pytest.approx(expected)
    assert sum(d["signed_bps"].values()) == pytest.approx(d["centre_signed_bps"]) == 5.0
    # The headline is unchanged (all three centre steps); the decomposition covers the traced one.
    assert e["centre_steps"] == 3 and d["centre_abs_bps"] == pytest.approx(5.0)
    assert e["centre_ex_skew_abs_bps"] == pytest.approx(5.0 - 0.9 * bps)
    assert summary_row(build_report(replace(rec, samples=[first])))["centre_ex_skew_bps"] == (
        pytest.approx(5.0 - 0.9 * bps)
    )
    untraced = build_report(rec)["edge"]
    assert untraced["centre_decomposition"] == {"steps": 0}
    assert untraced["centre_ex_skew_abs_bps"] is None


def test_edge_falls_back_to_the_index_and_is_empty_without_fills() -> None:
    rec = _record()  # no fair given: the index is fair; fills at 5, 15, 35 s
    e = build_report(rec)["edge"]
    fair = [60_000.0, 60_001.0, 60_003.0]  # the samples at 0, 10 and 30 s
    edges = [
        (fair[0] - 59_994.0) / fair[0] * 1e4,
        (fair[1] - 59_994.0) / fair[1] * 1e4,
        (60_006.0 - fair[2]) / fair[2] * 1e4,
    ]
    assert e["per_fill_bps"] == pytest.approx(
        (0.5 * edges[0] + 0.7 * edges[1] + 1.9 * edges[2]) / 3.1
    )
    empty = build_report(RunRecord(meta=rec.meta, samples=rec.samples))["edge"]
    assert empty["per_fill_bps"] is None and empty["fills_measured"] == 0


def _with_meta(rec: RunRecord, **meta: object) -> RunRecord:
    return replace(rec, meta=replace(rec.meta, **meta))


def test_drawdown_against_the_strategy_capital_and_its_limit() -> None:
    # The ledger's total draws down 7 (peak 8, trough 1); the world-marked equity, when every
    # step has it, is what the limit judges: it draws down 30 from a start of 10,000.
    rec = _with_meta(
        _record(),
        strategy_capital_quote=500.0,
        drawdown_warn_frac=0.02,
        drawdown_limit_frac=0.05,
        native_price_usd=None,
    )
    r = build_report(rec)["drawdown_limit"]
    assert r["equity"] == "net P&L" and r["max_usd"] == 7.0
    assert r["max_frac"] == pytest.approx(7.0 / 500.0) and r["breached"] is False
    equity = [10_000.0, 10_010.0, 9_990.0, 9_980.0, 9_985.0, 10_000.0]
    marked = replace(
        rec,
        samples=[
            replace(s, equity_usd=e, engine_drawdown_frac=0.01 * i)
            for i, (s, e) in enumerate(zip(rec.samples, equity, strict=True))
        ],
    )
    r = build_report(marked)["drawdown_limit"]
    assert r["equity"].startswith("both legs") and r["max_usd"] == pytest.approx(30.0)
    assert (r["peak_t_s"], r["trough_t_s"]) == (10.0, 30.0)
    assert r["max_frac"] == pytest.approx(0.06) and r["breached"] is True
    assert r["engine_max_frac"] == pytest.approx(0.05)
    # No capital known: reported in dollars, not judged.
    assert (
        build_report(_with_meta(marked, strategy_capital_quote=None))["drawdown_limit"]["breached"]
        is None
    )


def test_the_l1_data_fee_counts_in_the_drawdown_when_it_is_paid() -> None:
    flat = [Sample(**{**{f: getattr(s, f) for f in Sample.__slots__}, "pnl": PnlSnapshot()})
            for s in _record().samples]  # fmt: skip
    fee = TxRecord(25.0, "quote", 1, 1.0, "success", 1.0, 100, l1_data_fee_native=0.002)
    rec = RunRecord(
        meta=replace(_record().meta, strategy_capital_quote=100.0, drawdown_limit_frac=0.05),
        samples=flat,
        txs=[fee],
    )
    r = build_report(rec)["drawdown_limit"]
    assert r["max_usd"] == pytest.approx(6.0)  # 0.002 native × $3,000, paid at t=25
    assert r["trough_t_s"] == 30.0 and r["breached"] is True


def test_paying_side_at_funding_snapshots_against_the_cap() -> None:
    snaps = [
        FundingSnapshotRecord(60.0, 1e-4, 0.4, 0.4),
        FundingSnapshotRecord(120.0, -1e-4, 0.9, 0.0),  # long while shorts pay: not paying
        FundingSnapshotRecord(180.0, -1e-4, -1.3, 1.3),
    ]
    r = build_report(replace(_record(), funding_snapshots=snaps))
    ps = r["paying_side"]
    assert (ps["snapshots"], ps["cap_base"], ps["breaches"]) == (3, 1.0, 1)
    assert ps["max_base"] == 1.3 and ps["mean_base"] == pytest.approx(1.7 / 3)
    row = summary_row(r)
    assert row["paying_max"] == 1.3 and row["paying_over_cap"] == 1
    none = build_report(_record())["paying_side"]
    assert (none["snapshots"], none["max_base"], none["breaches"]) == (0, 0.0, 0)


def test_drawdown_check_sets_the_ledger_beside_the_world() -> None:
    # The ledger draws down 7 (peak 8, trough 1); the world-priced equity 6.5 on the same path.
    equity = [100.0, 105.0, 102.0, 108.0, 101.5, 103.0]
    rec = replace(
        _record(),
        samples=[replace(s, equity_usd=e) for s, e in zip(_record().samples, equity, strict=True)],
    )
    chk = build_report(rec)["drawdown_check"]
    assert chk["ledger_usd"] == 7.0 and chk["world_usd"] == pytest.approx(6.5)
    assert chk["diff_usd"] == pytest.approx(0.5) and chk["agree"] is True
    assert chk["tracking_gap_usd"] == pytest.approx(0.5) and chk["final_gap_usd"] == 0.0
    assert summary_row(build_report(rec))["world_dd_usd"] == pytest.approx(6.5)
    # A frozen leg: the ledger dips 40 that the world never saw, and gives it back.
    phantom = [
        replace(s, pnl=PnlSnapshot(total=s.pnl.total - (40.0 if s.t_s == 40.0 else 0.0)))
        for s in rec.samples
    ]
    chk = build_report(replace(rec, samples=phantom))["drawdown_check"]
    assert chk["ledger_usd"] == 47.0 and chk["agree"] is False
    assert chk["tracking_gap_usd"] == pytest.approx(40.5) and chk["final_gap_usd"] == 0.0
    # Not observed: the ledger's figure alone, nothing judged.
    assert build_report(_record())["drawdown_check"]["agree"] is None


def test_the_drawdown_is_of_the_net_reported_l1_fee_included() -> None:
    fee = TxRecord(35.0, "quote", 1, 1.0, "success", 1.0, 100, l1_data_fee_native=0.01)
    r = build_report(replace(_record(), txs=[fee]))
    # $30 of L1 data fee paid at t=35, after the peak: the trough at t=40 is 30 deeper.
    assert r["pnl"]["total"] == pytest.approx(3.0 - 30.0)
    assert r["max_drawdown"]["usd"] == pytest.approx(7.0 + 30.0)
