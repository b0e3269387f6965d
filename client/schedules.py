"""What the client hands back about schedules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable.proto.v1 import durable_pb2 as pb


@dataclass(frozen=True)
class ScheduleView:
    """A schedule and its state. Times are Unix seconds (0 = none)."""

    id: str
    workflow_type: str               # one of workflow_type and activity_type is set
    activity_type: str
    input: Any
    cron: str
    interval_seconds: float
    time_zone: str
    overlap_policy: str
    catchup_window_seconds: float
    jitter_seconds: float
    start_at: float
    end_at: float
    paused: bool
    note: str
    next_tick: float
    next_fire_at: float
    buffered_tick: float
    last_run_id: str
    last_tick: float
    started_count: int
    skipped_count: int
    missed_count: int
    existing_count: int
    recent_fires: list[dict[str, Any]]
    created_at: float
    updated_at: float

    @property
    def spec(self) -> str:
        """The schedule's times in a few words: 'cron */5 * * * * (Europe/Berlin)' or 'every 30 s'."""
        if self.cron:
            return f"cron {self.cron}" + (f" ({self.time_zone})" if self.time_zone != "UTC" else "")
        return f"every {self.interval_seconds:g} s"

    @property
    def target(self) -> str:
        return f"workflow {self.workflow_type}" if self.workflow_type else f"activity {self.activity_type}"


def schedule_view(msg: pb.Schedule) -> ScheduleView:
    return ScheduleView(
        id=msg.id, workflow_type=msg.workflow_type, activity_type=msg.activity_type,
        input=json.loads(msg.input_json) if msg.input_json else None,
        cron=msg.cron, interval_seconds=msg.interval_seconds, time_zone=msg.time_zone,
        overlap_policy=msg.overlap_policy, catchup_window_seconds=msg.catchup_window_seconds,
        jitter_seconds=msg.jitter_seconds, start_at=msg.start_at, end_at=msg.end_at, paused=msg.paused,
        note=msg.note, next_tick=msg.next_tick, next_fire_at=msg.next_fire_at, buffered_tick=msg.buffered_tick,
        last_run_id=msg.last_run_id, last_tick=msg.last_tick, started_count=msg.started_count,
        skipped_count=msg.skipped_count, missed_count=msg.missed_count, existing_count=msg.existing_count,
        recent_fires=json.loads(msg.recent_fires_json) if msg.recent_fires_json else [],
        created_at=msg.created_at, updated_at=msg.updated_at,
    )


def unix(value: datetime | float | None) -> float:
    """A time for a request: an aware datetime or Unix seconds; None is 0 (none)."""
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give times with a time zone (datetime.now(UTC), not datetime.now())")
        return value.timestamp()
    return float(value)
