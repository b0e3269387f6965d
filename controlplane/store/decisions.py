"""Workflow decisions and durable timers.

A decision is what a worker returns after replaying a workflow's history through sequence
`seen_through_seq`. It is applied in one transaction when no other decision was recorded
after what it saw, even though other events (signals, completions, fired timers) may have
arrived meanwhile: its commands go after them, and those events start the next decision
(one is queued with each of them). A decision computed before another one was applied is
dropped, so nothing is applied twice; so is a decision that ends the workflow while events it
did not see wait (the code sees them first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import DurableError, InvalidArgument, NotFound, StaleAttempt
from durable.common.policies import ActivityOptions
from durable.controlplane.store import journals, lineage, workflow_batches
from durable.controlplane.store.base import StoreBase, check_name, dumps, parse_uuid
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import ClaimedTask, Event, Task, WorkflowInstance

ACTION_TYPES = (
    "schedule_activity", "start_timer", "complete_workflow", "fail_workflow",
    "record_marker", "cancel_activity", "cancel_timer", "cancel_workflow",
    "start_child_workflow", "continue_as_new",
)
TERMINAL_ACTIONS = ("complete_workflow", "fail_workflow", "cancel_workflow", "continue_as_new")
PARENT_CLOSE_POLICIES = ("cancel", "abandon")
MAX_ACTIONS = 1000
MAX_TIMER_SECONDS = 366 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Decision:
    """A worker's decision for one workflow task: what it saw and what it commands.
    `keeps_instance`: the worker holds the instance, and the workflow's next decision is
    routed to it. `journal`: the decision's commands so far, its task kept (ctx.step;
    durable.controlplane.store.journals), after `journalled` commands its journals wrote."""

    task_id: Any
    attempt: int
    seen_through_seq: int
    actions: Sequence[dict[str, Any]]
    keeps_instance: bool = False
    journal: bool = False
    journalled: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """A decision's outcome: whether it was applied, the activities it scheduled that were
    handed to its worker at once (eager dispatch), and (applied together with others, by a
    worker that keeps the instance) the command events it appended."""

    applied: bool
    tasks: tuple[ClaimedTask, ...] = ()
    events: tuple[Event, ...] = ()  # the command events appended, for the worker that keeps the instance
    unseen: bool = False  # a journal: the history holds events its decision has not seen (journals, rule 5)


class _Unapplied(Exception):
    """A batch met an error after it began writing: rolled back, its decisions go one by one."""


class DecisionStore(StoreBase):
    async def complete_workflow_task(
        self,
        worker_id: str,
        task_id: Any,
        attempt: int,
        seen_through_seq: int,
        actions: Sequence[dict[str, Any]],
        *,
        keeps_instance: bool = False,
    ) -> bool:
        """Apply a decision. Returns False (and changes nothing but the task) when it is out
        of date (a decision was recorded after `seen_through_seq`, or it would end the
        workflow before events it did not see) or the workflow already ended. `keeps_instance`:
        the worker holds the instance, and the workflow's next decision is routed to it."""
        [outcome] = await self.complete_workflow_tasks(
            worker_id, [Decision(task_id, attempt, seen_through_seq, actions, keeps_instance)])
        if isinstance(outcome, DurableError):
            raise outcome
        return outcome.applied

    async def complete_workflow_tasks(
        self, worker_id: str, decisions: Sequence[Decision]
    ) -> list[Applied | DurableError]:
        """Apply several decisions in one transaction: per decision, whether it was applied
        (the rules of complete_workflow_task) with the activities handed to the worker at once
        (schedule_activity actions with `eager`), or the error it met. The workflows are locked
        in id order first (the lock order of every batch). A decision that meets an error after
        the batch began writing rolls the batch back, and each decision is then applied alone."""
        outcomes: list[Applied | DurableError | None] = [None] * len(decisions)
        planned: list[tuple[int, UUID, Decision, list[dict[str, Any]]]] = []
        for index, decision in enumerate(decisions):
            try:
                actions = self._plan(decision.actions)
                if decision.journal:
                    journals.check(actions, TERMINAL_ACTIONS)
                planned.append((index, parse_uuid(decision.task_id, "task_id"), decision, actions))
            except DurableError as exc:
                outcomes[index] = exc
        if planned:
            now = self.now()
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    decided = await self._decide_locked(conn, worker_id, planned, now)
            except (_Unapplied, asyncpg.PostgresError) as exc:
                if len(planned) == 1:
                    raise (exc.__cause__ or exc) if isinstance(exc, _Unapplied) else exc
                decided = {}
                for index, _, decision, _ in planned:
                    try:
                        [outcomes[index]] = await self.complete_workflow_tasks(worker_id, [decision])
                    except DurableError as error:
                        outcomes[index] = error
            ended: list[str] = []
            for index, (outcome, wf, end) in decided.items():
                outcomes[index] = outcome
                if isinstance(outcome, Applied) and wf is not None:
                    if decisions[index].journal:  # part of a decision: counted apart
                        self.observer.journalled(wf.workflow_type, outcome.applied, outcome.unseen)
                    else:
                        self.observer.decided(wf.workflow_type, outcome.applied)
                    if end:
                        ended.append(wf.id)
            if ended:  # after the commit: the children's locks come after the parent's (lineage)
                await lineage.cancel_children(self, ended, now)
        return [o for o in outcomes if o is not None]

    def _plan(self, actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """A decision's actions, checked (InvalidArgument naming the action and field)."""
        if len(actions) > MAX_ACTIONS:
            raise InvalidArgument(f"a decision may carry at most {MAX_ACTIONS} actions")
        planned = [self._check_action(i, a) for i, a in enumerate(actions)]
        terminal_at = [i for i, a in enumerate(planned) if a["type"] in TERMINAL_ACTIONS]
        if terminal_at and terminal_at[0] != len(planned) - 1:
            raise InvalidArgument(
                "complete_workflow/fail_workflow/cancel_workflow/continue_as_new must be the last action, and only one")
        return planned

    async def _decide_locked(
        self,
        conn: asyncpg.Connection,
        worker_id: str,
        planned: list[tuple[int, UUID, Decision, list[dict[str, Any]]]],
        now: datetime,
    ) -> dict[int, tuple[Applied | DurableError, WorkflowInstance | None, bool]]:
        """The decisions in the caller's transaction: per index, (applied or error, the
        workflow, whether its run ended). Errors met before a decision writes (the fence)
        are its outcome; one met after raises _Unapplied (the caller rolls back)."""
        rows = await conn.fetch(Q.lock_workflows_of_decisions, [p[1] for p in planned])
        workflows = {r["decision_task_id"]: WorkflowInstance.from_row(r) for r in rows}
        fenced = await conn.fetch(Q.lock_owned_decisions, worker_id, [p[1] for p in planned],
                                  [p[2].attempt for p in planned])
        owned = {r["id"]: (r["kind"], r["heartbeat_details"]) for r in fenced}
        out: dict[int, tuple[Applied | DurableError, WorkflowInstance | None, bool]] = {}
        together: list[tuple[int, workflow_batches.Decided]] = []
        marked: list[tuple[int, journals.Marked]] = []
        for index, task_id, decision, actions in sorted(
                planned, key=lambda p: workflows[p[1]].id if p[1] in workflows else ""):
            wf = workflows.get(task_id)
            try:
                if wf is None:
                    workflow_id = await self._task_workflow_id(conn, task_id)
                    if workflow_id is None:
                        raise InvalidArgument(f"task {task_id} is not a workflow task")
                    raise NotFound(f"workflow {workflow_id!r} does not exist")
                kind, details = owned.get(task_id) or _kind_details(
                    await self._lock_owned(conn, task_id, worker_id, decision.attempt))
                if kind != "workflow":
                    raise InvalidArgument(f"task {task_id} is a {kind} task, not a workflow task")
                done = journals.written(details, decision) if decision.journal else 0
            except StaleAttempt as exc:
                # taken already, and the answer that handed out its steps lost: not applied
                # again, with them (no workflow: no decision to count); else refused
                again = await workflow_batches.handed_before(conn, worker_id, task_id, decision.attempt)
                out[index] = (Applied(False, again), None, False) if again else (exc, wf, False)
                continue
            except DurableError as exc:
                out[index] = (exc, wf, False)
                continue
            if decision.journal:
                journal = journals.Marked(wf, task_id, decision, actions, done)
                if journals.set_based(self, journal):
                    marked.append((index, journal))
                    continue
                try:
                    applied, ended, told, unseen = await journals.write(
                        self, conn, wf, task_id, decision, actions, done, now)
                except DurableError as exc:
                    raise _Unapplied(str(exc)) from exc
                out[index] = (Applied(applied, (), told, unseen), wf, ended)
                continue
            if self._applies(wf, decision, actions) and workflow_batches.set_based(self, wf, actions) \
                    and wf.last_event_seq == decision.seen_through_seq:
                together.append((index, workflow_batches.Decided(
                    wf, task_id, decision.seen_through_seq, actions,
                    worker_id if decision.keeps_instance else None)))
                continue
            try:
                applied, ended, told = await self._decide(conn, wf, task_id, decision, actions, worker_id, now)
            except DurableError as exc:
                raise _Unapplied(str(exc)) from exc
            out[index] = (Applied(applied, (), told), wf, ended)
        if marked:
            try:
                told_by_workflow = await journals.write_markers(conn, worker_id, [j for _, j in marked], now)
            except DurableError as exc:
                raise _Unapplied(str(exc)) from exc
            for index, j in marked:
                out[index] = (Applied(True, (), told_by_workflow[j.wf.id]), j.wf, False)
        if together:
            if len({d.wf.id for _, d in together}) < len(together):
                raise _Unapplied("a batch holds two decisions of one workflow")
            try:
                batch = await workflow_batches.apply_decisions(self, conn, worker_id, [d for _, d in together], now)
            except DurableError as exc:
                raise _Unapplied(str(exc)) from exc
            for index, d in together:
                out[index] = (Applied(True, tuple(batch.handed.get(d.wf.id, ())), tuple(batch.events.get(d.wf.id, ()))),
                              d.wf, d.wf.id in batch.ended)
        return out

    @staticmethod
    def _applies(wf: WorkflowInstance, decision: Decision, planned: list[dict[str, Any]]) -> bool:
        """The rules: a decision is applied unless the workflow ended, another decision was
        recorded after what it saw (or it saw what is not there), or it would end the
        workflow before events it did not see."""
        seen = decision.seen_through_seq
        ends = any(a["type"] in TERMINAL_ACTIONS for a in planned)
        return not (wf.is_terminal or not wf.decided_through_seq <= seen <= wf.last_event_seq
                    or (wf.last_event_seq > seen and ends))

    async def _decide(
        self,
        conn: asyncpg.Connection,
        wf: WorkflowInstance,
        task_id: UUID,
        decision: Decision,
        planned: list[dict[str, Any]],
        worker_id: str,
        now: datetime,
    ) -> tuple[bool, bool, tuple[Event, ...]]:
        """One decision on its locked workflow and task: (applied, the run ended, the command
        events told to the worker that keeps the instance)."""
        seen = decision.seen_through_seq
        sticky = worker_id if decision.keeps_instance else None
        unseen = wf.last_event_seq > seen
        if not self._applies(wf, decision, planned):
            await self._not_applied(conn, wf, task_id, now)
            return False, False, ()
        # told only when they follow what the instance saw (not after events it did not see)
        told: list[Event] | None = [] if sticky is not None and not unseen else None
        ended = await self._apply(conn, wf, task_id, seen, planned, now, sticky=sticky, told=told)
        if unseen and not ended:  # the events it did not see start the next decision
            await self._wake(conn, wf, now, sticky=sticky)
        return True, ended, tuple(told or ())

    async def _not_applied(self, conn: asyncpg.Connection, wf: WorkflowInstance, task_id: UUID, now: datetime) -> None:
        """A decision (or journal) that is not applied: its task done, the workflow woken
        (unless it ended) for the next decision."""
        await conn.execute(Q.complete_task, task_id, dumps({"applied": False}), now)
        if not wf.is_terminal:
            await self._wake(conn, wf, now)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        wf: WorkflowInstance,
        task_id: UUID,
        seen_through_seq: int,
        planned: list[dict[str, Any]],
        now: datetime,
        *,
        sticky: str | None = None,
        told: list[Event] | None = None,
        journal: tuple[int, int] | None = None,
    ) -> bool:
        """Record the decision's events and tasks; the caller holds the workflow's lock.
        Returns whether the workflow's run ended (its children's policy then applies). With
        `told`, the command events appended go into it (for the worker that keeps the
        instance) when they end the history: not when the run ended or other events followed.
        `journal` (attempt, commands its journals wrote with this one): a journal's, whose
        task stays held (durable.controlplane.store.journals)."""
        limits = self.history_limits
        if limits.exceeded(wf.last_event_seq + len(planned), wf.history_bytes):
            await self._fail_for_history(conn, wf, task_id, seen_through_seq, now)
            return True
        events: list[tuple[str, dict[str, Any]]] = []
        after: list[tuple[str, dict[str, Any]]] = []  # appended once the decision is recorded
        terminal: tuple[str, Any] | None = None
        continued: dict[str, Any] | None = None
        for action in planned:
            kind = action["type"]
            if kind == "schedule_activity":
                opts: ActivityOptions = action["options"]
                inserted = await self._insert_task(
                    conn, "activity", wf.id, action["activity_id"], action["activity_type"],
                    action["input_json"], opts, now, _trace(wf),
                )
                if inserted is not None:
                    events.append((
                        "ActivityScheduled",
                        {
                            "activity_id": action["activity_id"],
                            "activity_type": action["activity_type"],
                            "input": action["input"],
                            "task_id": str(inserted),
                        },
                    ))
            elif kind == "start_timer":
                fire_at = now + timedelta(seconds=action["fire_after"])
                inserted = await self._insert_task(
                    conn, "timer", wf.id, action["timer_id"], "timer",
                    dumps({"timer_id": action["timer_id"]}), ActivityOptions(start_delay=action["fire_after"]), now,
                    _trace(wf),
                )
                if inserted is not None:
                    events.append(("TimerStarted", {"timer_id": action["timer_id"], "fire_at": fire_at.isoformat()}))
            elif kind == "complete_workflow":
                events.append(("WorkflowCompleted", {"result": action["result"]}))
                terminal = ("completed", action["result"])
            elif kind == "record_marker":
                events.append(("MarkerRecorded", {
                    "kind": action["kind"], "marker_id": action["marker_id"], "value": action["value"]}))
            elif kind in ("cancel_activity", "cancel_timer"):
                step = "activity" if kind == "cancel_activity" else "timer"
                step_id = action["activity_id" if step == "activity" else "timer_id"]
                rows = await conn.fetch(Q.cancel_step, wf.id, step, step_id, now)
                await self._free_trials(conn, rows, now)
                if step == "activity":
                    events.append(("ActivityCancelRequested", {"activity_id": step_id}))
                else:
                    events.append(("TimerCancelled", {"timer_id": step_id}))
            elif kind == "cancel_workflow":
                events.append(("WorkflowCancelled", {"reason": action["reason"]}))
                terminal = ("cancelled", action["reason"])
            elif kind == "start_child_workflow":
                started, refused = await lineage.start_child(self, conn, wf, action, now)
                events.append(("ChildWorkflowStarted", started))
                if refused is not None:
                    after.append(("ChildWorkflowFailed", refused))
            elif kind == "continue_as_new":
                events.append(("WorkflowContinuedAsNew", {
                    "input": action["input"], "handled_through_seq": action["handled_through_seq"]}))
                continued = action
            else:
                events.append(("WorkflowFailed", {"error": action["error"]}))
                terminal = ("failed", action["error"])
        last_seq = await self._append(conn, wf.id, wf.last_event_seq, events, now)
        if journal is not None:
            await conn.execute(Q.journal_decision, wf.id, now, task_id, *journal)
        else:
            await conn.execute(
                Q.finish_decision, wf.id, now, seen_through_seq, last_seq, task_id,
                dumps({"applied": True, "actions": len(planned)}), sticky,
            )
        if continued is not None:
            await lineage.continue_as_new(self, conn, wf, continued, now)
            return True
        if terminal is not None:
            status, value = terminal
            if status == "cancelled":
                await conn.execute(Q.set_workflow_status, wf.id, status, None, None, now)
                await self._cancel_open_steps(conn, wf.id, now)
                await lineage.tell_parent(self, conn, wf, status, value, now)
                return True
            await conn.execute(
                Q.set_workflow_status, wf.id, status,
                dumps(value) if status == "completed" else None,
                dumps(value) if status == "failed" else None,
                now,
            )
            await self._cancel_open_steps(conn, wf.id, now)
            await lineage.tell_parent(self, conn, wf, status, value, now)
            return True
        if after:
            last_seq = await self._append(conn, wf.id, last_seq, after, now, wake=True)
        warn = not wf.history_warned and limits.warns(last_seq, wf.history_bytes)
        if told is not None and not after and not warn:  # its events end the history
            told.extend(workflow_batches.told_event(wf.last_event_seq + 1 + i, event_type, data, now)
                        for i, (event_type, data) in enumerate(events))
        if warn:
            await self._append(conn, wf.id, last_seq, [("HistorySizeWarning", {
                "events": last_seq, "max_events": limits.max_events,
                "bytes": wf.history_bytes, "max_bytes": limits.max_bytes,
                "message": "the history nears its limit; continue as new (ctx.continue_as_new) to go on",
            })], now)
            await conn.execute(Q.mark_history_warned, wf.id)
            self.observer.history_warned(wf.workflow_type)
        return False

    async def _fail_for_history(
        self, conn: asyncpg.Connection, wf: WorkflowInstance, task_id: UUID, seen_through_seq: int, now: datetime
    ) -> None:
        """The history reached a limit: the workflow fails (HistoryLimitExceeded), its
        decision not applied."""
        error = self.history_limits.failure(wf.last_event_seq, wf.history_bytes)
        last_seq = await self._append(conn, wf.id, wf.last_event_seq,
                                      [("WorkflowFailed", {"error": error, "terminated": True})], now)
        await conn.execute(Q.finish_decision, wf.id, now, seen_through_seq, last_seq, task_id,
                           dumps({"applied": False, "reason": error["type"]}), None)
        await conn.execute(Q.set_workflow_status, wf.id, "failed", None, dumps(error), now)
        await self._cancel_open_steps(conn, wf.id, now)
        await lineage.tell_parent(self, conn, wf, "failed", error, now)
        self.observer.history_limit_exceeded(wf.workflow_type)

    def _check_action(self, index: int, action: dict[str, Any]) -> dict[str, Any]:
        field = f"actions[{index}]"
        kind = action.get("type")
        if kind not in ACTION_TYPES:
            raise InvalidArgument(f"{field}.type {kind!r} is not one of {', '.join(ACTION_TYPES)}")
        if kind == "schedule_activity":
            activity_type = check_name(action.get("activity_type"), f"{field}.activity_type")
            activity_id = check_name(action.get("activity_id"), f"{field}.activity_id")
            input_value = action.get("input")
            if input_value is None:  # 0, "", [] and false are inputs too
                input_value = {}
            options = action.get("options")
            opts = options if isinstance(options, ActivityOptions) else ActivityOptions.parse(
                options, field=f"{field}.options"
            )
            return {
                "type": kind,
                "activity_type": activity_type,
                "activity_id": activity_id,
                "input": input_value,
                "input_json": self.payload(input_value, f"{field}.input"),
                "options": opts,
                "eager": bool(action.get("eager")),
            }
        if kind == "start_timer":
            timer_id = check_name(action.get("timer_id"), f"{field}.timer_id")
            fire_after = action.get("fire_after")
            if not isinstance(fire_after, int | float) or not 0 <= fire_after <= MAX_TIMER_SECONDS:
                raise InvalidArgument(f"{field}.fire_after must be 0..{MAX_TIMER_SECONDS:.0f} seconds")
            return {"type": kind, "timer_id": timer_id, "fire_after": float(fire_after)}
        if kind == "record_marker":
            marker_kind = check_name(action.get("kind"), f"{field}.kind")
            marker_id = check_name(action.get("marker_id"), f"{field}.marker_id")
            self.payload(action.get("value"), f"{field}.value")
            return {"type": kind, "kind": marker_kind, "marker_id": marker_id, "value": action.get("value")}
        if kind == "cancel_activity":
            return {"type": kind, "activity_id": check_name(action.get("activity_id"), f"{field}.activity_id")}
        if kind == "cancel_timer":
            return {"type": kind, "timer_id": check_name(action.get("timer_id"), f"{field}.timer_id")}
        if kind == "cancel_workflow":
            return {"type": kind, "reason": str(action.get("reason") or "")[:1000]}
        if kind == "start_child_workflow":
            policy = action.get("parent_close_policy") or "cancel"
            if policy not in PARENT_CLOSE_POLICIES:
                raise InvalidArgument(f"{field}.parent_close_policy {policy!r} is not one of {', '.join(PARENT_CLOSE_POLICIES)}")
            input_value = action.get("input")
            return {
                "type": kind,
                "child_id": check_name(action.get("child_id"), f"{field}.child_id"),
                "workflow_type": check_name(action.get("workflow_type"), f"{field}.workflow_type"),
                "input": input_value,
                "input_json": self.payload(input_value, f"{field}.input"),
                "parent_close_policy": policy,
            }
        if kind == "continue_as_new":
            handled = action.get("handled_through_seq") or 0
            if not isinstance(handled, int) or handled < 0:
                raise InvalidArgument(f"{field}.handled_through_seq must be a sequence number >= 0")
            input_value = action.get("input")
            return {"type": kind, "input": input_value, "input_json": self.payload(input_value, f"{field}.input"),
                    "handled_through_seq": handled}
        if kind == "complete_workflow":
            result = action.get("result", {})
            self.payload(result, f"{field}.result")
            return {"type": kind, "result": result}
        error = action.get("error") or {}
        if not isinstance(error, dict) or not error.get("message"):
            raise InvalidArgument(f"{field}.error needs a message")
        self.payload(error, f"{field}.error")
        return {"type": kind, "error": error}

    async def fire_due_timers(self, limit: int = 100) -> int:
        """Fire timers whose time has come: TimerFired event + a decision for the workflow."""
        now = self.now()
        fired = 0
        async with self.pool.acquire() as conn:
            due = await conn.fetch(Q.due_timers, now, limit)
            for row in due:
                async with conn.transaction():
                    wf = await self._lock_workflow(conn, row["workflow_id"])
                    locked = await conn.fetchrow(Q.lock_pending_task, row["id"])
                    if locked is None:
                        continue
                    timer = Task.from_row(locked)
                    await conn.execute(Q.complete_task, timer.id, dumps({"fired_at": now.isoformat()}), now)
                    if not wf.is_terminal:
                        await self._append(
                            conn, wf.id, wf.last_event_seq, [("TimerFired", {"timer_id": timer.activity_id})], now,
                            wake=True,
                        )
                    fired += 1
        return fired


def _kind_details(task: Task) -> tuple[str, Any]:
    return task.kind, task.heartbeat_details


def _trace(wf: WorkflowInstance) -> tuple[str, str] | None:
    return (wf.trace_id, wf.span_id) if wf.trace_id and wf.span_id else None
