"""Between protobuf messages and the store's records and arguments."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from durable.common.errors import DurableError, InvalidArgument
from durable.common.payloads import Checked, check_payload, decode_payload
from durable.common.policies import ActivityOptions
from durable.common.tracing import format_traceparent
from durable.controlplane.store import (
    CircuitBreaker,
    ClaimedTask,
    ClaimedWorkflowTask,
    DeadLetter,
    Event,
    Task,
    TypeStats,
    TypeThroughput,
    Worker,
    WorkflowInstance,
)
from durable.controlplane.store.rate_limits import RateLimit
from durable.proto.v1 import durable_pb2 as pb


def ts(value: datetime | None) -> float:
    return value.timestamp() if value else 0.0


def dump(value: Any) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"), default=str)


def load(text: str, field: str, limit: int) -> dict[str, Any]:
    return decode_payload(text, field=field, limit=limit)


def checked(text: str, field: str, limit: int) -> Checked:
    """A payload the store passes on as text (an activity's result): checked, not re-encoded."""
    return check_payload(text, field=field, limit=limit)


def retry_policy(msg: pb.RetryPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if msg.max_attempts:
        out["max_attempts"] = msg.max_attempts
    if msg.initial_interval:
        out["initial_interval"] = msg.initial_interval
    if msg.backoff_coefficient:
        out["backoff_coefficient"] = msg.backoff_coefficient
    if msg.max_interval:
        out["max_interval"] = msg.max_interval
    if msg.HasField("jitter"):
        out["jitter"] = msg.jitter
    if msg.non_retryable_error_types:
        out["non_retryable_error_types"] = list(msg.non_retryable_error_types)
    return out


def activity_options(msg: pb.ActivityOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"retry_policy": retry_policy(msg.retry_policy), "priority": msg.priority}
    for name in ("schedule_to_start_timeout", "start_to_close_timeout", "heartbeat_timeout"):
        value = getattr(msg, name)
        if value < 0:
            raise InvalidArgument(f"options.{name} must be >= 0 seconds (0 = none)")
        if value:
            out[name] = value
    if msg.start_delay < 0:
        raise InvalidArgument("options.start_delay must be >= 0 seconds")
    out["start_delay"] = msg.start_delay
    if msg.concurrency_key or msg.concurrency_limit:
        if not msg.concurrency_key or msg.concurrency_limit < 1:
            raise InvalidArgument(
                "options.concurrency_key and options.concurrency_limit go together: "
                "give a key and a limit >= 1, or neither"
            )
        out["concurrency_key"] = msg.concurrency_key
        out["concurrency_limit"] = msg.concurrency_limit
    return out


def parsed_options(msg: pb.ActivityOptions) -> ActivityOptions:
    """The request's activity options, validated: producers send the same few options again
    and again (most often none), so each distinct encoding is parsed once."""
    return _parsed_options(msg.SerializeToString(deterministic=True))


@lru_cache(maxsize=512)
def _parsed_options(data: bytes) -> ActivityOptions:
    # a refused encoding raises and is not kept
    return ActivityOptions.parse(activity_options(pb.ActivityOptions.FromString(data)), field="options")  # type: ignore[no-any-return]


def _decision_options(msg: pb.ActivityOptions) -> ActivityOptions | dict[str, Any]:
    """A scheduled activity's options, parsed once per distinct encoding (decisions repeat
    theirs); refused ones go on as given, for the store to name the action in its error."""
    try:
        return parsed_options(msg)
    except DurableError:
        return activity_options(msg)


def action(msg: pb.WorkflowAction, index: int, limit: int) -> dict[str, Any]:
    which = msg.WhichOneof("action")
    field = f"actions[{index}]"
    if which == "schedule_activity":
        a = msg.schedule_activity
        return {
            "type": "schedule_activity",
            "activity_id": a.activity_id,
            "activity_type": a.activity_type,
            "input": load(a.input_json, f"{field}.input_json", limit),
            "options": _decision_options(a.options),
            "eager": a.eager,
        }
    if which == "start_timer":
        return {"type": "start_timer", "timer_id": msg.start_timer.timer_id, "fire_after": msg.start_timer.fire_after}
    if which == "complete_workflow":
        return {"type": "complete_workflow", "result": load(msg.complete_workflow.result_json, f"{field}.result_json", limit)}
    if which == "fail_workflow":
        f = msg.fail_workflow.failure
        error: dict[str, Any] = {"message": f.message, "type": f.type or "WorkflowFailed"}
        if f.details_json:
            error["details"] = load(f.details_json, f"{field}.failure.details_json", limit)
        return {"type": "fail_workflow", "error": error}
    if which == "record_marker":
        m = msg.record_marker
        value = load(m.value_json, f"{field}.value_json", limit) if m.value_json else None
        return {"type": "record_marker", "kind": m.kind, "marker_id": m.marker_id, "value": value}
    if which == "cancel_activity":
        return {"type": "cancel_activity", "activity_id": msg.cancel_activity.activity_id}
    if which == "cancel_timer":
        return {"type": "cancel_timer", "timer_id": msg.cancel_timer.timer_id}
    if which == "cancel_workflow":
        return {"type": "cancel_workflow", "reason": msg.cancel_workflow.reason}
    if which == "start_child_workflow":
        c = msg.start_child_workflow
        return {"type": "start_child_workflow", "child_id": c.child_id, "workflow_type": c.workflow_type,
                "input": load(c.input_json, f"{field}.input_json", limit),
                "parent_close_policy": c.parent_close_policy or "cancel"}
    if which == "continue_as_new":
        n = msg.continue_as_new
        return {"type": "continue_as_new", "input": load(n.input_json, f"{field}.input_json", limit),
                "handled_through_seq": n.handled_through_seq}
    raise InvalidArgument(f"{field} has no action set")


def event(e: Event) -> pb.Event:
    return pb.Event(
        sequence_num=e.sequence_num, event_type=e.event_type, event_data_json=e.event_data_json, created_at=ts(e.created_at)
    )


def task(t: ClaimedTask) -> pb.Task:
    """JSON columns go out as the text PostgreSQL gave (jsonb's own spelling): valid JSON
    objects, checked when they came in."""
    return pb.Task(
        id=str(t.id),
        kind=t.kind,
        workflow_id=t.workflow_id or "",
        activity_id=t.activity_id or "",
        activity_type=t.activity_type,
        input_json=t.input_json,
        attempt=t.attempt,
        max_attempts=t.max_attempts,
        heartbeat_timeout=t.heartbeat_timeout or 0.0,
        start_to_close_timeout=t.start_to_close_timeout or 0.0,
        heartbeat_details_json=t.heartbeat_details_json or "",
        traceparent=format_traceparent(t.trace_id, t.span_id),
    )


def query_task(q: Any) -> pb.Task:
    """A query a worker answers: the workflow's history, the query's name and argument."""
    return pb.Task(
        id=str(q.id), kind="query", workflow_id=q.workflow.id, activity_id=q.name,
        activity_type=q.workflow.workflow_type, input_json=q.arg_json, attempt=1, max_attempts=1,
        history=[event(e) for e in q.history], decided_through_seq=q.workflow.decided_through_seq,
    )


def workflow_task(c: ClaimedWorkflowTask) -> pb.Task:
    """A workflow task carries its input once, in the WorkflowStarted event of its history
    (input_json stays empty): a 1 MB input is 1 MB of the claim's answer, not 2."""
    msg = task(c.task)
    msg.input_json = ""
    msg.history.extend(event(e) for e in c.history)
    msg.decided_through_seq = c.workflow.replay_through_seq
    msg.history_after_seq = c.history_after_seq
    return msg


def workflow(w: WorkflowInstance) -> pb.WorkflowInfo:
    return pb.WorkflowInfo(
        id=w.id,
        workflow_type=w.workflow_type,
        status=w.status,
        input_json=dump(w.input),
        result_json=dump(w.result),
        error_json=dump(w.error),
        created_at=ts(w.created_at),
        updated_at=ts(w.updated_at),
        started_at=ts(w.started_at),
        completed_at=ts(w.completed_at),
        last_event_seq=w.last_event_seq,
        blocked_json=dump(w.blocked),
        cancel_requested_at=ts(w.cancel_requested_at),
        decided_through_seq=w.decided_through_seq,
        pinned=w.pinned,
        replay_through_seq=w.replay_through_seq,
        parent_workflow_id=w.parent_workflow_id or "",
        parent_close_policy=w.parent_close_policy or "",
        run_number=w.run_number,
        history_bytes=w.history_bytes,
    )


def workflow_run(r: Any) -> pb.WorkflowRunInfo:
    return pb.WorkflowRunInfo(
        run_number=r.run_number, status=r.status, input_json=dump(r.input), next_input_json=dump(r.next_input),
        events=r.events, started_at=ts(r.started_at), closed_at=ts(r.closed_at),
    )


def dead_letter(d: DeadLetter) -> pb.DeadLetter:
    return pb.DeadLetter(
        id=str(d.id),
        original_task_id=str(d.original_task_id),
        workflow_id=d.workflow_id or "",
        activity_id=d.activity_id or "",
        activity_type=d.activity_type,
        input_json=dump(d.input),
        attempts=d.attempts,
        last_error=d.last_error or "",
        error_history_json=dump({"errors": d.error_history}),
        reason=d.reason,
        dead_at=ts(d.dead_at),
        requeued_at=ts(d.requeued_at),
        requeue_count=d.requeue_count,
    )


def type_throughput(t: TypeThroughput) -> pb.TypeThroughput:
    return pb.TypeThroughput(kind=t.kind, type=t.type, completed=t.completed)


def type_stats(s: TypeStats, *, unserved: bool = False) -> pb.TypeStats:
    return pb.TypeStats(
        kind=s.kind, type=s.type, pending=s.pending, delayed=s.delayed, claimed=s.claimed,
        oldest_pending_age=s.oldest_pending_age, unserved=unserved,
    )


def worker(w: Worker) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        id=w.id,
        worker_group=w.worker_group,
        activity_types=w.activity_types,
        workflow_types=w.workflow_types,
        max_concurrency=w.max_concurrency,
        current_load=w.current_load,
        status=w.status,
        last_heartbeat_at=ts(w.last_heartbeat_at),
        started_at=ts(w.started_at),
        hostname=w.hostname or "",
        version=w.version or "",
    )


def time_bound(seconds: float, field: str) -> datetime | None:
    """A Unix-seconds bound of a request; 0 means none."""
    if seconds < 0:
        raise InvalidArgument(f"{field} must be >= 0 (Unix seconds; 0 = no bound)")
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def task_info(t: Task) -> pb.TaskInfo:
    return pb.TaskInfo(
        id=str(t.id),
        kind=t.kind,
        activity_id=t.activity_id or "",
        activity_type=t.activity_type,
        status=t.status,
        attempt=t.attempt,
        max_attempts=t.max_attempts,
        priority=t.priority,
        visible_at=ts(t.visible_at),
        created_at=ts(t.created_at),
        claimed_by=t.claimed_by or "",
        claimed_at=ts(t.claimed_at),
        heartbeat_at=ts(t.heartbeat_at),
        completed_at=ts(t.completed_at),
        last_error=t.last_error or "",
        error_history_json=dump({"errors": t.error_history}),
    )


def breaker(b: CircuitBreaker) -> pb.CircuitBreakerInfo:
    return pb.CircuitBreakerInfo(
        key=b.key,
        state=b.state,
        failure_count=b.failure_count,
        success_count=b.success_count,
        half_open_in_flight=b.half_open_in_flight,
        opened_at=ts(b.opened_at),
        failure_threshold=b.failure_threshold,
        window_seconds=b.window_seconds,
        reset_timeout_seconds=b.reset_timeout_seconds,
        half_open_max_trials=b.half_open_max_trials,
        success_threshold=b.success_threshold,
        updated_at=ts(b.updated_at),
    )


def rate_limit(r: RateLimit) -> pb.RateLimitInfo:
    return pb.RateLimitInfo(activity_type=r.key, rate=r.rate, burst=r.burst, tokens=r.tokens,
                            pending=r.pending, running=r.running)
