"""Schedules: create, read, pause, resume, trigger, backfill, delete, and fire what is due.

A schedule is one row of `durable_schedules` (migration 0005_schedules). The loop
(durable.controlplane.scheduler) calls `fire_due_schedules`, which claims one due row at a time
with FOR UPDATE SKIP LOCKED and, in that same short transaction, starts the runs of its due
ticks and moves `next_tick` on: a tick either fired and moved on, or neither happened, so each
tick fires once across control-plane replicas. A workflow run's id derives from its tick
(schedule_spec.run_id), so a backfill or a retry that meets a run already started finds it.

Overlap, when a tick comes while the schedule's last run is still going:
  skip                the tick is skipped;
  buffer_one          the tick waits and starts when the run ends (one at most; later ones skip);
  allow_all           the tick starts anyway;
  cancel_previous     the running workflow is asked to cancel (CancelWorkflow with
                      terminate=false: its code gets a CancelledError and ends when it lets it
                      out) and the tick waits, like buffer_one, until it has ended;
  terminate_previous  the running workflow ends at once (terminate=true) and the tick starts.

Catch-up: a tick later than `catchup_window_seconds` (the control planes were down, or the
database was) is counted as missed, not fired; ticks within the window fire by the policy.
Lock order: the schedule's row, then a workflow's row (cancel), then task rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from durable.common.errors import InvalidArgument, NotFound, WrongState
from durable.common.policies import ActivityOptions
from durable.controlplane.store.base import DATABASE_UNAVAILABLE, dumps
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import _FromRow
from durable.controlplane.store.schedule_spec import (
    OVERLAP_POLICIES,
    WORKFLOW_ONLY_POLICIES,
    Spec,
    check_new,
    run_id,
    trigger_id,
)
from durable.controlplane.store.workflows import WorkflowStore

logger = logging.getLogger(__name__)

FAILED_RETRY = timedelta(seconds=30)  # a schedule whose firing failed is looked at again then
RECENT_FIRES = 20          # entries of `recent_fires` kept per schedule
MAX_TICKS_PER_CLAIM = 100  # ticks one claim handles; the rest wait for the next claim
MAX_BACKFILL_TICKS = 1000
BACKFILL_BATCH = 100       # ticks per backfill transaction
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A tick is late, and missed, when it fires more than its catch-up window plus this after its
# time: a window of 0 still fires the ticks a loop pass sees within a second.
LATE_GRACE = timedelta(seconds=1)
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule(_FromRow):
    id: str
    action: str
    target_type: str
    input: Any
    cron: str | None
    interval_seconds: float | None
    time_zone: str
    overlap_policy: str
    catchup_window_seconds: float
    jitter_seconds: float
    start_at: datetime
    end_at: datetime | None
    paused: bool
    note: str
    next_tick: datetime | None
    next_fire_at: datetime | None
    wake_at: datetime | None
    buffered_tick: datetime | None
    last_run_id: str | None
    last_tick: datetime | None
    last_fired_at: datetime | None
    started_count: int
    skipped_count: int
    missed_count: int
    existing_count: int
    recent_fires: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    _json_fields = ("input", "recent_fires")

    @property
    def spec(self) -> Spec:
        return Spec.of(self)


@dataclass
class FireReport:
    """What fire_due_schedules did in one call."""

    schedules: int = 0
    started: int = 0
    skipped: int = 0
    missed: int = 0
    existing: int = 0
    buffered: int = 0
    cancelled: int = 0
    failed: int = 0  # schedules whose firing failed (logged; looked at again later)
    fired_ids: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.skipped or self.missed or self.existing or self.buffered or self.cancelled
                    or self.failed)

    def add(self, other: FireReport) -> None:
        self.schedules += other.schedules
        self.started += other.started
        self.skipped += other.skipped
        self.missed += other.missed
        self.existing += other.existing
        self.buffered += other.buffered
        self.cancelled += other.cancelled
        self.failed += other.failed
        self.fired_ids += other.fired_ids


class _Firing:
    """The state of one locked schedule while its ticks are handled, saved in one UPDATE."""

    def __init__(self, s: Schedule, now: datetime) -> None:
        self.s = s
        self.now = now
        self.next_tick = s.next_tick
        self.buffered = s.buffered_tick
        self.last_run_id = s.last_run_id
        self.last_tick = s.last_tick
        self.last_fired_at = s.last_fired_at
        self.fires: list[dict[str, Any]] = []
        self.report = FireReport(schedules=1)

    def record(self, outcome: str, tick: datetime | None, run: str | None = None, **extra: Any) -> None:
        entry: dict[str, Any] = {"outcome": outcome, "at": self.now.isoformat()}
        if tick is not None:
            entry["tick"] = tick.isoformat()
        if run:
            entry["run_id"] = run
        entry.update(extra)
        self.fires.append(entry)


class ScheduleStore(WorkflowStore):
    """Schedules; they start workflows, so they build on the workflow store."""

    # -- definition ------------------------------------------------------------------------

    async def create_schedule(
        self,
        schedule_id: str,
        *,
        workflow_type: str | None = None,
        activity_type: str | None = None,
        input: Any = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        time_zone: str = "UTC",
        overlap_policy: str = "skip",
        catchup_window_seconds: float = 60.0,
        jitter_seconds: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        paused: bool = False,
        note: str = "",
    ) -> Schedule:
        """Create a schedule; its first tick is the first one after now (not now itself:
        `trigger_schedule` runs it at once). Refuses an id that exists."""
        if bool(workflow_type) == bool(activity_type):
            raise InvalidArgument("a schedule starts a workflow (workflow_type) or enqueues an activity "
                                  "(activity_type): give exactly one")
        action = "workflow" if workflow_type else "activity"
        target = workflow_type or activity_type or ""
        now = self.now()
        if start_at is None:
            if interval_seconds:
                # intervals line up with the Unix epoch: every 3600 s fires on the hour
                step = float(interval_seconds)
                start_at = EPOCH + timedelta(seconds=((now - EPOCH).total_seconds() // step) * step)
            else:
                start_at = now.replace(microsecond=0)
        cron, interval_seconds = check_new(
            schedule_id=schedule_id, action=action, target_type=target, cron=cron,
            interval_seconds=interval_seconds, time_zone_name=time_zone, overlap_policy=overlap_policy,
            catchup_window_seconds=catchup_window_seconds, jitter_seconds=jitter_seconds,
            start_at=start_at, end_at=end_at,
        )
        if len(note) > 1000:
            raise InvalidArgument("note is longer than 1000 characters")
        input_json = self.payload(input if input is not None else {}, "input")
        spec = Spec(cron, interval_seconds, time_zone, start_at, end_at, jitter_seconds)
        tick = spec.next_after(now)
        fire_at = spec.fire_at(schedule_id, tick) if tick else None
        row = await self.pool.fetchrow(
            Q.insert_schedule, schedule_id, action, target, input_json, cron, interval_seconds, time_zone,
            overlap_policy, catchup_window_seconds, jitter_seconds, start_at, end_at, paused, note,
            tick, fire_at, now,
        )
        if row is None:
            raise WrongState(f"schedule {schedule_id!r} already exists; delete it first to change it")
        return Schedule.from_row(row)  # type: ignore[no-any-return]

    async def get_schedule(self, schedule_id: str) -> Schedule:
        row = await self.pool.fetchrow(Q.get_schedule, schedule_id)
        if row is None:
            raise NotFound(f"schedule {schedule_id!r} does not exist")
        return Schedule.from_row(row)  # type: ignore[no-any-return]

    async def list_schedules(
        self, *, id_prefix: str | None = None, after_id: str = "", limit: int = 100
    ) -> list[Schedule]:
        """Schedules in id order, a page of `limit` after `after_id`."""
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        rows = await self.pool.fetch(Q.list_schedules, id_prefix or None, after_id, limit)
        return [Schedule.from_row(r) for r in rows]

    async def pause_schedule(self, schedule_id: str, note: str = "") -> Schedule:
        row = await self.pool.fetchrow(Q.pause_schedule, schedule_id, note, self.now())
        if row is None:
            raise NotFound(f"schedule {schedule_id!r} does not exist")
        return Schedule.from_row(row)  # type: ignore[no-any-return]

    async def resume_schedule(self, schedule_id: str, note: str = "") -> Schedule:
        """Run again from the next tick after now: ticks that fell while it was paused do not fire."""
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            s = await self._lock_schedule(conn, schedule_id)
            if not s.paused:
                return s
            tick = s.spec.next_after(now)
            fire_at = s.spec.fire_at(s.id, tick) if tick else None
            row = await conn.fetchrow(Q.resume_schedule, schedule_id, note, tick, fire_at, now)
        return Schedule.from_row(row)  # type: ignore[no-any-return]

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete the schedule; the runs it started go on."""
        if await self.pool.fetchval(Q.delete_schedule, schedule_id) is None:
            raise NotFound(f"schedule {schedule_id!r} does not exist")

    async def _lock_schedule(self, conn: asyncpg.Connection, schedule_id: str) -> Schedule:
        row = await conn.fetchrow(Q.lock_schedule, schedule_id)
        if row is None:
            raise NotFound(f"schedule {schedule_id!r} does not exist")
        return Schedule.from_row(row)  # type: ignore[no-any-return]

    # -- firing ----------------------------------------------------------------------------

    async def fire_due_schedules(self, max_schedules: int = 100, *, buffer_recheck: float = 1.0) -> FireReport:
        """Handle up to `max_schedules` due schedules, each in its own short transaction. A
        schedule whose firing fails (anything but a lost database) is logged and looked at
        again after FAILED_RETRY, so it does not hold up the others."""
        report = FireReport()
        for _ in range(max_schedules):
            now = self.now()
            claimed: str | None = None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    row = await conn.fetchrow(Q.claim_due_schedule, now)
                    if row is None:
                        break
                    firing = _Firing(Schedule.from_row(row), now)
                    claimed = firing.s.id
                    await self._fire_ticks(conn, firing)
                    await self._save(conn, firing, buffer_recheck)
            except DATABASE_UNAVAILABLE:
                raise
            except Exception as exc:
                if claimed is None:
                    raise
                logger.exception("schedule %s: firing failed; trying again in %.0f s", claimed,
                                 FAILED_RETRY.total_seconds())
                entry = {"outcome": "error", "at": now.isoformat(), "error": f"{type(exc).__name__}: {exc}"[:500]}
                await self.pool.execute(Q.delay_schedule, claimed, now + FAILED_RETRY, dumps(entry), RECENT_FIRES, now)
                report.schedules += 1
                report.failed += 1
                continue
            self._observe(firing.s, firing.report)
            report.add(firing.report)
        return report

    async def next_schedule_wake(self) -> datetime | None:
        """When the earliest running schedule wants the loop next (None: none does)."""
        return await self.pool.fetchval(Q.next_schedule_wake)  # type: ignore[no-any-return]

    async def _fire_ticks(self, conn: asyncpg.Connection, f: _Firing) -> None:
        s, now = f.s, f.now
        spec = s.spec
        window = timedelta(seconds=s.catchup_window_seconds) + LATE_GRACE
        # a buffered tick whose predecessor has ended goes first
        if f.buffered is not None and not await self._running(conn, s, f.last_run_id):
            tick, f.buffered = f.buffered, None
            await self._start(conn, f, tick, run_id(s.id, tick))
        handled = 0
        while f.next_tick is not None and handled < MAX_TICKS_PER_CLAIM:
            tick = f.next_tick
            fire_at = spec.fire_at(s.id, tick)
            if fire_at > now:
                break
            handled += 1
            if fire_at < now - window:
                # late beyond the catch-up window: count the ticks missed, jump past them
                resume = spec.next_after(now - window - _TINY)
                missed = spec.count_between(tick - _TINY, resume or (now + _TINY))
                f.report.missed += missed
                f.record("missed", tick, count=missed)
                f.next_tick = resume
                continue
            await self._apply_policy(conn, f, tick, s.overlap_policy, run_id(s.id, tick))
            f.next_tick = spec.next_after(tick)

    async def _apply_policy(self, conn: asyncpg.Connection, f: _Firing, tick: datetime, policy: str, run: str) -> None:
        s = f.s
        if policy == "allow_all" or not await self._running(conn, s, f.last_run_id):
            await self._start(conn, f, tick, run)
            return
        previous = f.last_run_id
        if policy == "skip":
            f.report.skipped += 1
            f.record("skipped", tick, previous_run_id=previous)
        elif policy in ("buffer_one", "cancel_previous"):
            if policy == "cancel_previous" and previous:
                if not await conn.fetchval(Q.cancel_requested, previous):
                    if not await self._cancel_previous(conn, f, previous, terminate=False):
                        await self._start(conn, f, tick, run)  # it ended meanwhile
                        return
                    f.record("cancel_requested", tick, previous_run_id=previous)
                if f.buffered is not None:  # the newer tick replaces the one that waited
                    f.report.skipped += 1
                    f.record("skipped", f.buffered, previous_run_id=previous, reason="replaced by a newer tick")
                    f.buffered = None
            if f.buffered is None:
                f.buffered = tick
                f.report.buffered += 1
                f.record("buffered", tick, previous_run_id=previous)
            else:
                f.report.skipped += 1
                f.record("skipped", tick, previous_run_id=previous, reason="one tick is already buffered")
        elif policy == "terminate_previous":
            assert previous is not None
            if await self._cancel_previous(conn, f, previous, terminate=True):
                f.record("terminated", tick, previous_run_id=previous)
            await self._start(conn, f, tick, run)
        else:  # the table's CHECK keeps this out
            raise InvalidArgument(f"overlap_policy {policy!r} is not one of {', '.join(OVERLAP_POLICIES)}")

    async def _cancel_previous(self, conn: asyncpg.Connection, f: _Firing, previous: str, *, terminate: bool) -> bool:
        """Ask the previous run to cancel (or terminate it); False when it had ended meanwhile."""
        try:
            await self._cancel_workflow(conn, previous, f"schedule {f.s.id}: a newer run is due", terminate, f.now)
        except (WrongState, NotFound):  # it ended (or retention took it) between the status read and its lock
            return False
        f.report.cancelled += 1
        return True

    async def _running(self, conn: asyncpg.Connection, s: Schedule, last_run: str | None) -> bool:
        if not last_run:
            return False
        if s.action == "workflow":
            status = await conn.fetchval(Q.workflow_run_status, last_run)
            return status in ("pending", "running")
        status = await conn.fetchval(Q.activity_run_status, last_run)
        return status in ("pending", "claimed")

    async def _start(
        self, conn: asyncpg.Connection, f: _Firing, tick: datetime, run: str, *, track: bool = True
    ) -> bool:
        """Start the run of `tick` named `run` (a workflow) in this transaction; False when it
        existed. `track`: it becomes the schedule's last run (what overlap looks at)."""
        s, now = f.s, f.now
        input_json = dumps(s.input)
        if s.action == "workflow":
            created = await self._create_workflow(conn, s.target_type, input_json, run, now)
            started_id = run
        else:
            task = await self._insert_task(conn, "activity", None, run, s.target_type, input_json, ActivityOptions(), now)
            created, started_id = task is not None, str(task)
            if created:
                await self.notify(conn, {f"activity:{s.target_type}": 1})
        if created:
            f.report.started += 1
            f.report.fired_ids.append(started_id)
            f.record("started", tick, started_id)
        else:
            f.report.existing += 1
            f.record("exists", tick, started_id)
        if track:
            f.last_run_id, f.last_tick, f.last_fired_at = started_id, tick, now
        return created

    async def _save(self, conn: asyncpg.Connection, f: _Firing, buffer_recheck: float) -> Schedule:
        s, r = f.s, f.report
        fire_at = s.spec.fire_at(s.id, f.next_tick) if f.next_tick is not None else None
        wake_at = fire_at
        if f.buffered is not None:  # look again soon: the buffered tick starts when the run ends
            soon = f.now + timedelta(seconds=buffer_recheck)
            wake_at = soon if wake_at is None else min(wake_at, soon)
        recent = (s.recent_fires + f.fires)[-RECENT_FIRES:]
        row = await conn.fetchrow(
            Q.save_schedule_state, s.id, f.next_tick, fire_at, wake_at, f.buffered, f.last_run_id,
            f.last_tick, f.last_fired_at, r.started, r.skipped, r.missed, r.existing,
            json.dumps(recent, separators=(",", ":")), f.now,
        )
        return Schedule.from_row(row)

    def _observe(self, s: Schedule, report: FireReport) -> None:
        """Tell the observer (metrics) what committed."""
        if s.action == "workflow":
            for _ in range(report.started):
                self.observer.workflow_started(s.target_type)

    # -- by hand ---------------------------------------------------------------------------

    async def trigger_schedule(self, schedule_id: str, overlap_policy: str | None = None) -> tuple[str, str]:
        """Run the schedule now, outside its ticks, by its overlap policy (or the one given).
        Works on a paused schedule too. Returns (outcome, run id): outcome is started (also
        after terminating the previous run), exists, skipped, buffered, or cancel_requested
        (buffered behind the run asked to cancel); the run id is "" unless one started. A
        buffered trigger starts later as the tick of its time (named by run_id)."""
        if overlap_policy is not None and overlap_policy not in OVERLAP_POLICIES:
            raise InvalidArgument(f"overlap_policy {overlap_policy!r} is not one of {', '.join(OVERLAP_POLICIES)}")
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            s = await self._lock_schedule(conn, schedule_id)
            policy = overlap_policy or s.overlap_policy
            if s.action == "activity" and policy in WORKFLOW_ONLY_POLICIES:
                raise InvalidArgument(f"overlap_policy {policy} applies to workflow schedules only")
            f = _Firing(s, now)
            run = trigger_id(s.id, now)
            await self._apply_policy(conn, f, now, policy, run)
            await self._save(conn, f, 1.0)
        self._observe(s, f.report)
        outcomes = [e["outcome"] for e in f.fires]
        outcome = next(o for o in ("started", "exists", "cancel_requested", "buffered", "skipped") if o in outcomes)
        started = next((e.get("run_id", "") for e in f.fires if e["outcome"] in ("started", "exists")), "")
        return outcome, started

    async def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> tuple[int, int]:
        """Start the runs of every tick in [start, end] (before start_at and after end_at too) now, whatever runs (allow_all), in
        batches of BACKFILL_BATCH ticks per transaction; at most MAX_BACKFILL_TICKS ticks.
        Workflow runs already started (by the schedule or an earlier backfill) are found by
        their ids, not started again. Backfilled runs do not become the schedule's last run.
        Returns (started, already existing)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidArgument("backfill start and end need a time zone")
        if end < start:
            raise InvalidArgument("backfill end is before its start")
        s = await self.get_schedule(schedule_id)
        ticks = []
        for tick in s.spec.ticks(start - _TINY, end, bounded=False):
            ticks.append(tick)
            if len(ticks) > MAX_BACKFILL_TICKS:
                break
        if len(ticks) > MAX_BACKFILL_TICKS:
            raise InvalidArgument(
                f"backfill covers more than {MAX_BACKFILL_TICKS} ticks: split the range")
        started = existing = 0
        for i in range(0, len(ticks), BACKFILL_BATCH):
            now = self.now()
            async with self.pool.acquire() as conn, conn.transaction():
                s = await self._lock_schedule(conn, schedule_id)
                f = _Firing(s, now)
                for tick in ticks[i:i + BACKFILL_BATCH]:
                    await self._start(conn, f, tick, run_id(s.id, tick), track=False)
                f.fires = [{"outcome": "backfilled", "at": now.isoformat(), "from": ticks[i].isoformat(),
                            "to": ticks[min(i + BACKFILL_BATCH, len(ticks)) - 1].isoformat(),
                            "started": f.report.started, "existing": f.report.existing}]
                await self._save(conn, f, 1.0)
            self._observe(s, f.report)
            started += f.report.started
            existing += f.report.existing
        return started, existing
