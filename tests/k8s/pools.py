"""Helpers for the operator tests: pools, deployments, pods and events in the emulator."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kmock
from durable.proto.v1 import durable_pb2, durable_pb2_grpc

from tests.support.kube import Emulator

NS = "team-a"
POOLS = "durable.dev/v1alpha1/durableworkerpools"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
EVENTS = "v1/events"


def pool_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "durable.dev/v1alpha1",
        "kind": "DurableWorkerPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"image": "registry.example/worker:1", **spec},
    }


async def create(kube: Emulator, body: Mapping[str, Any]) -> dict[str, Any]:
    group_version = body["apiVersion"]
    plural = {"DurableWorkerPool": "durableworkerpools", "Pod": "pods",
              "Deployment": "deployments"}[body["kind"]]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    response = await kube.post(f"{prefix}/namespaces/{NS}/{plural}", json=dict(body))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def create_pool(kube: Emulator, name: str, **spec: Any) -> dict[str, Any]:
    return await create(kube, pool_body(name, **spec))


async def patch(kube: Emulator, path: str, body: Mapping[str, Any]) -> None:
    response = await kube.patch(path, json=dict(body),
                                headers={"Content-Type": "application/merge-patch+json"})
    assert response.status == 200, await response.text()


def pool_path(name: str) -> str:
    return f"/apis/durable.dev/v1alpha1/namespaces/{NS}/durableworkerpools/{name}"


def deployment_path(name: str) -> str:
    return f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"


def live(kube: Emulator, resource: str, name: str) -> dict[str, Any] | None:
    """The object as stored now (a deep copy), or None when absent or deleted."""
    key = (kmock.resource(resource), NS, name)
    if key not in kube.objects or kube.objects[key].deleted:
        return None
    return copy.deepcopy(kube.objects[key].raw)


def history(kube: Emulator, resource: str, name: str) -> list[dict[str, Any]]:
    """Every stored version of the object, oldest first."""
    return [dict(v.raw) for v in kube.objects[resource, NS, name].history if v is not None]


def status(kube: Emulator, name: str) -> dict[str, Any]:
    return dict((live(kube, POOLS, name) or {}).get("status") or {})


def condition(kube: Emulator, name: str, type_: str) -> dict[str, Any]:
    for item in status(kube, name).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}


def replicas(kube: Emulator, name: str) -> int | None:
    deployment = live(kube, DEPLOYMENTS, name)
    return None if deployment is None else deployment["spec"]["replicas"]


def events(kube: Emulator, name: str) -> list[dict[str, Any]]:
    found = []
    for (resource, _, _), obj in kube.objects.items():
        if resource == EVENTS and not obj.deleted:
            raw = obj.raw
            if raw.get("involvedObject", {}).get("name") == name:
                found.append(raw)
    return found


def event_reasons(kube: Emulator, name: str) -> list[str]:
    return [e["reason"] for e in events(kube, name)]


async def enqueue(stub: durable_pb2_grpc.ClientServiceStub, activity_type: str, count: int) -> None:
    for _ in range(count):
        await stub.EnqueueActivity(
            durable_pb2.EnqueueActivityRequest(activity_type=activity_type, input_json="{}"))


class Worker:
    """A worker registered under a pod's name, claiming and completing over gRPC."""

    def __init__(self, stub: durable_pb2_grpc.WorkerServiceStub, worker_id: str, group: str,
                 activity_types: list[str]) -> None:
        self.stub = stub
        self.id = worker_id
        self.group = group
        self.types = activity_types
        self.held: list[durable_pb2.Task] = []

    async def register(self) -> None:
        await self.stub.RegisterWorker(durable_pb2.RegisterWorkerRequest(
            worker_id=self.id, worker_group=self.group, activity_types=self.types,
            max_concurrency=10, hostname=self.id))
        await self.heartbeat()

    async def heartbeat(self) -> None:
        await self.stub.WorkerHeartbeat(durable_pb2.WorkerHeartbeatRequest(
            worker_id=self.id, current_load=len(self.held)))

    async def claim(self, count: int) -> int:
        response = await self.stub.ClaimTasks(durable_pb2.ClaimTasksRequest(
            worker_id=self.id, activity_types=self.types, max_tasks=count, wait_seconds=0))
        self.held.extend(response.tasks)
        await self.heartbeat()
        return len(response.tasks)

    async def complete_all(self) -> None:
        for task in self.held:
            await self.stub.CompleteTask(durable_pb2.CompleteTaskRequest(
                worker_id=self.id, task_id=task.id, attempt=task.attempt, result_json="{}"))
        self.held.clear()
        await self.heartbeat()


def pod_body(name: str, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"durable.dev/pool": pool,
                                "app.kubernetes.io/name": "durable-worker"}},
        "spec": {"containers": [{"name": "worker", "image": "registry.example/worker:1"}]},
    }

