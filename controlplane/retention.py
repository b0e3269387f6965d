"""Retention: deletes what has been finished for longer than its retention.

Each pass, in bounded batches of `batch_size` rows, each batch one statement in its own short
transaction, with a pause of `pause` seconds between two batches (pacing: the queue's claims
keep their latency while a large backlog of finished work is deleted):
- workflows that ended completed, failed or cancelled longer ago than that status's retention,
  with their events, tasks, signals and dead letters (pinned workflows are kept for ever, and so
  is a workflow with a dead-letter entry nobody resolved);
- finished standalone activity tasks (a dead one stays while its dead-letter entry does);
- dead-letter entries that were requeued (resolved) longer ago than their retention;
- stopped and lost worker rows not heard of for a day;
- EnqueueActivity idempotency keys older than their window (DURABLE_IDEMPOTENCY_WINDOW).

Candidates are picked with FOR UPDATE SKIP LOCKED, so several control-plane replicas delete at
once without waiting on each other, and no statement touches a pending or claimed task: claims
never wait on a pass. A retention of 0 keeps that kind for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from durable.controlplane.settings import RetentionSettings
from durable.controlplane.store import Store
from durable.controlplane.store.base import DATABASE_UNAVAILABLE
from durable.controlplane.store.queries import Q

logger = logging.getLogger(__name__)

WORKFLOW_FINAL_STATUSES = ("completed", "failed", "cancelled")


@dataclass
class RetentionReport:
    """What one retention pass deleted."""

    workflows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORKFLOW_FINAL_STATUSES, 0))
    tasks: int = 0
    dead_letters: int = 0
    workers: int = 0
    idempotency_keys: int = 0
    statements: int = 0

    @property
    def deleted(self) -> int:
        return sum(self.workflows.values()) + self.tasks + self.dead_letters + self.workers + self.idempotency_keys


class Retention:
    """A loop with run_once() (tests call it directly) and run() (waits on stop or interval)."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings | None = None,
        on_report: Callable[[RetentionReport], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or RetentionSettings()
        self.on_report = on_report

    async def run_once(self) -> RetentionReport:
        """One pass: every kind, batch after batch, until nothing old enough is left."""
        report = RetentionReport()
        settings = self.settings
        now = self.store.now()
        for status in WORKFLOW_FINAL_STATUSES:
            keep = settings.for_status(status)
            if keep:
                report.workflows[status] = await self._drain(
                    report, Q.delete_finished_workflows, status, now - timedelta(seconds=keep)
                )
        if settings.dead_letters:
            report.dead_letters = await self._drain(
                report, Q.delete_resolved_dead_letters, now - timedelta(seconds=settings.dead_letters)
            )
        if settings.tasks:
            report.tasks = await self._drain(
                report, Q.delete_finished_standalone_tasks, now - timedelta(seconds=settings.tasks)
            )
        if settings.workers:
            report.workers = await self._drain(
                report, Q.delete_gone_workers, now - timedelta(seconds=settings.workers)
            )
        report.idempotency_keys = await self._drain(
            report, Q.delete_expired_idempotency_keys, now - timedelta(seconds=settings.idempotency_window)
        )
        if report.deleted:
            logger.info(
                "retention: deleted workflows %s, standalone tasks %d, resolved dead letters %d, workers %d, "
                "idempotency keys %d",
                ", ".join(f"{k} {v}" for k, v in report.workflows.items()),
                report.tasks, report.dead_letters, report.workers, report.idempotency_keys,
            )
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def _drain(self, report: RetentionReport, query: str, *args: object) -> int:
        """Run one bounded delete until a batch comes back short; returns the rows deleted."""
        total = 0
        batch = self.settings.batch_size
        while True:
            deleted = int(await self.store.pool.fetchval(query, *args, batch))
            report.statements += 1
            total += deleted
            if deleted < batch:
                return total
            if self.settings.pause:  # pacing: claims run between two batches
                await asyncio.sleep(self.settings.pause)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass every `interval` seconds until `stop` is set. A failed pass is logged and retried."""
        while not stop.is_set():
            try:
                await self.run_once()
            except DATABASE_UNAVAILABLE as exc:
                logger.warning("retention pass failed, database unreachable: %s", exc)
            except Exception:
                logger.exception("retention pass failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.interval)
            except TimeoutError:
                pass
