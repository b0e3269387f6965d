"""The reaper: takes back what workers dropped and enforces timeouts.

Each pass, in bounded batches:
- claimed tasks whose heartbeat is older than the threshold (30 s, or the task's own
  heartbeat_timeout) go back to `pending` for another worker; a task taken back more than
  `max_reclaims` times is poison and goes to the dead-letter queue, and so does one whose
  attempts are used up; each (worker, activity type) taken back counts as one failure toward
  the type's circuit breaker, however many of its tasks the worker held;
- claimed tasks past their start-to-close timeout count as a failed attempt (retried or
  dead-lettered by their retry policy);
- pending tasks past their schedule-to-start timeout are dead-lettered; a workflow whose
  decision no worker took within DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT fails;
- workers whose heartbeat is stale are marked `lost`.

Rows are picked with FOR UPDATE SKIP LOCKED, so several control-plane replicas can reap at
once without taking the same task twice, and claims (which lock only pending rows) never wait
on a pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from durable.controlplane.database_state import DatabaseState, LoopBackoff
from durable.controlplane.settings import ReaperSettings
from durable.controlplane.store.base import DATABASE_UNAVAILABLE
from durable.controlplane.store import ReaperReport, Store, Task
from durable.controlplane.store.served_types import ServedTypeStore
from durable.controlplane.store.lineage import cancel_orphaned_children
from durable.controlplane.store.workflow_queries import WorkflowQueryStore
from durable.controlplane.store.queries import Q

logger = logging.getLogger(__name__)


class Reaper:
    """A loop with run_once() (tests call it directly) and run() (waits on stop or interval)."""

    def __init__(
        self,
        store: Store,
        settings: ReaperSettings | None = None,
        on_report: Callable[[ReaperReport], None] | None = None,
        *,
        queries: WorkflowQueryStore | None = None,
        types: ServedTypeStore | None = None,
        database: DatabaseState | None = None,
    ) -> None:
        self.store = store
        self.queries = queries
        self.types = types
        self.settings = settings or ReaperSettings()
        self.on_report = on_report
        self.database = database or DatabaseState()
        self.totals = ReaperReport()
        self._counted: set[tuple[str | None, str]] = set()  # (worker, type) counted by this pass

    async def run_once(self) -> ReaperReport:
        """One pass; stale claims are taken back in batches until none are left."""
        report = ReaperReport()
        self._counted = set()
        while await self._reclaim_stale(report) >= self.settings.batch_size:
            pass
        await self._time_out_overdue(report)
        await self._expire_unstarted(report)
        timeout = self.settings.workflow_schedule_to_start
        if timeout > 0 and self.types is not None:  # DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT
            failed = await self.types.expire_unstarted_decisions(timeout, self.store.now(), self.settings.batch_size)
            if failed:
                logger.warning("workflows failed: no worker took their decision within %g s: %s",
                               timeout, ", ".join(failed[:10]) + (" ..." if len(failed) > 10 else ""))
            report.unstarted += len(failed)
        cutoff = self.store.now() - timedelta(seconds=self.settings.worker_lost_after)
        report.lost_workers = [r["id"] for r in await self.store.pool.fetch(Q.mark_lost_workers, cutoff)]
        # children to be cancelled whose parent ended while its control plane stopped
        await cancel_orphaned_children(self.store, self.settings.batch_size)
        if self.queries is not None:  # queries whose caller's control plane stopped mid-wait
            await self.queries.sweep_queries(self.store.now(), self.settings.batch_size)
        if report.changed:
            logger.info(
                "reaper: reclaimed %d, poisoned %d, timed out %d, unstarted %d, lost workers %s",
                report.reclaimed, report.poisoned, report.timed_out, report.unstarted,
                report.lost_workers or "none",
            )
        self.totals.reclaimed += report.reclaimed
        self.totals.poisoned += report.poisoned
        self.totals.timed_out += report.timed_out
        self.totals.unstarted += report.unstarted
        self.totals.lost_workers += report.lost_workers
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Pass every `interval` seconds until `stop` is set. A failed pass is retried with a
        doubling delay (capped at 30 s), or as soon as the database is back."""
        backoff = LoopBackoff(self.settings.interval)
        while not stop.is_set():
            failed = True
            try:
                await self.run_once()
                failed = False
                self.database.reachable()
            except DATABASE_UNAVAILABLE as exc:
                self.database.lost("reaper", exc)
            except Exception:
                if backoff.failures == 0:  # the first of a streak with its traceback; then quiet
                    logger.exception("reaper pass failed; retrying with backoff")
                else:
                    logger.debug("reaper pass failed again", exc_info=True)
            await self.database.pause(stop, backoff.next(failed))

    async def _reclaim_stale(self, report: ReaperReport) -> int:
        """One batch; returns how many stale claims it saw."""
        store = self.store
        now = store.now()
        doomed: list[Task] = []
        async with store.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q.stale_claimed_tasks, now, self.settings.stale_after, self.settings.batch_size)
            back: list[object] = []
            kinds: Counter[str] = Counter()
            # One silent worker is one failure of each type it held, however many tasks it held
            # (a crash is not N failures of the service behind the type); counted once per pass.
            failed_types: set[str] = set()
            for row in rows:
                task = Task.from_row(row)
                if task.kind == "activity" and (task.claimed_by, task.activity_type) not in self._counted:
                    self._counted.add((task.claimed_by, task.activity_type))
                    failed_types.add(task.activity_type)
                # A decision is never dead-lettered: a workflow fails only by its own code.
                if task.kind != "workflow" and (
                    task.reclaim_count >= self.settings.max_reclaims or task.failed_attempts >= task.max_attempts
                ):
                    doomed.append(task)
                elif task.kind == "workflow" and await conn.fetchval(Q.pending_decision_exists, task.workflow_id):
                    await conn.execute(Q.supersede_task, task.id, now)
                else:
                    back.append(task.id)
                    kinds[f"{task.kind}:{task.activity_type}"] += 1
            for activity_type in sorted(failed_types):  # breaker rows in key order, as everywhere
                await store._breaker_failure(conn, activity_type, now)
            if back:
                await conn.execute(Q.reclaim_tasks, back, now)
                await store.notify(conn, kinds)
            report.reclaimed += len(back)
        for task in doomed:
            poison = task.reclaim_count >= self.settings.max_reclaims
            message = (
                f"taken back from stopped workers {task.reclaim_count + 1} times (poison guard)"
                if poison
                else f"worker {task.claimed_by} stopped heartbeating on the last attempt"
            )
            if await self._bury_if_still(task, "poison" if poison else "exhausted", "HeartbeatTimeout", message):
                report.poisoned += 1
        return len(rows)

    async def _time_out_overdue(self, report: ReaperReport) -> None:
        store = self.store
        now = store.now()
        rows = await store.pool.fetch(Q.overdue_task_ids, now, self.settings.batch_size)
        for row in rows:
            try:
                await store.fail_task(
                    row["claimed_by"], row["id"], row["attempt"],
                    "start-to-close timeout exceeded", error_type="StartToCloseTimeout",
                )
                report.timed_out += 1
            except Exception as exc:  # the worker finished it meanwhile: nothing to do
                logger.debug("start-to-close for %s skipped: %s", row["id"], exc)

    async def _expire_unstarted(self, report: ReaperReport) -> None:
        store = self.store
        now = store.now()
        rows = await store.pool.fetch(Q.unstarted_task_ids, now, self.settings.batch_size)
        for row in rows:
            task = Task.from_row(row)
            if await self._bury_if_still(
                task, "schedule_to_start_timeout", "ScheduleToStartTimeout",
                f"no worker started the task within {task.schedule_to_start_timeout} s",
            ):
                report.unstarted += 1

    async def _bury_if_still(self, task: Task, reason: str, error_type: str, message: str) -> bool:
        """Dead-letter `task` if it is still in the state it was seen in (workflow lock first)."""
        store = self.store
        now = store.now()
        async with store.pool.acquire() as conn, conn.transaction():
            wf = await store._lock_workflow(conn, task.workflow_id) if task.workflow_id else None
            row = await conn.fetchrow(Q.lock_task_in_state, task.id, task.status, task.attempt)
            if row is None:
                return False
            current = Task.from_row(row)
            await store._bury(conn, current, wf, reason, store.error_entry(current, message, error_type, now), now)
        return True
