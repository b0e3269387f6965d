"""Schedule ticks without I/O: intervals, cron in time zones and across DST, jitter, counts,
validation messages; and the schedule loop's backoff while the database is away."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.common.errors import InvalidArgument
from durable.controlplane.scheduler import Scheduler
from durable.controlplane.settings import ScheduleSettings
from durable.controlplane.store import FireReport
from durable.controlplane.store.schedule_spec import Spec, check_cron, run_id, time_zone, trigger_id

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def interval(seconds: float, start: datetime = T0, **kw: Any) -> Spec:
    return Spec(None, seconds, "UTC", start, **kw)


def test_run_ids_are_the_tick_in_utc() -> None:
    berlin = datetime(2026, 6, 1, 14, 0, 5, tzinfo=time_zone("Europe/Berlin"))
    assert run_id("s", berlin) == "s-20260601T120005Z"
    assert trigger_id("s", T0 + timedelta(microseconds=42)) == "s-trigger-20260601T120000000042Z"


def test_interval_ticks_follow_the_anchor_and_the_bounds() -> None:
    spec = interval(10, end_at=T0 + timedelta(seconds=30))
    assert spec.next_after(T0 - timedelta(days=1)) == T0  # not before start_at
    assert spec.next_after(T0) == T0 + timedelta(seconds=10)
    assert spec.next_after(T0 + timedelta(seconds=10.5)) == T0 + timedelta(seconds=20)
    assert spec.next_after(T0 + timedelta(seconds=30)) is None  # past end_at
    assert list(spec.ticks(T0, T0 + timedelta(hours=1))) == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]
    # a backfill is not bounded by start_at and end_at, but keeps the anchor
    assert spec.next_after(T0 - timedelta(seconds=15), bounded=False) == T0 - timedelta(seconds=10)


@given(st.integers(1, 86400), st.floats(0, 10**7, allow_nan=False))
def test_interval_next_tick_is_the_first_after(step: int, offset: float) -> None:
    spec = interval(step)
    after = T0 + timedelta(seconds=offset)
    tick = spec.next_after(after)
    assert tick is not None and after < tick <= after + timedelta(seconds=step)
    assert (tick - T0).total_seconds() % step == 0


def test_cron_in_a_time_zone_and_across_dst() -> None:
    spec = Spec("30 2 * * *", None, "Europe/Berlin", T0 - timedelta(days=365))
    ticks = list(spec.ticks(datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)))
    # 29 March: 02:30 does not exist; it fires once at 03:00 CEST
    assert [t.strftime("%d %H:%M") for t in ticks] == ["27 01:30", "28 01:30", "29 01:00", "30 00:30"]
    ticks = list(spec.ticks(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC)))
    # 25 October: 02:30 happens twice (CEST, then CET); it fires once, the first time
    assert [t.strftime("%d %H:%M") for t in ticks] == ["24 00:30", "25 00:30", "26 01:30"]
    secs = Spec("*/15 * * * * *", None, "UTC", T0)
    assert [t.second for t in secs.ticks(T0, T0 + timedelta(minutes=1))] == [15, 30, 45, 0]


def test_counts_and_jitter() -> None:
    spec = interval(1)
    assert spec.count_between(T0, T0 + timedelta(seconds=10)) == 9  # (T0, T0+10)
    assert Spec("* * * * *", None, "UTC", T0).count_between(T0, T0 + timedelta(hours=1)) == 59
    jittered = interval(60, jitter_seconds=30)
    fires = [jittered.fire_at("s", T0 + timedelta(minutes=k)) for k in range(50)]
    assert all(T0 + timedelta(minutes=k) <= f < T0 + timedelta(minutes=k, seconds=30) for k, f in enumerate(fires))
    assert len({(f - T0).total_seconds() % 60 for f in fires}) > 40  # spread, not one offset
    assert fires == [jittered.fire_at("s", T0 + timedelta(minutes=k)) for k in range(50)]  # the same everywhere


@pytest.mark.parametrize(
    ("expression", "message"),
    [("61 * * * *", "cron '61 * * * *' is not a valid cron expression (Bad minute"),
     ("* * 32 * *", "(Bad day-of-month"),
     ("* *", "(Wrong number of fields")],
)
def test_bad_cron_names_the_field(expression: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_cron(expression)
    assert message in str(caught.value) and str(caught.value).startswith("cron ")


def test_unknown_time_zone() -> None:
    with pytest.raises(InvalidArgument, match=r"^time_zone 'Europe/Atlantis' is not a known time zone"):
        time_zone("Europe/Atlantis")
    with pytest.raises(InvalidArgument, match=r"^time_zone '../etc/passwd' is not a known time zone"):
        time_zone("../etc/passwd")


class _AwayStore:
    """A store whose database is away for the first four passes."""

    def __init__(self, scheduler_box: list[Scheduler], stop: asyncio.Event) -> None:
        self.box = scheduler_box
        self.stop = stop
        self.seen: list[float] = []

    async def fire_due_schedules(self, batch: int, *, buffer_recheck: float) -> FireReport:
        self.seen.append(self.box[0].backoff)
        if len(self.seen) <= 4:
            raise ConnectionRefusedError("database away")
        if len(self.seen) == 6:
            self.stop.set()
        return FireReport()

    async def next_schedule_wake(self) -> None:
        return None


async def test_the_loop_backs_off_while_the_database_is_away() -> None:
    stop = asyncio.Event()
    box: list[Scheduler] = []
    store = _AwayStore(box, stop)
    scheduler = Scheduler(store, ScheduleSettings(interval=0.01, max_backoff=0.05))  # type: ignore[arg-type]
    box.append(scheduler)
    await asyncio.wait_for(scheduler.run(stop), 5)
    assert store.seen == [0.0, 0.02, 0.04, 0.05, 0.05, 0.0]  # doubling, capped; back to none
