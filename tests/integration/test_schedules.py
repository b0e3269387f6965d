"""Schedules against a real PostgreSQL with a clock the tests move: ticks, overlap policies,
catch-up after downtime, pause and resume, trigger, backfill, jitter, and exactly-once firing
by two schedulers (two stores on two pools) racing on the same rows."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from durable.common.errors import InvalidArgument, NotFound, WrongState
from durable.controlplane.scheduler import Scheduler
from durable.controlplane.settings import ScheduleSettings
from durable.controlplane.store import Store
from durable.controlplane.store.schedules import RECENT_FIRES
from tests.support.clock import FakeClock

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


async def runs(db: asyncpg.Connection, prefix: str) -> list[str]:
    rows = await db.fetch(
        "SELECT id FROM durable_workflow_instances WHERE starts_with(id, $1) ORDER BY id", prefix + "-")
    return [r["id"] for r in rows]


async def finish(db: asyncpg.Connection, workflow_id: str, status: str = "completed") -> None:
    await db.execute("UPDATE durable_workflow_instances SET status = $2, completed_at = now() WHERE id = $1",
                     workflow_id, status)


async def test_interval_ticks_start_workflows_with_ids_from_the_tick(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    s = await store.create_schedule("every5", workflow_type="report", input={"n": 1}, interval_seconds=5,
                                    overlap_policy="allow_all")
    assert s.next_tick == T0 + timedelta(seconds=5)  # the next tick after now, lined up with the epoch
    scheduler = Scheduler(store)
    assert (await scheduler.run_once()).started == 0
    clock.advance(5)
    report = await scheduler.run_once()
    assert report.started == 1 and report.fired_ids == ["every5-20260601T120005Z"]
    clock.advance(10)
    assert (await scheduler.run_once()).started == 2
    assert await runs(db, "every5") == [
        "every5-20260601T120005Z", "every5-20260601T120010Z", "every5-20260601T120015Z"]
    wf = await store.get_workflow("every5-20260601T120010Z")
    assert wf.workflow_type == "report" and wf.input == {"n": 1}
    s = await store.get_schedule("every5")
    assert s.started_count == 3 and s.next_tick == T0 + timedelta(seconds=20)
    assert [f["outcome"] for f in s.recent_fires] == ["started"] * 3


async def test_cron_in_a_time_zone_across_a_dst_change(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    # 02:30 every day in Berlin: on 29 March 2026 02:30 does not exist (clocks jump 02:00 -> 03:00)
    clock.current = datetime(2026, 3, 27, 12, tzinfo=UTC)
    s = await store.create_schedule("nightly", workflow_type="w", cron="30 2 * * *", time_zone="Europe/Berlin",
                                    catchup_window_seconds=86400 * 3, overlap_policy="allow_all")
    assert s.next_tick == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET
    clock.current = datetime(2026, 3, 30, 12, tzinfo=UTC)
    await Scheduler(store).run_once()
    assert await runs(db, "nightly") == [
        "nightly-20260328T013000Z",   # 02:30 CET
        "nightly-20260329T010000Z",   # the skipped 02:30 fires at 03:00 CEST
        "nightly-20260330T003000Z",   # 02:30 CEST
    ]


async def test_seconds_in_cron(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("sec", workflow_type="w", cron="*/20 * * * * *", overlap_policy="allow_all")
    clock.advance(60)
    await Scheduler(store).run_once()
    assert [r[-5:] for r in await runs(db, "sec")] == ["0020Z", "0040Z", "0100Z"]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("cron", {"cron": "61 * * * *"}),
        ("cron", {"cron": "every monday"}),
        ("time_zone", {"cron": "* * * * *", "time_zone": "Mars/Olympus_Mons"}),
        ("overlap_policy", {"cron": "* * * * *", "overlap_policy": "sometimes"}),
        ("interval_seconds", {"interval_seconds": 0.5}),
        ("jitter_seconds", {"interval_seconds": 10, "jitter_seconds": 10}),
        ("catchup_window_seconds", {"interval_seconds": 10, "catchup_window_seconds": -1}),
    ],
)
async def test_bad_input_names_the_field(store: Store, field: str, kwargs: dict[str, object], db: asyncpg.Connection) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.create_schedule("bad", workflow_type="w", **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(field) and "\n" not in message
    assert await db.fetchval("SELECT count(*) FROM durable_schedules") == 0


async def test_other_refusals(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="give exactly one"):
        await store.create_schedule("x", cron="* * * * *")
    with pytest.raises(InvalidArgument, match="workflow schedules only"):
        await store.create_schedule("x", activity_type="a", cron="* * * * *", overlap_policy="cancel_previous")
    with pytest.raises(InvalidArgument, match="not both"):
        await store.create_schedule("x", workflow_type="w", cron="* * * * *", interval_seconds=5)
    await store.create_schedule("x", workflow_type="w", cron="* * * * *")
    with pytest.raises(WrongState, match="already exists"):
        await store.create_schedule("x", workflow_type="w", cron="* * * * *")
    with pytest.raises(NotFound, match="schedule 'nope' does not exist"):
        await store.trigger_schedule("nope")


async def test_overlap_skip_and_buffer_one(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("skip", workflow_type="w", interval_seconds=10, overlap_policy="skip")
    await store.create_schedule("buf", workflow_type="w", interval_seconds=10, overlap_policy="buffer_one")
    scheduler = Scheduler(store)
    for _ in range(3):  # ticks at :10, :20, :30; the first run never ends
        clock.advance(10)
        await scheduler.run_once()
    assert await runs(db, "skip") == ["skip-20260601T120010Z"]
    assert (await store.get_schedule("skip")).skipped_count == 2
    assert await runs(db, "buf") == ["buf-20260601T120010Z"]
    buf = await store.get_schedule("buf")
    assert buf.buffered_tick == T0 + timedelta(seconds=20) and buf.skipped_count == 1
    # the run ends: the buffered tick starts at the next look (buffer_recheck), before the next tick
    await finish(db, "buf-20260601T120010Z")
    clock.advance(1)
    await scheduler.run_once()
    assert await runs(db, "buf") == ["buf-20260601T120010Z", "buf-20260601T120020Z"]
    assert (await store.get_schedule("buf")).buffered_tick is None


async def test_cancel_previous_asks_the_run_to_stop_then_starts(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("cp", workflow_type="w", interval_seconds=10, overlap_policy="cancel_previous")
    scheduler = Scheduler(store)
    clock.advance(10)
    await scheduler.run_once()
    clock.advance(10)
    report = await scheduler.run_once()
    assert report.cancelled == 1 and report.buffered == 1 and report.started == 0
    first = await store.get_workflow("cp-20260601T120010Z")
    # asked, not ended: the workflow's code decides when it stops
    assert first.status == "pending" and first.cancel_requested_at is not None
    events = [e.event_type for e in await store.load_events(first.id)]
    assert events[-1] == "WorkflowCancelRequested"
    clock.advance(10)  # the next tick while it winds down: asked once, the newer tick replaces the buffered one
    report = await scheduler.run_once()
    assert report.cancelled == 0 and report.buffered == 1 and report.skipped == 1
    assert await runs(db, "cp") == ["cp-20260601T120010Z"]  # still waiting for it to end
    assert (await store.get_schedule("cp")).buffered_tick == T0 + timedelta(seconds=30)
    await finish(db, first.id, "cancelled")
    clock.advance(1)
    await scheduler.run_once()
    assert await runs(db, "cp") == ["cp-20260601T120010Z", "cp-20260601T120030Z"]


async def test_terminate_previous_ends_the_run_at_once(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("tp", workflow_type="w", interval_seconds=10, overlap_policy="terminate_previous")
    scheduler = Scheduler(store)
    clock.advance(10)
    await scheduler.run_once()
    clock.advance(10)
    await scheduler.run_once()
    assert (await store.get_workflow("tp-20260601T120010Z")).status == "cancelled"
    assert (await store.get_workflow("tp-20260601T120020Z")).status == "pending"


async def test_catch_up_after_downtime_by_policy(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    """Every second, nobody fires for 10 s; a 5 s window: the older ticks are missed, the newer
    ones fire by the overlap policy."""
    for policy in ("allow_all", "skip", "buffer_one"):
        await store.create_schedule(policy.replace("_", ""), workflow_type="w", interval_seconds=1,
                                    overlap_policy=policy, catchup_window_seconds=5)
    scheduler = Scheduler(store)
    clock.advance(1)
    await scheduler.run_once()  # tick :01 of each fires on time
    clock.advance(10)  # down: ticks :02 .. :11 are due when it comes back at :11
    await scheduler.run_once()
    allow = await store.get_schedule("allowall")
    # late by more than 5 s (+1 s grace): :02 .. :04 missed; :05 .. :11 fire
    assert allow.missed_count == 3 and allow.started_count == 1 + 7
    assert [f["outcome"] for f in allow.recent_fires if f["outcome"] == "missed"] == ["missed"]
    assert len(await runs(db, "allowall")) == 8
    skip = await store.get_schedule("skip")
    assert skip.missed_count == 3 and skip.started_count == 1 and skip.skipped_count == 7
    await finish(db, "skip-20260601T120001Z")
    buffered = await store.get_schedule("bufferone")
    assert buffered.missed_count == 3 and buffered.started_count == 1
    assert buffered.buffered_tick == T0 + timedelta(seconds=5) and buffered.skipped_count == 6
    # on time again from here: the next tick fires
    await finish(db, "skip-20260601T120001Z")
    clock.advance(1)
    await scheduler.run_once()
    assert "skip-20260601T120012Z" in await runs(db, "skip")


async def test_pause_resume_trigger_and_delete(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("p", workflow_type="w", interval_seconds=10, overlap_policy="skip")
    scheduler = Scheduler(store)
    paused = await store.pause_schedule("p", "maintenance")
    assert paused.paused and paused.note == "maintenance"
    clock.advance(30)
    await scheduler.run_once()
    assert await runs(db, "p") == []
    # trigger runs a paused schedule now, by hand
    outcome, run = await store.trigger_schedule("p")
    assert outcome == "started" and run == "p-trigger-20260601T120030000000Z"
    clock.advance(0.001)
    assert (await store.trigger_schedule("p"))[0] == "skipped"   # its policy: the run is going
    assert (await store.trigger_schedule("p", "allow_all"))[0] == "started"
    resumed = await store.resume_schedule("p")
    assert not resumed.paused and resumed.next_tick == T0 + timedelta(seconds=40)  # paused ticks dropped
    await db.execute("UPDATE durable_workflow_instances SET status = 'completed', completed_at = now()")
    clock.advance(10)
    await scheduler.run_once()
    assert "p-20260601T120040Z" in await runs(db, "p")
    await store.delete_schedule("p")
    with pytest.raises(NotFound):
        await store.get_schedule("p")
    assert len(await runs(db, "p")) == 3  # the runs stay


async def test_backfill_starts_each_tick_once(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("bf", workflow_type="w", cron="0 * * * *", overlap_policy="skip")
    started, existing = await store.backfill_schedule("bf", T0 - timedelta(hours=5), T0 - timedelta(hours=1))
    assert (started, existing) == (5, 0)
    started, existing = await store.backfill_schedule("bf", T0 - timedelta(hours=6), T0 - timedelta(hours=3))
    assert (started, existing) == (1, 3)  # the ticks already run are found by their ids
    assert len(await runs(db, "bf")) == 6
    s = await store.get_schedule("bf")
    assert s.last_run_id is None  # backfills do not count as the schedule's last run
    with pytest.raises(InvalidArgument, match="more than 1000"):
        await store.backfill_schedule("bf", T0 - timedelta(days=60), T0)


async def test_jitter_delays_each_tick_the_same_on_every_replica(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    s = await store.create_schedule("j", workflow_type="w", interval_seconds=60, jitter_seconds=30,
                                    overlap_policy="allow_all")
    assert s.next_tick == T0 + timedelta(seconds=60)
    assert s.next_tick <= s.next_fire_at < s.next_tick + timedelta(seconds=30)
    again = await store.create_schedule("j2", workflow_type="w", interval_seconds=60, jitter_seconds=30)
    assert again.next_fire_at != s.next_fire_at  # a function of the schedule and the tick
    clock.current = s.next_fire_at - timedelta(microseconds=1)
    await Scheduler(store).run_once()
    assert await runs(db, "j") == []
    clock.current = s.next_fire_at
    await Scheduler(store).run_once()
    assert await runs(db, "j") == ["j-20260601T120100Z"]  # named by its tick, not its jittered time


async def test_activity_schedule_enqueues_tasks(store: Store, clock: FakeClock, db: asyncpg.Connection) -> None:
    await store.create_schedule("act", activity_type="cleanup", input={"days": 7}, interval_seconds=10,
                                overlap_policy="skip")
    scheduler = Scheduler(store)
    clock.advance(10)
    await scheduler.run_once()
    clock.advance(10)
    await scheduler.run_once()  # the first task is still pending: skipped
    rows = await db.fetch("SELECT activity_id, activity_type, input FROM durable_task_queue WHERE kind = 'activity'")
    assert [(r["activity_id"], r["activity_type"]) for r in rows] == [("act-20260601T120010Z", "cleanup")]
    await db.execute("UPDATE durable_task_queue SET status = 'completed'")
    clock.advance(10)
    await scheduler.run_once()
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 2


async def test_recent_fires_stay_bounded(store: Store, clock: FakeClock) -> None:
    await store.create_schedule("many", workflow_type="w", interval_seconds=1, overlap_policy="skip",
                                catchup_window_seconds=3600)
    clock.advance(150)
    scheduler = Scheduler(store)
    await scheduler.run_once()
    s = await store.get_schedule("many")
    assert s.started_count + s.skipped_count == 150
    assert len(s.recent_fires) == RECENT_FIRES


async def test_two_schedulers_fire_each_tick_once(database_url: str, clock: FakeClock, db: asyncpg.Connection) -> None:
    """Two stores on two pools, like two control planes, pass at the same moments: every tick
    of 20 per-second schedules fires exactly once, none is tried twice."""
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    try:
        stores = [Store(p, clock=clock, rng=random.Random(i)) for i, p in enumerate(pools)]
        for i in range(20):
            await stores[0].create_schedule(f"s{i:02d}", workflow_type="w", interval_seconds=1,
                                            overlap_policy="allow_all")
        schedulers = [Scheduler(s, ScheduleSettings(batch_size=3)) for s in stores]
        for _ in range(30):
            clock.advance(1)
            await asyncio.gather(*(s.run_once() for s in schedulers))
        ids = [r["id"] for r in await db.fetch("SELECT id FROM durable_workflow_instances")]
        assert len(ids) == 20 * 30 == len(set(ids))
        assert all(s.totals.started for s in schedulers), "both replicas took part"
        assert sum(s.totals.started for s in schedulers) == 600
        assert sum(s.totals.existing for s in schedulers) == 0
        counts = await db.fetch("SELECT started_count, existing_count FROM durable_schedules")
        assert {(r["started_count"], r["existing_count"]) for r in counts} == {(30, 0)}
    finally:
        for p in pools:
            await p.close()


async def test_a_schedule_that_fails_to_fire_does_not_hold_up_the_others(
    store: Store, clock: FakeClock, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_schedule("a-bad", workflow_type="w", interval_seconds=1, overlap_policy="allow_all")
    await store.create_schedule("b-good", workflow_type="w", interval_seconds=1, overlap_policy="allow_all")
    fire = store._fire_ticks

    async def failing(conn: asyncpg.Connection, firing: object) -> None:
        if firing.s.id == "a-bad":  # type: ignore[attr-defined]
            raise RuntimeError("boom")
        await fire(conn, firing)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_fire_ticks", failing)
    clock.advance(1)
    scheduler = Scheduler(store, ScheduleSettings(batch_size=1))
    await scheduler.run_once()
    assert await runs(db, "b-good") == ["b-good-20260601T120001Z"]
    bad = await store.get_schedule("a-bad")
    assert bad.recent_fires[-1]["outcome"] == "error" and "RuntimeError: boom" in bad.recent_fires[-1]["error"]
    assert bad.wake_at == clock.current + timedelta(seconds=30) and bad.next_tick == T0 + timedelta(seconds=1)
    monkeypatch.setattr(store, "_fire_ticks", fire)
    clock.advance(30)  # looked at again: it catches up within its window
    await scheduler.run_once()
    assert len(await runs(db, "a-bad")) == 31


async def test_the_claim_reads_the_wake_index(db: asyncpg.Connection) -> None:
    """With many schedules, most not due, the loop's claim and its wake-up read use the index."""
    await db.execute("""
        INSERT INTO durable_schedules (id, action, target_type, interval_seconds, start_at, next_tick,
                                       next_fire_at, wake_at, paused, created_at, updated_at)
        SELECT 's' || g, 'workflow', 'w', 60, now(), now() + g * interval '1 s', now() + g * interval '1 s',
               now() + g * interval '1 s', g % 10 = 0, now(), now()
        FROM generate_series(1, 20000) AS g""")
    await db.execute("ANALYZE durable_schedules")
    from durable.controlplane.store.queries import Q

    for query, args in ((Q.claim_due_schedule, (datetime.now(UTC),)), (Q.next_schedule_wake, ())):
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + query, *args))
        assert "durable_schedules_wake_idx" in plan, plan
