"""Health that tells the truth, operator metrics and alerts, on a real `mm-agent run` process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from sims.anvil import Anvil
from tests.chain.procs import fund_book, start_agent, telemetry_url, wait, write_config

pytestmark = [pytest.mark.chain, pytest.mark.slow]

Procs = list[subprocess.Popen[bytes]]

_LOW = "{warn = 1e12, breach = 1e11}"  # refreshes left: 10,000 ETH pays for ~10^7 here


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: (URL, the JSON bodies posted so far)."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def _failing(base: str) -> tuple[int, set[str]]:
    r = httpx.get(f"{base}/healthz", timeout=3.0)
    return r.status_code, {str(f["condition"]) for f in r.json().get("failing", [])}


def _metric(base: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=3.0).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_low_gas_withdraws_raises_health_sets_metrics_and_alerts(
    dex: Any,
    anvil: Anvil,
    accounts: dict[str, LocalAccount],
    tmp_path: Path,
    cex_process: str,
    agent_env: dict[str, str],
    procs: Procs,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, posted = webhook
    fund_book(dex, accounts)
    cfg = write_config(
        tmp_path,
        anvil,
        dex,
        cex_process,
        **{"[telemetry]": f"[risk]\ngas_refreshes_left = {_LOW}\n\n[telemetry]"},
    )
    log = tmp_path / "agent.log"
    proc = start_agent(cfg, log, {**agent_env, "MM_ALERT_WEBHOOK_URL": url})
    procs.append(proc)
    base = telemetry_url(tmp_path)
    wait(lambda: "gas_low" in _failing(base)[1], 40.0, f"gas_low ({log.read_text()[-1500:]})")
    assert _failing(base)[0] == 503
    status = tmp_path / "data" / "status.json"
    wait(lambda: json.loads(status.read_text())["state"] == "WITHDRAWN", 30.0, "WITHDRAWN")
    wait(lambda: len({p["kind"] for p in posted}) >= 2, 30.0, f"alerts ({posted})")
    assert {"gas_balance_low", "risk_withdrawn"} <= {p["kind"] for p in posted}
    balance = _metric(base, "mm_gas_balance_native")
    assert 0 < next(iter(balance.values())) <= 10_000
    assert next(iter(_metric(base, "mm_pending_nonce").values())) >= 0
    assert set(_metric(base, "mm_open_orders")) == {
        'mm_open_orders{side="bid"}',
        'mm_open_orders{side="ask"}',
    }
    assert next(iter(_metric(base, "mm_risk_state").values())) == 4  # WITHDRAWN
    proc.terminate()
    assert proc.wait(15) == 0, log.read_text()[-2000:]
    # Risk memory: a restart comes back WITHDRAWN, not NORMAL (the cooldown starts over).
    status.unlink()
    proc2 = start_agent(cfg, log, agent_env)
    procs.append(proc2)
    wait(status.exists, 60.0, "the restart's status")
    assert json.loads(status.read_text())["state"] in ("WITHDRAWN", "STARTING")
    time.sleep(1.0)
    assert json.loads(status.read_text())["state"] == "WITHDRAWN"
    proc2.terminate()
    assert proc2.wait(15) == 0
