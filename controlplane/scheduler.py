"""The schedule loop: fires the due ticks of durable_schedules.

Every control-plane replica runs one. A pass claims due schedules one at a time with FOR
UPDATE SKIP LOCKED and fires each in its own short transaction (durable.controlplane.store.
schedules), so replicas share the work and each tick fires once. Between passes it waits for
the stop event, the interval, or the earliest schedule's due time, whichever comes first;
while the database is unreachable it reports to the control plane's DatabaseState (one line
when it goes, one when it is back) and backs off, doubling up to `max_backoff`, or until the
database is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from durable.controlplane.database_state import DatabaseState, LoopBackoff
from durable.controlplane.settings import ScheduleSettings
from durable.controlplane.store import FireReport, Store
from durable.controlplane.store.base import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

MIN_WAIT = 0.01


class Scheduler:
    """A loop with run_once() (tests call it directly) and run() (waits on stop or the next due time)."""

    def __init__(
        self,
        store: Store,
        settings: ScheduleSettings | None = None,
        on_report: Callable[[FireReport], None] | None = None,
        *,
        database: DatabaseState | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or ScheduleSettings()
        self.on_report = on_report
        self.database = database or DatabaseState()
        self.totals = FireReport()
        self.backoff = 0.0  # seconds between passes while the database is away; 0 while it answers

    async def run_once(self) -> FireReport:
        """One pass: due schedules in batches of `batch_size` until none is due."""
        report = FireReport()
        while True:
            batch = await self.store.fire_due_schedules(
                self.settings.batch_size, buffer_recheck=self.settings.buffer_recheck)
            report.add(batch)
            if batch.schedules < self.settings.batch_size:
                break
        if report.changed:
            logger.info(
                "schedules: started %d, skipped %d, buffered %d, cancelled %d, missed %d, existing %d, "
                "failed %d (%d schedules)",
                report.started, report.skipped, report.buffered, report.cancelled, report.missed,
                report.existing, report.failed, report.schedules,
            )
        self.totals.add(FireReport(
            schedules=report.schedules, started=report.started, skipped=report.skipped, missed=report.missed,
            existing=report.existing, buffered=report.buffered, cancelled=report.cancelled, failed=report.failed,
        ))
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def _wait(self) -> float:
        """Seconds until the next pass: the interval, or sooner when a schedule is due sooner."""
        wake = await self.store.next_schedule_wake()
        if wake is None:
            return self.settings.interval
        return max(MIN_WAIT, min(self.settings.interval, (wake - self.store.now()).total_seconds()))

    async def run(self, stop: asyncio.Event) -> None:
        """Pass until `stop` is set; a failed pass is logged and retried with a doubling delay
        (capped at `max_backoff`), or as soon as the database is back."""
        backoff = LoopBackoff(self.settings.interval, self.settings.max_backoff)
        while not stop.is_set():
            wait = self.settings.interval
            failed = True
            try:
                await self.run_once()
                wait = await self._wait()
                failed = False
                self.database.reachable()
            except DATABASE_UNAVAILABLE as exc:
                self.database.lost("schedules", exc)
            except Exception:
                if backoff.failures == 0:
                    logger.exception("schedule pass failed; retrying with backoff")
                else:
                    logger.debug("schedule pass failed again", exc_info=True)
            delay = backoff.next(failed)
            self.backoff = delay if failed else 0.0
            await self.database.pause(stop, delay if failed else wait)
