"""A workflow's history as a Gantt-style picture: one row per activity, timer, local activity
or step, and signal.

Pure data in, geometry out (in the units of the SVG's viewBox); the template draws it. Bars
run from when a step was scheduled to when its outcome was recorded (or now, while it runs);
retries are ticks on their step's bar, taken from the tasks' error histories; signals are
points on a row of their own. A local activity or step (a marker of kind "local_activity")
has no scheduled time: its bar runs from the event before its marker to the marker, which is
when its outcome was written (a step's, before the next step ran; a local activity's, with its
decision). Child workflows get rows of their own when the engine has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable.client import EventView, TaskView, WorkflowView

WIDTH = 1000.0
LABEL_WIDTH = 230.0
CHART_LEFT = LABEL_WIDTH + 10
CHART_WIDTH = WIDTH - CHART_LEFT - 10
ROW_HEIGHT = 26.0
AXIS_HEIGHT = 28.0
MAX_ROWS = 200


@dataclass(frozen=True)
class Mark:
    x: float
    title: str
    kind: str  # "retry", "signal" or "cancel"


@dataclass
class Row:
    label: str
    kind: str  # "workflow", "activity", "timer", "local", "signals"
    outcome: str  # completed, failed, cancelled, running, waiting, scheduled
    start: float
    end: float | None
    title: str
    key: str = ""
    marks: list[Mark] = field(default_factory=list)
    x: float = 0.0
    width: float = 0.0
    y: float = 0.0


@dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    ticks: list[tuple[float, str]]
    height: float
    hidden_rows: int
    width: float = WIDTH
    chart_left: float = CHART_LEFT
    chart_width: float = CHART_WIDTH
    row_height: float = ROW_HEIGHT
    axis_height: float = AXIS_HEIGHT


def _iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def span_label(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def build(workflow: WorkflowView, events: Sequence[EventView], tasks: Sequence[TaskView], now: float) -> Timeline:
    """The picture of `workflow` from its history and its tasks, as of `now` (Unix seconds)."""
    start = workflow.created_at or (events[0].created_at if events else now)
    end = workflow.completed_at or now
    if events:
        end = max(end, events[-1].created_at)
    steps: dict[tuple[str, str], Row] = {}
    order: list[Row] = []
    signals = Row("signals", "signals", "completed", start, None, "signals received")
    wf_row = Row(
        f"workflow {workflow.workflow_type}", "workflow", workflow.status if workflow.is_terminal else "running",
        start, workflow.completed_at or None, f"{workflow.workflow_type}: {workflow.status}",
    )

    def open_step(kind: str, key: str, label: str, at: float, title: str) -> None:
        row = Row(label, kind, "scheduled", at, None, title, key)
        steps[(kind, key)] = row
        order.append(row)

    def close_step(kind: str, key: str, at: float, outcome: str, note: str = "") -> None:
        row = steps.get((kind, key))
        if row is not None and row.end is None:
            row.end, row.outcome = at, outcome
            row.title += f": {outcome}{note} after {span_label(at - row.start)}"

    before = start  # when the event before this one was written
    for e in events:
        d = e.data
        at_before, before = before, e.created_at
        if e.event_type == "MarkerRecorded" and d.get("kind") == "local_activity":
            raw = d.get("value")
            value: dict[str, Any] = raw if isinstance(raw, dict) else {}
            mid, kind = str(d.get("marker_id", "")), value.get("activity_type", "?")
            outcome = "failed" if value.get("error") is not None else "completed"
            attempts = value.get("attempts")
            local = Row(f"{kind} · {mid}", "local", outcome, at_before, e.created_at,
                      f"local activity or step {kind} ({mid}): {outcome}"
                      + (f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else "")
                      + f", written {span_label(e.created_at - at_before)} after the event before it")
            order.append(local)
        elif e.event_type == "ActivityScheduled":
            aid = str(d.get("activity_id", ""))
            open_step("activity", aid, f"{d.get('activity_type', '?')} · {aid}", e.created_at,
                      f"activity {d.get('activity_type', '?')} ({aid})")
        elif e.event_type == "ActivityCompleted":
            attempt = d.get("attempt")
            close_step("activity", str(d.get("activity_id", "")), e.created_at, "completed",
                       f" on attempt {attempt}" if attempt else "")
        elif e.event_type == "ActivityFailed":
            close_step("activity", str(d.get("activity_id", "")), e.created_at, "failed",
                       f" ({d.get('reason', 'failed')}, {d.get('attempts', '?')} attempts)")
        elif e.event_type == "ActivityCancelled":
            close_step("activity", str(d.get("activity_id", "")), e.created_at, "cancelled")
        elif e.event_type == "TimerStarted":
            tid = str(d.get("timer_id", ""))
            fire_at = _iso(d.get("fire_at"))
            due = f", due after {span_label(fire_at - e.created_at)}" if fire_at else ""
            open_step("timer", tid, f"timer · {tid}", e.created_at, f"timer {tid}{due}")
        elif e.event_type == "TimerFired":
            close_step("timer", str(d.get("timer_id", "")), e.created_at, "completed")
        elif e.event_type == "WorkflowCancelRequested":
            wf_row.marks.append(Mark(e.created_at, f"cancel requested: {d.get('reason') or 'no reason given'}",
                                     "cancel"))
        elif e.event_type == "SignalReceived":
            signals.marks.append(Mark(e.created_at, f"signal {d.get('signal_type', '?')} (event {e.sequence_num})",
                                      "signal"))

    live = {t.activity_id: t for t in tasks if t.is_live and t.kind == "activity"}
    for t in tasks:
        row = steps.get((t.kind, t.activity_id)) if t.kind in ("activity", "timer") else None
        if row is None:
            continue
        for entry in t.error_history:
            at = _iso(entry.get("at"))
            if at is not None:
                row.marks.append(Mark(at, f"attempt {entry.get('attempt', '?')} failed: "
                                          f"{entry.get('type', '')} {entry.get('message', '')}".strip(), "retry"))
    for row in order:
        if row.end is None:
            if workflow.is_terminal:
                row.outcome = "cancelled"
                row.end = workflow.completed_at
            elif row.kind == "activity":
                task = live.get(row.key)
                row.outcome = "running" if task is not None and task.status == "claimed" else "waiting"
            else:
                row.outcome = "waiting"

    rows = [wf_row, *order] + ([signals] if signals.marks else [])
    hidden = max(0, len(rows) - MAX_ROWS)
    rows = rows[:MAX_ROWS]
    span = max(end - start, 0.001)

    def x_of(t: float) -> float:
        return CHART_LEFT + max(0.0, min(1.0, (t - start) / span)) * CHART_WIDTH

    for i, row in enumerate(rows):
        row.y = AXIS_HEIGHT + i * ROW_HEIGHT
        row.x = x_of(row.start)
        row.width = max(x_of(row.end if row.end is not None else end) - row.x, 3.0)
        row.marks = [Mark(x_of(m.x), m.title, m.kind) for m in row.marks]
    ticks = [(CHART_LEFT + CHART_WIDTH * i / 4, "+" + span_label(span * i / 4) if i else "0") for i in range(5)]
    return Timeline(rows, ticks, AXIS_HEIGHT + len(rows) * ROW_HEIGHT + 6, hidden)
