"""The operations artifacts agree with the code: alert rules are valid and each has a
runbook entry, dashboards and alerts only use metrics that exist, Kubernetes replicas stay
within the partitions their consumers can use, and every AUTODM_ variable a deployment sets
is a real setting."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import shared.platform.metrics  # noqa: F401  (registers the domain metrics)
from shared.contracts.topics import BY_NAME
from tests.conftest import ROOT
from tests.settings import AllSettings

PROMETHEUS = ROOT / "deploy" / "prometheus"
K8S = ROOT / "deploy" / "k8s"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
# Exported by Prometheus itself or by faststream's middleware, not by shared/platform/metrics.py.
EXTERNAL_METRICS = re.compile(r"^(up|faststream_\w+)$")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (`make tools` installs Debian's prometheus)")
    return subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_rules_config_and_alert_unit_tests() -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts_test.yml"),
    ):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "AutoDMDeadLettersGrowing",
        "AutoDMCircuitBreakerOpen",
        "AutoDMConsumerLagHigh",
        "AutoDMTokensExpiringSoon",
        "AutoDMWebhookSignatureFailures",
        "AutoDMWebhooksRefused",
        "AutoDMOutboxBacklog",
        "AutoDMStuckDms",
    } <= names


def test_every_alert_has_a_runbook_section_it_links_to() -> None:
    sections = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE))
    for rule in alert_rules():
        assert rule["alert"] in sections, f"docs/RUNBOOK.md lacks ## {rule['alert']}"
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()


def known_metric_names() -> set[str]:
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.update(sample.name for sample in metric.samples)
        names.add(metric.name)
        if metric.type == "histogram":
            names.update(f"{metric.name}_{s}" for s in ("bucket", "sum", "count"))
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    return names


def metric_names_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r"\b((?:autodm|faststream)_\w+|up)\b", without_labels))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "autodm.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alerts_and_dashboard_only_use_metrics_that_exist() -> None:
    known = known_metric_names()
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    used = set().union(*(metric_names_in(e) for e in exprs))
    missing = {n for n in used if n not in known and not EXTERNAL_METRICS.match(n)}
    assert not missing, f"not defined in shared/platform/metrics.py: {sorted(missing)}"


def test_dashboard_covers_every_domain_metric() -> None:
    shown = set().union(*(metric_names_in(e) for e in dashboard_exprs()))
    domain = {m.name for m in REGISTRY.collect() if m.name.startswith("autodm_")}
    bare = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in shown}
    assert domain <= bare | shown, f"not on the dashboard: {sorted(domain - bare - shown)}"


def k8s_documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def deployments() -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc["kind"] == "Deployment"]


# `python -m services.api` serves the API's HTTP app (services/api/__main__.py).
APP_MODULES = {"services.api": "services.api.http.app"}


def _subscribers(module: str) -> list[Any]:
    app_module = importlib.import_module(APP_MODULES.get(module, f"{module}.app"))
    app = app_module.create_app(AllSettings())
    broker = getattr(app.state, "broker", None)  # the API's HTTP process has none
    return list(broker.subscribers) if broker is not None else []


def consumed_topics(module: str) -> list[str]:
    """The topics a service subscribes to, read from its own composition root."""
    return [name for sub in _subscribers(module) for name in sub.topic_names]


def consumed_groups(module: str) -> set[tuple[str, str]]:
    """(consumer group, topic) of every subscriber of a service."""
    return {(sub.group_id, name) for sub in _subscribers(module) for name in sub.topic_names}


def test_every_service_has_a_deployment_with_probes_and_resources() -> None:
    modules = set()
    for deployment in deployments():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        modules.add(container["command"][-1])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
    services = {
        f"services.{p.name}" for p in (ROOT / "services").iterdir() if (p / "__main__.py").exists()
    }
    assert services <= modules


@pytest.mark.parametrize("name", [d["metadata"]["name"] for d in deployments()])
def test_replicas_stay_within_the_partitions_they_consume(name: str) -> None:
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == name]
    module = deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    replicas = deployment["spec"]["replicas"]
    for topic in consumed_topics(module):
        partitions = BY_NAME[topic].partitions
        assert replicas <= partitions, f"{name}: {replicas} replicas > {partitions} of {topic}"


def autodm_variables(text: str) -> set[str]:
    return set(re.findall(r"\b(AUTODM_[A-Z0-9_]+)\b", text))


@pytest.mark.parametrize(
    "path",
    [ROOT / "docker-compose.yml", *sorted(K8S.glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_deployment_variables_are_settings_fields(path: Path) -> None:
    fields = {f"AUTODM_{name.upper()}" for name in AllSettings.model_fields}
    unknown = autodm_variables(path.read_text()) - fields
    assert not unknown, f"{path.name} sets variables no setting reads: {sorted(unknown)}"
