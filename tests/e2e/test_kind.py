"""End to end on a real cluster: build the image, load it into kind, install the chart, apply a
DurableWorkerPool, enqueue work, and watch the operator scale the pool's Deployment.

Needs a running Docker engine and network access (kind pulls its node image, and the cluster
pulls postgres). Where there is no Docker engine (here and in CI) it skips with that reason.
Run it on a machine with Docker (see docs/kubernetes.md):

    pip install pytest-kind
    pytest -m e2e tests/e2e/test_kind.py -v

kind and kubectl come from PATH when present, else pytest-kind downloads the versions below.
Set DURABLE_E2E_KEEP_CLUSTER=1 to keep the cluster afterwards for poking at it.
"""

from __future__ import annotations

import base64

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "durable-e2e"
NAMESPACE = "durable"
IMAGE = "durable:e2e"
# kind >= 0.24 runs Kubernetes >= 1.31 by default; the chart needs >= 1.30.
KIND_VERSION = os.environ.get("DURABLE_E2E_KIND_VERSION", "v0.27.0")
KUBECTL_VERSION = os.environ.get("DURABLE_E2E_KUBECTL_VERSION", "v1.32.2")
# The worker app the pool runs; its types do not matter for scaling (work is never claimed
# before the pods exist), only that the command starts.
WORKER_APP = os.environ.get("DURABLE_E2E_WORKER_APP", "durable.examples.agent_turn:app")
ACTIVITY_TYPE = "e2e.scale_probe"
WAIT = "300s"


def _docker_engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _tool(name: str, version: str, url: str) -> Path:
    """The tool from PATH, or where pytest-kind downloads the pinned version to."""
    found = shutil.which(name)
    if found:
        return Path(found)
    os.environ.setdefault(f"{name.upper()}_DOWNLOAD_URL", url)
    return Path(".pytest-kind") / CLUSTER / f"{name}-{version}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    if not _docker_engine_running():
        pytest.skip("needs a Docker engine for kind; none is running")
    pytest_kind = pytest.importorskip(
        "pytest_kind", reason="needs pytest-kind (pip install pytest-kind)"
    )
    kind = pytest_kind.KindCluster(
        CLUSTER,
        kind_path=_tool(
            "kind", KIND_VERSION,
            f"https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/kind-linux-amd64",
        ),
        kubectl_path=_tool(
            "kubectl", KUBECTL_VERSION,
            f"https://dl.k8s.io/release/{KUBECTL_VERSION}/bin/linux/amd64/kubectl",
        ),
        image=os.environ.get("DURABLE_E2E_NODE_IMAGE"),
    )
    kind.create()
    try:
        yield kind
    finally:
        if not os.environ.get("DURABLE_E2E_KEEP_CLUSTER"):
            kind.delete()


def apply(cluster: Any, *objects: dict[str, Any], extra: tuple[str, ...] = ()) -> str:
    manifest = yaml.safe_dump_all(objects)
    out: str = cluster.kubectl("apply", *extra, "-f", "-", input=manifest)
    return out


def wait_for(cluster: Any, resource: str, condition: str) -> None:
    """`kubectl wait`: watches until the condition holds, or fails at the deadline."""
    cluster.kubectl("wait", "-n", NAMESPACE, f"--for={condition}", resource, f"--timeout={WAIT}")


def postgres(password: str) -> list[dict[str, Any]]:
    labels = {"app": "postgres"}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "durable-database", "namespace": NAMESPACE},
         "stringData": {"DATABASE_URL": f"postgresql://postgres:{password}@postgres.{NAMESPACE}.svc:5432/postgres"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "postgres", "namespace": NAMESPACE},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{
                 "name": "postgres", "image": "postgres:17-alpine",
                 "env": [{"name": "POSTGRES_PASSWORD", "value": password}],
                 "ports": [{"containerPort": 5432}],
                 "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 2},
             }]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres", "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"port": 5432}]}},
    ]


