"""Alert hook against a real local HTTP receiver (aiohttp on 127.0.0.1:0)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from agent.alerts import (
    Alert,
    Alerter,
    AlertKind,
    AlertSettings,
    PayloadFormat,
    Severity,
    render_payload,
)
from agent.errors import ConfigError
from agent.telemetry import MetricsRegistry


@dataclass
class Receiver:
    """A webhook endpoint whose answers a test scripts: (status, headers, body) per request."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, requests wait for it (a hung webhook)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        status, headers, text = self.script.pop(0) if self.script else (200, {}, "ok")
        return web.Response(status=status, headers=headers, text=text)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield rec
    finally:
        if rec.gate is not None:
            rec.gate.set()
        await runner.cleanup()


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def quiet_alert_logs() -> Iterator[None]:
    logger = logging.getLogger("agent.alerts")
    logger.disabled = True  # failures and drops are expected in these tests
    yield
    logger.disabled = False


def _fast(**kw: Any) -> AlertSettings:
    return AlertSettings(**{"retry_base_s": 0.01, "retry_max_wait_s": 0.05, **kw})


def _count(reg: MetricsRegistry, kind: str, outcome: str) -> float:
    value = reg.collector_registry.get_sample_value(
        "mm_alerts_total", {"kind": kind, "outcome": outcome}
    )
    return 0.0 if value is None else value


@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", list(PayloadFormat))
async def test_each_payload_shape_reaches_the_webhook(
    receiver: Receiver, fmt: PayloadFormat
) -> None:
    settings = _fast(format=fmt, telegram_chat_id="-100123", agent_name="maker-1")
    async with Alerter(settings, receiver.url, wall_clock=lambda: 1_700_000_000.0) as alerter:
        assert alerter.emit(
            AlertKind.RISK_HALTED, Severity.CRITICAL, "drawdown 6% > 5% <@everyone>", state="HALTED"
        )
    (body,) = receiver.bodies
    if fmt is PayloadFormat.JSON:
        assert body == {
            "kind": "risk_halted",
            "severity": "critical",
            "text": "drawdown 6% > 5% <@everyone>",
            "agent": "maker-1",
            "ts": "2023-11-14T22:13:20.000Z",
            "fields": {"state": "HALTED"},
            "suppressed": 0,
        }
    elif fmt is PayloadFormat.SLACK:
        assert set(body) == {"text"}
        assert "[maker-1] CRITICAL risk_halted" in body["text"]
        assert "drawdown 6% &gt; 5% &lt;@everyone&gt;" in body["text"]  # Slack's escaping
        assert "state=HALTED" in body["text"]
    elif fmt is PayloadFormat.DISCORD:
        assert body["allowed_mentions"] == {"parse": []}  # the text cannot ping anyone
        assert "drawdown 6% > 5%" in body["content"] and "CRITICAL" in body["content"]
    else:
        assert body["chat_id"] == "-100123" and body["disable_web_page_preview"] is True
        assert "risk_halted" in body["text"]


@pytest.mark.asyncio
async def test_server_errors_are_retried_then_delivered_once(receiver: Receiver) -> None:
    reg = MetricsRegistry(process_metrics=False)
    receiver.script = [(503, {}, "busy"), (429, {"Retry-After": "0"}, "slow down")]
    async with Alerter(_fast(), receiver.url, metrics=reg) as alerter:
        alerter.emit(AlertKind.EXCHANGE_BANNED, Severity.CRITICAL, "HTTP 418")
    assert len(receiver.bodies) == 3
    assert _count(reg, "exchange_banned", "sent") == 1
    assert _count(reg, "exchange_banned", "failed") == 0


@pytest.mark.asyncio
async def test_retries_are_bounded_and_client_errors_are_not_retried(
    receiver: Receiver, quiet_alert_logs: None
) -> None:
    reg = MetricsRegistry(process_metrics=False)
    receiver.script = [(500, {}, "down")] * 3 + [(400, {}, "bad payload")]
    async with Alerter(_fast(max_attempts=3), receiver.url, metrics=reg) as alerter:
        alerter.emit(AlertKind.GAS_OVER_BUDGET, Severity.WARNING, "base fee 250 gwei > 200")
        alerter.emit(AlertKind.GAS_BALANCE_LOW, Severity.WARNING, "0.01 ETH")
    assert [b["kind"] for b in receiver.bodies] == ["gas_over_budget"] * 3 + ["gas_balance_low"]
    assert _count(reg, "gas_over_budget", "failed") == 1
    assert _count(reg, "gas_balance_low", "failed") == 1
    assert _count(reg, "gas_over_budget", "sent") == 0


