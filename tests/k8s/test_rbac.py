"""The operator's RBAC in the chart is exactly what the operator uses: its requests to the API
server during a full pool lifecycle, mapped to (API group, resource, verb), must equal the
verbs the chart grants (kopf's own discovery needs aside)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
import helm_python as helm

from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc
from tests.k8s.conftest import OperatorFactory
from tests.k8s.pools import (
    NS,
    create,
    create_pool,
    deployment_path,
    enqueue,
    patch,
    pod_body,
    pool_path,
    replicas,
    status,
)
from tests.support.kube import Emulator, wait_until

pytestmark = pytest.mark.k8s

CHART = Path(__file__).resolve().parents[2] / "charts" / "durable"
_RESOURCE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
# kopf's cluster discovery, which the emulator runs with scanning off: granted, not exercised here.
KOPF_DISCOVERY = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def used_permissions(requests: list[Any]) -> set[tuple[str, str, str]]:
    used = set()
    for r in requests:
        if not str(r.headers.get("User-Agent", "")).startswith(("kopf", "durable-operator")):
            continue  # the test's own requests
        match = _RESOURCE.match(r.url.path)
        if match is None or (match["core"] is None and match["group"] is None):
            continue
        group = "" if match["core"] else match["group"]
        resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
        if match["resource"] == "namespaces" and match["ns"] is None and match["name"]:
            continue
        if r.method == "GET":
            verb = "watch" if r.url.query.get("watch") in ("true", "1") else ("get" if match["name"] else "list")
        else:
            verb = _VERBS[r.method]
        used.add((group, resource, verb))
    return used


def granted_permissions(values: dict[str, Any] | None = None, kinds: tuple[str, ...] = ("ClusterRole", "Role"),
                        namespace: str = "durable") -> set[tuple[str, str, str]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {"database": {"existingSecret": "db"}}, name="durable", namespace=namespace)
    granted = set()
    for name, text in manifests.items():
        if not name.endswith(".yaml"):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if not doc or doc.get("kind") not in kinds or "operator" not in doc["metadata"]["name"]:
                continue
            for rule in doc.get("rules", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        for verb in rule.get("verbs", []):
                            granted.add((group, resource, verb))
    return granted


async def test_operator_rbac_is_exactly_what_it_uses(
    kube: Emulator,
    control_plane: str,
    start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
    worker_stub: durable_pb2_grpc.WorkerServiceStub,
) -> None:
    await start_operator(control_plane)
    # create, scale up, pod deletion costs on the way down, drift repair, an invalid pool, delete
    await create_pool(kube, "full", activityTypes=["job"], scaling={
        "pollIntervalSeconds": 1, "minReplicas": 1, "maxReplicas": 4, "targetBacklogPerReplica": 1,
        "scaleDownStabilizationSeconds": 0})
    await wait_until(lambda: replicas(kube, "full") == 1, what="one replica")
    await create(kube, pod_body("full-0", "full"))
    await create(kube, pod_body("full-1", "full"))
    await enqueue(client_stub, "job", 2)
    await wait_until(lambda: replicas(kube, "full") == 2, what="two replicas")
    # the backlog drains: pods get their deletion costs, then the pool scales down
    for pod in ("full-0", "full-1"):
        await worker_stub.RegisterWorker(pb.RegisterWorkerRequest(worker_id=pod, activity_types=["job"]))
    claimed = await worker_stub.ClaimTasks(pb.ClaimTasksRequest(worker_id="full-0", activity_types=["job"], max_tasks=2))
    for task in claimed.tasks:
        await worker_stub.CompleteTask(pb.CompleteTaskRequest(worker_id="full-0", task_id=task.id,
                                                              attempt=task.attempt, result_json="{}"))
    await wait_until(lambda: replicas(kube, "full") == 1, what="the scale-down")
    await patch(kube, deployment_path("full"), {"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}}}})
    await wait_until(lambda: replicas(kube, "full") is not None and status(kube, "full").get("observedGeneration") == 1,
                     what="status written")
    # a Deployment of that name that is not the pool's: the create conflicts, the operator reads it
    await create(kube, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "squatter", "namespace": NS},
                        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
                            "metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}}}})
    await create_pool(kube, "squatter", activityTypes=["job"])
    await wait_until(lambda: any(c.get("reason") == "DeploymentError" for c in status(kube, "squatter").get("conditions", [])),
                     what="the squatted pool's condition")
    await create_pool(kube, "broken", activityTypes=["job"], scaling={"minReplicas": 5, "maxReplicas": 1})
    await wait_until(lambda: any(c.get("reason") == "InvalidSpec" for c in status(kube, "broken").get("conditions", [])),
                     what="the invalid pool's condition")
    response = await kube.delete(pool_path("full"))
    assert response.status in (200, 202)
    await wait_until(lambda: replicas(kube, "full") is None, what="the owned Deployment to go")

    used = used_permissions(list(kube))
    granted = granted_permissions()
    assert used <= granted, f"the operator uses what the chart does not grant: {sorted(used - granted)}"
    unused = granted - used - KOPF_DISCOVERY
    assert not unused, f"the chart grants what the operator never uses: {sorted(unused)}"


async def test_a_namespaced_operator_needs_only_the_roles_the_chart_gives_it(
    kube: Emulator,
    control_plane: str,
    start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
) -> None:
    """operator.namespaced=true: Roles in the release namespace and nothing cluster-wide; the
    operator (watching that namespace, discovery watches off) makes only requests inside it."""
    values = {"database": {"existingSecret": "db"}, "operator": {"namespaced": True}}
    assert granted_permissions(values, kinds=("ClusterRole",), namespace=NS) == set()
    granted = granted_permissions(values, kinds=("Role",), namespace=NS)
    await start_operator(control_plane, namespaces=[NS], scanning=False)
    await create_pool(kube, "scoped", activityTypes=["job"], scaling={
        "pollIntervalSeconds": 1, "minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 1})
    await wait_until(lambda: replicas(kube, "scoped") == 1, what="one replica")
    await enqueue(client_stub, "job", 2)
    await wait_until(lambda: replicas(kube, "scoped") == 2, what="two replicas")
    ours = [r for r in kube if str(r.headers.get("User-Agent", "")).startswith(("kopf", "durable-operator"))]
    outside = sorted({r.url.path for r in ours if _RESOURCE.match(r.url.path)
                      and f"/namespaces/{NS}/" not in r.url.path})
    assert outside == [], f"requests outside the watched namespace: {outside}"
    used = used_permissions(ours)
    assert used <= granted, f"the operator uses what the Role does not grant: {sorted(used - granted)}"