def pool() -> dict[str, Any]:
    return {
        "apiVersion": "durable.dev/v1alpha1",
        "kind": "DurableWorkerPool",
        "metadata": {"name": "e2e-workers", "namespace": NAMESPACE},
        "spec": {
            "image": IMAGE,
            "imagePullPolicy": "Never",
            "args": ["worker", "--app", WORKER_APP],
            "activityTypes": [ACTIVITY_TYPE],
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 3,
                "targetBacklogPerReplica": 1,
                "pollIntervalSeconds": 1,
                "scaleUpStabilizationSeconds": 0,
            },
        },
    }


def test_pool_scales_with_the_backlog(cluster: Any) -> None:
    import grpc
    import helm_python as helm
    from durable.proto.v1 import durable_pb2, durable_pb2_grpc

    subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True, timeout=1800)
    cluster.load_docker_image(IMAGE)

    apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    apply(cluster, *postgres(password="e2e-only"))
    wait_for(cluster, "deployment/postgres", "condition=Available")

    chart = ROOT / "charts" / "durable"
    values: dict[str, Any] = {
        "database": {"existingSecret": "durable-database"},
        "image": {"repository": "durable", "tag": "e2e", "pullPolicy": "Never"},
    }
    with helm.Config(kubeconfig_path=cluster.kubeconfig_path, namespace=NAMESPACE) as config:
        if "durable" not in {r["name"] for r in config.list()}:  # a kept cluster has it already
            release = config.install(chart, "durable", values, wait="watcher", timeout=600)
            assert release["status"] == "deployed"
        # An upgrade runs the migrations hook again and rolls the control plane (its config
        # checksum changes with the reaper setting).
        values["controlPlane"] = {"reaper": {"intervalSeconds": 5}}
        release = config.upgrade(chart, "durable", values, wait="watcher", timeout=600)
        assert release["status"] == "deployed"

    # The API server enforces the CRD: every bad example is refused, CEL rules included.
    for bad in sorted((ROOT / "examples" / "pools" / "invalid").glob("*.yaml")):
        refused = subprocess.run(
            [str(cluster.kubectl_path), "apply", "--dry-run=server", "-n", NAMESPACE, "-f", str(bad)],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
            capture_output=True, text=True, check=False,
        )
        assert refused.returncode != 0, f"{bad.name} was accepted by the API server"

    apply(cluster, pool())
    # The operator creates the Deployment and reads the (empty) backlog.
    wait_for(cluster, "dwp/e2e-workers", "condition=BacklogKnown")
    wait_for(cluster, "deployment/e2e-workers", "create")  # kubectl >= 1.31
    deployment = json.loads(cluster.kubectl("get", "-n", NAMESPACE, "deployment/e2e-workers", "-o", "json"))
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("DurableWorkerPool", "e2e-workers", True)
    assert deployment["spec"]["selector"]["matchLabels"] == {"durable.dev/pool": "e2e-workers"}

    # Authentication is on by default: the chart generated the credentials; use its admin token.
    admin = base64.b64decode(cluster.kubectl(
        "get", "-n", NAMESPACE, "secret/durable-auth", "-o", "jsonpath={.data.admin}")).decode()
    with cluster.port_forward("svc/durable-controlplane", 9001, "-n", NAMESPACE) as port:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
            client = durable_pb2_grpc.ClientServiceStub(channel)
            for n in range(3):
                client.EnqueueActivity(
                    durable_pb2.EnqueueActivityRequest(activity_type=ACTIVITY_TYPE, input_json=json.dumps({"n": n})),
                    metadata=[("authorization", f"Bearer {admin}")],
                )
        finally:
            channel.close()

    # Three pending tasks, one per replica: the autoscaler wants 3, and the Deployment follows.
    wait_for(cluster, "dwp/e2e-workers", "jsonpath={.status.desiredReplicas}=3")
    wait_for(cluster, "deployment/e2e-workers", "jsonpath={.spec.replicas}=3")
    scale = json.loads(cluster.kubectl(
        "get", "--raw", f"/apis/durable.dev/v1alpha1/namespaces/{NAMESPACE}/durableworkerpools/e2e-workers/scale"
    ))
    assert scale["status"]["selector"] == "durable.dev/pool=e2e-workers"
