"""deploy/k8s renders with `kubectl kustomize` for both overlays, and every object it renders validates
against the Kubernetes schemas (offline, kubernetes-validate); then what the README promises of them, and
that a pod stopped drains before it is killed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.http import KEEPALIVE_SECONDS
from shared.launcher import ROOT
from shared.service_app import drain_seconds
from shared.settings import SERVICES

K8S = ROOT / "deploy" / "k8s"
DEPLOYMENTS = {"gateway", *SERVICES}
AUTOSCALED = {"gateway", "tasks", "face", "detect"}
GPU_ENGINES = {"face", "detect"}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: the manifests cannot be rendered here"
)


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The overlay's objects, with the example secrets standing in for the operator's secrets.env."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(tree / "base" / "secrets.env.example", tree / "base" / "secrets.env")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def overlay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    return request.param, render(request.param, tmp_path_factory.mktemp(request.param))


def test_every_object_validates_against_the_kubernetes_schemas(overlay):
    _, objects = overlay
    version = kubernetes_validate.latest_version()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_a_deployment_service_and_budget_per_process(overlay):
    _, objects = overlay
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    assert set(deployments) == DEPLOYMENTS
    assert set(services) == DEPLOYMENTS
    assert set(by_kind(objects, "PodDisruptionBudget")) == DEPLOYMENTS
    config = next(name for name in by_kind(objects, "ConfigMap") if name.startswith("labelhive-config-"))
    secret = next(name for name in by_kind(objects, "Secret") if name.startswith("labelhive-secrets-"))
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= labels.items(), name
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert container["envFrom"] == [{"configMapRef": {"name": config}}], name
        secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        assert secret_refs == {secret}, name
        if name != "gateway":  # the gateway's own /healthz asks every service (see gateway.yaml)
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        else:
            assert container["readinessProbe"] and container["livenessProbe"]
    dataset_secrets = {e["name"] for e in deployments["dataset"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    gateway_secrets = {e["name"] for e in deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL"} <= dataset_secrets
    assert gateway_secrets == {"LABELHIVE_INTERNAL_SECRET", "REDIS_URL"}  # no database, no storage keys


def test_autoscalers_ingress_and_migrations(overlay):
    _, objects = overlay
    autoscalers = by_kind(objects, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers.values()} == AUTOSCALED
    for name in AUTOSCALED:  # the autoscaler owns their replica count
        assert "replicas" not in by_kind(objects, "Deployment")[name]["spec"]
    (ingress,) = by_kind(objects, "Ingress").values()
    backends = [
        path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]
    ]
    assert backends == ["gateway"]
    (job,) = by_kind(objects, "Job").values()
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert all(service in command for service in ("auth", "dataset", "tasks", "face", "detect", "stats"))
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {"labelhive"}


def test_gpus_only_in_the_gpu_overlay(overlay):
    name, objects = overlay
    for deployment_name, deployment in by_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        wants_gpu = name == "gpu" and deployment_name in GPU_ENGINES
        assert ("nvidia.com/gpu" in limits) == wants_gpu, deployment_name
        assert ("nodeSelector" in pod) == wants_gpu, deployment_name
        assert pod["containers"][0]["image"].endswith(f":{name}"), deployment_name


def test_the_operators_secrets_stay_out_of_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", str(K8S / "base" / "secrets.env")], cwd=ROOT)
    assert ignored.returncode == 0, "deploy/k8s/base/secrets.env must be git-ignored"


def test_a_pod_has_time_to_drain_and_stop_before_it_is_killed(overlay):
    """After SIGTERM a pod drains (LABELHIVE_DRAIN_SECONDS, shared/service_app.py Drain), then uvicorn's
    graceful shutdown waits for the requests in flight: the grace period must hold both, and the app's end."""
    _, objects = overlay
    config = next(obj for name, obj in by_kind(objects, "ConfigMap").items() if name.startswith("labelhive-config-"))
    drain = drain_seconds(config["data"])
    assert drain > KEEPALIVE_SECONDS  # a caller's idle connection is no longer reused when the pod closes it
    for name, deployment in by_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        command = pod["containers"][0]["command"]
        graceful = float(command[command.index("--timeout-graceful-shutdown") + 1])
        assert pod["terminationGracePeriodSeconds"] >= drain + graceful + 10, name
