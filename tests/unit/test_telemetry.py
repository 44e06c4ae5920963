"""Telemetry: metrics on prometheus_client, health with conditions, the real aiohttp server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.risk import RiskEngine, RiskInputs
from agent.telemetry import (
    Children,
    Condition,
    Health,
    JsonFormatter,
    MetricsRegistry,
    RiskTelemetry,
    TelemetryServer,
)

# -- metrics ---------------------------------------------------------------------------------


def _lines(reg: MetricsRegistry) -> list[str]:
    return reg.render().splitlines()


def test_counter_gauge_render_with_help_type_and_escaped_labels() -> None:
    reg = MetricsRegistry(process_metrics=False)
    sent = reg.counter("t_tx_sent_total", "Transactions sent.\nBy kind \\ type", ("kind",))
    sent.labels(kind='quote "batch"\n\\').inc(2)
    sent.labels("cancel").inc()
    gauge = reg.gauge("t_inventory_base", "Inventory, base units")
    gauge.set(-1.5)
    gauge.inc(0.25)
    lines = _lines(reg)
    assert "# HELP t_tx_sent_total Transactions sent.\\nBy kind \\\\ type" in lines
    assert "# TYPE t_tx_sent_total counter" in lines
    assert 't_tx_sent_total{kind="quote \\"batch\\"\\n\\\\"} 2.0' in lines
    assert 't_tx_sent_total{kind="cancel"} 1.0' in lines
    assert "t_inventory_base -1.25" in lines


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    reg = MetricsRegistry(process_metrics=False)
    h = reg.histogram("t_decision_seconds", "Decision latency", ("venue",), buckets=(0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 2.0):
        h.labels(venue="dex").observe(v)
    lines = _lines(reg)
    assert 't_decision_seconds_bucket{le="0.001",venue="dex"} 2.0' in lines
    assert 't_decision_seconds_bucket{le="0.01",venue="dex"} 3.0' in lines
    assert 't_decision_seconds_bucket{le="+Inf",venue="dex"} 4.0' in lines
    assert 't_decision_seconds_sum{venue="dex"} 2.0065' in lines
    assert 't_decision_seconds_count{venue="dex"} 4.0' in lines


def test_own_registry_per_agent_with_process_metrics() -> None:
    a, b = MetricsRegistry(), MetricsRegistry()
    a.counter("t_only_in_a_total", "x").inc()
    assert "t_only_in_a_total" in a.names() and "t_only_in_a_total" not in b.names()
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= (
        a.names()
    )


def test_asking_again_for_the_same_shape_returns_the_same_family() -> None:
    reg = MetricsRegistry(process_metrics=False)
    # The runtime registers its families by name; the catalog already declared them.
    fills = reg.counter("mm_fills_total", "Own fills on the DEX")
    assert fills is reg.families.fills
    pnl = reg.gauge("mm_pnl", "whatever help", ["component"])
    assert pnl is reg.families.pnl
    cycle = reg.histogram("mm_cycle_seconds", "x", buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2))
    assert cycle is reg.families.cycle_seconds


def test_children_look_each_label_set_up_once_and_render_like_labels() -> None:
    reg = MetricsRegistry(process_metrics=False)
    pnl = reg.gauge("t_pnl", "P&L by component and leg", ("component", "leg"))
    kids = Children(pnl)
    kids("spread", "dex").set(1.5)
    kids("spread", "dex").inc(1.0)  # the same child again, not a fresh one
    kids("fees", "dex").set(-0.25)
    assert kids("spread", "dex") is pnl.labels("spread", "dex")
    assert 't_pnl{component="spread",leg="dex"} 2.5' in _lines(reg)
    assert 't_pnl{component="fees",leg="dex"} -0.25' in _lines(reg)
    with pytest.raises(ValueError):
        kids("spread")  # a missing label value is refused as by labels()


def test_metric_misuse_is_refused() -> None:
    reg = MetricsRegistry(process_metrics=False)
    c = reg.counter("ok_total", "x", ("side",))
    with pytest.raises(ValueError, match="already registered as a counter"):
        reg.gauge("ok_total", "x")
    with pytest.raises(ValueError, match="already registered"):
        reg.counter("ok_total", "x", ("venue",))
    with pytest.raises(ValueError, match="already registered"):
        reg.histogram("mm_cycle_seconds", "x", buckets=(1.0, 2.0))
    with pytest.raises(ValueError, match="_total"):
        reg.counter("no_suffix", "x")
    with pytest.raises(ValueError, match=r"(?i)invalid metric name"):
        reg.gauge("bad-name", "x")
    with pytest.raises(ValueError, match=r"(?i)reserved"):
        reg.histogram("h", "x", ("le",))
    with pytest.raises(ValueError, match=r"(?i)negative"):
        c.labels("bid").inc(-1)
    with pytest.raises(ValueError, match=r"(?i)label"):
        c.inc()
    with pytest.raises(ValueError, match="sorted"):
        reg.histogram("h2", "x", buckets=(1.0, 0.5))


def test_catalog_readings_start_unknown_not_zero() -> None:
    reg = MetricsRegistry(process_metrics=False)
    lines = _lines(reg)
    # NaN, not 0: an alert "gas balance < minimum" or "risk state == HALTED" must not fire on
    # an agent that has not measured anything yet.
    for name in (
        "mm_gas_balance_native",
        "mm_inventory_base",
        "mm_hedge_gap_base",
        "mm_risk_state",
    ):
        assert f"{name} NaN" in lines, name
    assert "mm_quote_txs_total 0.0" in lines
    reg.families.gas_balance_native.set(0.25)
    assert "mm_gas_balance_native 0.25" in _lines(reg)


def test_catalog_covers_what_an_operator_needs() -> None:
    names = MetricsRegistry(process_metrics=False).names()
    wanted = {
        "mm_open_orders",
        "mm_inventory_base",
        "mm_cex_position_base",
        "mm_hedge_gap_base",
        "mm_pending_nonce",
        "mm_gas_fees_paid_native_total",
        "mm_tx_replacements_total",
        "mm_rpc_latency_seconds_bucket",
        "mm_exchange_latency_seconds_bucket",
        "mm_gas_balance_native",
        "mm_risk_state",
        "mm_risk_trigger_value",
        "mm_pnl",
        "mm_blind_cycles",
        "mm_alerts_total",
    }
    assert wanted <= names, wanted - names


def test_risk_telemetry_counts_transitions_and_clears_trigger_levels() -> None:
    reg = MetricsRegistry(process_metrics=False)
    stream = io.StringIO()
    logger = logging.getLogger("agent.risk.test")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        rt = RiskTelemetry(reg, logger)
        engine = RiskEngine()
        inputs = RiskInputs(
            now_s=0.0, index_price=100.0, realized_vol_annual=0.5, inventory_base=0.0,
            inventory_cap_base=10.0, funding_rate_predicted=0.0, funding_flip_prob=0.0,
            funding_snapshot_in_s=3600.0, base_fee_gwei=1.0, base_fee_budget_gwei=50.0,
            oldest_pending_tx_age_s=0.0, inclusion_delay_s=1.0, oracle_age_s=40.0,
            block_age_s=1.0, cex_feed_age_s=0.1, rpc_error_rate=0.0, equity_quote=1e4,
            margin_ratio=0.1, liq_distance_bps=math.inf, cex_reachable=True, cex_banned=False,
            cex_rate_limited=False, orders_per_min=0.0,
        )  # fmt: skip
        rt.record(engine.evaluate(inputs), engine.drain_transitions())
        lines = _lines(reg)
        assert "mm_risk_state 4.0" in lines
        assert 'mm_risk_transitions_total{from_state="NORMAL",to_state="WITHDRAWN"} 1.0' in lines
        assert 'mm_risk_trigger_level{trigger="oracle_age_s"} 2.0' in lines
        assert 'mm_risk_trigger_value{trigger="oracle_age_s"} 40.0' in lines
        logged = json.loads(stream.getvalue())
        assert (logged["level"], logged["event"]) == ("WARNING", "risk.transition")
        assert (logged["from_state"], logged["to_state"]) == ("NORMAL", "WITHDRAWN")
        assert logged["readings"][0]["name"] == "oracle_age_s"

        calm = replace(inputs, now_s=1.0, oracle_age_s=1.0)
        rt.record(engine.evaluate(calm), engine.drain_transitions())
        assert 'mm_risk_trigger_level{trigger="oracle_age_s"} 0.0' in _lines(reg)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


# -- health -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _failing(health: Health) -> list[str]:
    report = health.report()[1]["failing"]
    assert isinstance(report, list)
    return [f["condition"] for f in report]


def test_health_needs_a_fresh_heartbeat_and_not_halted() -> None:
    clock = FakeClock()
    health = Health(max_heartbeat_age_s=5.0, clock=clock, provider=lambda: {"healthy": "spoof"})
    healthy, report = health.report()
    assert not healthy and report["heartbeat_age_s"] is None
    assert _failing(health) == ["no_heartbeat"]
    health.beat(rpc_ok=True, cex_ok=False, risk_state="WIDENED")
    clock.now_s += 5.0
    healthy, report = health.report()
    assert healthy and report["healthy"] is True  # the provider cannot override core fields
    assert report["failing"] == []
    assert (report["rpc_ok"], report["cex_ok"], report["risk_state"]) == (True, False, "WIDENED")
    clock.now_s += 0.1
    assert health.report()[0] is False
    assert _failing(health) == ["heartbeat_stale"]
    health.beat(risk_state="HALTED")
    assert health.report()[0] is False
    assert _failing(health) == ["risk_halted"]
    assert health.report()[1]["rpc_ok"] is True  # unchanged by a beat that does not mention it


def test_conditions_are_raised_with_reasons_and_cleared() -> None:
    clock = FakeClock()
    health = Health(max_heartbeat_age_s=5.0, clock=clock)
    health.beat(risk_state="NORMAL")
    health.set_condition(Condition.GAS_LOW, "0.01 ETH < 0.05 ETH: fund the signer")
    clock.now_s += 2.0
    health.set_condition(Condition.EXCHANGE_BANNED, "HTTP 418 from /fapi/v1/order")
    health.set_condition(Condition.GAS_LOW, "0.009 ETH < 0.05 ETH: fund the signer")
    healthy, report = health.report()
    assert not healthy
    assert report["failing"] == [
        {"condition": "exchange_banned", "reason": "HTTP 418 from /fapi/v1/order", "since_s": 0.0},
        # raised again with a new reason: the reason updates, the age keeps counting
        {"condition": "gas_low", "reason": "0.009 ETH < 0.05 ETH: fund the signer", "since_s": 2.0},
    ]
    health.clear_condition(Condition.GAS_LOW)
    health.update_condition(Condition.EXCHANGE_BANNED, None)
    health.clear_condition(Condition.CHAIN_STALE)  # not raised: a no-op
    assert health.report()[0] is True and health.conditions() == {}


def test_health_is_a_collector_of_its_own_metrics() -> None:
    clock = FakeClock()
    reg = MetricsRegistry(process_metrics=False)
    health = Health(max_heartbeat_age_s=5.0, clock=clock)
    reg.register_collector(health)
    reg.register_collector(health)  # again: a no-op, not a duplicate-series error
    lines = _lines(reg)
    assert "mm_healthy 0.0" in lines and "mm_heartbeat_age_seconds NaN" in lines
    health.beat(risk_state="NORMAL")
    clock.now_s += 1.5
    health.set_condition(Condition.BLIND_CYCLES, "3 failed cycles in a row")
    lines = _lines(reg)
    assert "mm_heartbeat_age_seconds 1.5" in lines
    assert 'mm_health_condition{condition="blind_cycles"} 1.0' in lines
    assert 'mm_health_condition{condition="gas_low"} 0.0' in lines
    assert "mm_healthy 0.0" in lines


# -- server ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_serves_metrics_and_health_over_http() -> None:
    clock = FakeClock()
    reg = MetricsRegistry()
    reg.families.fills.inc(3)
    health = Health(max_heartbeat_age_s=5.0, clock=clock, provider=lambda: {"block": 42})
    async with (
        TelemetryServer(reg, health, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0) as client,
    ):
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == MetricsRegistry.CONTENT_TYPE
        assert "mm_fills_total 3.0" in r.text.splitlines()
        assert "process_cpu_seconds_total" in r.text
        assert "mm_healthy 0.0" in r.text.splitlines()

        # Prometheus asks for OpenMetrics; it gets it.
        r = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.endswith("# EOF\n")

        r = await client.get("/healthz")
        assert r.status_code == 503  # no heartbeat yet
        assert [f["condition"] for f in r.json()["failing"]] == ["no_heartbeat"]
        health.beat(rpc_ok=True, cex_ok=True, risk_state="NORMAL")
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {
            "block": 42,
            "healthy": True,
            "failing": [],
            "heartbeat_age_s": 0.0,
            "rpc_ok": True,
            "cex_ok": True,
            "risk_state": "NORMAL",
        }
        health.set_condition(Condition.RPC_FAILING, "5 consecutive RPC failures: ReadTimeout")
        r = await client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["failing"] == [
            {
                "condition": "rpc_failing",
                "reason": "5 consecutive RPC failures: ReadTimeout",
                "since_s": 0.0,
            }
        ]
        health.clear_condition(Condition.RPC_FAILING)
        assert (await client.get("/healthz")).status_code == 200
        clock.now_s += 6.0
        assert (await client.get("/healthz")).status_code == 503
        health.beat(risk_state="HALTED")
        assert (await client.get("/healthz")).status_code == 503

        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/metrics")).status_code == 405


@pytest.mark.asyncio
async def test_broken_provider_is_reported_not_raised() -> None:
    def provider() -> dict[str, object]:
        raise KeyError("positions")

    health = Health(provider=provider)
    health.beat(risk_state="NORMAL")
    logging.getLogger("agent.telemetry.health").disabled = True  # the traceback is expected
    try:
        async with (
            TelemetryServer(MetricsRegistry(), health) as server,
            httpx.AsyncClient(timeout=5.0) as client,
        ):
            r = await client.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        logging.getLogger("agent.telemetry.health").disabled = False
    assert r.status_code == 200
    assert r.json()["provider_error"] == "KeyError: 'positions'"


@pytest.mark.asyncio
async def test_stop_closes_idle_connections_and_frees_the_port() -> None:
    server = TelemetryServer(MetricsRegistry(), Health())
    await server.start()
    port = server.port
    # A client that connects and never sends a request must not keep stop() waiting.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.stop(), timeout=5.0)
    assert await asyncio.wait_for(reader.read(), timeout=2.0) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


@pytest.mark.asyncio
async def test_malformed_request_gets_400() -> None:
    async with TelemetryServer(MetricsRegistry(), Health()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=5.0)
        writer.close()
        await writer.wait_closed()
    assert response.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")


def test_server_refuses_a_non_loopback_host_without_the_opt_in() -> None:
    with pytest.raises(ConfigError, match=r"loopback.*allow_external_bind"):
        TelemetryServer(MetricsRegistry(), Health(), host="0.0.0.0")  # noqa: S104
    with pytest.raises(ConfigError, match="loopback"):
        TelemetryServer(MetricsRegistry(), Health(), host="example.org")
    TelemetryServer(MetricsRegistry(), Health(), host="::1")
    TelemetryServer(MetricsRegistry(), Health(), host="127.0.0.2")
    # With the opt-in any address is accepted (not started here: tests bind loopback only).
    TelemetryServer(MetricsRegistry(), Health(), host="0.0.0.0", allow_external_bind=True)  # noqa: S104


def test_config_binds_loopback_unless_the_opt_in_is_set(tmp_path: Path) -> None:
    cfg = tmp_path / "mm.toml"
    cfg.write_text("[telemetry]\nhost = '0.0.0.0'\n")
    with pytest.raises(ConfigError, match=r"telemetry\.host: .*allow_external_bind"):
        load_config(cfg, env={})
    assert load_config(cfg, env={"MM_TELEMETRY__ALLOW_EXTERNAL_BIND": "true"}).telemetry.host == (
        "0.0.0.0"  # noqa: S104
    )
    cfg.write_text("[telemetry]\nhost = '::1'\n")
    assert load_config(cfg, env={}).telemetry.allow_external_bind is False


def test_a_condition_logs_once_when_raised_and_once_when_cleared(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health()
    with caplog.at_level(logging.INFO, logger="agent.telemetry.health"):
        for balance in ("0.010", "0.009", "0.008"):  # a reason that changes every cycle
            health.set_condition(Condition.GAS_LOW, f"{balance} ETH < 0.05 ETH")
        health.clear_condition(Condition.GAS_LOW)
        health.clear_condition(Condition.GAS_LOW)
    lines = [(r.levelname, getattr(r, "active", None)) for r in caplog.records]
    assert lines == [("WARNING", True), ("INFO", False)]
    assert all(getattr(r, "event", None) == "health.condition" for r in caplog.records)
