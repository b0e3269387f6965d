"""Local activities: short steps the worker runs as part of a decision, recorded as markers.

``await ctx.local_activity(fn_or_name, input, ...)`` is for steps too small to be worth a
task of their own (parsing, a small lookup): no ActivityScheduled, no task row, no second
decision. The rules, all of them:

1. **Calling** one issues no command: the code waits on it as on an activity.
2. **Running.** When the code waits and the history is walked, the decision lists the local
   activities it waits on (`Decision.local_activities`, in call order). The worker runs them
   in its process, outside the deterministic loop (real I/O is allowed, as in an activity),
   each with its own retry policy, and hands the outcomes to
   `WorkflowInstance.resolve_local()`: each is recorded as a `MarkerRecorded` of kind
   "local_activity" (activity type, attempts, result or error, and `seen_seq`) and given to
   the code, one at a time in call order, the code running on after each. What the code
   calls next runs in the same decision: four local activities in a row are one decision
   with four markers.
3. **Replaying**, the function is never run again: the marker's `seen_seq` is the event the
   code had handled last when it ran, and replay resolves it from the marker right after
   delivering that event, before any event the deciding worker had not seen, so the code
   sees the same order of things as it did the first time.
4. **Non-determinism.** A marker whose local activity the code did not call (or called as
   another type) fails when the walk reaches it, as any mismatched command does; a local
   activity called while handling a decided event that no marker resolves is a
   NonDeterminismError at the end of the history.
5. **A decision stays bounded.** A local activity's attempts and the waits between them
   together fit in its `schedule_to_close_timeout` (default 5 s, at most 60 s): an attempt
   runs at most the smaller of `start_to_close_timeout` and what is left (cut off by the
   rest, it fails the local activity as ScheduleToCloseTimeout); a retry whose backoff would
   end past it is not made, and the local activity fails with its last error, reason
   "schedule_to_close". A failure for good raises ActivityError in the workflow, as an
   activity's does. A step that needs longer is an activity.

6. **Steps** (``await ctx.step(...)``) are local activities whose outcome is written before
   the next step runs: before the worker runs a step, the commands the decision issued so
   far (the markers of the steps before it among them) are written as a journal, the
   decision's task staying the worker's (durable.controlplane.store.journals). A step
   whose marker was written is never run again; a worker that dies mid-decision loses at
   most the step it was running. The markers are the same as a local activity's, and so is
   replay. A journal that is not applied (the workflow ended meanwhile, the task was taken
   back) drops the decision, which runs again from the history.
7. **Events come first.** A decision that has run a step ends early when the answer to its
   next journal says events came that it has not seen (a signal, a completion, a cancellation
   request): the local activities the code waits on are not run there. Each is recorded
   instead as a deferral marker (kind "local_activity_deferred", its marker id), and the
   events start the next decision, which delivers them first and then runs what was deferred;
   those markers carry the later event they ran after (rule 3). Replay skips a deferral marker
   as a command (durable.worker.workflows.history, rule 4) and notes the local activity
   deferred, which rule 4 above then does not hold against the decision that deferred it. So
   a loop of steps that waits on nothing else still sees its signals, and a cancellation,
   between two steps.

A local activity runs at least once: a decision that is dropped (its worker died, the
workflow moved on meanwhile) runs it again the next time; a step, from its last journal on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from durable.common import RetryPolicy
from durable.common.converter import NO_CONVERSION, from_json
from durable.worker.workflows.errors import ActivityError, NonDeterminismError
from durable.worker.workflows.history import LOCAL_ACTIVITY, LOCAL_DEFERRED, HistoryEvent, is_local_marker

__all__ = ["LOCAL_ACTIVITY", "LOCAL_DEFERRED", "LocalActivity", "LocalOutcome", "PendingLocal", "deferral_value", "recorded",
           "settle", "unresolved"]
DEFAULT_SCHEDULE_TO_CLOSE = 5.0
MAX_SCHEDULE_TO_CLOSE = 60.0

# How a local activity ended failed (ActivityError.reason).
NON_RETRYABLE = "non_retryable"
EXHAUSTED = "exhausted"
OUT_OF_TIME = "schedule_to_close"


@dataclass(frozen=True)
class LocalActivity:
    """A local activity the code waits on: what the worker runs.

    `fn` None: the activity registered under `activity_type` in the worker's App. `takes_ctx`:
    `fn(ctx, input)` (an activity's shape) or `fn(input)`. `input` is JSON, rebuilt with
    `input_type` before the call.
    """

    marker_id: str
    activity_type: str
    input: Any
    fn: Callable[..., Any] | None = None
    takes_ctx: bool = True
    input_type: Any = NO_CONVERSION
    retry_policy: RetryPolicy | None = None
    start_to_close_timeout: float | None = None
    schedule_to_close_timeout: float = DEFAULT_SCHEDULE_TO_CLOSE
    journalled: bool = False  # a step (ctx.step): what the decision issued before it is written first (rule 6)


@dataclass(frozen=True)
class LocalOutcome:
    """How a local activity ended: its JSON `result`, or `error` ({"type", "message"}) with
    the `reason` it is final (NON_RETRYABLE, EXHAUSTED, OUT_OF_TIME)."""

    marker_id: str
    activity_type: str
    attempts: int
    result: Any = None
    error: dict[str, str] | None = None
    reason: str = ""

    def marker_value(self, seen_seq: int) -> dict[str, Any]:
        """The marker's value; `seen_seq`: the event the code had handled last (rule 3)."""
        value: dict[str, Any] = {"activity_type": self.activity_type, "attempts": self.attempts,
                                 "seen_seq": seen_seq}
        if self.error is None:
            value["result"] = self.result
        else:
            value["error"] = self.error
            value["reason"] = self.reason
        return value


@dataclass
class PendingLocal:
    """A local activity the code called and no outcome resolved yet."""

    request: LocalActivity
    future: asyncio.Future[Any]
    result_type: Any
    called_at: int  # the sequence number of the event being handled at the call
    deferred: bool = False  # a decision recorded it deferred (rule 7)


def deferral_value(pending: PendingLocal, seen_seq: int) -> dict[str, Any]:
    """Rule 7: a deferral marker's value; `seen_seq`, the event the code had handled last."""
    return {"activity_type": pending.request.activity_type, "seen_seq": seen_seq}


def settle(pending: PendingLocal, value: dict[str, Any]) -> None:
    """Hand a marker's value to the code: the result, or ActivityError."""
    request = pending.request
    error = value.get("error")
    if error is not None:
        pending.future.set_exception(ActivityError(
            str(error.get("message", "")), type=str(error.get("type") or "ActivityFailed"),
            activity_type=request.activity_type, activity_id=request.marker_id,
            attempts=int(value.get("attempts") or 0), reason=str(value.get("reason", "")),
        ))
        return
    try:
        pending.future.set_result(from_json(value.get("result"), pending.result_type,
                                            field=f"result of {request.marker_id}"))
    except Exception as exc:  # noqa: BLE001 - a conversion failure is the await's
        pending.future.set_exception(exc)


def recorded(
    pending: dict[str, PendingLocal], ahead: Sequence[HistoryEvent], seq: int, workflow: str
) -> Iterator[tuple[PendingLocal, dict[str, Any]]]:
    """Rule 3: the local activities that the decision which saw through event `seq` ran, with
    their markers' values, in the order recorded, taken out of `pending` one by one (read
    lazily: resolving one may make the code call the next). `ahead`: the history after `seq`.
    A marker that does not fit ends it; the matcher names the mismatch when it gets there."""
    for event in ahead:
        if not pending:
            return
        if not is_local_marker(event):
            continue
        value = event.data.get("value")
        seen = value.get("seen_seq") if isinstance(value, dict) else None
        if isinstance(seen, int) and seen < seq:
            continue  # an earlier decision's, resolved then
        if seen != seq or not isinstance(value, dict):
            return  # a later decision's
        entry = pending.get(str(event.data.get("marker_id", "")))
        if entry is None:
            return
        request = entry.request
        if value.get("activity_type") != request.activity_type:
            raise NonDeterminismError(
                f"workflow {workflow}: event {event.sequence_num} in the history is local activity "
                f"{request.marker_id!r} of type {value.get('activity_type')!r}; the code called "
                f"{request.activity_type!r} there")
        del pending[request.marker_id]
        yield entry, value


def unresolved(pending: dict[str, PendingLocal], decided_through_seq: int, workflow: str) -> None:
    """Rule 4: the local activities called while handling a decided event were all resolved
    by the decision recorded there, or deferred by it (rule 7)."""
    for entry in pending.values():
        if not entry.future.done() and not entry.deferred and entry.called_at <= decided_through_seq:
            request = entry.request
            raise NonDeterminismError(
                f"workflow {workflow}: handling event {entry.called_at}, the code called local activity "
                f"{request.activity_type!r} ({request.marker_id}), which the history does not hold: the "
                f"decision recorded there (through event {decided_through_seq}) ran no such local activity")
