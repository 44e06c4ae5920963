"""Helpers shared by the client-vs-simulator tests: settings and an in-memory journal."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.hedge import ClientConfig, HedgeRecord
from sims.cex import Faults

SYMBOL = "ETHUSDT"
# Short latencies keep the suite fast; the 250 ms default is for demos and the hedger scenario.
FAST = Faults(latency_ms=20.0, jitter_ms=5.0)


def client_config(url: str, **changes: object) -> ClientConfig:
    base = ClientConfig(
        base_url=url,
        timeout_s=0.4,
        lookup_interval_s=0.05,
        backoff_base_s=0.02,
        max_rate_limit_wait_s=2.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class MemoryJournal:
    """In-memory HedgeJournal for tests (the real one is SQLite in agent.store)."""

    rows: dict[str, HedgeRecord]

    def __init__(self) -> None:
        self.rows = {}

    def record_hedge_intent(
        self,
        intent_id: str,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: float,
        created_ms: int,
    ) -> None:
        assert client_order_id not in self.rows, f"intent journaled twice: {client_order_id}"
        self.rows[client_order_id] = HedgeRecord(
            intent_id, client_order_id, symbol, side, qty, created_ms, "INTENT", 0.0, 0.0
        )

    def update_hedge(
        self,
        client_order_id: str,
        status: str,
        filled_qty: float,
        avg_price: float,
        updated_ms: int,
    ) -> None:
        row = self.rows[client_order_id]
        self.rows[client_order_id] = replace(
            row, status=status, filled_qty=filled_qty, avg_price=avg_price
        )

    def open_hedge_intents(self) -> list[HedgeRecord]:
        final = {"FILLED", "CANCELED", "EXPIRED", "REJECTED", "NOT_SENT", "NOT_FOUND"}
        return [r for r in self.rows.values() if r.status not in final]
