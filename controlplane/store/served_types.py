"""Types nobody serves: which workflow and activity types no active worker registered, and
the workflow schedule-to-start timeout that fails a workflow whose decisions nobody takes.

Workers register the types they serve (RegisterWorker). A type with waiting tasks and no
active worker is unserved: the metrics (durable_unserved_types), `durable stats` and
`durable workflows show` say so, instead of the tasks waiting in silence. With
DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT set, a workflow whose decision waited that long
for a worker of its type fails with a ScheduleToStartTimeout error (no dead-letter entry:
nothing ran, so there is nothing to requeue; start the workflow again once a worker serves it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from durable.controlplane.store.base import StoreBase, check_name, dumps
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import TypeStats

SCHEDULE_TO_START_SETTING = "DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT"


def unserved_of(stats: Iterable[TypeStats], served: set[tuple[str, str]]) -> list[TypeStats]:
    """The types of `stats` with tasks waiting (visible or delayed) that nobody serves."""
    return [s for s in stats if (s.pending or s.delayed) and (s.kind, s.type) not in served]


class ServedTypeStore(StoreBase):
    async def served_types(self) -> set[tuple[str, str]]:
        """(kind, type) pairs some active worker serves."""
        return {(r["kind"], r["type"]) for r in await self.pool.fetch(Q.served_types)}

    async def unserved_for_workflow(self, workflow_id: str) -> list[str]:
        """"kind:type" of what this workflow's pending tasks wait for that no active worker
        serves (its decision's workflow type, its steps' activity types), sorted."""
        check_name(workflow_id, "workflow_id")
        async with self.pool.acquire() as conn:
            waiting = {(r["kind"], r["type"]) for r in await conn.fetch(Q.workflow_waiting_types, workflow_id)}
            if not waiting:
                return []
            served = {(r["kind"], r["type"]) for r in await conn.fetch(Q.served_types)}
        return sorted(f"{kind}:{type_}" for kind, type_ in waiting - served)

    async def expire_unstarted_decisions(self, timeout: float, now: datetime, limit: int = 1000) -> list[str]:
        """Fail the workflows whose first try of a decision waited more than `timeout` seconds
        for a worker (ScheduleToStartTimeout); returns their ids."""
        rows = await self.pool.fetch(Q.unstarted_decisions, now - timedelta(seconds=timeout), limit)
        failed = []
        for row in rows:
            message = (
                f"no worker of workflow type {row['activity_type']!r} took its decision within "
                f"{timeout:g} s ({SCHEDULE_TO_START_SETTING}); start a worker that serves it, then "
                "start the workflow again"
            )
            async with self.pool.acquire() as conn, conn.transaction():
                wf = await self._lock_workflow(conn, row["workflow_id"])
                taken = await conn.execute(Q.fail_unstarted_decision, row["id"], message, now)
                if wf.is_terminal or taken.split()[-1] == "0":
                    continue  # claimed, superseded or ended meanwhile
                error = {"message": message, "type": "ScheduleToStartTimeout"}
                await self._append(conn, wf.id, wf.last_event_seq, [("WorkflowFailed", {"error": error})], now)
                await conn.execute(Q.set_workflow_status, wf.id, "failed", None, dumps(error), now)
                await self._cancel_open_steps(conn, wf.id, now)
            failed.append(wf.id)
        return failed
