"""The schedule calls of durable.v1.ClientService (a part of ClientService, mixed in)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

from durable.common.errors import InvalidArgument
from durable.controlplane.grpc import convert
from durable.controlplane.grpc.errors import required, rpc
from durable.controlplane.store import Schedule, Store
from durable.proto.v1 import durable_pb2 as pb

MAX_UPCOMING = 100


def schedule_message(s: Schedule) -> pb.Schedule:
    return pb.Schedule(
        id=s.id,
        workflow_type=s.target_type if s.action == "workflow" else "",
        activity_type=s.target_type if s.action == "activity" else "",
        input_json=convert.dump(s.input),
        cron=s.cron or "",
        interval_seconds=s.interval_seconds or 0.0,
        time_zone=s.time_zone,
        overlap_policy=s.overlap_policy,
        catchup_window_seconds=s.catchup_window_seconds,
        jitter_seconds=s.jitter_seconds,
        start_at=convert.ts(s.start_at),
        end_at=convert.ts(s.end_at),
        paused=s.paused,
        note=s.note,
        next_tick=convert.ts(s.next_tick),
        next_fire_at=convert.ts(s.next_fire_at),
        buffered_tick=convert.ts(s.buffered_tick),
        last_run_id=s.last_run_id or "",
        last_tick=convert.ts(s.last_tick),
        started_count=s.started_count,
        skipped_count=s.skipped_count,
        missed_count=s.missed_count,
        existing_count=s.existing_count,
        recent_fires_json=json.dumps(s.recent_fires, separators=(",", ":")),
        created_at=convert.ts(s.created_at),
        updated_at=convert.ts(s.updated_at),
    )


def _time(value: float, field: str) -> datetime | None:
    """Unix seconds from a request (0 = none)."""
    if not value:
        return None
    if not math.isfinite(value) or not 0 < value < 253402300800:  # year 9999
        raise InvalidArgument(f"{field} must be Unix seconds, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def _after_id(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not one this service gave out") from None


class ScheduleCalls:
    """CreateSchedule, ListSchedules, DescribeSchedule, Pause/Resume/Trigger/Backfill/DeleteSchedule."""

    store: Store
    limit: int

    @rpc
    async def CreateSchedule(self, request: pb.CreateScheduleRequest, context: Any) -> pb.ScheduleResponse:
        spec = request.schedule
        s = await self.store.create_schedule(
            required(spec.id, "id"),
            workflow_type=spec.workflow_type or None,
            activity_type=spec.activity_type or None,
            input=convert.load(spec.input_json, "input_json", self.limit) if spec.input_json else {},
            cron=spec.cron or None,
            interval_seconds=spec.interval_seconds or None,
            time_zone=spec.time_zone or "UTC",
            overlap_policy=spec.overlap_policy or "skip",
            catchup_window_seconds=spec.catchup_window_seconds if spec.HasField("catchup_window_seconds") else 60.0,
            jitter_seconds=spec.jitter_seconds,
            start_at=_time(spec.start_at, "start_at"),
            end_at=_time(spec.end_at, "end_at"),
            paused=spec.paused,
            note=spec.note,
        )
        return pb.ScheduleResponse(schedule=schedule_message(s))

    @rpc
    async def ListSchedules(self, request: pb.ListSchedulesRequest, context: Any) -> pb.ListSchedulesResponse:
        limit = request.limit or 100
        rows = await self.store.list_schedules(
            id_prefix=request.id_prefix or None, after_id=_after_id(request.page_token), limit=limit)
        token = _page_token(rows[-1].id) if len(rows) == limit else ""
        return pb.ListSchedulesResponse(schedules=[schedule_message(s) for s in rows], next_page_token=token)

    @rpc
    async def DescribeSchedule(self, request: pb.DescribeScheduleRequest, context: Any) -> pb.DescribeScheduleResponse:
        if not 0 <= request.upcoming <= MAX_UPCOMING:
            raise InvalidArgument(f"upcoming must be between 0 and {MAX_UPCOMING}")
        s = await self.store.get_schedule(required(request.id, "id"))
        upcoming: list[float] = []
        tick = s.next_tick
        while tick is not None and len(upcoming) < request.upcoming:
            upcoming.append(tick.timestamp())
            tick = s.spec.next_after(tick)
        return pb.DescribeScheduleResponse(schedule=schedule_message(s), upcoming_ticks=upcoming)

    @rpc
    async def PauseSchedule(self, request: pb.PauseScheduleRequest, context: Any) -> pb.ScheduleResponse:
        s = await self.store.pause_schedule(required(request.id, "id"), request.note)
        return pb.ScheduleResponse(schedule=schedule_message(s))

    @rpc
    async def ResumeSchedule(self, request: pb.ResumeScheduleRequest, context: Any) -> pb.ScheduleResponse:
        s = await self.store.resume_schedule(required(request.id, "id"), request.note)
        return pb.ScheduleResponse(schedule=schedule_message(s))

    @rpc
    async def TriggerSchedule(self, request: pb.TriggerScheduleRequest, context: Any) -> pb.TriggerScheduleResponse:
        outcome, run = await self.store.trigger_schedule(required(request.id, "id"), request.overlap_policy or None)
        return pb.TriggerScheduleResponse(outcome=outcome, run_id=run)

    @rpc
    async def BackfillSchedule(self, request: pb.BackfillScheduleRequest, context: Any) -> pb.BackfillScheduleResponse:
        start = _time(request.start_time, "start_time")
        end = _time(request.end_time, "end_time")
        if start is None or end is None:
            raise InvalidArgument("start_time and end_time are required")
        started, existing = await self.store.backfill_schedule(required(request.id, "id"), start, end)
        return pb.BackfillScheduleResponse(started=started, existing=existing)

    @rpc
    async def DeleteSchedule(self, request: pb.DeleteScheduleRequest, context: Any) -> pb.DeleteScheduleResponse:
        await self.store.delete_schedule(required(request.id, "id"))
        return pb.DeleteScheduleResponse()
