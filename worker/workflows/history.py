"""The history a workflow replays, and the matching of commands against it.

A history is the workflow's events in sequence order. Two kinds matter to replay:

- **command events** record a command the workflow's code issued (ActivityScheduled,
  TimerStarted, ActivityCancelRequested, TimerCancelled, MarkerRecorded, ChildWorkflowStarted
  and the four ending events, WorkflowContinuedAsNew among them). On replay the code issues its commands again, and each must equal the command
  event at its position: same kind, same activity type or marker, same id.
- **the other events** are what happened to the workflow (WorkflowStarted, ActivityCompleted,
  ActivityFailed, TimerFired, SignalReceived, WorkflowCancelRequested, ChildWorkflowCompleted,
  ChildWorkflowFailed, ChildWorkflowCancelled, HistorySizeWarning). They are delivered to
  the code one at a time, in order; after each, the code runs until it waits again.

The matching rules, all of them, are in `CommandMatcher`:

1. Commands are compared in the order issued with command events in history order.
2. The history is walked in order, so a command event at sequence j is reached before any
   later event is delivered: by then the code must have issued the command recorded at j.
3. When the history ends, every command issued while handling an event that was decided
   before (up to the workflow's decided-through sequence number) must have been matched:
   those decisions recorded all their commands. The commands issued while handling the
   later events, beyond the recorded ones, are the new decision.
4. A recorded patch marker the code does not ask about is skipped (a retired `patched`
   call), and so is a local activity's deferral marker (the runtime's, not the code's);
   any other difference raises NonDeterminismError naming the event.

A local activity's marker is a command event too, issued when its outcome is handed to the
code; when replay issues it again is the rule of durable.worker.workflows.local (its rule 7
is the deferral marker's).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from durable.worker.workflows.commands import (
    CancelActivity,
    CancelTimer,
    CancelWorkflow,
    Command,
    CompleteWorkflow,
    FailWorkflow,
    ContinueAsNew,
    RecordMarker,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
)
from durable.worker.workflows.errors import NonDeterminismError

WORKFLOW_STARTED = "WorkflowStarted"
ACTIVITY_SCHEDULED = "ActivityScheduled"
ACTIVITY_COMPLETED = "ActivityCompleted"
ACTIVITY_FAILED = "ActivityFailed"
ACTIVITY_CANCEL_REQUESTED = "ActivityCancelRequested"
TIMER_STARTED = "TimerStarted"
TIMER_FIRED = "TimerFired"
TIMER_CANCELLED = "TimerCancelled"
MARKER_RECORDED = "MarkerRecorded"
SIGNAL_RECEIVED = "SignalReceived"
WORKFLOW_CANCEL_REQUESTED = "WorkflowCancelRequested"
WORKFLOW_COMPLETED = "WorkflowCompleted"
WORKFLOW_FAILED = "WorkflowFailed"
WORKFLOW_CANCELLED = "WorkflowCancelled"
WORKFLOW_CONTINUED_AS_NEW = "WorkflowContinuedAsNew"
CHILD_WORKFLOW_STARTED = "ChildWorkflowStarted"
CHILD_WORKFLOW_COMPLETED = "ChildWorkflowCompleted"
CHILD_WORKFLOW_FAILED = "ChildWorkflowFailed"
CHILD_WORKFLOW_CANCELLED = "ChildWorkflowCancelled"
HISTORY_SIZE_WARNING = "HistorySizeWarning"
LOCAL_ACTIVITY = "local_activity"  # the kind of a local activity's marker
LOCAL_DEFERRED = "local_activity_deferred"  # a local activity a decision ended before running

COMMAND_EVENTS = frozenset({
    ACTIVITY_SCHEDULED, TIMER_STARTED, ACTIVITY_CANCEL_REQUESTED, TIMER_CANCELLED,
    MARKER_RECORDED, WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED,
    CHILD_WORKFLOW_STARTED, WORKFLOW_CONTINUED_AS_NEW,
})
ENDING_EVENTS = frozenset({WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED, WORKFLOW_CONTINUED_AS_NEW})


@dataclass(frozen=True)
class HistoryEvent:
    """One event of a workflow's history; `data` is the event's decoded JSON."""

    sequence_num: int
    event_type: str
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def is_command(self) -> bool:
        # An ending the engine wrote on its own (a terminated workflow) is no command.
        return self.event_type in COMMAND_EVENTS and not self.data.get("terminated")


def parse_time(value: Any) -> datetime | None:
    """An event time from the wire (Unix seconds) or a history file (ISO 8601)."""
    if value in (None, "", 0, 0.0):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def describe_command(command: Command) -> str:
    """How a command reads in an error message."""
    if isinstance(command, ScheduleActivity):
        return f"ScheduleActivity(activity_type={command.activity_type!r}, activity_id={command.activity_id!r})"
    if isinstance(command, StartTimer):
        return f"StartTimer(timer_id={command.timer_id!r}, fire_after={command.fire_after:g})"
    if isinstance(command, CancelActivity):
        return f"CancelActivity(activity_id={command.activity_id!r})"
    if isinstance(command, CancelTimer):
        return f"CancelTimer(timer_id={command.timer_id!r})"
    if isinstance(command, RecordMarker):
        return f"RecordMarker(kind={command.kind!r}, marker_id={command.marker_id!r})"
    if isinstance(command, StartChildWorkflow):
        return f"StartChildWorkflow(workflow_type={command.workflow_type!r}, child_id={command.child_id!r})"
    return type(command).__name__


def describe_event(event: HistoryEvent) -> str:
    d = event.data
    if event.event_type == ACTIVITY_SCHEDULED:
        detail = f"activity_type={d.get('activity_type')!r}, activity_id={d.get('activity_id')!r}"
    elif event.event_type in (TIMER_STARTED, TIMER_CANCELLED):
        detail = f"timer_id={d.get('timer_id')!r}"
    elif event.event_type == ACTIVITY_CANCEL_REQUESTED:
        detail = f"activity_id={d.get('activity_id')!r}"
    elif event.event_type == MARKER_RECORDED:
        detail = f"kind={d.get('kind')!r}, marker_id={d.get('marker_id')!r}"
    elif event.event_type == CHILD_WORKFLOW_STARTED:
        detail = f"workflow_type={d.get('workflow_type')!r}, child_id={d.get('child_id')!r}"
    else:
        detail = ""
    return f"{event.event_type}({detail})"


def matches(command: Command, event: HistoryEvent) -> bool:
    """Whether `command` is what `event` recorded (kind, type or marker, id)."""
    d = event.data
    kind = event.event_type
    if isinstance(command, ScheduleActivity):
        return (kind == ACTIVITY_SCHEDULED and d.get("activity_type") == command.activity_type
                and d.get("activity_id") == command.activity_id)
    if isinstance(command, StartTimer):
        return kind == TIMER_STARTED and d.get("timer_id") == command.timer_id
    if isinstance(command, CancelActivity):
        return kind == ACTIVITY_CANCEL_REQUESTED and d.get("activity_id") == command.activity_id
    if isinstance(command, CancelTimer):
        return kind == TIMER_CANCELLED and d.get("timer_id") == command.timer_id
    if isinstance(command, RecordMarker):
        return (kind == MARKER_RECORDED and d.get("kind") == command.kind
                and d.get("marker_id") == command.marker_id)
    if isinstance(command, StartChildWorkflow):
        return (kind == CHILD_WORKFLOW_STARTED and d.get("workflow_type") == command.workflow_type
                and d.get("child_id") == command.child_id)
    if isinstance(command, ContinueAsNew):
        return kind == WORKFLOW_CONTINUED_AS_NEW
    if isinstance(command, CompleteWorkflow):
        return kind == WORKFLOW_COMPLETED
    if isinstance(command, FailWorkflow):
        return kind == WORKFLOW_FAILED
    if isinstance(command, CancelWorkflow):
        return kind == WORKFLOW_CANCELLED
    return False


def is_patch_marker(event: HistoryEvent, patch_id: str | None = None) -> bool:
    return (event.event_type == MARKER_RECORDED and event.data.get("kind") == "patch"
            and (patch_id is None or event.data.get("marker_id") == patch_id))


def is_local_marker(event: HistoryEvent) -> bool:
    return event.event_type == MARKER_RECORDED and event.data.get("kind") == LOCAL_ACTIVITY


def is_deferral_marker(event: HistoryEvent) -> bool:
    return event.event_type == MARKER_RECORDED and event.data.get("kind") == LOCAL_DEFERRED


def _skipped(event: HistoryEvent) -> bool:
    """Rule 4: a command event the code need not have issued."""
    return is_patch_marker(event) or is_deferral_marker(event)


class CommandMatcher:
    """Pairs the commands the code issues with the command events of the history.

    Commands issued and not yet recorded wait in `issued`; command events met in the
    history confirm them in order. Whatever is still in `issued` when the history ends is
    the new decision. The rules are the module's docstring.
    """

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.issued: deque[Command] = deque()
        self.issued_at: deque[HistoryEvent | None] = deque()  # the event being handled then
        self.sent = 0  # the oldest of `issued` a journal wrote (ctx.step), not in the history yet

    def issue(self, command: Command, handling: HistoryEvent | None = None) -> None:
        self.issued.append(command)
        self.issued_at.append(handling)

    def end_of_decided(self, decided_through_seq: int) -> None:
        """Rule 3: nothing issued while handling the decided events may be left unmatched."""
        extra = [
            (command, event) for command, event in zip(self.issued, self.issued_at, strict=True)
            if event is None or event.sequence_num <= decided_through_seq
        ]
        if not extra:
            return
        command, event = extra[0]
        where = f"event {event.sequence_num} ({event.event_type})" if event is not None else "the start"
        raise NonDeterminismError(
            f"workflow {self.workflow}: handling {where}, the code issued "
            f"{describe_command(command)}, which the history does not hold: the decision "
            f"recorded there (through event {decided_through_seq}) issued no such command"
        )

    def record(self, event: HistoryEvent) -> None:
        """A command event of the history: it must be the oldest unconfirmed command."""
        if not self.issued:
            if _skipped(event):
                return  # rule 4: a retired patch, a deferral
            raise NonDeterminismError(
                f"workflow {self.workflow}: event {event.sequence_num} in the history is "
                f"{describe_event(event)}; the code issued no command there"
            )
        command = self.issued[0]
        if matches(command, event):
            self.issued.popleft()
            self.issued_at.popleft()
            self.sent = max(0, self.sent - 1)
            return
        if _skipped(event):
            return  # rule 4
        raise NonDeterminismError(
            f"workflow {self.workflow}: event {event.sequence_num} in the history is "
            f"{describe_event(event)}; the code issued {describe_command(command)} there"
        )

    def new_commands(self) -> list[Command]:
        """Rule 3: the commands beyond the history, in order (less those a journal wrote)."""
        return list(self.issued)[self.sent:]


def sorted_history(events: Iterable[HistoryEvent]) -> list[HistoryEvent]:
    return sorted(events, key=lambda e: e.sequence_num)
