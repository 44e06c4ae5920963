"""Telemetry: JSON log lines, Prometheus text format, and the real /metrics + /healthz server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from agent.errors import ConfigError
from agent.risk import RiskEngine, RiskInputs
from agent.telemetry import (
    Health,
    JsonFormatter,
    MetricsRegistry,
    RiskTelemetry,
    TelemetryServer,
    configure_logging,
)

# -- logging ---------------------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_json_log_line_has_core_and_extra_fields(restore_root_logger: None) -> None:
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    logging.getLogger("agent.test").info("placed %d orders", 3, extra={"block": 17, "tx": "0xab"})
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["msg"] == "placed 3 orders"
    assert (record["level"], record["logger"]) == ("INFO", "agent.test")
    assert (record["block"], record["tx"]) == (17, "0xab")
    assert record["ts"].endswith("Z") and "T" in record["ts"]
    # Only what the record carries: no args, no process internals.
    assert set(record) == {"ts", "level", "logger", "msg", "block", "tx"}


def test_json_log_includes_exception_and_survives_odd_extra_values() -> None:
    formatter = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "failed\nline two", (), exc_info,
        extra={"amount": complex(1, 2)},
    )  # fmt: skip
    line = formatter.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "failed\nline two"
    assert "RuntimeError: boom" in parsed["exc"]
    assert parsed["amount"] == "(1+2j)"


def test_configure_logging_replaces_its_own_handler(restore_root_logger: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(logging.INFO, stream=first)
    configure_logging(logging.INFO, json=False, stream=second)
    logging.getLogger("agent.test").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("WARNING agent.test: once")


# -- metrics ---------------------------------------------------------------------------------


def test_counter_gauge_render_with_help_type_and_escaped_labels() -> None:
    reg = MetricsRegistry()
    sent = reg.counter("mm_tx_sent_total", "Transactions sent.\nBy kind \\ type", ("kind",))
    sent.labels(kind='quote "batch"\n\\').inc(2)
    sent.labels("cancel").inc()
    gauge = reg.gauge("mm_inventory_base", "Inventory, base units")
    gauge.set(-1.5)
    gauge.inc(0.25)
    assert reg.render() == (
        "# HELP mm_inventory_base Inventory, base units\n"
        "# TYPE mm_inventory_base gauge\n"
        "mm_inventory_base -1.25\n"
        "# HELP mm_tx_sent_total Transactions sent.\\nBy kind \\\\ type\n"
        "# TYPE mm_tx_sent_total counter\n"
        'mm_tx_sent_total{kind="quote \\"batch\\"\\n\\\\"} 2.0\n'
        'mm_tx_sent_total{kind="cancel"} 1.0\n'
    )


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    reg = MetricsRegistry()
    h = reg.histogram("mm_decision_seconds", "Decision latency", ("venue",), buckets=(0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 2.0):
        h.labels(venue="dex").observe(v)
    assert reg.render().splitlines()[2:] == [
        'mm_decision_seconds_bucket{venue="dex",le="0.001"} 2',
        'mm_decision_seconds_bucket{venue="dex",le="0.01"} 3',
        'mm_decision_seconds_bucket{venue="dex",le="+Inf"} 4',
        'mm_decision_seconds_sum{venue="dex"} 2.0065',
        'mm_decision_seconds_count{venue="dex"} 4',
    ]


def test_special_values_and_unlabelled_defaults() -> None:
    reg = MetricsRegistry()
    reg.gauge("a", "x").set(math.inf)
    reg.gauge("b", "x").set(math.nan)
    reg.counter("c_total", "x")
    lines = reg.render().splitlines()
    assert "a +Inf" in lines and "b NaN" in lines and "c_total 0.0" in lines


def test_metric_misuse_is_refused() -> None:
    reg = MetricsRegistry()
    c = reg.counter("ok_total", "x", ("side",))
    with pytest.raises(ValueError, match="already registered"):
        reg.gauge("ok_total", "x")
    with pytest.raises(ValueError, match="invalid metric name"):
        reg.counter("bad-name", "x")
    with pytest.raises(ValueError, match="invalid label name"):
        reg.histogram("h", "x", ("le",))
    with pytest.raises(ValueError, match=">= 0"):
        c.labels("bid").inc(-1)
    with pytest.raises(ValueError, match="labels"):
        c.inc()
    with pytest.raises(ValueError, match="labels"):
        c.labels(venue="dex")
    with pytest.raises(ValueError, match="sorted"):
        reg.histogram("h2", "x", buckets=(1.0, 0.5))


def test_risk_telemetry_counts_transitions_and_clears_trigger_levels() -> None:
    reg = MetricsRegistry()
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
        text = reg.render()
        assert "mm_risk_state 4.0" in text
        assert 'mm_risk_transitions_total{from_state="NORMAL",to_state="WITHDRAWN"} 1.0' in text
        assert 'mm_risk_trigger_level{trigger="oracle_age_s"} 2.0' in text
        assert 'mm_risk_trigger_value{trigger="oracle_age_s"} 40.0' in text
        logged = json.loads(stream.getvalue())
        assert logged["level"] == "WARNING"
        assert logged["risk_transition"]["readings"][0]["name"] == "oracle_age_s"

        calm = replace(inputs, now_s=1.0, oracle_age_s=1.0)
        rt.record(engine.evaluate(calm), engine.drain_transitions())
        assert 'mm_risk_trigger_level{trigger="oracle_age_s"} 0.0' in reg.render()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


# -- health and server ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_health_needs_a_fresh_heartbeat_and_not_halted() -> None:
    clock = FakeClock()
    health = Health(max_heartbeat_age_s=5.0, clock=clock, provider=lambda: {"healthy": "spoof"})
    healthy, report = health.report()
    assert not healthy and report["heartbeat_age_s"] is None
    health.beat(rpc_ok=True, cex_ok=False, risk_state="WIDENED")
    clock.now_s += 5.0
    healthy, report = health.report()
    assert healthy and report["healthy"] is True  # the provider cannot override core fields
    assert (report["rpc_ok"], report["cex_ok"], report["risk_state"]) == (True, False, "WIDENED")
    clock.now_s += 0.1
    assert health.report()[0] is False
    health.beat(risk_state="HALTED")
    assert health.report()[0] is False
    assert health.report()[1]["rpc_ok"] is True  # unchanged by a beat that does not mention it


@pytest.mark.asyncio
async def test_server_serves_metrics_and_health_over_http() -> None:
    clock = FakeClock()
    reg = MetricsRegistry()
    reg.counter("mm_fills_total", "Fills").inc(3)
    health = Health(max_heartbeat_age_s=5.0, clock=clock, provider=lambda: {"block": 42})
    async with (
        TelemetryServer(reg, health, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0) as client,
    ):
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == MetricsRegistry.CONTENT_TYPE
        assert "mm_fills_total 3.0" in r.text

        r = await client.get("/healthz")
        assert r.status_code == 503  # no heartbeat yet
        health.beat(rpc_ok=True, cex_ok=True, risk_state="NORMAL")
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {
            "block": 42,
            "healthy": True,
            "heartbeat_age_s": 0.0,
            "rpc_ok": True,
            "cex_ok": True,
            "risk_state": "NORMAL",
        }
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
    logging.getLogger("agent.telemetry").disabled = True  # the traceback is expected here
    try:
        async with (
            TelemetryServer(MetricsRegistry(), health) as server,
            httpx.AsyncClient(timeout=5.0) as client,
        ):
            r = await client.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        logging.getLogger("agent.telemetry").disabled = False
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
    await asyncio.wait_for(server.stop(), timeout=2.0)
    assert await asyncio.wait_for(reader.read(), timeout=2.0) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.stop()  # idempotent


@pytest.mark.asyncio
async def test_malformed_request_gets_400() -> None:
    async with TelemetryServer(MetricsRegistry(), Health()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GARBAGE\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=2.0)
        writer.close()
        await writer.wait_closed()
    assert response.startswith(b"HTTP/1.1 400 ")


def test_server_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        TelemetryServer(MetricsRegistry(), Health(), host="0.0.0.0")  # noqa: S104
    TelemetryServer(MetricsRegistry(), Health(), host="::1")
