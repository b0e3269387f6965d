"""The durable store: every read and write of the engine's tables, on asyncpg.

Only the control plane imports this package. SQL lives in queries.sql.
"""

from __future__ import annotations

from durable.controlplane.store.base import Clock, utc_now
from durable.controlplane.store.browse import BrowseStore
from durable.controlplane.store.dead_letters import DeadLetterStore
from durable.controlplane.store.decisions import DecisionStore
from durable.controlplane.store.records import (
    CircuitBreaker,
    ClaimedTask,
    ClaimedWorkflowTask,
    DeadLetter,
    Event,
    FailOutcome,
    ReaperReport,
    Signal,
    Task,
    TypeStats,
    TypeThroughput,
    Worker,
    WorkflowInstance,
)
from durable.controlplane.store.schedules import FireReport, Schedule, ScheduleStore
from durable.controlplane.store.stats import StatsStore
from durable.controlplane.store.tasks import TaskStore
from durable.controlplane.store.workers import WorkerStore
from durable.controlplane.store.workflows import WorkflowStore


class Store(
    ScheduleStore, WorkflowStore, TaskStore, DecisionStore, DeadLetterStore, WorkerStore, StatsStore, BrowseStore
):
    """Every operation of the engine on PostgreSQL. Construct with an asyncpg pool."""


__all__ = [
    "CircuitBreaker",
    "ClaimedTask",
    "ClaimedWorkflowTask",
    "Clock",
    "DeadLetter",
    "Event",
    "FailOutcome",
    "FireReport",
    "ReaperReport",
    "Schedule",
    "Signal",
    "Store",
    "Task",
    "TypeStats",
    "TypeThroughput",
    "Worker",
    "WorkflowInstance",
    "utc_now",
]
