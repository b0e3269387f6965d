"""Queue statistics for the operator's autoscaler and `durable stats`."""

from __future__ import annotations

from collections.abc import Sequence

from durable.controlplane.store.base import StoreBase, check_names
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import TypeStats


class StatsStore(StoreBase):
    async def queue_stats(
        self, activity_types: Sequence[str] = (), workflow_types: Sequence[str] = ()
    ) -> list[TypeStats]:
        """Pending, delayed and claimed counts and the oldest pending age, per type.

        Every requested type is in the answer, with zeros when nothing is queued. With no
        types named, every type that has pending or running tasks.
        """
        activity_types = check_names(activity_types, "activity_types")
        workflow_types = check_names(workflow_types, "workflow_types")
        now = self.now()
        if not activity_types and not workflow_types:
            rows = await self.pool.fetch(Q.queue_stats_all, now)
        else:
            rows = await self.pool.fetch(Q.queue_stats, activity_types, workflow_types, now)
        found = {
            (r["kind"], r["type"]): TypeStats(
                kind=r["kind"],
                type=r["type"],
                pending=r["pending"],
                delayed=r["delayed"],
                claimed=r["claimed"],
                oldest_pending_age=(
                    max((now - r["oldest_visible_at"]).total_seconds(), 0.0) if r["oldest_visible_at"] else 0.0
                ),
            )
            for r in rows
        }
        wanted = [("activity", t) for t in activity_types] + [("workflow", t) for t in workflow_types]
        if not wanted:
            return list(found.values())
        return [found.get(k, TypeStats(k[0], k[1], 0, 0, 0, 0.0)) for k in dict.fromkeys(wanted)]
