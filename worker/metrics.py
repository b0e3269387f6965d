"""Prometheus metrics of a worker, on WORKER_METRICS_PORT (default 9091, 0 = off)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from durable.common.metrics_endpoint import MetricsEndpoint


class WorkerMetrics(MetricsEndpoint):
    """One registry per Worker (several can live in one process, as in tests)."""

    def __init__(self, running: Callable[[], int]) -> None:
        super().__init__(CollectorRegistry())
        self.running = Gauge("durable_worker_running_tasks", "Tasks running on this worker.", registry=self.registry)
        self.running.set_function(running)
        self.tasks = Counter(
            "durable_worker_tasks", "Tasks run, by outcome (completed, failed, decided, cancelled; followed: a "
            "decision made on an activity's completion, with no task of its own).",
            ["kind", "type", "outcome"], registry=self.registry,
        )
        self.durations = Histogram(
            "durable_worker_task_duration_seconds", "Time from claim to report, per task.", ["kind", "type"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.decision_failures = Counter(
            "durable_worker_decision_failures",
            "Workflow decisions that failed (a bug in workflow code, a non-determinism): the "
            "workflow stays running, blocked, and the decision is retried.",
            ["type", "error_type"], registry=self.registry,
        )
        self.cache = Counter(
            "durable_worker_workflow_cache",
            "Decisions by how the workflow's instance was found: hit (kept in memory, only the new "
            "events fed), miss (replayed from the whole history); and evictions (instances "
            "dropped to stay within DURABLE_WORKFLOW_CACHE_SIZE).",
            ["result"], registry=self.registry,
        )
        self.local = Counter(
            "durable_worker_local_activities",
            "Local activities and steps run within decisions, by kind (local, step) and outcome "
            "(completed, failed: their retries within count once; deferred: a step a decision "
            "ended before because events came, run by the next decision).",
            ["type", "kind", "outcome"], registry=self.registry,
        )
        self.local_durations = Histogram(
            "durable_worker_local_activity_duration_seconds",
            "Time a local activity or step took in its decision, its retries included.", ["type", "kind"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def local_ran(self, activity_type: str, kind: str, outcome: str, seconds: float | None) -> None:
        """A local activity or step ended (`seconds` it took), or was deferred (None)."""
        self.local.labels(activity_type, kind, outcome).inc()
        if seconds is not None:
            self.local_durations.labels(activity_type, kind).observe(seconds)

    def decision_failed(self, workflow_type: str, error_type: str) -> None:
        self.decision_failures.labels(workflow_type, error_type).inc()

    def observe(self, kind: str, activity_type: str, outcome: str, seconds: float) -> None:
        key = (kind, activity_type, outcome)
        children = self._children.get(key)
        if children is None:  # looking up labelled children costs more than the update
            children = self._children[key] = (
                self.tasks.labels(kind, activity_type, outcome), self.durations.labels(kind, activity_type))
        children[0].inc()
        children[1].observe(seconds)
