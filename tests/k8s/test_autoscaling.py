"""Autoscaling against a real control plane: backlog up and down, drain-aware scale-down,
scale to zero and wake, the oldest-age trigger, and an unreachable or nonsensical control
plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from durable.proto.v1 import durable_pb2, durable_pb2_grpc

from tests.k8s.conftest import OperatorFactory
from tests.k8s.pools import (
    NS,
    POOLS,
    Worker,
    condition,
    create,
    create_pool,
    deployment_path,
    enqueue,
    event_reasons,
    events,
    history,
    live,
    pod_body,
    replicas,
    status,
)
from tests.support.clock import FakeClock
from tests.support.controlplane import running_control_plane
from tests.support.kube import Emulator, wait_until

pytestmark = pytest.mark.k8s

FAST = {"pollIntervalSeconds": 1, "scaleUpStabilizationSeconds": 0}


async def test_backlog_scales_up_then_down_after_the_window_idle_pods_first(
    kube: Emulator,
    control_plane: str,
    start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
    worker_stub: durable_pb2_grpc.WorkerServiceStub,
) -> None:
    operator = await start_operator(control_plane)
    await create_pool(kube, "burst", activityTypes=["resize"], scaling={
        **FAST, "minReplicas": 1, "maxReplicas": 10, "targetBacklogPerReplica": 2,
        "scaleDownStabilizationSeconds": 3})
    await wait_until(lambda: replicas(kube, "burst") == 1, what="one replica")

    await enqueue(client_stub, "resize", 8)
    await wait_until(lambda: replicas(kube, "burst") == 4, what="ceil(8 / 2) = 4 replicas")
    # The pass patches the Deployment first, then the pool's status.
    await wait_until(lambda: status(kube, "burst").get("desiredReplicas") == 4,
                     what="desiredReplicas=4")
    assert status(kube, "burst")["backlog"]["pending"] == 8
    await wait_until(lambda: "Scaled" in event_reasons(kube, "burst"), what="a Scaled event")

    # Four pods of the pool, four workers under their names: burst-0 keeps two tasks
    # running, burst-1 works through the other six; the rest are idle.
    for i in range(4):
        await create(kube, pod_body(f"burst-{i}", "burst"))
    await create(kube, pod_body("other-0", "other"))  # another pool's pod: untouched
    workers = [Worker(worker_stub, f"burst-{i}", "burst", ["resize"]) for i in range(4)]
    for worker in workers:
        await worker.register()
    assert await workers[0].claim(2) == 2
    assert await workers[1].claim(6) == 6
    await workers[1].complete_all()

    # Demand is 2 running = 1 replica, but the 3 s window holds the count first...
    await wait_until(lambda: replicas(kube, "burst") == 1, what="the scale-down to 1")
    await wait_until(lambda: status(kube, "burst").get("desiredReplicas") == 1,
                     what="desiredReplicas=1")
    held = [v for v in history(kube, POOLS, "burst")
            if any(c["reason"] == "ScaleDownStabilized"
                   for c in (v.get("status") or {}).get("conditions", []))
            and v["status"].get("desiredReplicas") == 4]
    assert held, "the scale-down window never held the pool at 4"

    # ...and before the replicas went down, the pods got their deletion costs by load.
    def cost(pod: str) -> str | None:
        obj = live(kube, "v1/pods", pod) or {}
        return (obj.get("metadata", {}).get("annotations") or {}).get(
            "controller.kubernetes.io/pod-deletion-cost")

    assert [cost(f"burst-{i}") for i in range(4)] == ["2", "0", "0", "0"]
    assert cost("other-0") is None
    requests = list(kube)
    lowered = next(i for i, r in enumerate(requests)
                   if r.method == "PATCH" and r.url.path == deployment_path("burst")
                   and isinstance(r.data, dict) and r.data["spec"]["replicas"] < 4)
    annotated = [i for i, r in enumerate(requests)
                 if r.method == "PATCH" and "/pods/burst-" in r.url.path]
    assert annotated and max(annotated) < lowered
    assert status(kube, "burst")["desiredReplicas"] == 1
    assert status(kube, "burst")["lastScaleTime"]
    labels = {"namespace": NS, "pool": "burst"}
    metrics = operator.metrics.registry
    assert metrics.get_sample_value("durable_pool_desired_replicas", labels) == 1
    assert metrics.get_sample_value("durable_pool_scale_changes_total",
                                    {**labels, "direction": "down"}) == 1
    assert metrics.get_sample_value("durable_pool_backlog_tasks",
                                    {**labels, "state": "running"}) == 2


async def test_scale_to_zero_after_idle_and_wake_on_the_first_task(
    kube: Emulator,
    control_plane: str,
    start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
    worker_stub: durable_pb2_grpc.WorkerServiceStub,
) -> None:
    await start_operator(control_plane)
    await create_pool(kube, "sleepy", activityTypes=["nap"], scaling={
        **FAST, "minReplicas": 0, "maxReplicas": 3, "scaleDownStabilizationSeconds": 0,
        "idleBeforeScaleToZeroSeconds": 2})
    await wait_until(lambda: live(kube, "apps/v1/deployments", "sleepy"), what="the Deployment")
    assert replicas(kube, "sleepy") == 0  # minReplicas 0 and nothing queued

    await enqueue(client_stub, "nap", 1)
    await wait_until(lambda: replicas(kube, "sleepy") == 1, timeout=5,
                     what="a replica within a poll interval of the first task")
    worker = Worker(worker_stub, "sleepy-0", "sleepy", ["nap"])
    await worker.register()
    assert await worker.claim(1) == 1
    await wait_until(lambda: status(kube, "sleepy").get("backlog", {}).get("running") == 1,
                     what="the task running")
    assert replicas(kube, "sleepy") == 1  # running work is not idle
    await worker.complete_all()

    await wait_until(lambda: replicas(kube, "sleepy") == 0, what="scale to zero after idling")
    reasons = [c["reason"] for v in history(kube, POOLS, "sleepy")
               for c in (v.get("status") or {}).get("conditions", [])
               if c["type"] == "ScalingLimited"]
    assert "IdleBeforeScaleToZero" in reasons  # waited for the idle period first
    await wait_until(lambda: condition(kube, "sleepy", "Ready").get("reason") == "ScaledToZero",
                     what="Ready=True ScaledToZero")
    assert condition(kube, "sleepy", "Ready")["status"] == "True"

    await enqueue(client_stub, "nap", 1)
    await wait_until(lambda: replicas(kube, "sleepy") == 1, timeout=5,
                     what="waking within a poll interval")


async def test_oldest_pending_age_adds_replicas_under_the_depth_target(
    kube: Emulator, database_url: str, start_operator: OperatorFactory
) -> None:
    clock = FakeClock()
    async with running_control_plane(database_url, clock=clock) as address:
        await start_operator(address)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = durable_pb2_grpc.ClientServiceStub(channel)
            await create_pool(kube, "aging", activityTypes=["slow"], scaling={
                **FAST, "minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 10,
                "maxOldestPendingAgeSeconds": 30})
            await enqueue(stub, "slow", 1)
            await wait_until(lambda: status(kube, "aging").get("backlog", {}).get("pending") == 1,
                             what="the pending task in the status")
            assert replicas(kube, "aging") == 1  # one task under a target of ten

            clock.advance(45)  # the task has now waited 45 s > 30 s
            await wait_until(lambda: (replicas(kube, "aging") or 0) >= 2,
                             what="a replica added for the old task")
            await wait_until(lambda: (status(kube, "aging").get("desiredReplicas") or 0) >= 2,
                             what="desiredReplicas >= 2")
            assert status(kube, "aging")["backlog"]["oldestPendingAgeSeconds"] >= 45
            await wait_until(  # kopf posts events in the background
                lambda: any("OldestPendingAge" in e["message"] for e in events(kube, "aging")
                            if e["reason"] == "Scaled"),
                what="a Scaled event naming OldestPendingAge")
            await wait_until(lambda: replicas(kube, "aging") == 3, what="up to maxReplicas")
            await wait_until(
                lambda: condition(kube, "aging", "ScalingLimited").get("reason")
                == "TooManyReplicas",
                what="ScalingLimited TooManyReplicas")


async def test_unreachable_control_plane_holds_replicas_and_reports_it(
    kube: Emulator, database_url: str, start_operator: OperatorFactory
) -> None:
    async with running_control_plane(database_url) as address:
        operator = await start_operator(address)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = durable_pb2_grpc.ClientServiceStub(channel)
            await create_pool(kube, "held", activityTypes=["job"], scaling={
                **FAST, "minReplicas": 0, "maxReplicas": 5, "targetBacklogPerReplica": 1,
                "scaleDownStabilizationSeconds": 0, "idleBeforeScaleToZeroSeconds": 0})
            await enqueue(stub, "job", 3)
            await wait_until(lambda: replicas(kube, "held") == 3, what="three replicas")
    # The control plane is gone.
    unknown = await wait_until(
        lambda: (c := condition(kube, "held", "BacklogKnown")) and c["status"] == "False" and c,
        what="BacklogKnown=False")
    assert unknown["reason"] == "ControlPlaneUnavailable"
    assert address in unknown["message"]
    await wait_until(lambda: "ControlPlaneUnavailable" in event_reasons(kube, "held"),
                     what="a Warning event")
    warning = next(e for e in events(kube, "held") if e["reason"] == "ControlPlaneUnavailable")
    assert warning["type"] == "Warning"
    # Several failed polls later the replicas are still held (never zero on missing data).
    def failed_polls() -> float:
        return operator.metrics.registry.get_sample_value(
            "durable_pool_backlog_errors_total",
            {"namespace": NS, "pool": "held", "reason": "ControlPlaneUnavailable"}) or 0.0

    await wait_until(lambda: failed_polls() >= 3, what="more failed polls")
    assert replicas(kube, "held") == 3
    assert status(kube, "held")["desiredReplicas"] == 3


class _Nonsense(durable_pb2_grpc.ClientServiceServicer):
    """A 'control plane' that answers GetQueueStats with impossible numbers."""

    async def GetQueueStats(self, request: Any, context: Any) -> durable_pb2.GetQueueStatsResponse:
        return durable_pb2.GetQueueStatsResponse(types=[durable_pb2.TypeStats(
            kind="activity", type=request.activity_types[0], pending=-5, claimed=1)])


@pytest.fixture
async def nonsense_address() -> AsyncIterator[str]:
    server = grpc.aio.server()
    durable_pb2_grpc.add_ClientServiceServicer_to_server(_Nonsense(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


async def test_nonsense_backlog_is_not_believed(
    kube: Emulator, control_plane: str, nonsense_address: str, start_operator: OperatorFactory
) -> None:
    await start_operator(control_plane)
    # This pool names its own control plane, which answers garbage.
    await create_pool(kube, "fooled", activityTypes=["x"], controlPlaneAddress=nonsense_address,
                      scaling={**FAST, "minReplicas": 2, "maxReplicas": 4})
    unknown = await wait_until(
        lambda: (c := condition(kube, "fooled", "BacklogKnown")) and c["status"] == "False" and c,
        what="BacklogKnown=False")
    assert unknown["reason"] == "InvalidBacklog"
    assert "pending=-5" in unknown["message"]
    assert replicas(kube, "fooled") == 2
    assert "backlog" not in status(kube, "fooled")
    await wait_until(lambda: "InvalidBacklog" in event_reasons(kube, "fooled"),
                     what="an InvalidBacklog event")
