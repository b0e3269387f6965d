"""Conversions between the SDK's values and the durable.v1 protocol messages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from durable.common import NonRetryableError, RetryableError, RetryPolicy
from durable.common.payloads import encode_payload
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.workflows.commands import (
    Action,
    ActivityOptions,
    CancelActivity,
    CancelTimer,
    CancelWorkflow,
    ContinueAsNew,
    CompleteWorkflow,
    FailWorkflow,
    RecordMarker,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
)
from durable.worker.workflows.history import HistoryEvent, parse_time

MAX_MESSAGE_CHARS = 4000


def history_from_proto(events: Iterable[pb.Event]) -> list[HistoryEvent]:
    """The history of a workflow task as HistoryEvents (event data parsed as JSON)."""
    result = []
    for event in events:
        data: Any = json.loads(event.event_data_json) if event.event_data_json else {}
        result.append(
            HistoryEvent(
                sequence_num=event.sequence_num,
                event_type=event.event_type,
                data=data if isinstance(data, dict) else {"value": data},
                created_at=parse_time(event.created_at),
            )
        )
    return result


def retry_policy_to_proto(policy: RetryPolicy) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_interval=policy.initial_interval,
        backoff_coefficient=policy.backoff_coefficient,
        max_interval=policy.max_interval,
        jitter=policy.jitter,
        non_retryable_error_types=list(policy.non_retryable_error_types),
    )


def options_to_proto(options: ActivityOptions) -> pb.ActivityOptions:
    message = pb.ActivityOptions(
        priority=options.priority or 0,
        schedule_to_start_timeout=options.schedule_to_start_timeout or 0.0,
        start_to_close_timeout=options.start_to_close_timeout or 0.0,
        heartbeat_timeout=options.heartbeat_timeout or 0.0,
        start_delay=options.start_delay or 0.0,
        concurrency_key=options.concurrency_key or "",
        concurrency_limit=options.concurrency_limit or 0,
    )
    if options.retry_policy is not None:
        message.retry_policy.CopyFrom(retry_policy_to_proto(options.retry_policy))
    return message


def failure_to_proto(
    message: str,
    type: str,
    *,
    non_retryable: bool = False,
    next_retry_delay: float = 0.0,
    details: dict[str, Any] | None = None,
) -> pb.Failure:
    return pb.Failure(
        message=message[:MAX_MESSAGE_CHARS],
        type=type,
        non_retryable=non_retryable,
        next_retry_delay=max(next_retry_delay, 0.0),
        details_json=encode_payload(details, field="failure details") if details else "",
    )


def failure_from_exception(exc: BaseException) -> pb.Failure:
    """How an activity's exception is reported: RetryableError (with its delay),
    NonRetryableError (straight to the DLQ), anything else retryable with its class name."""
    if isinstance(exc, RetryableError):
        delay = exc.next_retry_delay
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay or 0.0)
        return failure_to_proto(str(exc), exc.type, next_retry_delay=seconds)
    if isinstance(exc, NonRetryableError):
        return failure_to_proto(str(exc), exc.type, non_retryable=True)
    text = str(exc) or type(exc).__name__
    return failure_to_proto(text, type(exc).__name__)


def value_json(value: Any, field: str) -> str:
    """Any JSON value as the text of a payload (None: "null"). Raises InvalidArgument."""
    return "null" if value is None else encode_payload(value, field=field)


def action_to_proto(action: Action) -> pb.WorkflowAction:
    """One command of a decision. Raises InvalidArgument for a payload that breaks the rules."""
    if isinstance(action, ScheduleActivity):
        assert action.activity_id is not None, "the replay engine assigns activity ids"
        return pb.WorkflowAction(
            schedule_activity=pb.ScheduleActivity(
                activity_id=action.activity_id,
                activity_type=action.activity_type,
                input_json=value_json(action.input, f"input of {action.activity_id}"),
                options=options_to_proto(action.options),
            )
        )
    if isinstance(action, StartTimer):
        assert action.timer_id is not None, "the replay engine assigns timer ids"
        return pb.WorkflowAction(
            start_timer=pb.StartTimer(timer_id=action.timer_id, fire_after=action.fire_after)
        )
    if isinstance(action, CompleteWorkflow):
        return pb.WorkflowAction(
            complete_workflow=pb.CompleteWorkflow(
                result_json=value_json(action.result, "workflow result")
            )
        )
    if isinstance(action, FailWorkflow):
        return pb.WorkflowAction(
            fail_workflow=pb.FailWorkflow(
                failure=failure_to_proto(
                    action.message, action.type, non_retryable=True, details=action.details
                )
            )
        )
    if isinstance(action, RecordMarker):
        return pb.WorkflowAction(record_marker=pb.RecordMarker(
            kind=action.kind, marker_id=action.marker_id,
            value_json=value_json(action.value, f"marker {action.marker_id}")))
    if isinstance(action, CancelActivity):
        return pb.WorkflowAction(cancel_activity=pb.CancelActivity(activity_id=action.activity_id))
    if isinstance(action, CancelTimer):
        return pb.WorkflowAction(cancel_timer=pb.CancelTimer(timer_id=action.timer_id))
    if isinstance(action, CancelWorkflow):
        return pb.WorkflowAction(cancel_workflow=pb.CancelWorkflowAction(reason=action.reason))
    if isinstance(action, StartChildWorkflow):
        assert action.child_id is not None, "the replay engine assigns child ids"
        return pb.WorkflowAction(start_child_workflow=pb.StartChildWorkflow(
            child_id=action.child_id, workflow_type=action.workflow_type,
            input_json=value_json(action.input, f"input of child {action.child_id}"),
            parent_close_policy=action.parent_close_policy))
    if isinstance(action, ContinueAsNew):
        return pb.WorkflowAction(continue_as_new=pb.ContinueAsNewAction(
            input_json=value_json(action.input, "input of the next run"),
            handled_through_seq=action.handled_through_seq))
    raise TypeError(f"not a workflow action: {action!r}")


def actions_to_proto(actions: Sequence[Action]) -> list[pb.WorkflowAction]:
    return [action_to_proto(action) for action in actions]
