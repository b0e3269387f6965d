"""Commands: what workflow code asks the engine to do, as plain values.

Workflow code issues them (an `await ctx.activity(...)` issues ScheduleActivity, an
`asyncio.sleep` a StartTimer, the end of the workflow function CompleteWorkflow, ...); the
callback layer (durable.worker.Workflow) returns them from its handlers. Each command, once
applied, is recorded as one event of the history (durable.worker.workflows.history), and on
replay the command issued at each position must match the event recorded there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from durable.common import InvalidArgument, RetryPolicy

Seconds = float | int | timedelta


def to_seconds(value: Seconds | None, *, field: str) -> float | None:
    """A duration as float seconds (None stays None); negative values are rejected."""
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if number < 0:
        raise InvalidArgument(f"{field} must be >= 0 seconds, got {number}")
    return number


def retry_policy_of(value: RetryPolicy | dict[str, Any] | None, *, field: str) -> RetryPolicy | None:
    """Accept a RetryPolicy or a mapping of its fields (validated)."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    parsed: RetryPolicy = RetryPolicy.parse(dict(value), field=field)
    return parsed


def check_concurrency(key: str | None, limit: int | None) -> None:
    """A concurrency key comes with its limit (>= 1), or neither is given."""
    if key is None and limit is None:
        return
    if key is None or limit is None:
        raise InvalidArgument("concurrency_key and concurrency_limit go together: give both or neither")
    if not isinstance(key, str) or not 1 <= len(key) <= 255:
        raise InvalidArgument(f"concurrency_key must be a string of 1 to 255 characters, got {key!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise InvalidArgument(f"concurrency_limit must be a whole number from 1 to 1000000, got {limit!r}")


@dataclass(frozen=True)
class ActivityOptions:
    """Per-activity options; None means "not given" (the registry's or the engine's default)."""

    retry_policy: RetryPolicy | None = None
    priority: int | None = None
    schedule_to_start_timeout: float | None = None
    start_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    start_delay: float | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    @classmethod
    def of(
        cls,
        *,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        priority: int | None = None,
        schedule_to_start_timeout: Seconds | None = None,
        start_to_close_timeout: Seconds | None = None,
        heartbeat_timeout: Seconds | None = None,
        start_delay: Seconds | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> ActivityOptions:
        """Options from what a caller wrote (durations as seconds or timedeltas), checked."""
        if (retry_policy is None and priority is None and schedule_to_start_timeout is None
                and start_to_close_timeout is None and heartbeat_timeout is None and start_delay is None
                and concurrency_key is None and concurrency_limit is None):
            return _NO_OPTIONS
        if priority is not None and not -1000 <= priority <= 1000:
            raise InvalidArgument(f"priority must be within -1000..1000, got {priority}")
        check_concurrency(concurrency_key, concurrency_limit)
        return cls(
            retry_policy=retry_policy_of(retry_policy, field="retry_policy"),
            priority=priority,
            schedule_to_start_timeout=to_seconds(schedule_to_start_timeout, field="schedule_to_start_timeout"),
            start_to_close_timeout=to_seconds(start_to_close_timeout, field="start_to_close_timeout"),
            heartbeat_timeout=to_seconds(heartbeat_timeout, field="heartbeat_timeout"),
            start_delay=to_seconds(start_delay, field="start_delay"),
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )

    def merged_over(self, defaults: ActivityOptions) -> ActivityOptions:
        """These options, with every unset field taken from `defaults`."""
        return ActivityOptions(
            **{
                name: getattr(self, name) if getattr(self, name) is not None
                else getattr(defaults, name)
                for name in self.__dataclass_fields__
            }
        )


_NO_OPTIONS = ActivityOptions()


@dataclass(frozen=True)
class ScheduleActivity:
    """Run an activity. `activity_id` None: the runtime assigns f"{type}-{n}" (n counts the
    workflow's activities, 1-based)."""

    activity_type: str
    input: Any
    activity_id: str | None = None
    options: ActivityOptions = field(default_factory=ActivityOptions)

    def with_id(self, activity_id: str) -> ScheduleActivity:
        return replace(self, activity_id=activity_id)


@dataclass(frozen=True)
class StartTimer:
    """A durable timer firing after `fire_after` seconds; `timer_id` None: "timer-{n}"."""

    fire_after: float
    timer_id: str | None = None

    def with_id(self, timer_id: str) -> StartTimer:
        return replace(self, timer_id=timer_id)


@dataclass(frozen=True)
class CompleteWorkflow:
    """End the workflow successfully with `result`."""

    result: Any


@dataclass(frozen=True)
class FailWorkflow:
    """End the workflow as failed."""

    message: str
    type: str = "WorkflowFailed"
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelActivity:
    """Stop waiting for an activity: a pending task is dropped, a running one is told
    through its heartbeat; a result that still arrives is ignored."""

    activity_id: str


@dataclass(frozen=True)
class CancelTimer:
    """Drop a durable timer that has not fired."""

    timer_id: str


@dataclass(frozen=True)
class RecordMarker:
    """Record a value in the history with no task: a side effect's result or a patch.
    `kind` is "side_effect" or "patch"; `marker_id` identifies it within its kind."""

    kind: str
    marker_id: str
    value: Any = None


@dataclass(frozen=True)
class CancelWorkflow:
    """End the workflow as cancelled (its code let the CancelledError out)."""

    reason: str = ""


PARENT_CLOSE_POLICIES = ("cancel", "abandon")


@dataclass(frozen=True)
class StartChildWorkflow:
    """Start workflow `workflow_type` as a child (ChildWorkflowStarted); its end comes back
    as ChildWorkflowCompleted, ChildWorkflowFailed or ChildWorkflowCancelled. `child_id` is
    the child's workflow id (None: the runtime assigns f"{parent id}/{type}-{n}").
    `parent_close_policy`: "cancel" (the parent's end cancels the child) or "abandon"."""

    workflow_type: str
    input: Any
    child_id: str | None = None
    parent_close_policy: str = "cancel"

    def with_id(self, child_id: str) -> StartChildWorkflow:
        return replace(self, child_id=child_id)


@dataclass(frozen=True)
class ContinueAsNew:
    """End this run and start a fresh one of the same workflow id with `input` and an empty
    history (WorkflowContinuedAsNew). `handled_through_seq`: the last event the code handled;
    signals recorded after it were not seen by this run and go on to the next."""

    input: Any
    handled_through_seq: int = 0


Action = (
    ScheduleActivity | StartTimer | CompleteWorkflow | FailWorkflow
    | CancelActivity | CancelTimer | RecordMarker | CancelWorkflow
    | StartChildWorkflow | ContinueAsNew
)
Command = Action
COMMAND_TYPES = (
    ScheduleActivity, StartTimer, CompleteWorkflow, FailWorkflow,
    CancelActivity, CancelTimer, RecordMarker, CancelWorkflow,
    StartChildWorkflow, ContinueAsNew,
)
TERMINAL_ACTIONS = (CompleteWorkflow, FailWorkflow, CancelWorkflow, ContinueAsNew)


def schedule_activity(
    activity_type: str,
    input: dict[str, Any] | None = None,
    activity_id: str | None = None,
    retry_policy: RetryPolicy | dict[str, Any] | None = None,
    priority: int | None = None,
    start_to_close_timeout: Seconds | None = None,
    schedule_to_start_timeout: Seconds | None = None,
    heartbeat_timeout: Seconds | None = None,
    start_delay: Seconds | None = None,
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
) -> ScheduleActivity:
    """Schedule the activity `activity_type` with `input` (a JSON object).

    Options left out come from the activity's registration in the same App, if any, and
    otherwise from the control plane's defaults. `priority` is -1000..1000, higher first.
    """
    if not activity_type:
        raise InvalidArgument("activity_type must not be empty")
    options = ActivityOptions.of(
        retry_policy=retry_policy, priority=priority, schedule_to_start_timeout=schedule_to_start_timeout,
        start_to_close_timeout=start_to_close_timeout, heartbeat_timeout=heartbeat_timeout,
        start_delay=start_delay, concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
    )
    return ScheduleActivity(
        activity_type=activity_type,
        input=dict(input or {}),
        activity_id=activity_id,
        options=options,
    )


def start_timer(seconds: Seconds, timer_id: str | None = None) -> StartTimer:
    """Start a timer firing after `seconds` seconds; `timer_id` None: "timer-{n}"."""
    after = to_seconds(seconds, field="seconds")
    assert after is not None
    return StartTimer(fire_after=after, timer_id=timer_id)


def complete(result: dict[str, Any] | None = None) -> CompleteWorkflow:
    """Complete the workflow with `result` (a JSON object)."""
    return CompleteWorkflow(result=dict(result or {}))


def fail(message: str, type: str | None = None, details: dict[str, Any] | None = None) -> FailWorkflow:
    """Fail the workflow with `message`; `type` names the error (default "WorkflowFailed")."""
    return FailWorkflow(message=message, type=type or "WorkflowFailed", details=details)