@pytest.mark.asyncio
async def test_unreachable_webhook_fails_after_the_bound(quiet_alert_logs: None) -> None:
    reg = MetricsRegistry(process_metrics=False)
    # A port nothing listens on: bind one, then close it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with Alerter(_fast(max_attempts=2), f"http://127.0.0.1:{port}/", metrics=reg) as a:
        a.emit(AlertKind.RISK_WITHDRAWN, Severity.WARNING, "oracle stale")
    assert _count(reg, "risk_withdrawn", "failed") == 1


@pytest.mark.asyncio
async def test_rate_limit_is_per_kind_and_reports_what_it_suppressed(receiver: Receiver) -> None:
    clock = FakeClock()
    reg = MetricsRegistry(process_metrics=False)
    alerter = Alerter(_fast(min_interval_s=60.0), receiver.url, metrics=reg, clock=clock)
    async with alerter:
        assert alerter.emit(AlertKind.RISK_WITHDRAWN, Severity.WARNING, "first")
        clock.now_s += 30.0
        assert not alerter.emit(AlertKind.RISK_WITHDRAWN, Severity.WARNING, "second")
        assert not alerter.emit(AlertKind.RISK_WITHDRAWN, Severity.WARNING, "third")
        # Another kind is not held back by the first.
        assert alerter.emit(AlertKind.RISK_HALTED, Severity.CRITICAL, "halted")
        clock.now_s += 30.0
        assert alerter.emit(AlertKind.RISK_WITHDRAWN, Severity.WARNING, "fourth")
    assert [(b["text"], b["suppressed"]) for b in receiver.bodies] == [
        ("first", 0),
        ("halted", 0),
        ("fourth", 2),
    ]
    assert _count(reg, "risk_withdrawn", "suppressed") == 2
    assert _count(reg, "risk_withdrawn", "sent") == 2


@pytest.mark.asyncio
async def test_a_hung_webhook_never_blocks_emit_and_overflow_is_counted(
    receiver: Receiver, quiet_alert_logs: None
) -> None:
    reg = MetricsRegistry(process_metrics=False)
    receiver.gate = asyncio.Event()
    alerter = Alerter(_fast(min_interval_s=0.0, queue_size=2), receiver.url, metrics=reg)
    await alerter.start()
    try:
        assert alerter.emit(AlertKind.GAS_BALANCE_LOW, Severity.WARNING, "1")
        await asyncio.wait_for(receiver.arrived.wait(), 5.0)  # the sender is now stuck in it
        # Queue: 2 more fit; the rest are dropped. emit() is synchronous: it cannot wait.
        low = AlertKind.GAS_BALANCE_LOW
        results = [alerter.emit(low, Severity.WARNING, str(i)) for i in (2, 3, 4, 5)]
        assert results == [True, True, False, False]
        assert alerter.pending == 3
        assert _count(reg, "gas_balance_low", "dropped") == 2
        receiver.gate.set()
    finally:
        await alerter.aclose(drain_timeout_s=5.0)
    assert [b["text"] for b in receiver.bodies] == ["1", "2", "3"]
    assert _count(reg, "gas_balance_low", "sent") == 3


@pytest.mark.asyncio
async def test_close_gives_up_on_a_hung_webhook_after_the_drain_timeout(
    receiver: Receiver, quiet_alert_logs: None
) -> None:
    receiver.gate = asyncio.Event()
    alerter = Alerter(_fast(timeout_s=30.0), receiver.url)
    await alerter.start()
    alerter.emit(AlertKind.RISK_HALTED, Severity.CRITICAL, "halted")
    await asyncio.wait_for(receiver.arrived.wait(), 5.0)
    await asyncio.wait_for(alerter.aclose(drain_timeout_s=0.2), 5.0)
    await alerter.aclose()  # idempotent


def test_settings_are_validated_and_the_url_comes_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="telegram_chat_id"):
        AlertSettings(format=PayloadFormat.TELEGRAM)
    with pytest.raises(ConfigError, match="queue_size"):
        AlertSettings(queue_size=0)
    with pytest.raises(ConfigError, match="min_interval_s"):
        AlertSettings(min_interval_s=float("nan"))
    with pytest.raises(ConfigError, match="MM_ALERT_WEBHOOK_URL"):
        AlertSettings().url_from_env({})
    url = "https://hooks.example/T000/B000/secret"
    assert AlertSettings().url_from_env({"MM_ALERT_WEBHOOK_URL": url}) == url


def test_long_text_is_clipped_to_the_platform_limit() -> None:
    alert = Alert(AlertKind.RISK_HALTED, Severity.CRITICAL, "x" * 10_000)
    discord = render_payload(alert, PayloadFormat.DISCORD)
    telegram = render_payload(alert, PayloadFormat.TELEGRAM, telegram_chat_id="1")
    assert len(discord["content"]) == 2000 and discord["content"].endswith("…")
    assert len(telegram["text"]) == 4096
    assert json.dumps(render_payload(alert, PayloadFormat.JSON))  # JSON-serialisable
