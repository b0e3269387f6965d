"""What a schedule is, without I/O: validation, its ticks, their jitter and run ids.

A schedule's ticks are the times a cron expression matches in its time zone (cronsim: five
fields, or six with seconds first; a wall-clock time that a DST change skips fires once at
the first valid time after it, a repeated one fires once) or `start_at + k * interval`. A tick
fires at the tick plus a jitter in [0, jitter) that is a function of the schedule and the tick,
so every replica computes the same one. The run a tick starts is named
``f"{schedule_id}-{tick:%Y%m%dT%H%M%SZ}"`` (UTC): starting it twice finds the first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from durable.common.errors import InvalidArgument

ACTIONS = ("workflow", "activity")
OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all", "cancel_previous", "terminate_previous")
WORKFLOW_ONLY_POLICIES = ("cancel_previous", "terminate_previous")
MAX_ID_LENGTH = 200
MAX_CATCHUP_WINDOW = 365 * 86400.0


def run_id(schedule_id: str, tick: datetime) -> str:
    """The id of the workflow a tick starts (and the record of an activity it enqueues)."""
    return f"{schedule_id}-{tick.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def trigger_id(schedule_id: str, at: datetime) -> str:
    """The id of a run started by `trigger` (by hand, outside the ticks)."""
    return f"{schedule_id}-trigger-{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"


def time_zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidArgument("time_zone is required (an IANA name such as 'Europe/Berlin' or 'UTC')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"time_zone {name!r} is not a known time zone (use an IANA name such as 'Europe/Berlin' or 'UTC')"
        ) from None


def check_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    try:
        next(CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise InvalidArgument(
            f"cron {expression!r} is not a valid cron expression ({exc}; five fields 'minute hour "
            "day month weekday', or six with seconds first)"
        ) from None
    except StopIteration:
        raise InvalidArgument(f"cron {expression!r} never matches a time") from None
    return expression


@dataclass(frozen=True)
class Spec:
    """When a schedule's ticks fall: a cron expression in a time zone, or an interval."""

    cron: str | None
    interval_seconds: float | None
    time_zone: str
    start_at: datetime
    end_at: datetime | None = None
    jitter_seconds: float = 0.0

    @classmethod
    def of(cls, row: Any) -> Spec:
        return cls(row.cron, row.interval_seconds, row.time_zone, row.start_at, row.end_at, row.jitter_seconds)

    def next_after(self, after: datetime, *, bounded: bool = True) -> datetime | None:
        """The first tick strictly after `after` (and not before start_at); None past end_at.
        Unbounded (for a backfill): start_at only anchors an interval's ticks; end_at is ignored."""
        if bounded:
            after = max(after, self.start_at - timedelta(microseconds=1))
        if self.interval_seconds is not None:
            step = self.interval_seconds
            k = math.floor((after - self.start_at).total_seconds() / step) + 1
            tick = self.start_at + timedelta(seconds=k * step)
            if tick <= after:  # float rounding at a boundary
                tick += timedelta(seconds=step)
        else:
            assert self.cron is not None
            local = after.astimezone(time_zone(self.time_zone))
            try:
                tick = next(CronSim(self.cron, local)).astimezone(UTC)
            except StopIteration:
                return None
        if bounded and self.end_at is not None and tick > self.end_at:
            return None
        return tick.astimezone(UTC)

    def ticks(self, after: datetime, through: datetime, *, bounded: bool = True) -> Iterator[datetime]:
        """Ticks in (after, through], in order."""
        tick = self.next_after(after, bounded=bounded)
        while tick is not None and tick <= through:
            yield tick
            tick = self.next_after(tick, bounded=bounded)

    def count_between(self, after: datetime, before: datetime, cap: int = 10_000) -> int:
        """How many ticks fall in (after, before): exact for intervals, counted up to `cap`
        for cron."""
        if before <= after:
            return 0
        if self.interval_seconds is not None:
            first = self.next_after(after)
            if first is None or first >= before:
                return 0
            last = before - timedelta(microseconds=1)
            if self.end_at is not None:
                last = min(last, self.end_at)
            return int((last - first).total_seconds() // self.interval_seconds) + 1
        n = 0
        for tick in self.ticks(after, before - timedelta(microseconds=1)):
            n += 1
            if n >= cap:
                break
        return n

    def fire_at(self, schedule_id: str, tick: datetime) -> datetime:
        """When `tick` fires: the tick plus its jitter, the same on every replica."""
        if not self.jitter_seconds:
            return tick
        digest = hashlib.sha256(f"{schedule_id}|{tick.isoformat()}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return tick + timedelta(seconds=fraction * self.jitter_seconds)


def check_new(
    *,
    schedule_id: str,
    action: str,
    target_type: str,
    cron: str | None,
    interval_seconds: float | None,
    time_zone_name: str,
    overlap_policy: str,
    catchup_window_seconds: float,
    jitter_seconds: float,
    start_at: datetime,
    end_at: datetime | None,
) -> tuple[str | None, float | None]:
    """Validate a new schedule; returns (cron, interval) normalised. Every message names its field."""
    if not isinstance(schedule_id, str) or not schedule_id.strip():
        raise InvalidArgument("id is required and must be a non-empty string")
    if len(schedule_id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"id is longer than {MAX_ID_LENGTH} characters")
    if action not in ACTIONS:
        raise InvalidArgument(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if not isinstance(target_type, str) or not target_type.strip():
        raise InvalidArgument(f"{'workflow_type' if action == 'workflow' else 'activity_type'} is required")
    if len(target_type) > 255:
        raise InvalidArgument("target type is longer than 255 characters")
    if overlap_policy not in OVERLAP_POLICIES:
        raise InvalidArgument(f"overlap_policy {overlap_policy!r} is not one of {', '.join(OVERLAP_POLICIES)}")
    if action == "activity" and overlap_policy in WORKFLOW_ONLY_POLICIES:
        raise InvalidArgument(f"overlap_policy {overlap_policy} applies to workflow schedules only")
    time_zone(time_zone_name)
    if cron and interval_seconds:
        raise InvalidArgument("give either cron or interval_seconds, not both")
    if not cron and not interval_seconds:
        raise InvalidArgument("a schedule needs cron or interval_seconds")
    if cron:
        cron = check_cron(cron)
        interval_seconds = None
    else:
        assert interval_seconds is not None
        if not math.isfinite(interval_seconds) or interval_seconds < 1 or interval_seconds != int(interval_seconds):
            raise InvalidArgument(f"interval_seconds {interval_seconds!r} must be a whole number of seconds, at least 1")
        if interval_seconds > 366 * 86400:
            raise InvalidArgument("interval_seconds is longer than a year")
        cron = None
    if not math.isfinite(catchup_window_seconds) or not 0 <= catchup_window_seconds <= MAX_CATCHUP_WINDOW:
        raise InvalidArgument(f"catchup_window_seconds must be between 0 and {MAX_CATCHUP_WINDOW:.0f}")
    if not math.isfinite(jitter_seconds) or not 0 <= jitter_seconds <= 86400:
        raise InvalidArgument("jitter_seconds must be between 0 and 86400")
    if interval_seconds is not None and jitter_seconds >= interval_seconds:
        raise InvalidArgument("jitter_seconds must be shorter than interval_seconds")
    if end_at is not None and end_at <= start_at:
        raise InvalidArgument("end_at must be after start_at")
    return cron, interval_seconds
