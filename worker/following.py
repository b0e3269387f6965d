"""Following decisions: the next decision of a workflow rides on its activity's completion.

A worker that keeps a workflow's instance (sticky decisions) and knows it stands where the
history ends (its last decision's command events were told in the decision's answer:
InstanceCache.confirm) need not wait for a decision task when one of the workflow's
activities completes here. It feeds the instance the ActivityCompleted event the completion
will append, exactly as the control plane will store it, and sends the decision that follows
with the completion (TaskCompletion.decision). The control plane applies it in the
completion's transaction if the history is still where the instance stood and no decision
waits; otherwise it queues a decision task as it would have, and the instance, which stands
past the history, is dropped.

The event the instance is fed must be the one its replays will read:
- its time is the worker's, and the control plane stores it with the event (whole
  microseconds, read back as Unix seconds in a double, as every event time);
- its result is the activity's result as PostgreSQL's jsonb gives it back: object keys in
  jsonb's order (shorter first, then by bytes). A result jsonb would read back otherwise (a
  float it prints as an integer, such as 1e16, or -0.0) gets no following decision.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import cached_property
from datetime import UTC, datetime, timedelta
from typing import Any

from durable.proto.v1 import durable_pb2 as pb
from durable.worker.protocol import actions_to_proto, history_from_proto
from durable.worker.workflows.cache import InstanceCache
from durable.worker.workflows.history import ACTIVITY_COMPLETED, HistoryEvent, parse_time
from durable.worker.workflows.instance import Decision, WorkflowInstance

EPOCH = datetime.fromtimestamp(0, UTC)


class _Unstorable(Exception):
    """A value jsonb would give back otherwise."""


def as_stored(value: Any) -> Any:
    """`value` (parsed JSON) as it reads back from a jsonb column; raises _Unstorable for a
    value that reads back different in type or spelling."""
    if isinstance(value, dict):
        ordered = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: as_stored(value[k]) for k in ordered}
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value) or (value == 0.0 and math.copysign(1.0, value) < 0) or "e+" in repr(value):
            raise _Unstorable(repr(value))
    return value


def stored_result(result_json: str) -> Any:
    """An activity's result (JSON text) as its ActivityCompleted event stores it; raises
    _Unstorable when it would not read back the same."""
    try:
        value = as_stored(json.loads(result_json)) if result_json else None
    except (ValueError, RecursionError) as exc:
        raise _Unstorable(str(exc)) from exc
    return {} if value is None else value


def stamped_time(stamped_us: int) -> datetime | None:
    """An event time stored as `stamped_us` (Unix microseconds), as a replay reads it."""
    return parse_time((EPOCH + timedelta(microseconds=stamped_us)).timestamp())


@dataclass
class Following:
    """A decision made on top of a completion, while its report travels: the instance it
    was made on (out of the cache meanwhile) and what goes with the completion."""

    workflow_id: str
    instance: WorkflowInstance
    decision: Decision
    after_seq: int
    stamped_us: int

    @cached_property
    def request(self) -> pb.FollowingDecision:
        """What goes with the completion (made once: eager dispatch marks its actions)."""
        return pb.FollowingDecision(
            after_seq=self.after_seq, event_time_us=self.stamped_us,
            actions=actions_to_proto(self.decision.actions), keeps_instance=not self.decision.ended)

    def settle(self, cache: InstanceCache, outcome: pb.CompletionOutcome | None) -> None:
        """The completion's answer (None: none came, or the completion was refused): an
        applied decision's instance goes back to the cache, standing on the events it
        appended; any other is closed."""
        if outcome is None or not outcome.applied or self.decision.ended:
            self.instance.close()
            return
        seen = self.after_seq + 1
        cache.put(self.workflow_id, self.instance, seen)
        if outcome.events or not self.decision.actions:  # else applied alone: its events untold
            cache.confirm(self.workflow_id, self.instance, history_from_proto(outcome.events), seen)


def decide_on_completion(cache: InstanceCache, task: pb.Task, result_json: str) -> Following | None:
    """Feed the kept, confirmed instance of `task`'s workflow the completion's event and let
    it decide; None when there is nothing to decide on (no such instance, a result that would
    read back otherwise). The decision may still list local activities to settle. Raises what
    the workflow's code raised (the instance is then closed)."""
    try:
        result = stored_result(result_json)
    except _Unstorable:
        return None
    taken = cache.take_confirmed(task.workflow_id)
    if taken is None:
        return None
    instance, position = taken
    stamped_us = time.time_ns() // 1000
    event = HistoryEvent(
        sequence_num=position + 1, event_type=ACTIVITY_COMPLETED, created_at=stamped_time(stamped_us),
        data={"activity_id": task.activity_id, "activity_type": task.activity_type, "result": result,
              "attempt": task.attempt})
    decision = instance.advance([event], position)
    return Following(task.workflow_id, instance, decision, position, stamped_us)
