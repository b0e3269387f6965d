"""What the store hands back: plain, immutable records."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import asyncpg


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]


class _FromRow:
    _json_fields: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Any:
        names = _field_names(cls)  # type: ignore[arg-type]
        values = {k: v for k, v in row.items() if k in names}
        for name in cls._json_fields:
            if name in values:
                values[name] = _json(values[name])
        return cls(**values)


@dataclass(frozen=True)
class WorkflowInstance(_FromRow):
    id: str
    workflow_type: str
    status: str
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    last_event_seq: int
    decided_through_seq: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    trace_id: str | None = None
    span_id: str | None = None
    blocked: dict[str, Any] | None = None
    cancel_requested_at: datetime | None = None
    pinned: bool = False
    sticky_worker_id: str | None = None
    decision_seen_seq: int | None = None
    parent_workflow_id: str | None = None
    parent_close_policy: str | None = None
    run_number: int = 1
    history_bytes: int = 0
    history_warned: bool = False
    _json_fields = ("input", "result", "error", "blocked")

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    @property
    def replay_through_seq(self) -> int:
        """The last event whose decision was applied, as replay counts it (commands issued
        while handling events up to here are all in the history)."""
        return self.decided_through_seq if self.decision_seen_seq is None else self.decision_seen_seq


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a workflow's history. Its data stays the JSON text PostgreSQL gave: a
    decision task carries the whole history to a worker, which decodes it there."""

    sequence_num: int
    event_type: str
    event_data_json: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Event:
        return cls(row["sequence_num"], row["event_type"], row["event_data"], row["created_at"])

    @property
    def event_data(self) -> dict[str, Any]:
        return json.loads(self.event_data_json)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Task(_FromRow):
    id: Any  # uuid.UUID
    kind: str
    workflow_id: str | None
    activity_id: str | None
    activity_type: str
    input: dict[str, Any]
    status: str
    priority: int
    visible_at: datetime
    attempt: int
    max_attempts: int
    release_count: int
    reclaim_count: int
    retry_policy: dict[str, Any]
    claimed_by: str | None
    claimed_at: datetime | None
    heartbeat_at: datetime | None
    last_error: str | None
    error_history: list[dict[str, Any]]
    created_at: datetime
    result: dict[str, Any] | None = None
    heartbeat_details: dict[str, Any] | None = None
    cancel_requested: bool = False
    schedule_to_start_timeout: float | None = None
    start_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    completed_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None
    _json_fields = ("input", "result", "retry_policy", "error_history", "heartbeat_details")

    @property
    def failed_attempts(self) -> int:
        """Attempts that ended in failure or a crash (handed-back claims do not count)."""
        return self.attempt - self.release_count


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """What a claim hands a worker: the columns of one task that travel, JSON left as text.

    A claim turns each row into one of these and then into a wire message, thousands per
    second: it decodes no JSON (`input_json` goes out as it came in) and copies 16 columns,
    not the 29 of a Task. `input` and `heartbeat_details` decode on demand.
    """

    id: Any  # uuid.UUID
    kind: str
    workflow_id: str | None
    activity_id: str | None
    activity_type: str
    input_json: str
    attempt: int
    max_attempts: int
    priority: int
    visible_at: datetime
    claimed_by: str
    heartbeat_timeout: float | None
    start_to_close_timeout: float | None
    heartbeat_details_json: str | None
    trace_id: str | None
    span_id: str | None
    sticky_to: str | None = None  # a workflow task routed to the worker that holds its instance

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ClaimedTask:
        """From a claim statement's row (its columns, in this order: see queries.sql)."""
        return cls(*row.values())

    @property
    def input(self) -> dict[str, Any]:
        return json.loads(self.input_json)  # type: ignore[no-any-return]

    @property
    def heartbeat_details(self) -> dict[str, Any] | None:
        return None if self.heartbeat_details_json is None else json.loads(self.heartbeat_details_json)


@dataclass(frozen=True)
class ClaimedWorkflowTask:
    """A workflow task with what the worker needs to replay it."""

    task: ClaimedTask
    workflow: WorkflowInstance
    history: list[Event]
    # The history holds only the events after this sequence number (0: all of it): the task
    # went to the worker that keeps the workflow's instance from its last decision.
    history_after_seq: int = 0


@dataclass(frozen=True)
class DeadLetter(_FromRow):
    id: Any
    original_task_id: Any
    workflow_id: str | None
    activity_id: str | None
    activity_type: str
    input: dict[str, Any]
    attempts: int
    last_error: str | None
    error_history: list[dict[str, Any]]
    reason: str
    dead_at: datetime
    requeued_at: datetime | None
    requeue_count: int
    requeued_task_id: Any
    _json_fields = ("input", "error_history")


@dataclass(frozen=True)
class Worker(_FromRow):
    id: str
    worker_group: str
    activity_types: list[str]
    workflow_types: list[str]
    max_concurrency: int
    current_load: int
    status: str
    last_heartbeat_at: datetime
    started_at: datetime
    stopped_at: datetime | None
    hostname: str | None
    version: str | None
    drain_requested: bool = False


@dataclass(frozen=True)
class Signal(_FromRow):
    id: int
    workflow_id: str
    signal_type: str
    payload: dict[str, Any]
    sequence_num: int | None
    created_at: datetime
    delivered_at: datetime | None
    _json_fields = ("payload",)


@dataclass(frozen=True)
class CircuitBreaker(_FromRow):
    key: str
    state: str
    failure_count: int
    success_count: int
    half_open_in_flight: int
    window_started_at: datetime | None
    opened_at: datetime | None
    failure_threshold: int
    window_seconds: float
    reset_timeout_seconds: float
    half_open_max_trials: int
    success_threshold: int
    updated_at: datetime


@dataclass(frozen=True)
class TypeStats:
    kind: str
    type: str
    pending: int
    delayed: int
    claimed: int
    oldest_pending_age: float


@dataclass(frozen=True)
class TypeThroughput:
    """Tasks of one type completed per time bucket, oldest bucket first."""

    kind: str
    type: str
    completed: list[int]


@dataclass(frozen=True)
class FailOutcome:
    """What became of a failed attempt."""

    outcome: str  # "retrying" or "dead"
    retry_at: datetime | None = None
    dead_letter_id: Any = None


@dataclass
class ReaperReport:
    """What one reaper pass did."""

    reclaimed: int = 0
    poisoned: int = 0
    timed_out: int = 0
    unstarted: int = 0
    lost_workers: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.reclaimed or self.poisoned or self.timed_out or self.unstarted or self.lost_workers)
