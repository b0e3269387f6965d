"""The task queue: enqueue, claim, heartbeat, complete, fail, hand back.

Complete, fail and heartbeat are fenced by owner and attempt: a worker whose task was taken
back cannot touch the new attempt; its late call raises StaleAttempt and changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import DurableError, InvalidArgument, NotFound, StaleAttempt, WrongState
from durable.common.payloads import Checked, plain
from durable.common.policies import ActivityOptions, RetryPolicy
from durable.controlplane.store import lineage, workflow_batches
from durable.controlplane.store.base import check_name, check_names, dumps, parse_uuid
from durable.controlplane.store.breakers import BreakerStore
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import (
    ClaimedTask,
    ClaimedWorkflowTask,
    Event,
    FailOutcome,
    Task,
    WorkflowInstance,
)

MAX_CLAIM_BATCH = 1000
# A decision that follows a completion stamps the completion's event with its worker's clock
# (the time the decision saw); one further than this from the control plane's is not taken.
MAX_STAMP_SKEW_SECONDS = 5.0



async def load_with_histories(
    conn: asyncpg.Connection, ids: Sequence[str | None], sticky: Sequence[str | None] | None = None,
) -> tuple[dict[str, WorkflowInstance], dict[str, list[Event]], dict[str, int]]:
    """Workflows and their histories read in one statement, so in one snapshot. With `sticky`
    (per id, the worker a decision was routed to), the history of a workflow that worker keeps
    holds only the events after its point; the third dict says after which (0: all)."""
    workflows: dict[str, WorkflowInstance] = {}
    histories: dict[str, list[Event]] = {}
    after: dict[str, int] = {}
    routed = list(sticky) if sticky is not None else [None] * len(ids)
    pairs = [(i, s) for i, s in zip(ids, routed, strict=True) if i]
    for row in await conn.fetch(Q.workflows_with_histories, [p[0] for p in pairs], [p[1] for p in pairs]):
        workflows[row["id"]] = WorkflowInstance.from_row(row)
        histories[row["id"]] = [Event.from_row(e) for e in row["history"]]
        after[row["id"]] = int(row["after_seq"])
    return workflows, histories, after


class TaskStore(BreakerStore):
    async def enqueue_activity(
        self,
        activity_type: str,
        input: Any = None,
        *,
        options: ActivityOptions | dict[str, Any] | None = None,
        trace: tuple[str, str] | None = None,
    ) -> UUID:
        """Queue a standalone activity task (one that belongs to no workflow). `input` is a
        payload value, or a payloads.Checked whose text is written as it is."""
        check_name(activity_type, "activity_type")
        opts = options if isinstance(options, ActivityOptions) else ActivityOptions.parse(options, field="options")
        input_json = self.payload(input, "input")
        now = self.now()
        async with self.pool.acquire() as conn:
            return await self._insert_task(  # type: ignore[return-value]
                conn, "activity", None, None, activity_type, input_json, opts, now, trace
            )

    # -- claim -----------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        activity_types: Sequence[str] = (),
        workflow_types: Sequence[str] = (),
        limit: int = 1,
        *,
        known_active: bool = False,
    ) -> tuple[list[ClaimedTask], list[ClaimedWorkflowTask]]:
        """Claim up to `limit` visible tasks of the given types for a registered worker.

        Returns (activity tasks, workflow tasks with their histories). `known_active` skips
        explaining an empty claim (a long-poll re-checking for a worker it already checked).
        """
        check_name(worker_id, "worker_id")
        activity_types = check_names(activity_types, "activity_types")
        workflow_types = check_names(workflow_types, "workflow_types")
        if not 1 <= limit <= MAX_CLAIM_BATCH:
            raise InvalidArgument(f"max_tasks must be between 1 and {MAX_CLAIM_BATCH}")
        if not activity_types and not workflow_types:
            raise InvalidArgument("name at least one activity type or workflow type to claim")
        now = self.now()
        async with self.pool.acquire() as conn:
            for _ in range(2):
                async with conn.transaction():
                    started = time.perf_counter()
                    rows = await self._claim_rows(conn, worker_id, activity_types, workflow_types, limit, now)
                    self.observer.claim_timed(time.perf_counter() - started)
                    if rows or known_active:
                        break
                    status = await conn.fetchval(Q.worker_status, worker_id)
                    if status is None or status == "stopped":
                        raise WrongState(
                            f"worker {worker_id!r} is not registered (status: {status or 'unknown'}); "
                            "register it before claiming"
                        )
                    if status != "lost":  # active with nothing to do, or draining
                        break
                    # A worker that claims is alive after all: reactivate it and try again.
                    await conn.execute(Q.worker_heartbeat, worker_id, 0, now)
            if len(rows) >= limit:  # keyed tasks may be waiting behind the unkeyed ones (gates)
                self.gates.after_full_claim(self.pool, activity_types, workflow_types)
            # UPDATE ... RETURNING keeps no order: hand tasks out highest priority first.
            tasks = sorted(map(ClaimedTask.from_row, rows), key=lambda t: (-t.priority, t.visible_at))
            for (kind, activity_type), count in Counter((t.kind, t.activity_type) for t in tasks).items():
                self.observer.claimed(kind, activity_type, count)
            activities = [t for t in tasks if t.kind == "activity"]
            decisions = [t for t in tasks if t.kind == "workflow"]
            return activities, await self._with_histories(conn, decisions, now)

    async def _claim_rows(
        self,
        conn: asyncpg.Connection,
        worker_id: str,
        activity_types: list[str],
        workflow_types: list[str],
        limit: int,
        now: datetime,
    ) -> list[asyncpg.Record]:
        blocked, trials = await self._breaker_admission(conn, activity_types, now)
        rate_limited = await self.rate_limited_types(conn)  # cached: usually no query at all
        rated = [t for t in activity_types if t in rate_limited and t not in blocked and t not in trials]
        rows: list[asyncpg.Record] = []
        active = None
        if trials or rated:
            active = await conn.fetchval(Q.worker_status, worker_id) == "active"
        if trials and active:
            for key, slots in trials.items():
                got = list(await conn.fetch(Q.claim_tasks_of_type, worker_id, key, min(slots, limit - len(rows)), now))
                if len(got) < slots and len(rows) + len(got) < limit:  # trials may be keyed tasks too
                    got += await self.gates.claim_keyed(
                        conn, worker_id, key, min(slots - len(got), limit - len(rows) - len(got)), now
                    )
                rows.extend(got)
                await self._return_unused_trials(conn, key, slots - len(got), now)
                if len(rows) >= limit:
                    return rows
        elif trials:
            for key, slots in trials.items():
                await self._return_unused_trials(conn, key, slots, now)
            trials = {}
        held_back = blocked | set(trials) | set(rated)
        # one type: the single ordered scan locks exactly what it takes; several: candidates
        # first, then only the rows taken are locked (see queries.sql). Unkeyed tasks only; half
        # of a claim when keyed ones were found waiting after a full one (gates).
        query = Q.claim_tasks if len(activity_types) + len(workflow_types) <= 1 else Q.claim_tasks_of_types
        free = [t for t in activity_types if t not in held_back]
        owed = self.gates.owed_to_keyed((tuple(activity_types), tuple(workflow_types))) if len(rows) < limit else None
        if owed:  # not to types held back (an open breaker, a rate limit)
            owed = [(kind, t) for kind, t in owed if kind == "workflow" or t in free] or None
        unkeyed = (limit - len(rows)) // 2 if owed else limit - len(rows)
        full = False  # the unkeyed ones filled what they were asked for
        if unkeyed:
            got = await conn.fetch(query, worker_id, activity_types, workflow_types, unkeyed, now, sorted(held_back))
            rows.extend(got)
            full = len(got) == unkeyed
        if rated and active:
            for activity_type in rated:
                if len(rows) >= limit:
                    break
                got, wake = await self.gates.claim_rate_limited(conn, worker_id, activity_type, limit - len(rows), now)
                rows.extend(got)
                if wake is not None:
                    await self.notify_due(conn, f"activity:{activity_type}", wake)
        if len(rows) < limit:  # keyed tasks: when the unkeyed ones did not fill the claim
            await self._claim_keyed(conn, worker_id, free, workflow_types, rows, limit, now, owed)
        if owed and (full or not unkeyed) and len(rows) < limit:  # what the keyed ones left
            rows.extend(await conn.fetch(query, worker_id, activity_types, workflow_types, limit - len(rows), now,
                                         sorted(held_back)))
        return rows

    async def _claim_keyed(
        self,
        conn: asyncpg.Connection,
        worker_id: str,
        activity_types: list[str],
        workflow_types: list[str],
        rows: list[asyncpg.Record],
        limit: int,
        now: datetime,
        waiting: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """Keyed tasks of the types added to `rows` until it holds `limit`; `waiting`: the
        (kind, type)s with keyed tasks, when the caller looked already (none: nothing to do)."""
        if waiting is None:
            waiting = await self.gates.keyed_types(conn, activity_types, workflow_types)
        for kind, type_ in waiting:
            claim = self.gates.claim_keyed if kind == "activity" else self.gates.claim_keyed_workflows
            rows.extend(await claim(conn, worker_id, type_, limit - len(rows), now))
            if len(rows) >= limit:
                break

    async def _with_histories(
        self, conn: asyncpg.Connection, decisions: list[ClaimedTask], now: datetime
    ) -> list[ClaimedWorkflowTask]:
        if not decisions:
            return []
        ids = [t.workflow_id for t in decisions]
        # Best effort and lock-free for the claimer: a workflow being cancelled is skipped.
        await conn.execute(Q.start_workflows_running, ids, now)
        # the rows and their histories in one statement: one snapshot (see queries.sql); a
        # decision routed to the worker that keeps the instance (sticky_to: it decided last)
        # gets only the events after what that decision saw
        workflows, histories, after = await load_with_histories(conn, ids, [t.sticky_to for t in decisions])
        return [
            ClaimedWorkflowTask(task=t, workflow=workflows[t.workflow_id], history=histories[t.workflow_id],  # type: ignore[index]
                                history_after_seq=after[t.workflow_id])  # type: ignore[index]
            for t in decisions
        ]

    async def task_history(
        self, worker_id: str, task_id: Any, attempt: int, after_seq: int = 0, *, limit: int | None = None
    ) -> list[Event]:
        """The history after `after_seq` of the workflow of a workflow task this worker holds
        (this attempt): the pages of a history too large for the claim's answer."""
        task_id = parse_uuid(task_id, "task_id")
        workflow_id = await self.pool.fetchval(Q.owned_workflow_task, task_id, worker_id, attempt)
        if workflow_id is None:
            async with self.pool.acquire() as conn:
                await self._lock_owned(conn, task_id, worker_id, attempt)  # raises NotFound / StaleAttempt
            raise InvalidArgument(f"task {task_id} is not a workflow task")
        return await self.load_events(workflow_id, after_seq, limit=limit)  # type: ignore[attr-defined,no-any-return]

    # -- heartbeat -------------------------------------------------------------------------

    async def heartbeat_tasks(
        self, worker_id: str, refs: Sequence[tuple[Any, int, dict[str, Any] | None]]
    ) -> list[tuple[UUID, bool, bool]]:
        """Record that the worker still runs these attempts.

        Returns (task_id, accepted, cancel_requested) per task: not accepted means the worker
        no longer owns that attempt and must stop it.
        """
        check_name(worker_id, "worker_id")
        ids = [parse_uuid(r[0], "task_id") for r in refs]
        attempts = [int(r[1]) for r in refs]
        details = [self.payload(r[2], "details") if r[2] is not None else None for r in refs]
        now = self.now()
        order = sorted(range(len(ids)), key=lambda i: ids[i])  # rows locked by id, as everywhere
        async with self.pool.acquire() as conn:
            accepted = {r["id"] for r in await conn.fetch(
                Q.heartbeat_tasks, worker_id, now, [ids[i] for i in order], [attempts[i] for i in order],
                [details[i] for i in order])}
            flags = {r["id"]: r for r in await conn.fetch(Q.cancel_flags, ids)}
        out = []
        for task_id in ids:
            flag = flags.get(task_id)
            cancelled = bool(flag and (flag["cancel_requested"] or flag["status"] == "cancelled"))
            out.append((task_id, task_id in accepted, cancelled))
        return out

    # -- complete / fail ---------------------------------------------------------------------

    async def complete_task(
        self, worker_id: str, task_id: Any, attempt: int, result: dict[str, Any] | Checked | None = None
    ) -> None:
        """Record an activity's result and let its workflow decide what comes next."""
        [(_, error)] = await self.complete_tasks(worker_id, [(task_id, attempt, result)])
        if error is not None:
            raise error

    async def complete_tasks(
        self, worker_id: str, items: Sequence[tuple[Any, int, dict[str, Any] | Checked | None]]
    ) -> list[tuple[Any, DurableError | None]]:
        """Complete several activity attempts at once; per item, None or the error it met.

        Standalone activities complete in one statement for the whole batch, and activities of
        workflows in one transaction (workflow_batches); what those leave (a task not held, of
        another kind) goes through the single path, which says why.
        """
        outcomes, _ = await self.complete_tasks_following(worker_id, items)
        return outcomes

    async def complete_tasks_following(
        self,
        worker_id: str,
        items: Sequence[tuple[Any, int, dict[str, Any] | Checked | None]],
        following: Mapping[int, workflow_batches.Following] | None = None,
        of_workflows: Collection[int] = (),
    ) -> tuple[list[tuple[Any, DurableError | None]], dict[int, workflow_batches.Followed]]:
        """complete_tasks, where the completions of workflows' activities may carry the
        decision that follows them (`following`, by item index): applied in the same
        transaction when the history is where their worker saw it, instead of a decision task.
        Returns also, per item that carried one, what came of it. A decision that cannot be
        taken (malformed, stamped by a clock far from ours) is dropped, and its completion
        goes on without it: a decision task follows, as it would have. `of_workflows`: the
        items that are workflows' activities by their worker's word (they skip the statement
        for standalone tasks; a wrong word costs the single path, never the completion)."""
        check_name(worker_id, "worker_id")
        outcomes: dict[int, DurableError | None] = {}
        valid: list[tuple[int, UUID, int, str, dict[str, Any] | Checked | None]] = []
        for index, (task_id, attempt, result) in enumerate(items):
            try:
                valid.append((index, parse_uuid(task_id, "task_id"), int(attempt), self.payload(result, "result"), result))
            except DurableError as exc:
                outcomes[index] = exc
        now = self.now()
        riding = self._following(worker_id, following or {}, {v[0]: v[1] for v in valid}, now)
        # One lock order everywhere: task rows by id, then breaker rows by key (two batches
        # that share rows in another order would otherwise deadlock).
        valid.sort(key=lambda v: v[1])
        followed: dict[int, workflow_batches.Followed] = {}
        ended: list[str] = []
        # a workflow's activity by its worker's word (if not, the workflows' statement leaves
        # it to the single path, which says what it is)
        of_workflow = set(of_workflows) | set(following or {})
        standalone = [v for v in valid if v[0] not in of_workflow]
        async with self.pool.acquire() as conn:
            done = {}
            if standalone:
                async with conn.transaction():
                    rows = await conn.fetch(
                        Q.complete_standalone_tasks, worker_id, now,
                        [v[1] for v in standalone], [v[2] for v in standalone], [v[3] for v in standalone],
                    )
                    done = {r["id"]: r["activity_type"] for r in rows}
                    for activity_type, count in sorted(Counter(done.values()).items()):
                        await self._breaker_success(conn, activity_type, now, count)
            rest = [v for v in valid if v[1] not in done]
            if rest:  # activities of workflows: one transaction for the batch
                batch = await workflow_batches.complete_workflow_activities(
                    self, conn, worker_id, [(v[1], v[2], v[3]) for v in rest], now,
                    {task_id: riding[i] for i, task_id, *_ in rest if i in riding})
                done.update(batch.done)
                by_task = {v[1]: v[0] for v in rest}
                followed = {by_task[task_id]: f for task_id, f in batch.followed.items()}
                ended = batch.ended
                for workflow_type in batch.decided_types:
                    self.observer.decided(workflow_type, True)
            for activity_type, count in Counter(done.values()).items():
                self.observer.completed(activity_type, count)
            for index, task_id, attempt, result_json, result in valid:
                if task_id in done:
                    outcomes[index] = None
                    continue
                try:
                    activity_type = await self._complete_one(conn, worker_id, task_id, attempt, result_json, result, now)
                    outcomes[index] = None
                    self.observer.completed(activity_type)
                except StaleAttempt as exc:
                    # taken already, and the answer that handed out its next steps lost: taken,
                    # with them (otherwise completing twice is refused, as it changes nothing)
                    again = await workflow_batches.handed_before(conn, worker_id, task_id, attempt)
                    outcomes[index] = None if again else exc
                    if again:
                        followed[index] = workflow_batches.Followed(False, again)
                except DurableError as exc:
                    outcomes[index] = exc
        if ended:  # after the commit: the children's locks come after the parent's (lineage)
            await lineage.cancel_children(self, ended, now)
        return [(items[i][0], outcomes[i]) for i in range(len(items))], followed

    def _following(
        self, worker_id: str, following: Mapping[int, workflow_batches.Following], valid: Mapping[int, UUID],
        now: datetime,
    ) -> dict[int, workflow_batches.Following]:
        """The following decisions that can be taken, their actions checked; the others are
        dropped (said in the log, at most once a minute per worker)."""
        out: dict[int, workflow_batches.Following] = {}
        for index, f in following.items():
            if index not in valid:
                continue
            try:
                if abs((f.stamped_at - now).total_seconds()) > MAX_STAMP_SKEW_SECONDS:
                    raise InvalidArgument(f"its event is stamped {f.stamped_at.isoformat()}, over "
                                          f"{MAX_STAMP_SKEW_SECONDS:g} s from the control plane's clock")
                out[index] = replace(f, actions=self._plan(f.actions))  # type: ignore[attr-defined]
            except DurableError as exc:
                workflow_batches.log_dropped(worker_id, valid[index], exc)
        return out

    async def _complete_one(
        self,
        conn: asyncpg.Connection,
        worker_id: str,
        task_id: UUID,
        attempt: int,
        result_json: str,
        result: dict[str, Any] | Checked | None,
        now: datetime,
    ) -> str:
        async with conn.transaction():
            wf = await self._lock_workflow_of_task(conn, task_id)
            task = await conn.fetchrow(Q.complete_owned_activity, task_id, worker_id, attempt, result_json, now)
            if task is None:  # not ours (anymore), or not an activity: say which
                held = await self._lock_owned(conn, task_id, worker_id, attempt)
                raise InvalidArgument(f"task {task_id} is a {held.kind} task; complete it with its own call")
            await self._breaker_success(conn, task["activity_type"], now)
            # a step records one outcome: a requeued run of a step whose outcome the workflow
            # already has keeps its result on its task only
            if wf is not None and not wf.is_terminal and not task["outcome_recorded"]:
                await self._append(
                    conn,
                    wf.id,
                    wf.last_event_seq,
                    [(
                        "ActivityCompleted",
                        {
                            "activity_id": task["activity_id"],
                            "activity_type": task["activity_type"],
                            "result": _or_empty(plain(result)),
                            "attempt": task["attempt"],
                        },
                    )],
                    now,
                    wake=True,
                )
        return str(task["activity_type"])

    async def fail_task(
        self,
        worker_id: str,
        task_id: Any,
        attempt: int,
        message: str,
        *,
        error_type: str = "Error",
        non_retryable: bool = False,
        next_retry_delay: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> FailOutcome:
        """Record a failed attempt: retry after the backoff, or dead-letter the task.

        A failed workflow task (a decision) is never dead-lettered and never fails its
        workflow: the workflow stays running, blocked with the error, and the decision is
        retried with a capped backoff, without limit, until fixed code decides."""
        task_id = parse_uuid(task_id, "task_id")
        if next_retry_delay is not None and next_retry_delay < 0:
            raise InvalidArgument("next_retry_delay must be >= 0 seconds")
        message = (message or "")[:10_000]
        error_type = (error_type or "Error")[:255]
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            wf = await self._lock_workflow_of_task(conn, task_id)
            task = await self._lock_owned(conn, task_id, worker_id, attempt)
            if task.kind == "workflow" and wf is not None:
                outcome = await self._block(conn, task, wf, message, error_type, details, now)
            else:
                outcome = await self._fail_locked(conn, task, wf, message, error_type, non_retryable, next_retry_delay, now)
        if task.kind == "workflow":
            self.observer.decision_failed(task.activity_type, error_type)
        else:
            self.observer.failed(task.activity_type, outcome.outcome)
        return outcome

    async def _block(
        self,
        conn: asyncpg.Connection,
        task: Task,
        wf: WorkflowInstance,
        message: str,
        error_type: str,
        details: dict[str, Any] | None,
        now: datetime,
    ) -> FailOutcome:
        """A decision failed: block the workflow with the error and retry the decision."""
        traceback = (details or {}).get("traceback")
        blocked = {"message": message, "type": error_type, "worker": task.claimed_by,
                   "traceback": str(traceback)[:20_000] if traceback else None}
        failures = await conn.fetchval(Q.block_workflow, wf.id, dumps(blocked), now) or 1
        entry = self.error_entry(task, message, error_type, now)
        if wf.is_terminal:
            await conn.execute(Q.complete_task, task.id, dumps({"applied": False}), now)
            return FailOutcome("retrying", retry_at=now)
        if await conn.fetchval(Q.pending_decision_exists, task.workflow_id):
            # new events wait in a newer decision task: it tries again at once
            await conn.execute(Q.supersede_task, task.id, now)
            return FailOutcome("retrying", retry_at=now)
        retry_at = now + timedelta(seconds=self.decision_retry_delay(int(failures)))
        await conn.execute(Q.retry_task, task.id, retry_at, f"{error_type}: {message}", dumps([entry]))
        await self.notify_due(conn, f"{task.kind}:{task.activity_type}", retry_at)
        return FailOutcome("retrying", retry_at=retry_at)

    async def _fail_locked(
        self,
        conn: asyncpg.Connection,
        task: Task,
        wf: WorkflowInstance | None,
        message: str,
        error_type: str,
        non_retryable: bool,
        next_retry_delay: float | None,
        now: datetime,
    ) -> FailOutcome:
        policy = RetryPolicy.parse(task.retry_policy, field="retry_policy")
        entry = self.error_entry(task, message, error_type, now)
        if task.kind == "activity":
            await self._breaker_failure(conn, task.activity_type, now)
        if non_retryable or error_type in policy.non_retryable_error_types:
            dlq = await self._bury(conn, task, wf, "non_retryable", entry, now)
            return FailOutcome("dead", dead_letter_id=dlq)
        if task.failed_attempts >= task.max_attempts:
            dlq = await self._bury(conn, task, wf, "exhausted", entry, now)
            return FailOutcome("dead", dead_letter_id=dlq)
        delay = (
            timedelta(seconds=next_retry_delay)
            if next_retry_delay
            else policy.delay(task.failed_attempts, self.rng)
        )
        retry_at = now + delay
        if task.kind == "workflow" and await conn.fetchval(Q.pending_decision_exists, task.workflow_id):
            # A newer decision already waits with a longer history; this one is superseded.
            await conn.execute(Q.supersede_task, task.id, now)
            return FailOutcome("retrying", retry_at=now)
        await conn.execute(Q.retry_task, task.id, retry_at, f"{error_type}: {message}", dumps([entry]))
        await self.notify_due(conn, f"{task.kind}:{task.activity_type}", retry_at)
        return FailOutcome("retrying", retry_at=retry_at)

    # -- hand back ---------------------------------------------------------------------------

    async def release_tasks(self, worker_id: str, refs: Sequence[tuple[Any, int]] | None = None) -> int:
        """Hand tasks back to the queue at once (a draining worker). Does not burn an attempt.

        With no refs, every task the worker holds is released.
        """
        check_name(worker_id, "worker_id")
        wanted = None if not refs else {(parse_uuid(t, "task_id"), int(a)) for t, a in refs}
        now = self.now()
        released = 0
        woken: Counter[str] = Counter()
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(Q.owned_tasks, worker_id):
                task = Task.from_row(row)
                if wanted is not None and (task.id, task.attempt) not in wanted:
                    continue
                if task.kind == "workflow" and await conn.fetchval(Q.pending_decision_exists, task.workflow_id):
                    await conn.execute(Q.supersede_task, task.id, now)
                else:
                    await conn.execute(Q.release_task, task.id, now)
                    woken[f"{task.kind}:{task.activity_type}"] += 1
                    if task.kind == "activity" and task.activity_type in await self.breaker_keys(conn):
                        # a half-open trial handed back frees its trial slot (no-op otherwise)
                        await self._return_unused_trials(conn, task.activity_type, 1, now)
                released += 1
            await self.notify(conn, woken)
        return released

    async def get_task(self, task_id: Any) -> Task:
        row = await self.pool.fetchrow(Q.get_task, parse_uuid(task_id, "task_id"))
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        return Task.from_row(row)  # type: ignore[no-any-return]


def _or_empty(value: Any) -> Any:
    """A result as its event records it: none is {} (as it always was); 0, "", [] and false
    are results too."""
    return {} if value is None else value
