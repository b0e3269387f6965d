"""Queue statistics for the operator's autoscaler and `durable stats`; throughput for the console."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from durable.common.errors import InvalidArgument
from durable.controlplane.store.base import StoreBase, check_names
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import TypeStats, TypeThroughput

MAX_BUCKETS = 1440


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

    async def throughput(
        self, since: datetime, bucket_seconds: int, activity_types: Sequence[str] = (),
        workflow_types: Sequence[str] = (),
    ) -> tuple[list[TypeThroughput], datetime]:
        """Tasks completed per type in buckets of `bucket_seconds` from `since` to now (the last
        bucket may be shorter), and that now.

        Every requested type is in the answer, with zeros when it completed nothing. With no
        types named, every type that completed tasks in the range.
        """
        activity_types = check_names(activity_types, "activity_types")
        workflow_types = check_names(workflow_types, "workflow_types")
        now = self.now()
        if bucket_seconds < 1:
            raise InvalidArgument(f"bucket_seconds must be at least 1, not {bucket_seconds}")
        if since >= now:
            raise InvalidArgument("since must be earlier than now")
        buckets = math.ceil((now - since) / timedelta(seconds=bucket_seconds))
        if buckets > MAX_BUCKETS:
            raise InvalidArgument(
                f"{buckets} buckets asked for; at most {MAX_BUCKETS} (a later since, or wider buckets)"
            )
        rows = await self.pool.fetch(Q.throughput, since, now, bucket_seconds, activity_types, workflow_types)
        wanted = [("activity", t) for t in activity_types] + [("workflow", t) for t in workflow_types]
        counts: dict[tuple[str, str], list[int]] = {k: [0] * buckets for k in dict.fromkeys(wanted)}
        for r in rows:
            series = counts.setdefault((r["kind"], r["type"]), [0] * buckets)
            series[min(r["bucket"], buckets - 1)] += r["completed"]
        return [TypeThroughput(kind, type_, series) for (kind, type_), series in counts.items()], now
