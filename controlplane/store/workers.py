"""The worker registry: register, heartbeat with load, drain, deregister."""

from __future__ import annotations

from collections.abc import Sequence

from durable.common.errors import InvalidArgument, NotFound
from durable.controlplane.store.base import StoreBase, check_name, check_names
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import Worker
from durable.controlplane.store.sticky import unstick_worker


class WorkerStore(StoreBase):
    async def register_worker(
        self,
        worker_id: str,
        *,
        worker_group: str = "default",
        activity_types: Sequence[str] = (),
        workflow_types: Sequence[str] = (),
        max_concurrency: int = 10,
        hostname: str | None = None,
        version: str | None = None,
    ) -> Worker:
        """Register (or re-register after a restart) a worker as active."""
        check_name(worker_id, "worker_id")
        check_name(worker_group or "default", "worker_group")
        if not 1 <= max_concurrency <= 100_000:
            raise InvalidArgument("max_concurrency must be between 1 and 100000")
        await self.pool.execute(
            Q.register_worker,
            worker_id,
            worker_group or "default",
            check_names(activity_types, "activity_types"),
            check_names(workflow_types, "workflow_types"),
            max_concurrency,
            self.now(),
            hostname,
            version,
        )
        return await self.get_worker(worker_id)

    async def get_worker(self, worker_id: str) -> Worker:
        rows = await self.pool.fetch(Q.get_worker, worker_id)
        if not rows:
            raise NotFound(f"worker {worker_id!r} is not registered")
        return Worker.from_row(rows[0])  # type: ignore[no-any-return]

    async def worker_heartbeat(self, worker_id: str, current_load: int) -> str:
        """Record liveness and load; returns the worker's status (a lost worker comes back)."""
        check_name(worker_id, "worker_id")
        if current_load < 0:
            raise InvalidArgument("current_load must be >= 0")
        status = await self.pool.fetchval(Q.worker_heartbeat, worker_id, current_load, self.now())
        if status is None:
            raise NotFound(f"worker {worker_id!r} is not registered (or was stopped); register it again")
        return status  # type: ignore[no-any-return]

    async def drain_worker(self, worker_id: str) -> None:
        """Stop handing tasks to the worker; it finishes what it runs. It stays draining until it
        registers again, even if it is marked lost and comes back meanwhile."""
        if await self.pool.fetchval(Q.drain_worker, worker_id) is None:
            raise NotFound(f"worker {worker_id!r} is not registered")
        async with self.pool.acquire() as conn:  # its next decisions go to other workers now
            await unstick_worker(conn, worker_id)

    async def deregister_worker(self, worker_id: str) -> int:
        """Mark the worker stopped and hand back whatever it still holds; returns that count."""
        released = await self.release_tasks(worker_id)  # type: ignore[attr-defined]
        if await self.pool.fetchval(Q.stop_worker, worker_id, self.now()) is None:
            raise NotFound(f"worker {worker_id!r} is not registered")
        async with self.pool.acquire() as conn:
            await unstick_worker(conn, worker_id)
        return released  # type: ignore[no-any-return]

    async def list_workers(self, worker_group: str | None = None, include_stopped: bool = False) -> list[Worker]:
        rows = await self.pool.fetch(Q.list_workers, worker_group or None, include_stopped)
        return [Worker.from_row(r) for r in rows]
