"""Batched workflow writes: the step outcomes and the decisions of many workflows in one
transaction and a few statements, instead of one transaction (and five statements) each.

The lock order is the single paths' (workflow, then its task), for the whole batch at once:
the workflows are locked in id order first, in a statement of their own, so the statement
that writes sees what the transactions it waited for committed. What the batch cannot take
(a task no longer held, a task of another kind) is left to the single path, which says why.
A batch that meets a deadlock (a path that locks two workflows in another order: a child
telling its parent) is rolled back and left to the single path too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import ConcurrencyConflict
from durable.common.policies import ActivityOptions
from durable.controlplane.store.base import StoreBase, dumps, policy_json
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import ClaimedTask, WorkflowInstance


async def complete_workflow_activities(
    store: StoreBase,
    conn: asyncpg.Connection,
    worker_id: str,
    items: Sequence[tuple[UUID, int, str]],
    now: datetime,
) -> dict[UUID, str]:
    """Complete activities of workflows (task id, attempt, result JSON text) in one
    transaction: per completed task, its activity type. Tasks missing from the answer were
    not completed (not held by this worker and attempt, not a workflow's activity)."""
    if not items:
        return {}
    ids = [i[0] for i in items]
    try:
        async with conn.transaction():
            await conn.execute(Q.lock_workflows_of_tasks, ids)
            rows = await conn.fetch(
                Q.complete_workflow_activities, worker_id, now, ids, [i[1] for i in items], [i[2] for i in items],
                store.workflow_task_max_attempts,
            )
            done = {r["id"]: r["activity_type"] for r in rows}
            for activity_type, count in sorted(Counter(done.values()).items()):
                await store._breaker_success(conn, activity_type, now, count)
    except asyncpg.DeadlockDetectedError:
        return {}
    return done


# -- decisions ---------------------------------------------------------------------------

# What a decision may command to be applied with others in a few statements; any other
# command (children, cancellations, continue-as-new) takes the single path in the same
# transaction.
SET_BASED_ACTIONS = frozenset({"schedule_activity", "start_timer", "record_marker", "complete_workflow", "fail_workflow"})
ENDING = {"complete_workflow": "completed", "fail_workflow": "failed"}


@dataclass(slots=True)
class Decided:
    """A decision to apply with the batch: its workflow (locked), task and checked actions."""

    wf: WorkflowInstance
    task_id: UUID
    seen_through_seq: int
    actions: list[dict[str, Any]]
    sticky: str | None


def set_based(store: StoreBase, wf: WorkflowInstance, actions: Sequence[dict[str, Any]]) -> bool:
    """Whether an applicable decision goes with the batch's statements: only the common
    commands, a workflow with no parent to tell when it ends, and a history far from its
    limits (the warning and the failure take the single path)."""
    if any(a["type"] not in SET_BASED_ACTIONS for a in actions):
        return False
    if wf.parent_workflow_id and any(a["type"] in ENDING for a in actions):
        return False
    limits = store.history_limits
    return not (wf.history_warned or limits.warns(wf.last_event_seq + len(actions), wf.history_bytes))


async def apply_decisions(
    store: StoreBase, conn: asyncpg.Connection, worker_id: str, decisions: Sequence[Decided], now: datetime
) -> tuple[set[str], dict[str, list[ClaimedTask]]]:
    """Apply decisions (each passed `set_based`, its workflow and task locked) in the
    caller's transaction: their steps in one INSERT, their events and bookkeeping in one
    statement. Returns the workflows whose run ended, and per workflow the activities handed
    to `worker_id` at once (eager dispatch: asked for by the worker, for activities with no
    concurrency key, circuit breaker or rate limit). Raises ConcurrencyConflict when a
    history moved under its lock (it cannot; the caller rolls back)."""
    guarded = (await store.breaker_keys(conn)) | (await store.rate_limited_types(conn))
    steps: list[tuple[Any, ...]] = []
    planned_ids: list[list[UUID | None]] = []
    for d in decisions:
        trace_id, span_id = (d.wf.trace_id, d.wf.span_id) if d.wf.trace_id and d.wf.span_id else (None, None)
        ids: list[UUID | None] = []
        for action in d.actions:
            kind = action["type"]
            if kind == "schedule_activity":
                opts: ActivityOptions = action["options"]
                step_id = uuid.uuid4()
                eager = bool(action.get("eager")) and opts.concurrency_key is None \
                    and action["activity_type"] not in guarded
                steps.append((step_id, "activity", d.wf.id, action["activity_id"], action["activity_type"],
                              action["input_json"], opts, trace_id, span_id, eager))
            elif kind == "start_timer":
                step_id = uuid.uuid4()
                opts = ActivityOptions(start_delay=action["fire_after"])
                steps.append((step_id, "timer", d.wf.id, action["timer_id"], "timer",
                              dumps({"timer_id": action["timer_id"]}), opts, trace_id, span_id, False))
            else:
                step_id = None
            ids.append(step_id)
        planned_ids.append(ids)
    inserted: set[UUID] = set()
    handed: dict[str, list[ClaimedTask]] = {}
    if steps:
        columns: tuple[list[Any], ...] = tuple([] for _ in range(18))
        for step_id, kind, workflow_id, activity_id, activity_type, input_json, opts, trace_id, span_id, eager in steps:
            policy = opts.retry_policy
            row = (step_id, kind, workflow_id, activity_id, activity_type, input_json, opts.priority,
                   now + timedelta(seconds=opts.start_delay), policy.max_attempts, policy_json(opts),
                   opts.schedule_to_start_timeout, opts.start_to_close_timeout, opts.heartbeat_timeout,
                   trace_id, span_id, opts.concurrency_key, opts.concurrency_limit, eager and not opts.start_delay)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        for r in await conn.fetch(Q.insert_decided_steps, now, worker_id, *columns):
            inserted.add(r["id"])
            if r["eager"]:
                task = ClaimedTask(*list(r.values())[:-1])
                handed.setdefault(task.workflow_id or "", []).append(task)
        for activity_type, count in Counter(t.activity_type for ts in handed.values() for t in ts).items():
            store.observer.claimed("activity", activity_type, count)
    per_decision: tuple[list[Any], ...] = tuple([] for _ in range(10))
    events: tuple[list[Any], ...] = tuple([] for _ in range(4))
    for d, ids in zip(decisions, planned_ids, strict=True):
        seq = d.wf.last_event_seq
        status = result = error = None
        for action, step_id in zip(d.actions, ids, strict=True):
            kind = action["type"]
            if kind == "schedule_activity":
                if step_id not in inserted:
                    continue
                event = ("ActivityScheduled", {"activity_id": action["activity_id"], "activity_type": action["activity_type"],
                                               "input": action["input"], "task_id": str(step_id)})
            elif kind == "start_timer":
                if step_id not in inserted:
                    continue
                fire_at = now + timedelta(seconds=action["fire_after"])
                event = ("TimerStarted", {"timer_id": action["timer_id"], "fire_at": fire_at.isoformat()})
            elif kind == "record_marker":
                event = ("MarkerRecorded", {"kind": action["kind"], "marker_id": action["marker_id"], "value": action["value"]})
            elif kind == "complete_workflow":
                event = ("WorkflowCompleted", {"result": action["result"]})
                status, result = "completed", dumps(action["result"])
            else:
                event = ("WorkflowFailed", {"error": action["error"]})
                status, error = "failed", dumps(action["error"])
            seq += 1
            for column, value in zip(events, (d.wf.id, seq, event[0], dumps(event[1])), strict=True):
                column.append(value)
        decided: tuple[Any, ...] = (d.wf.id, d.wf.last_event_seq, seq, d.seen_through_seq, d.sticky, d.task_id,
                                    dumps({"applied": True, "actions": len(d.actions)}), status, result, error)
        for column, value in zip(per_decision, decided, strict=True):
            column.append(value)
    rows = await conn.fetch(Q.apply_decisions, now, *per_decision, *events)
    if len(rows) != len(decisions):
        moved = sorted(set(per_decision[0]) - {r["id"] for r in rows})
        raise ConcurrencyConflict(f"the histories of workflows {moved} moved under their locks")
    ended = {r["id"] for r in rows if r["ended"]}
    if ended:
        cancelled = await conn.fetch(Q.cancel_open_steps_of, sorted(ended), now)
        await store._free_trials(conn, cancelled, now)
    return ended, handed
