"""A ClaimTasks whose caller goes away while the claim runs gives back what it took at once.

A worker shutting down (or a deadline running out) cancels its in-flight ClaimTasks. If the
claim had already committed, its tasks would wait for the reaper (REAPER_STALE_AFTER, 30 s);
the service hands them back instead, without burning an attempt.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.grpc.worker_service import WorkerService
from durable.controlplane.store import Store
from durable.proto.v1 import durable_pb2 as pb


class ClaimThenStall(Store):
    """A store whose claim commits, then waits until released: the window in which a caller
    can go away with the tasks already taken."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimed = asyncio.Event()
        self.release = asyncio.Event()

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().claim(*args, **kwargs)
        self.claimed.set()
        await self.release.wait()
        return result


async def test_a_claim_whose_caller_left_goes_back_at_once(store: Store, worker: str) -> None:
    stalling = ClaimThenStall(store.pool, clock=store.now)
    ids = [await store.enqueue_activity("a", {"i": i}) for i in range(3)]
    service = WorkerService(stalling, TaskSignals(), max_payload_bytes=1 << 20)
    call = asyncio.ensure_future(service.ClaimTasks(
        pb.ClaimTasksRequest(worker_id=worker, activity_types=["a"], max_tasks=10), context=None))
    await asyncio.wait_for(stalling.claimed.wait(), 10)
    assert {(await store.get_task(i)).status for i in ids} == {"claimed"}

    call.cancel()  # the caller is gone; the claim itself is still finishing
    await asyncio.sleep(0)
    stalling.release.set()
    await asyncio.gather(call, return_exceptions=True)
    assert call.cancelled()

    tasks = [await store.get_task(i) for i in ids]
    assert [(t.status, t.claimed_by, t.attempt - t.release_count) for t in tasks] == [("pending", None, 0)] * 3
    [again], _ = await store.claim(worker, ["a"], limit=1)  # and they are claimable again
    assert again.id in ids and again.attempt == 2
