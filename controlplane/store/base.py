"""The store's shared machinery: the pool, the clock, payload rules, event appends, burial.

Lock order, everywhere: a workflow's instance row first, then its task rows. Code that starts
from a task id reads the task's workflow id without a lock, locks the workflow, then locks the
task with its fence. Following it keeps cancel, complete, fail, reap and decide free of
deadlocks.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import ConcurrencyConflict, InvalidArgument, NotFound, StaleAttempt
from durable.common.payloads import DEFAULT_MAX_PAYLOAD_BYTES, encode_payload
from durable.common.policies import ActivityOptions
from durable.controlplane.store.lineage import HistoryLimits, tell_parent
from durable.controlplane.store.gates import Gates
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import Task, WorkflowInstance

Clock = Callable[[], datetime]

# What a lost or restarting database raises: callers treat these as "unreachable, retry".
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def parse_uuid(value: Any, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidArgument(f"{field} {value!r} is not a UUID") from None


@lru_cache(maxsize=256)
def policy_json(options: ActivityOptions) -> str:
    """The retry policy's JSON column: options are frozen models, and the few distinct ones a
    producer uses are encoded once."""
    return options.retry_policy.model_dump_json()


def check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{field} is required and must be a non-empty string")
    if len(value) > 255:
        raise InvalidArgument(f"{field} is longer than 255 characters")
    return value


def check_names(values: Sequence[str], field: str) -> list[str]:
    return [check_name(v, field) for v in values]


class StoreObserver:
    """Told about what the store did, after it committed (metrics implement it)."""

    def claimed(self, kind: str, activity_type: str, count: int = 1) -> None:
        """Tasks were handed out."""

    def claim_timed(self, seconds: float) -> None:
        """One claim statement ran (whether or not it found work)."""

    def completed(self, activity_type: str, count: int = 1) -> None:
        """Activity completions were accepted."""

    def failed(self, activity_type: str, outcome: str) -> None:
        """A failed attempt was recorded: outcome "retrying" or "dead"."""

    def workflow_started(self, workflow_type: str) -> None:
        """A workflow was created."""

    def decided(self, workflow_type: str, applied: bool) -> None:
        """A decision was applied, or dropped because the history moved."""

    def journalled(self, workflow_type: str, applied: bool, unseen: bool = False) -> None:
        """A journal of a decision (ctx.step) was written, or not (its decision dropped);
        `unseen`: written after events its decision had not seen (the decision ends there)."""

    def decision_failed(self, workflow_type: str, error_type: str) -> None:
        """A decision failed (workflow code raised, or a non-determinism): blocked."""

    def decision_sent(self, new_events_only: bool, size: int) -> None:
        """A workflow task went to a worker: `size` bytes, with its whole history or (sticky,
        the worker keeps the instance) only the new events."""
    def history_warned(self, workflow_type: str) -> None:
        """A workflow's history passed 80% of a limit (HistorySizeWarning)."""

    def history_limit_exceeded(self, workflow_type: str) -> None:
        """A workflow failed because its history reached a limit."""


