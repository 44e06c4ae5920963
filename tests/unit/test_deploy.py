"""Deployment files under scripts/deploy: what can be checked without a Docker engine.

- The Prometheus rules and config pass ``promtool check`` and the rules' own unit tests.
- Every metric a rule or a dashboard panel queries exists in the agent's registry, with the
  labels the query uses.
- The compose file hangs together (services, mounts, commands) and its agent config loads
  with the agent's own loader; the systemd unit passes ``systemd-analyze verify``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import _commands
from agent.config import load_config
from agent.telemetry import Health, MetricsRegistry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "scripts" / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mm-agent.json"

# Series Prometheus itself adds to every scrape target.
_PROMETHEUS_OWN = {"up"}
_TARGET_LABELS = {"job", "instance", "agent"}
_METRIC_PREFIXES = ("mm_", "process_", "python_")


def _promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".venv" / "bin" / "promtool")
    if not os.access(found, os.X_OK):
        pytest.skip(
            "promtool not found: run ./scripts/setup (it extracts promtool from Debian's "
            "prometheus package) or `apt-get install prometheus`"
        )
    return found


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


# -- Prometheus ------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = _promtool()
    for argv in (
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
        ("check", "config", "prometheus.yml"),
    ):
        out = _run(promtool, *argv, cwd=PROM)
        assert out.returncode == 0, (argv, out.stdout, out.stderr)


def _rule_exprs() -> list[str]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _registry_labels() -> dict[str, set[str]]:
    """Every sample name the agent exposes → the label names it carries."""
    reg = MetricsRegistry()
    reg.register_collector(Health())  # the TelemetryServer registers it in a running agent
    out: dict[str, set[str]] = {}
    for family in reg.collector_registry.collect():
        labels = set(getattr(family, "_labelnames", ()))
        for s in family.samples:
            labels |= set(s.labels)
        names = {family.name, *(s.name for s in family.samples)}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + x for x in ("_bucket", "_sum", "_count")}
            labels.add("le")
        for n in names:
            out.setdefault(n, set()).update(labels)
    # Labelled families with no child yet have no samples: take their labels from the catalog.
    for name, (kind, labelnames) in reg.declared().items():
        for n in (name, name + "_bucket", name + "_sum", name + "_count"):
            out.setdefault(n, set()).update(labelnames)
        if kind == "histogram":
            out[name + "_bucket"].add("le")
    return out


def _used(exprs: list[str]) -> dict[str, set[str]]:
    """Metric names in PromQL expressions → label names used in their selectors/aggregations."""
    used: dict[str, set[str]] = {}
    for expr in exprs:
        for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
            name, selector = m.group(1), m.group(2) or ""
            if not (name.startswith(_METRIC_PREFIXES) or name in _PROMETHEUS_OWN):
                continue
            labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", selector))
            used.setdefault(name, set()).update(labels)
        # "by (a, b)" must name labels of the metrics inside the aggregation.
        for by in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            names = {n.strip() for n in by.split(",") if n.strip()}
            for name in re.findall(r"\b((?:mm_|process_)\w+)", expr):
                used.setdefault(name, set()).update(names)
    return used


@pytest.mark.parametrize("source", ["alert rules", "dashboard"])
def test_every_queried_metric_and_label_exists_in_the_agents_registry(source: str) -> None:
    exprs = _rule_exprs() if source == "alert rules" else _dashboard_exprs()
    used = _used(exprs)
    have = _registry_labels()
    assert len(used) >= (8 if source == "alert rules" else 20), sorted(used)  # the parse found them
    missing = sorted(n for n in used if n not in have and n not in _PROMETHEUS_OWN)
    assert missing == [], f"{source} query metrics the agent does not export: {missing}"
    bad_labels = {
        n: sorted(labels - have.get(n, set()) - _TARGET_LABELS)
        for n, labels in used.items()
        if n not in _PROMETHEUS_OWN and labels - have.get(n, set()) - _TARGET_LABELS
    }
    assert bad_labels == {}, f"{source} use labels these metrics do not have: {bad_labels}"


def test_the_name_check_catches_an_unknown_metric() -> None:
    used = _used(["rate(mm_not_a_metric_total[5m])", 'mm_open_orders{venue="x"}'])
    have = _registry_labels()
    assert "mm_not_a_metric_total" not in have
    assert used["mm_open_orders"] - have["mm_open_orders"] == {"venue"}


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_uses_the_provisioned_datasource_and_is_loaded_from_the_mounted_path() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == uid for p in panels)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/mm-agent.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = _compose()
    assert f"./grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


# -- compose ---------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def test_compose_services_reference_what_exists() -> None:
    doc = _compose()
    services = doc["services"]
    assert {"chain", "cex-sim", "deploy", "agent", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in services, name
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(services), name
        for volume in svc.get("volumes", []):
            src = volume.split(":", 1)[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name} mounts missing {src}"
            else:
                assert src in doc["volumes"], f"{name} mounts undeclared volume {src}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        # Our image's entrypoint is mm-agent: its first argument must be a real subcommand.
        if svc.get("image", "").startswith("${MM_AGENT_IMAGE") and "entrypoint" not in svc:
            assert svc["command"][0] in _commands(), (name, svc["command"])


def test_compose_agent_config_loads_and_matches_the_stack() -> None:
    cfg = load_config(DEPLOY / "mm.compose.toml", env={})
    services = _compose()["services"]
    # Prometheus scrapes the agent's port, across containers: the opt-in must be on.
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    (target,) = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert services["agent"]["network_mode"] == f"service:{host}"
    assert int(port) == cfg.telemetry.port and cfg.telemetry.allow_external_bind
    # The image's own HEALTHCHECK probes the same port.
    assert f"127.0.0.1:{cfg.telemetry.port}/healthz" in (DEPLOY / "Dockerfile").read_text()
    # The hedge market is the one the simulator serves, at the price the deployment uses.
    sim = dict(a.removeprefix("--").split("=", 1) for a in services["cex-sim"]["command"][1:])
    assert sim["symbol"] == cfg.hedge.symbol
    assert cfg.hedge.base_url == f"http://127.0.0.1:{sim['port']}"
    deploy = dict(a.removeprefix("--").split("=", 1) for a in services["deploy"]["command"][1:])
    assert float(deploy["initial-price"]) == float(sim["mid"])
    assert Path(deploy["out"]) == cfg.chain.deployment_file
    chain_id = next(a for a in services["chain"]["command"] if a.startswith("--chain-id="))
    assert int(chain_id.split("=")[1]) == cfg.chain.chain_id


# -- Dockerfile and systemd ------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M)
    assert stages == ["foundry", "python", "runtime"]
    final = text.split("AS runtime", 1)[1]
    (user,) = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user.split(":")[0] not in ("0", "root")
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)", text, re.M):
        assert (ROOT / src).exists(), src
    # The same npm install flags as scripts/setup (locked versions, no postinstall downloads).
    setup = (ROOT / "scripts" / "setup").read_text()
    flags = "npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error"
    assert flags in text and flags in setup
    package = json.loads((ROOT / "contracts" / "package.json").read_text())
    assert "@foundry-rs/anvil" in package["devDependencies"]


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = (DEPLOY / "mm-agent.service").read_text()
    keys = {line.split("=", 1)[0] for line in unit.splitlines() if "=" in line and line[0] != "#"}
    assert {
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "CapabilityBoundingSet",
        "RestrictAddressFamilies",
        "SystemCallFilter",
        "Restart",
        "StartLimitBurst",
        "User",
    } <= keys
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found: apt-get install systemd")
    # verify insists the ExecStart binary exists: point it at this checkout's.
    mm_agent = ROOT / ".venv" / "bin" / "mm-agent"
    if not mm_agent.exists():
        pytest.skip("no .venv/bin/mm-agent: run ./scripts/setup")
    local = tmp_path / "mm-agent.service"
    local.write_text(unit.replace("/opt/mm-agent/.venv/bin/mm-agent", str(mm_agent)))
    out = _run(analyze, "verify", str(local), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr
