"""How `durable workflows show` names steps, attempts and times."""

from __future__ import annotations

from durable.cli.render import activity_types, attempts, history_table, iso, step
from durable.client.client import EventView


def event(seq: int, event_type: str, **data: object) -> EventView:
    return EventView(seq, event_type, dict(data), 1_764_579_600.123)


def test_times_are_iso_8601_with_milliseconds_and_zone() -> None:
    assert iso(1_764_579_600.123) == "2025-12-01T09:00:00.123+00:00"
    assert iso(0) is None


def test_steps_and_attempts() -> None:
    history = [
        event(1, "WorkflowStarted", workflow_type="w", input={}),
        event(2, "ActivityScheduled", activity_id="a1", activity_type="charge", input={}),
        event(3, "ActivityCompleted", activity_id="a1", activity_type="charge", result={}, attempt=3),
        event(4, "ActivityCancelRequested", activity_id="a2"),
        event(5, "ActivityFailed", activity_id="a3", activity_type="ship", attempts=5, reason="exhausted"),
        event(6, "TimerStarted", timer_id="t"),
        event(7, "MarkerRecorded", kind="side_effect", marker_id="m1", value=1),
    ]
    types = activity_types(history + [event(8, "ActivityScheduled", activity_id="a2", activity_type="refund")])
    assert [step(e, types) for e in history] == [
        "-", "charge[a1]", "charge[a1]", "refund[a2]", "ship[a3]", "timer[t]", "side_effect[m1]",
    ]
    assert attempts(history[2]) == "3 (2 retries)"
    assert attempts(event(9, "ActivityCompleted", attempt=2)) == "2 (1 retry)"
    assert attempts(event(9, "ActivityCompleted", attempt=1)) == "1"
    assert attempts(history[4]) == "5 (failed, exhausted)"
    table = history_table(history, full=False)
    assert "2025-12-01T09:00:00.123+00:00" in table and "charge[a1]" in table