class StoreBase:
    """Connection pool, clock and the primitives the concept modules share."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Clock = utc_now,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        workflow_task_max_attempts: int = 10,
        decision_retry_initial: float = 1.0,
        decision_retry_max: float = 60.0,
        rng: random.Random | None = None,
        observer: StoreObserver | None = None,
        history_limits: HistoryLimits | None = None,
    ) -> None:
        self.pool = pool
        self.history_limits = history_limits or HistoryLimits()
        self.observer = observer or StoreObserver()
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes
        self.workflow_task_max_attempts = workflow_task_max_attempts
        self.decision_retry_initial = decision_retry_initial
        self.decision_retry_max = decision_retry_max
        self.rng = rng or random.Random()
        # Activity types with a circuit breaker, refreshed every BREAKER_CACHE_SECONDS, so the
        # claim and completion paths skip breaker work for the (usual) types that have none.
        # Failures never consult it (a failure is always counted). A breaker configured here
        # is seen at once; one configured through another replica, as soon as its "breakers"
        # notification arrives (forget_breaker_keys), at the latest within that time.
        self._breaker_keys: frozenset[str] = frozenset()
        self._rate_limited: frozenset[str] = frozenset()
        self._breaker_keys_read_at: float | None = None
        self._breaker_keys_generation = 0  # bumped by forget: a read that raced it is not kept
        # the claim's gated paths (concurrency keys, rate limits) and their round-robin cursors
        self.gates = Gates()

    BREAKER_CACHE_SECONDS = 2.0

    def decision_retry_delay(self, failures: int) -> float:
        """Seconds before a blocked workflow's decision is tried again: doubling from
        `decision_retry_initial`, capped at `decision_retry_max`, with 10% jitter."""
        base = min(self.decision_retry_max, self.decision_retry_initial * 2 ** min(failures - 1, 30))
        return base * (0.9 + 0.2 * self.rng.random())

    async def _cancel_open_steps(self, conn: asyncpg.Connection, workflow_id: str, now: datetime) -> int:
        """Cancel a workflow's unfinished tasks and timers; returns how many. A claimed activity
        of a half-open breaker's type gives its trial slot back (it will neither succeed nor
        fail, so nothing else would)."""
        rows = await conn.fetch(Q.cancel_open_steps, workflow_id, now)
        await self._free_trials(conn, rows, now)
        return len(rows)

    async def _free_trials(self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], now: datetime) -> None:
        """Cancelled steps (rows with kind, activity_type, was_status): a claimed half-open
        trial gives its slot back."""
        keys = await self.breaker_keys(conn) if rows else frozenset()
        trials = Counter(
            r["activity_type"] for r in rows
            if r["kind"] == "activity" and r["was_status"] == "claimed" and r["activity_type"] in keys
        )
        for key, count in sorted(trials.items()):  # breaker rows locked in key order, everywhere
            await conn.execute(Q.return_trials, key, count, now)

    async def breaker_keys(self, conn: asyncpg.Connection) -> frozenset[str]:
        return (await self._read_guarded_keys(conn))[0]

    async def rate_limited_types(self, conn: asyncpg.Connection) -> frozenset[str]:
        """Activity types with a rate limit (cached with the breaker keys, in the same query)."""
        return (await self._read_guarded_keys(conn))[1]

    async def _read_guarded_keys(self, conn: asyncpg.Connection) -> tuple[frozenset[str], frozenset[str]]:
        """(types with a breaker, types with a rate limit), cached for BREAKER_CACHE_SECONDS."""
        loop_time = time.monotonic()
        if self._breaker_keys_read_at is None or loop_time - self._breaker_keys_read_at > self.BREAKER_CACHE_SECONDS:
            generation = self._breaker_keys_generation
            rows = await conn.fetch(Q.guarded_keys)
            breakers = frozenset(r["key"] for r in rows if r["guard"] == "breaker")
            rated = frozenset(r["key"] for r in rows if r["guard"] == "rate")
            if generation != self._breaker_keys_generation:
                return breakers, rated  # a breaker changed while we read: use it, but do not keep it
            self._breaker_keys, self._rate_limited = breakers, rated
            self._breaker_keys_read_at = loop_time
        return self._breaker_keys, self._rate_limited

    def forget_breaker_keys(self) -> None:
        self._breaker_keys_read_at = None
        self._breaker_keys_generation += 1

    async def _breaker_success(
        self, conn: asyncpg.Connection, activity_type: str, now: datetime, count: int = 1
    ) -> None:
        if activity_type in await self.breaker_keys(conn):
            await conn.execute(Q.breaker_success, activity_type, now, count)

    async def _breaker_failure(self, conn: asyncpg.Connection, activity_type: str, now: datetime) -> None:
        """Count a failure of `activity_type` (no-op without a breaker). Not through the cache:
        the failure path is not the hot one, and a breaker just made elsewhere counts at once."""
        await conn.execute(Q.breaker_failure, activity_type, now)

    async def notify(self, conn: asyncpg.Connection, arrived: Mapping[str, int]) -> None:
        """Wake as many long-polling claims of each "kind:type" as tasks became pending there
        (delivered on commit)."""
        if arrived:
            payload = ",".join(f"{key}={n}" for key, n in sorted(arrived.items()))
            await conn.execute(Q.notify_tasks, payload[:7900])

    async def notify_due(self, conn: asyncpg.Connection, key: str, at: datetime, count: int = 1) -> None:
        """Tell waiting claims that `count` tasks of "kind:type" `key` become visible at `at`
        (delivered on commit; they are woken then, not at the next fallback re-check)."""
        await conn.execute(Q.notify_tasks, f"{key}={count}@{at.timestamp():.6f}")

    def now(self) -> datetime:
        return self.clock()

    def payload(self, value: Any, field: str) -> str:
        return encode_payload(value, field=field, limit=self.max_payload_bytes, allow_none=True)

    # -- workflows -------------------------------------------------------------------------

    async def _lock_workflow(self, conn: asyncpg.Connection, workflow_id: str) -> WorkflowInstance:
        row = await conn.fetchrow(Q.lock_workflow, workflow_id)
        if row is None:
            raise NotFound(f"workflow {workflow_id!r} does not exist")
        return WorkflowInstance.from_row(row)  # type: ignore[no-any-return]

    async def _append(
        self,
        conn: asyncpg.Connection,
        workflow_id: str,
        expected_last_seq: int,
        events: Sequence[tuple[str, dict[str, Any]]],
        now: datetime,
        *,
        wake: bool = False,
    ) -> int:
        """Append events after `expected_last_seq` (and with `wake`, queue a decision), in one
        statement; raise ConcurrencyConflict if the history moved."""
        if not events:
            return expected_last_seq
        new_last = await conn.fetchval(
            Q.append_events, workflow_id, expected_last_seq, [e[0] for e in events], [dumps(e[1]) for e in events],
            now, wake, self.workflow_task_max_attempts,
        )
        if new_last is None:
            exists = await conn.fetchval(Q.get_workflow, workflow_id)
            if exists is None:
                raise NotFound(f"workflow {workflow_id!r} does not exist")
            raise ConcurrencyConflict(
                f"workflow {workflow_id!r} history moved past sequence {expected_last_seq}; "
                "reload the history and retry"
            )
        return int(new_last)

    async def _wake(
        self, conn: asyncpg.Connection, wf: WorkflowInstance, now: datetime, *, sticky: str | None = None
    ) -> None:
        """Make sure a decision is queued for the workflow (routed to `sticky`, else to the
        worker that keeps the instance, while that worker is active)."""
        await conn.execute(
            Q.wake_workflow, wf.id, wf.workflow_type, now, self.workflow_task_max_attempts, wf.trace_id, wf.span_id,
            sticky or wf.sticky_worker_id,
        )

    async def _insert_task(
        self,
        conn: asyncpg.Connection,
        kind: str,
        workflow_id: str | None,
        activity_id: str | None,
        activity_type: str,
        input_json: str,
        opts: ActivityOptions,
        now: datetime,
        trace: tuple[str, str] | None = None,
    ) -> UUID | None:
        """Insert a task; None when the (workflow, step id) already has a live task."""
        policy = opts.retry_policy
        trace_id, span_id = trace or (None, None)
        return await conn.fetchval(  # type: ignore[no-any-return]
            Q.insert_task,
            kind,
            workflow_id,
            activity_id,
            activity_type,
            input_json,
            opts.priority,
            now + timedelta(seconds=opts.start_delay),
            policy.max_attempts,
            policy_json(opts),
            opts.schedule_to_start_timeout,
            opts.start_to_close_timeout,
            opts.heartbeat_timeout,
            now,
            trace_id,
            span_id,
            opts.concurrency_key,
            opts.concurrency_limit,
        )

    # -- tasks -----------------------------------------------------------------------------

    async def _lock_workflow_of_task(self, conn: asyncpg.Connection, task_id: UUID) -> WorkflowInstance | None:
        """Lock the workflow of a task first (the lock order): None for a standalone task.
        Raises NotFound when the task or its workflow does not exist."""
        row = await conn.fetchrow(Q.lock_workflow_of_task, task_id)
        if row is not None:
            return WorkflowInstance.from_row(row)  # type: ignore[no-any-return]
        workflow_id = await self._task_workflow_id(conn, task_id)
        return await self._lock_workflow(conn, workflow_id) if workflow_id else None

    async def _task_workflow_id(self, conn: asyncpg.Connection, task_id: UUID) -> str | None:
        row = await conn.fetchrow(Q.task_workflow_id, task_id)
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        return row["workflow_id"]  # type: ignore[no-any-return]

    async def _lock_owned(
        self, conn: asyncpg.Connection, task_id: UUID, worker_id: str, attempt: int
    ) -> Task:
        row = await conn.fetchrow(Q.lock_owned_task, task_id, worker_id, attempt)
        if row is None:
            current = await conn.fetchrow(Q.get_task, task_id)
            if current is None:
                raise NotFound(f"task {task_id} does not exist")
            raise StaleAttempt(
                f"task {task_id} attempt {attempt} is no longer held by worker {worker_id!r} "
                f"(now: status {current['status']}, attempt {current['attempt']}, "
                f"held by {current['claimed_by']!r}); nothing was changed"
            )
        return Task.from_row(row)  # type: ignore[no-any-return]

    async def _bury(
        self,
        conn: asyncpg.Connection,
        task: Task,
        wf: WorkflowInstance | None,
        reason: str,
        error: dict[str, Any],
        now: datetime,
    ) -> UUID:
        """Mark a task dead, dead-letter it with its history, and tell its workflow.

        The caller holds the workflow's lock (when the task has one) and the task's.
        """
        entry = [error] if error else []
        last_error = f"{error.get('type', 'Error')}: {error.get('message', '')}" if error else task.last_error
        row = await conn.fetchrow(Q.bury_task, task.id, last_error, dumps(entry), now)
        dead = Task.from_row(row)
        dlq_id: UUID = await conn.fetchval(
            Q.insert_dead_letter,
            dead.id,
            dead.workflow_id,
            dead.activity_id,
            dead.activity_type,
            dumps(dead.input),
            dead.attempt,
            last_error,
            dumps(dead.error_history),
            reason,
            now,
        )
        if wf is not None and not wf.is_terminal:
            failure = {"message": error.get("message", ""), "type": error.get("type", "Error")}
            # one outcome per step: a requeued run of a step whose outcome the history has is
            # dead-lettered again, but the history keeps the first outcome
            recorded = dead.kind == "activity" and bool(
                await conn.fetchval(Q.step_outcome_recorded, wf.id, dead.activity_id))
            if dead.kind == "activity" and not recorded:
                await self._append(
                    conn,
                    wf.id,
                    wf.last_event_seq,
                    [(
                        "ActivityFailed",
                        {
                            "activity_id": dead.activity_id,
                            "activity_type": dead.activity_type,
                            "error": failure,
                            "attempts": dead.attempt,
                            "reason": reason,
                            "dead_letter_id": str(dlq_id),
                        },
                    )],
                    now,
                    wake=True,
                )
            elif dead.kind == "workflow":
                # Decision code that keeps failing: the workflow cannot make progress.
                await self._append(
                    conn, wf.id, wf.last_event_seq, [("WorkflowFailed", {"error": failure})], now
                )
                await conn.execute(Q.set_workflow_status, wf.id, "failed", None, dumps(failure), now)
                await self._cancel_open_steps(conn, wf.id, now)
                await tell_parent(self, conn, wf, "failed", failure, now)
        return dlq_id

    @staticmethod
    def error_entry(
        task: Task, message: str, type_: str, now: datetime, worker_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "attempt": task.attempt,
            "type": type_,
            "message": message,
            "worker": worker_id or task.claimed_by,
            "at": now.isoformat(),
        }

    @staticmethod
    def after(now: datetime, seconds: float) -> datetime:
        return now + timedelta(seconds=seconds)
