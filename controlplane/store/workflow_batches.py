"""Batched workflow writes: the step outcomes and the decisions of many workflows in one
transaction and a few statements, instead of one transaction (and five statements) each.

The lock order is the single paths' (workflow, then its task), for the whole batch at once:
the workflows are locked in id order first, in a statement of their own, so the statement
that writes sees what the transactions it waited for committed. What the batch cannot take
(a task no longer held, a task of another kind) is left to the single path, which says why.
A batch that meets a deadlock (a path that locks two workflows in another order: a child
telling its parent) is rolled back and left to the single path too.

A decision that rides on a completion (Following) is planned from the locked workflows before
the completion's statement; when of the common commands, that statement applies it too (the
workflow row written once per step), and its steps go in one INSERT after it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import ConcurrencyConflict, DurableError
from durable.common.policies import ActivityOptions
from durable.controlplane.store.base import StoreBase, dumps, policy_json
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import ClaimedTask, Event, WorkflowInstance

log = logging.getLogger(__name__)
EPOCH = datetime.fromtimestamp(0, UTC)


# A worker whose following decisions cannot be taken (its clock far off, a bug) would say so
# with every completion: the log says it once a minute per worker, with how many since.
DROPPED_LOG_INTERVAL_SECONDS = 60.0
_dropped: dict[str, tuple[float, int]] = {}


def log_dropped(worker_id: str, task_id: Any, reason: object) -> None:
    """Say that the decision following the completion of `task_id` was dropped (a decision
    task follows instead), at most once a minute per worker."""
    at = time.monotonic()
    last, quiet = _dropped.get(worker_id, (float("-inf"), 0))
    if at - last < DROPPED_LOG_INTERVAL_SECONDS:
        _dropped[worker_id] = (last, quiet + 1)
        return
    _dropped[worker_id] = (at, 0)
    more = f" ({quiet} more from this worker since the last such line)" if quiet else ""
    log.warning("worker %s: the decision that follows the completion of task %s is dropped (a decision "
                "task follows instead): %s%s", worker_id, task_id, reason, more)


@dataclass(frozen=True, slots=True)
class Following:
    """A decision that rides on an activity's completion (FollowingDecision): made by the
    worker that keeps the workflow's instance, which stood at `after_seq` and was fed the
    completion as event after_seq + 1, stamped `stamped_at`. Its actions as the worker sent
    them, checked (DecisionStore._plan) before the store applies them."""

    after_seq: int
    stamped_at: datetime
    actions: Sequence[dict[str, Any]]
    keeps_instance: bool

    @classmethod
    def stamped_us(cls, after_seq: int, event_time_us: int, actions: Sequence[dict[str, Any]],
                   keeps_instance: bool) -> Following:
        """As the wire has it: the stamp in Unix microseconds."""
        return cls(after_seq, EPOCH + timedelta(microseconds=event_time_us), actions, keeps_instance)


@dataclass(frozen=True, slots=True)
class Followed:
    """What came of a completion's following decision: applied, or not (then a decision task
    was queued, as without it); the activities handed to its worker at once (eager); the
    command events it appended (for the instance its worker keeps)."""

    applied: bool
    tasks: tuple[ClaimedTask, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(slots=True)
class Completed:
    """A batch of workflow activities' completions: per completed task its activity type;
    per completion that carried a decision, what came of it; the workflows whose run those
    decisions ended (their children's policy applies after the commit), by type."""

    done: dict[UUID, str] = field(default_factory=dict)
    followed: dict[UUID, Followed] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    decided_types: list[str] = field(default_factory=list)


async def complete_workflow_activities(
    store: StoreBase,
    conn: asyncpg.Connection,
    worker_id: str,
    items: Sequence[tuple[UUID, int, str]],
    now: datetime,
    following: Mapping[UUID, Following] | None = None,
) -> Completed:
    """Complete activities of workflows (task id, attempt, result JSON text) in one
    transaction, and apply the decisions that ride on them (`following`, by task id) where
    the history is where their worker saw it. Tasks missing from `done` were not completed
    (not held by this worker and attempt, not a workflow's activity). A batch whose following
    decisions meet an error is rolled back and done again without them (each of those
    workflows then gets a decision task, as without them)."""
    if not items:
        return Completed()
    try:
        return await _complete_workflow_activities(store, conn, worker_id, items, now, following or {})
    except asyncpg.DeadlockDetectedError:
        return Completed()
    except (DurableError, asyncpg.PostgresError) as exc:
        if not following:
            raise
        log.warning("completions with the decisions that follow them met an error (%s); completing "
                    "them without those decisions", exc)
        return await complete_workflow_activities(store, conn, worker_id, items, now)


async def _complete_workflow_activities(
    store: StoreBase,
    conn: asyncpg.Connection,
    worker_id: str,
    items: Sequence[tuple[UUID, int, str]],
    now: datetime,
    following: Mapping[UUID, Following],
) -> Completed:
    ids = [i[0] for i in items]
    async with conn.transaction():
        locked = {r["task_id"]: r for r in await conn.fetch(Q.lock_workflows_of_tasks, ids)}
        plan = _Plan.of(store, worker_id, items, following, locked, now)
        rows = await conn.fetch(
            Q.complete_workflow_activities, worker_id, now, ids, [i[1] for i in items], [i[2] for i in items],
            store.workflow_task_max_attempts, *plan.columns(items), *plan.events,
            [plan.command_bytes(i[0]) for i in items],
        )
        out = Completed(done={r["id"]: r["activity_type"] for r in rows})
        for activity_type, count in sorted(Counter(out.done.values()).items()):
            await store._breaker_success(conn, activity_type, now, count)
        followed = [r["id"] for r in rows if r["followed"]]
        if followed:
            await _apply_following(store, conn, worker_id, plan, followed, now, out)
        ended = sorted(r["workflow_id"] for r in rows if r["ended"])
        if ended:
            cancelled = await conn.fetch(Q.cancel_open_steps_of, ended, now)
            await store._free_trials(conn, cancelled, now)
            out.ended.extend(ended)
    return out


@dataclass(slots=True)
class _Plan:
    """The following decisions of a completion batch, planned before its statement from the
    locked workflows: those the statement may apply itself (`together`: the common commands,
    their events numbered after the completion's), and the others, which the single path
    applies once the statement has found them followed."""

    following: Mapping[UUID, Following]
    workflows: dict[UUID, WorkflowInstance] = field(default_factory=dict)  # by task, as after its event
    together: dict[UUID, tuple[Decided, list[UUID | None], PlannedEvents]] = field(default_factory=dict)
    events: tuple[list[Any], ...] = field(default_factory=lambda: tuple([] for _ in range(4)))

    @classmethod
    def of(cls, store: StoreBase, worker_id: str, items: Sequence[tuple[UUID, int, str]],
           following: Mapping[UUID, Following], locked: Mapping[UUID, asyncpg.Record], now: datetime) -> _Plan:
        plan = cls(following)
        if not following:
            return plan
        per_workflow = Counter(r["id"] for r in locked.values())
        for task_id, _, _ in items:
            f = following.get(task_id)
            row = locked.get(task_id)
            if f is None or row is None or per_workflow[row["id"]] > 1:
                continue  # a workflow with two outcomes here gets a decision task (as the statement rules)
            # the workflow as it stands after the completion's event (the size is near enough:
            # the single path checks it exactly)
            wf = WorkflowInstance.from_row({**row, "last_event_seq": f.after_seq + 1, "updated_at": now})
            plan.workflows[task_id] = wf
            if not set_based(store, wf, f.actions):
                continue
            d = Decided(wf, None, f.after_seq + 1, list(f.actions), worker_id if f.keeps_instance else None)
            step_ids = new_step_ids(d.actions)
            planned = command_events(d, step_ids, None, now)
            plan.together[task_id] = (d, step_ids, planned)
            for seq, event_type, data in planned.events:
                for column, value in zip(plan.events, (wf.id, seq, event_type, data), strict=True):
                    column.append(value)
        return plan

    def columns(self, items: Sequence[tuple[UUID, int, str]]) -> tuple[list[Any], ...]:
        """The statement's per-item columns $7-$14."""
        out: tuple[list[Any], ...] = tuple([] for _ in range(8))
        for task_id, _, _ in items:
            f = self.following.get(task_id) if task_id in self.workflows else None
            together = self.together.get(task_id)
            row: tuple[Any, ...]
            if f is None:
                row = (-1, None, False, None, None, None, None, None)
            elif together is None:
                row = (f.after_seq, f.stamped_at, False, None, None, None, None, None)
            else:
                d, _, planned = together
                row = (f.after_seq, f.stamped_at, True, len(planned.events), d.sticky,
                       planned.status, planned.result, planned.error)
            for column, value in zip(out, row, strict=True):
                column.append(value)
        return out

    def command_bytes(self, task_id: UUID) -> int | None:
        together = self.together.get(task_id)
        return None if together is None else sum(len(data.encode()) for _, _, data in together[2].events)


async def _apply_following(
    store: StoreBase,
    conn: asyncpg.Connection,
    worker_id: str,
    plan: _Plan,
    followed: Sequence[UUID],
    now: datetime,
    out: Completed,
) -> None:
    """After the statement, for the completions it found `followed` (each its workflow's only
    outcome, the history where its worker saw it): the steps of the decisions it applied (all
    of them, or the batch rolls back), and the other decisions one by one on the single path
    (children, cancellations, continue-as-new, a history near its limit), in the caller's
    transaction."""
    steps: list[tuple[Any, ...]] = []
    planned_ids: set[UUID] = set()
    for task_id in followed:
        together = plan.together.get(task_id)
        if together is None:
            f = plan.following[task_id]
            wf = plan.workflows[task_id]
            told: list[Event] = []
            ended = await store._apply(conn, wf, None, f.after_seq + 1, list(f.actions), now,  # type: ignore[attr-defined]
                                       sticky=worker_id if f.keeps_instance else None,
                                       told=told if f.keeps_instance else None)
            out.followed[task_id] = Followed(True, (), tuple(told))
            out.decided_types.append(wf.workflow_type)
            if ended:
                out.ended.append(wf.id)
            continue
        d, step_ids, _ = together
        steps.extend(decided_steps(d, step_ids))
        planned_ids.update(i for i in step_ids if i is not None)
    handed: dict[str, list[ClaimedTask]] = {}
    if steps:
        inserted, handed = await insert_steps(store, conn, worker_id, steps, now)
        if inserted != planned_ids:  # a command that had its step already (it cannot, from a kept instance)
            raise ConcurrencyConflict("a following decision scheduled a step its workflow already has")
    for task_id in followed:
        together = plan.together.get(task_id)
        if together is None:
            continue
        d, _, planned = together
        out.followed[task_id] = Followed(True, tuple(handed.get(d.wf.id, ())), tuple(planned.told))
        out.decided_types.append(d.wf.workflow_type)


# -- decisions ---------------------------------------------------------------------------

# What a decision may command to be applied with others in a few statements; any other
# command (children, cancellations, continue-as-new) takes the single path in the same
# transaction.
SET_BASED_ACTIONS = frozenset({"schedule_activity", "start_timer", "record_marker", "complete_workflow", "fail_workflow"})
ENDING = {"complete_workflow": "completed", "fail_workflow": "failed"}


@dataclass(slots=True)
class Decided:
    """A decision to apply with the batch: its workflow (locked), task (None: it rode on a
    completion) and checked actions."""

    wf: WorkflowInstance
    task_id: UUID | None
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


# The fields of a command event that say which command it records (what the worker's
# matching reads): what a kept instance is told of the events its decision appended.
IDENTIFYING = ("activity_id", "activity_type", "timer_id", "kind", "marker_id", "workflow_type", "child_id")


def told_event(seq: int, event_type: str, data: Mapping[str, Any], now: datetime) -> Event:
    """What the worker that keeps the instance is told of a command event it appended."""
    return Event(seq, event_type, dumps({k: data[k] for k in IDENTIFYING if k in data}), now)


@dataclass(slots=True)
class AppliedDecisions:
    """What apply_decisions did: the workflows whose run ended; per workflow, the activities
    handed to the deciding worker at once (eager dispatch) and, for a worker that keeps the
    instance, the command events appended (their identifying fields)."""

    ended: set[str]
    handed: dict[str, list[ClaimedTask]]
    events: dict[str, list[Event]]


@dataclass(slots=True)
class PlannedEvents:
    """A decision's command events, numbered after its workflow's history (seq, type, data
    JSON); how it ends the run (status, result and error JSON), if it does; what its worker is
    told of them (keeping the instance)."""

    events: list[tuple[int, str, str]] = field(default_factory=list)
    status: str | None = None
    result: str | None = None
    error: str | None = None
    told: list[Event] = field(default_factory=list)


def command_events(d: Decided, step_ids: Sequence[UUID | None], inserted: set[UUID] | None,
                   now: datetime) -> PlannedEvents:
    """The events of decision `d` (set-based commands only), a step's only if it was
    `inserted` (None: all were)."""
    out = PlannedEvents()
    seq = d.wf.last_event_seq
    for action, step_id in zip(d.actions, step_ids, strict=True):
        kind = action["type"]
        if kind == "schedule_activity":
            if inserted is not None and step_id not in inserted:
                continue
            event = ("ActivityScheduled", {"activity_id": action["activity_id"], "activity_type": action["activity_type"],
                                           "input": action["input"], "task_id": str(step_id)})
        elif kind == "start_timer":
            if inserted is not None and step_id not in inserted:
                continue
            fire_at = now + timedelta(seconds=action["fire_after"])
            event = ("TimerStarted", {"timer_id": action["timer_id"], "fire_at": fire_at.isoformat()})
        elif kind == "record_marker":
            event = ("MarkerRecorded", {"kind": action["kind"], "marker_id": action["marker_id"], "value": action["value"]})
        elif kind == "complete_workflow":
            event = ("WorkflowCompleted", {"result": action["result"]})
            out.status, out.result = "completed", dumps(action["result"])
        else:
            event = ("WorkflowFailed", {"error": action["error"]})
            out.status, out.error = "failed", dumps(action["error"])
        seq += 1
        out.events.append((seq, event[0], dumps(event[1])))
        if d.sticky is not None and out.status is None:
            out.told.append(told_event(seq, event[0], event[1], now))
    return out


def new_step_ids(actions: Sequence[dict[str, Any]]) -> list[UUID | None]:
    """The ids of the steps (activities, timers) `actions` schedule; None for the others."""
    return [uuid.uuid4() if a["type"] in ("schedule_activity", "start_timer") else None for a in actions]


def decided_steps(d: Decided, step_ids: Sequence[UUID | None]) -> list[tuple[Any, ...]]:
    """The activities and timers decision `d` schedules, one row each, ids chosen."""
    trace_id, span_id = (d.wf.trace_id, d.wf.span_id) if d.wf.trace_id and d.wf.span_id else (None, None)
    steps: list[tuple[Any, ...]] = []
    for action, step_id in zip(d.actions, step_ids, strict=True):
        kind = action["type"]
        if kind == "schedule_activity":
            opts: ActivityOptions = action["options"]
            steps.append((step_id, "activity", d.wf.id, action["activity_id"], action["activity_type"],
                          action["input_json"], opts, trace_id, span_id, bool(action.get("eager"))))
        elif kind == "start_timer":
            opts = ActivityOptions(start_delay=action["fire_after"])
            steps.append((step_id, "timer", d.wf.id, action["timer_id"], "timer",
                          dumps({"timer_id": action["timer_id"]}), opts, trace_id, span_id, False))
    return steps


async def insert_steps(
    store: StoreBase, conn: asyncpg.Connection, worker_id: str, steps: Sequence[tuple[Any, ...]], now: datetime,
) -> tuple[set[UUID], dict[str, list[ClaimedTask]]]:
    """Insert decided steps (decided_steps) in one statement: the ids inserted, and per
    workflow the activities handed to `worker_id` at once (eager dispatch, where it asked and
    the activity has no concurrency key, circuit breaker or rate limit)."""
    guarded = (await store.breaker_keys(conn)) | (await store.rate_limited_types(conn))
    columns: tuple[list[Any], ...] = tuple([] for _ in range(18))
    for step_id, kind, workflow_id, activity_id, activity_type, input_json, opts, trace_id, span_id, eager in steps:
        policy = opts.retry_policy
        eager = eager and opts.concurrency_key is None and activity_type not in guarded and not opts.start_delay
        row = (step_id, kind, workflow_id, activity_id, activity_type, input_json, opts.priority,
               now + timedelta(seconds=opts.start_delay), policy.max_attempts, policy_json(opts),
               opts.schedule_to_start_timeout, opts.start_to_close_timeout, opts.heartbeat_timeout,
               trace_id, span_id, opts.concurrency_key, opts.concurrency_limit, eager)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    inserted: set[UUID] = set()
    handed: dict[str, list[ClaimedTask]] = {}
    for r in await conn.fetch(Q.insert_decided_steps, now, worker_id, *columns):
        inserted.add(r["id"])
        if r["eager"]:
            task = ClaimedTask(*list(r.values())[:-1])
            handed.setdefault(task.workflow_id or "", []).append(task)
    for activity_type, count in Counter(t.activity_type for ts in handed.values() for t in ts).items():
        store.observer.claimed("activity", activity_type, count)
    return inserted, handed


async def apply_decisions(
    store: StoreBase, conn: asyncpg.Connection, worker_id: str, decisions: Sequence[Decided], now: datetime
) -> AppliedDecisions:
    """Apply decisions (each passed `set_based`, its workflow and task locked) in the
    caller's transaction: their steps in one INSERT, their events and bookkeeping in one
    statement. Eager dispatch hands activities to `worker_id` when it asked, for activities
    with no concurrency key, circuit breaker or rate limit. Raises ConcurrencyConflict when a
    history moved under its lock (it cannot; the caller rolls back)."""
    planned_ids = [new_step_ids(d.actions) for d in decisions]
    steps = [step for d, ids in zip(decisions, planned_ids, strict=True) for step in decided_steps(d, ids)]
    inserted: set[UUID] = set()
    handed: dict[str, list[ClaimedTask]] = {}
    if steps:
        inserted, handed = await insert_steps(store, conn, worker_id, steps, now)
    per_decision: tuple[list[Any], ...] = tuple([] for _ in range(10))
    events: tuple[list[Any], ...] = tuple([] for _ in range(4))
    told: dict[str, list[Event]] = {}
    for d, ids in zip(decisions, planned_ids, strict=True):
        planned = command_events(d, ids, inserted, now)
        for seq, event_type, data in planned.events:
            for column, value in zip(events, (d.wf.id, seq, event_type, data), strict=True):
                column.append(value)
        if planned.told:
            told[d.wf.id] = planned.told
        last = planned.events[-1][0] if planned.events else d.wf.last_event_seq
        decided: tuple[Any, ...] = (d.wf.id, d.wf.last_event_seq, last, d.seen_through_seq, d.sticky, d.task_id,
                                    dumps({"applied": True, "actions": len(d.actions)}), planned.status,
                                    planned.result, planned.error)
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
    return AppliedDecisions(ended, handed, told)


async def handed_before(
    conn: asyncpg.Connection, worker_id: str, task_id: UUID, attempt: int
) -> tuple[ClaimedTask, ...] | None:
    """A report the worker makes again because its answer was lost (the connection dropped,
    the call timed out) finds its task done by that worker and attempt: None if it was not so;
    else the activities that report's answer handed the worker (eager dispatch), held for it
    ever since. With some, the report is answered as taken, with them, instead of refused:
    they would otherwise wait for the reaper (REAPER_STALE_AFTER_SECONDS) with no worker
    running them."""
    taken = await conn.fetchrow(Q.report_taken, task_id, worker_id, attempt)
    if taken is None:
        return None
    if taken["workflow_id"] is None:
        return ()
    rows = await conn.fetch(Q.handed_at, taken["workflow_id"], worker_id, taken["completed_at"])
    return tuple(ClaimedTask.from_row(r) for r in rows)

