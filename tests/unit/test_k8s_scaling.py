"""The Kubernetes manifests: valid against Kubernetes' own schemas (offline,
kubernetes-validate --strict), every consumer scaled on its consumer groups' lag (KEDA),
the HTTP API on CPU, and every Deployment with a disruption budget."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from shared.contracts.topics import BY_NAME
from tests.unit.test_ops_artifacts import K8S, consumed_groups, deployments, k8s_documents

# Custom resources that Kubernetes' schemas don't know; checked below by hand.
CUSTOM_KINDS = {"Kustomization", "ScaledObject"}


@pytest.mark.parametrize(
    "doc", [d for d in k8s_documents() if d["kind"] not in CUSTOM_KINDS], ids=lambda d: d["kind"]
)
def test_manifests_are_valid_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def _module(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1])


def test_every_consumer_scales_on_the_lag_of_every_group_it_runs() -> None:
    scaled = _of_kind("ScaledObject")
    for deployment in deployments():
        groups = consumed_groups(_module(deployment))
        name = deployment["metadata"]["name"]
        if not groups:
            assert name not in scaled, f"{name} consumes nothing: nothing to scale on"
            continue
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        triggers = {
            (t["metadata"]["consumerGroup"], t["metadata"]["topic"])
            for t in spec["triggers"]
            if t["type"] == "kafka"
        }
        assert triggers == groups, f"{name}: scaled on {triggers}, consumes {groups}"
        for trigger in spec["triggers"]:  # KEDA reads metadata as strings
            assert all(isinstance(v, str) for v in trigger["metadata"].values())
            assert trigger["metadata"]["bootstrapServersFromEnv"] == "AUTODM_KAFKA_BOOTSTRAP"
        # More replicas than the busiest topic's partitions would sit idle.
        most = max(BY_NAME[topic].partitions for _, topic in groups)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= most


def test_the_http_api_scales_on_cpu() -> None:
    hpa = _of_kind("HorizontalPodAutoscaler")["api"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert consumed_groups(_module(_of_kind("Deployment")["api"])) == set()


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = _of_kind("PodDisruptionBudget")
    for deployment in deployments():
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert budgets[name]["spec"]["maxUnavailable"] == 1


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for d in k8s_documents() if d["kind"] == "Kustomization"]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
