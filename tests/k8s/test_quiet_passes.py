"""A pool where nothing changes costs the API server nothing: the operator's passes send no
write (no Deployment patch, no status patch). What changes still lands in the pass that sees
it: a backlog change with its lastBacklogTime and conditions, an edit of the Deployment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from durable.operator import reconciler as reconciler_module
from durable.operator.reconciler import PoolReconciler
from durable.proto.v1 import durable_pb2_grpc

from tests.k8s.conftest import OperatorFactory
from tests.k8s.pools import (
    DEPLOYMENTS,
    POOLS,
    Worker,
    condition,
    create_pool,
    deployment_path,
    enqueue,
    history,
    live,
    patch,
    replicas,
    status,
)
from tests.support.kube import Emulator, wait_until

pytestmark = pytest.mark.k8s


@dataclass
class Passes:
    """The operator's passes over one pool: whether each read the backlog, what it wrote."""

    pool: str
    seen: list[tuple[bool, dict[str, Any]]] = field(default_factory=list)

    def follow(self, reconciler: PoolReconciler) -> None:
        inner = reconciler.run_once

        async def counted(body: Any, **kwargs: Any) -> dict[str, Any]:
            state = kwargs["state"]
            due = state.next_poll_at
            updates = await inner(body, **kwargs)
            if body["metadata"]["name"] == self.pool:  # runs in kopf's thread: append only
                self.seen.append((state.next_poll_at != due, updates))
            return updates

        reconciler.run_once = counted  # type: ignore[method-assign]

    def polls_since(self, mark: int) -> int:
        return sum(polled for polled, _ in self.seen[mark:])

    def quiet_polls_in_a_row(self) -> int:
        """Polling passes at the end of the record that wrote no status."""
        count = 0
        for polled, updates in reversed(self.seen):
            if updates:
                break
            count += polled
        return count


def writes_since(kube: Emulator, mark: int) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in list(kube)[mark:] if r.method != "GET"]


async def quiet(kube: Emulator, passes: Passes, what: str) -> None:
    """Wait until two polls in a row wrote nothing; then two more polls send no request that
    writes (this test sends none meanwhile)."""
    await wait_until(lambda: passes.quiet_polls_in_a_row() >= 2, timeout=15, what=what)
    mark, seen = len(list(kube)), len(passes.seen)
    await wait_until(lambda: passes.polls_since(seen) >= 2, timeout=15,
                     what="two more backlog reads")
    assert writes_since(kube, mark) == []
    assert [updates for _, updates in passes.seen[seen:] if updates] == []


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def test_quiet_pool_sends_no_writes_but_backlog_and_edits_land_at_once(
    kube: Emulator,
    control_plane: str,
    start_operator: OperatorFactory,
    client_stub: durable_pb2_grpc.ClientServiceStub,
    worker_stub: durable_pb2_grpc.WorkerServiceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No periodic lastBacklogTime refresh within the test: only changes are written.
    monkeypatch.setattr(reconciler_module, "BACKLOG_TIME_REFRESH_SECONDS", 3600.0)
    operator = await start_operator(control_plane)
    passes = Passes("calm")
    passes.follow(operator.reconciler)
    await create_pool(kube, "calm", activityTypes=["calm-job"], scaling={
        "pollIntervalSeconds": 1, "scaleUpStabilizationSeconds": 0, "minReplicas": 1,
        "maxReplicas": 5, "targetBacklogPerReplica": 2})
    await wait_until(lambda: condition(kube, "calm", "Ready").get("reason") == "WorkersNotReady",
                     what="the Deployment observed")
    await quiet(kube, passes, "the pool to settle")
    settled_read = status(kube, "calm")["lastBacklogTime"]

    # (c) A backlog change: written in the pass that reads it, with its time and conditions.
    before = _iso_now()
    assert before > settled_read  # the quiet stretch above took two polls, over a second
    await enqueue(client_stub, "calm-job", 4)
    await wait_until(lambda: replicas(kube, "calm") == 2, what="ceil(4 / 2) = 2 replicas")
    await wait_until(lambda: status(kube, "calm").get("desiredReplicas") == 2,
                     what="desiredReplicas=2")
    first = next(v["status"] for v in history(kube, POOLS, "calm")
                 if (v.get("status") or {}).get("backlog", {}).get("pending") == 4)
    assert first["lastBacklogTime"] >= before
    (known,) = [c for c in first["conditions"] if c["type"] == "BacklogKnown"]
    assert known["message"].startswith("pending 4,")
    # While tasks wait, their age (status.backlog.oldestPendingAgeSeconds) changes at every
    # read; a worker takes them, and the backlog stays the same from then on.
    worker = Worker(worker_stub, "calm-0", "calm", ["calm-job"])
    await worker.register()
    assert await worker.claim(4) == 4
    await wait_until(lambda: status(kube, "calm").get("backlog", {}).get("running") == 4,
                     what="4 running in the status")
    await quiet(kube, passes, "the pool to settle at 2 replicas")
    assert replicas(kube, "calm") == 2

    # (b) Someone edits the Deployment: put back, then quiet again.
    await patch(kube, deployment_path("calm"), {"spec": {
        "replicas": 5,
        "template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}},
    }})
    await wait_until(
        lambda: (d := live(kube, DEPLOYMENTS, "calm")) and d["spec"]["replicas"] == 2
        and d["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/worker:1",
        what="the Deployment to be put back")
    await quiet(kube, passes, "the pool to settle after the repair")
