"""The console's pure parts: the timeline picture, the throughput sparkline, sessions, CSRF,
redirects after sign-in, and the store's page tokens and prefix patterns (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from durable.client import EventView, TaskView, WorkflowView
from durable.common.errors import InvalidArgument
from durable.console import sparkline, timeline
from durable.console.auth import Sessions, csrf_matches
from durable.console.pages_auth import _safe_next
from durable.controlplane.store.browse import decode_page_token, encode_page_token, like_prefix

T0 = 1_800_000_000.0


def wf(status: str = "running", completed_at: float = 0.0) -> WorkflowView:
    return WorkflowView("w", "demo", status, {}, None, None, T0, T0, T0, completed_at, 0)


def ev(seq: int, at: float, event_type: str, **data: Any) -> EventView:
    return EventView(seq, event_type, data, T0 + at)


def task(activity_id: str, status: str, errors: list[dict[str, Any]] = (), kind: str = "activity") -> TaskView:  # type: ignore[assignment]
    return TaskView("t-" + activity_id, kind, activity_id, "fetch", status, 1, 5, 0, T0, T0, "", 0, 0, 0, "",
                    list(errors))


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat()


def test_timeline_rows_outcomes_retries_and_signals() -> None:
    events = [
        ev(1, 0, "WorkflowStarted"),
        ev(2, 0, "ActivityScheduled", activity_id="a", activity_type="fetch"),
        ev(3, 4, "ActivityCompleted", activity_id="a", activity_type="fetch", attempt=3),
        ev(4, 4, "TimerStarted", timer_id="cool", fire_at=at(6)),
        ev(5, 6, "TimerFired", timer_id="cool"),
        ev(6, 6, "ActivityScheduled", activity_id="b", activity_type="fetch"),
        ev(7, 7, "SignalReceived", signal_type="approve", payload={}),
    ]
    tasks = [task("a", "completed", [{"attempt": 1, "at": at(1)}, {"attempt": 2, "at": at(2)}]),
             task("b", "claimed")]
    picture = timeline.build(wf(), events, tasks, now=T0 + 10)
    kinds = [(r.kind, r.outcome) for r in picture.rows]
    assert kinds == [("workflow", "running"), ("activity", "completed"), ("timer", "completed"),
                     ("activity", "running"), ("signals", "completed")]
    _, a, cool, b, signals = picture.rows
    assert [m.kind for m in a.marks] == ["retry", "retry"]
    assert "on attempt 3" in a.title
    assert [m.kind for m in signals.marks] == ["signal"]
    left, right = picture.chart_left, picture.chart_left + picture.chart_width
    assert a.x == pytest.approx(left) and b.x + b.width == pytest.approx(right)  # running to now
    assert a.x < a.marks[0].x < a.marks[1].x < a.x + a.width
    assert cool.x == pytest.approx(left + 0.4 * picture.chart_width)
    assert all(left <= m.x <= right for r in picture.rows for m in r.marks)
    assert picture.ticks[0][1] == "0" and picture.ticks[-1][1] == "+10.0 s"


def test_timeline_rows_for_steps_run_from_the_event_before_to_their_marker() -> None:
    def marker(seq: int, at: float, mid: str, **value: Any) -> EventView:
        return ev(seq, at, "MarkerRecorded", kind="local_activity", marker_id=mid,
                  value={"activity_type": "parse", "attempts": 1, "seen_seq": 1, **value})

    events = [ev(1, 0, "WorkflowStarted"), marker(2, 2, "parse-1", result={}),
              marker(3, 5, "parse-2", attempts=3, error={"type": "E", "message": "no"}),
              ev(4, 5, "MarkerRecorded", kind="patch", marker_id="v2", value=True)]
    picture = timeline.build(wf("completed", completed_at=T0 + 10), events, [], now=T0 + 10)
    assert [(r.kind, r.outcome, r.label) for r in picture.rows] == [
        ("workflow", "completed", "workflow demo"), ("local", "completed", "parse · parse-1"),
        ("local", "failed", "parse · parse-2")]
    _, first, second = picture.rows
    assert (first.start, first.end, second.start, second.end) == (T0, T0 + 2, T0 + 2, T0 + 5)
    assert "failed after 3 attempts, written 3.0 s after the event before it" in second.title
    assert first.x + first.width == pytest.approx(second.x)


def test_timeline_of_an_ended_workflow_closes_open_steps_and_caps_rows() -> None:
    events = [ev(1, 0, "WorkflowStarted")] + [
        ev(i + 2, i * 0.01, "ActivityScheduled", activity_id=f"s{i}", activity_type="x") for i in range(250)
    ]
    events.append(ev(300, 4, "WorkflowCancelRequested", reason="enough"))
    picture = timeline.build(wf("cancelled", completed_at=T0 + 5), events, [], now=T0 + 99)
    assert [(m.kind, m.title) for m in picture.rows[0].marks] == [("cancel", "cancel requested: enough")]
    assert len(picture.rows) == timeline.MAX_ROWS and picture.hidden_rows == 251 - timeline.MAX_ROWS
    assert {r.outcome for r in picture.rows[1:]} == {"cancelled"}
    assert picture.rows[1].x + picture.rows[1].width == pytest.approx(picture.chart_left + picture.chart_width)


async def test_sessions_expire_after_their_idle_lifetime() -> None:
    now = [0.0]

    class FakeClient:
        closed = False

        async def close(self) -> None:
            self.closed = True

    sessions = Sessions(60, clock=lambda: now[0])
    client = FakeClient()
    session = sessions.create("tok", "client", client)  # type: ignore[arg-type]
    now[0] = 59
    assert await sessions.get(session.id) is session  # use renews it
    now[0] = 118
    assert await sessions.get(session.id) is session
    now[0] = 179
    assert await sessions.get(session.id) is None and client.closed and len(sessions) == 0
    assert await sessions.get(None) is None and await sessions.get("forged") is None


def test_csrf_and_the_redirect_after_sign_in() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd") and not csrf_matches(None, "abc") and not csrf_matches("abc", "")
    assert _safe_next("/workflows?status=failed") == "/workflows?status=failed"
    for evil in ("//evil.example", "https://evil.example/", "\\\\evil", "/\\evil", "", None, "workflows"):
        assert _safe_next(evil) == "/"


def test_page_tokens_round_trip_to_the_microsecond_and_refuse_garbage() -> None:
    when = datetime(2026, 12, 1, 9, 30, 15, 123457, tzinfo=UTC)
    assert decode_page_token(encode_page_token(when, "id|with|bars")) == (when, "id|with|bars")
    for bad in ("", "%%%", "bm90LWEtdG9rZW4"):
        with pytest.raises(InvalidArgument):
            decode_page_token(bad)


def test_id_prefix_becomes_a_literal_like_pattern() -> None:
    assert like_prefix("ab") == "ab%"
    assert like_prefix("a_b%c\\") == "a\\_b\\%c\\\\%"
    assert like_prefix("") is None and like_prefix(None) is None


def test_sparkline_spans_the_width_with_the_busiest_minute_on_top() -> None:
    counts = [0] * 58 + [4, 2]
    line = sparkline.build(counts, "fetch")
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert len(points) == 60 and points[0][0] == 0 and points[-1][0] == pytest.approx(sparkline.WIDTH)
    ys = [y for _, y in points]
    assert ys[58] == pytest.approx(1) and ys[0] == pytest.approx(sparkline.HEIGHT - 1)  # peak on top, 0 at the bottom
    assert ys[0] > ys[59] > ys[58]
    assert (line.total, line.peak) == (6, 4)
    assert line.title == "fetch: 6 completed in the last 60 minutes, at most 4 in a minute; 2 in the current minute"
    idle = sparkline.build([0] * 60, "idle")
    assert idle.title == "idle: nothing completed in the last 60 minutes"
    assert {p.split(",")[1] for p in idle.points.split()} == {f"{sparkline.HEIGHT - 1:.1f}"}


def test_the_hour_starts_on_a_whole_minute_so_polls_see_the_same_buckets() -> None:
    start = sparkline.hour_start(T0 + 125.5)  # T0 is a whole minute
    assert start == T0 + 120 - 59 * 60
    assert sparkline.hour_start(T0 + 179.9) == start and sparkline.hour_start(T0 + 180) == start + 60
