"""The replay engine: from a workflow's history to the actions of the next decision.

Pure: no I/O, no clock. For every workflow task the worker builds a fresh workflow object
and replays every handler-triggering event of the history in sequence order. Actions returned
for events with sequence_num <= decided_through_seq were applied already and are discarded;
the actions of later events, in order, are the decision. Ids left out by the workflow are
assigned deterministically: f"{activity_type}-{n}" where n counts (1-based) the activities
scheduled across the whole replay, and f"timer-{n}" likewise for timers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable.worker.actions import (
    TERMINAL_ACTIONS,
    Action,
    ActivityOptions,
    CompleteWorkflow,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
)
from durable.worker.workflow import Workflow, default_on_activity_failed

WORKFLOW_STARTED = "WorkflowStarted"
ACTIVITY_SCHEDULED = "ActivityScheduled"
ACTIVITY_COMPLETED = "ActivityCompleted"
ACTIVITY_FAILED = "ActivityFailed"
TIMER_STARTED = "TimerStarted"
TIMER_FIRED = "TimerFired"
SIGNAL_RECEIVED = "SignalReceived"
WORKFLOW_COMPLETED = "WorkflowCompleted"
WORKFLOW_FAILED = "WorkflowFailed"
WORKFLOW_CANCELLED = "WorkflowCancelled"

TRIGGERING_EVENTS = frozenset(
    {WORKFLOW_STARTED, ACTIVITY_COMPLETED, ACTIVITY_FAILED, TIMER_FIRED, SIGNAL_RECEIVED}
)
ENDING_EVENTS = frozenset({WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED})


class WorkflowCodeError(Exception):
    """The workflow's code raised or returned something that is not a list of actions."""


@dataclass(frozen=True)
class HistoryEvent:
    """One event of a workflow's history; `data` is the event's JSON object."""

    sequence_num: int
    event_type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome of a replay.

    `actions`: the new actions, ids assigned and options completed, in order.
    `seen_through_seq`: the last sequence_num of the history replayed.
    `ended`: the workflow has reached (or already had) its end; nothing follows it.
    """

    actions: list[Action]
    seen_through_seq: int
    ended: bool


OptionsLookup = Callable[[str], ActivityOptions]


def replay(
    workflow_cls: type,
    history: Iterable[HistoryEvent],
    decided_through_seq: int,
    *,
    workflow_id: str = "",
    workflow_type: str = "",
    activity_defaults: OptionsLookup | None = None,
) -> Decision:
    """Replay `history` through a fresh `workflow_cls()` and return the new decision.

    `activity_defaults(activity_type)` supplies options for scheduled activities that the
    workflow left unset (the registry's defaults). Raises WorkflowCodeError when the
    workflow's code raises or returns something that is not an action.
    """
    events = sorted(history, key=lambda e: e.sequence_num)
    workflow = _instantiate(workflow_cls, workflow_id, workflow_type)
    new_actions: list[Action] = []
    activities = 0
    timers = 0
    ended = False
    for event in events:
        if event.event_type in ENDING_EVENTS:
            ended = True
        if ended or event.event_type not in TRIGGERING_EVENTS:
            continue
        returned = _dispatch(workflow, event)
        for action in returned:
            if isinstance(action, ScheduleActivity):
                activities += 1
                if action.activity_id is None:
                    action = action.with_id(f"{action.activity_type}-{activities}")
                if activity_defaults is not None:
                    defaults = activity_defaults(action.activity_type)
                    action = ScheduleActivity(
                        activity_type=action.activity_type,
                        input=action.input,
                        activity_id=action.activity_id,
                        options=action.options.merged_over(defaults),
                    )
            elif isinstance(action, StartTimer):
                timers += 1
                if action.timer_id is None:
                    action = action.with_id(f"timer-{timers}")
            if event.sequence_num > decided_through_seq:
                new_actions.append(action)
            if isinstance(action, TERMINAL_ACTIONS):
                ended = True
                break
    return Decision(
        actions=new_actions,
        seen_through_seq=events[-1].sequence_num if events else 0,
        ended=ended,
    )


def _instantiate(workflow_cls: type, workflow_id: str, workflow_type: str) -> Any:
    try:
        workflow = workflow_cls()
    except Exception as exc:
        raise WorkflowCodeError(f"{workflow_cls.__name__}() raised {exc!r}") from exc
    for name, value in (("workflow_id", workflow_id), ("workflow_type", workflow_type)):
        try:
            setattr(workflow, name, value)
        except (AttributeError, TypeError):
            pass
    return workflow


def _dispatch(workflow: Any, event: HistoryEvent) -> list[Action]:
    data = event.data
    kind = event.event_type
    args: tuple[Any, ...]
    extra: dict[str, Any]
    if kind == WORKFLOW_STARTED:
        handler, args, extra = "on_start", (data.get("input") or {},), {}
    elif kind == ACTIVITY_COMPLETED:
        handler = "on_activity_completed"
        args = (str(data.get("activity_id", "")), data.get("result") or {})
        extra = {"activity_type": str(data.get("activity_type", ""))}
    elif kind == ACTIVITY_FAILED:
        handler = "on_activity_failed"
        args = (str(data.get("activity_id", "")), data.get("error") or {})
        extra = {"activity_type": str(data.get("activity_type", ""))}
    elif kind == TIMER_FIRED:
        handler, args, extra = "on_timer_fired", (str(data.get("timer_id", "")),), {}
    else:
        handler = "on_signal"
        args = (str(data.get("signal_type", "")), data.get("payload") or {})
        extra = {}
    method = getattr(workflow, handler, None)
    try:
        if method is None:
            returned: Any = _default(handler, args)
        else:
            kwargs = {k: v for k, v in extra.items() if _accepts(_function_of(method), k)}
            returned = method(*args, **kwargs)
    except Exception as exc:
        raise WorkflowCodeError(
            f"{type(workflow).__name__}.{handler} raised {type(exc).__name__}: {exc} "
            f"(event {event.sequence_num} {kind})"
        ) from exc
    return _as_actions(returned, f"{type(workflow).__name__}.{handler}")


def _default(handler: str, args: tuple[Any, ...]) -> Sequence[Action] | None:
    if handler == "on_activity_failed":
        return default_on_activity_failed(str(args[0]), dict(args[1]))
    return []


def _as_actions(returned: Any, where: str) -> list[Action]:
    if returned is None:
        return []
    if isinstance(returned, (ScheduleActivity, StartTimer, CompleteWorkflow, FailWorkflow)):
        return [returned]
    if isinstance(returned, (list, tuple)):
        for item in returned:
            if not isinstance(item, (ScheduleActivity, StartTimer, CompleteWorkflow, FailWorkflow)):
                raise WorkflowCodeError(
                    f"{where} returned {item!r}; build actions with schedule_activity, "
                    "start_timer, complete or fail"
                )
        return list(returned)
    raise WorkflowCodeError(f"{where} must return a list of actions, got {type(returned).__name__}")


def _function_of(method: Any) -> Any:
    return getattr(method, "__func__", method)


@functools.lru_cache(maxsize=1024)
def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


__all__ = [
    "Decision",
    "HistoryEvent",
    "Workflow",
    "WorkflowCodeError",
    "replay",
]
