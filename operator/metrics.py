"""Prometheus metrics of the operator: per pool, desired and actual replicas and the backlog."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from durable.common.metrics_endpoint import MetricsEndpoint
from durable.operator.scaling import BacklogSample

__all__ = ["OperatorMetrics"]

_POOL = ("namespace", "pool")


class OperatorMetrics(MetricsEndpoint):
    """The operator's metrics in their own registry (no process-global state); `serve(port)`
    exposes them over HTTP."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry if registry is not None else CollectorRegistry())
        r = self.registry
        self.desired_replicas = Gauge(
            "durable_pool_desired_replicas", "Replicas the autoscaler wants.", _POOL, registry=r)
        self.replicas = Gauge(
            "durable_pool_replicas", "Replicas the Deployment reports.", _POOL, registry=r)
        self.ready_replicas = Gauge(
            "durable_pool_ready_replicas", "Ready replicas the Deployment reports.", _POOL,
            registry=r)
        self.backlog = Gauge(
            "durable_pool_backlog_tasks", "The pool's tasks by state (pending, running, delayed).",
            (*_POOL, "state"), registry=r)
        self.oldest_pending_age = Gauge(
            "durable_pool_oldest_pending_age_seconds", "Age of the oldest pending task.", _POOL,
            registry=r)
        self.backlog_known = Gauge(
            "durable_pool_backlog_known", "1 when the last backlog read succeeded, else 0.", _POOL,
            registry=r)
        self.backlog_errors = Counter(
            "durable_pool_backlog_errors", "Failed backlog reads.", (*_POOL, "reason"), registry=r)
        self.scale_changes = Counter(
            "durable_pool_scale_changes", "Replica changes the autoscaler made.",
            (*_POOL, "direction"), registry=r)

    def observe_backlog(self, namespace: str, pool: str, sample: BacklogSample) -> None:
        self.backlog.labels(namespace, pool, "pending").set(sample.pending)
        self.backlog.labels(namespace, pool, "running").set(sample.running)
        self.backlog.labels(namespace, pool, "delayed").set(sample.delayed)
        self.oldest_pending_age.labels(namespace, pool).set(sample.oldest_pending_age)
        self.backlog_known.labels(namespace, pool).set(1)

    def observe_backlog_error(self, namespace: str, pool: str, reason: str) -> None:
        self.backlog_known.labels(namespace, pool).set(0)
        self.backlog_errors.labels(namespace, pool, reason).inc()

    def observe_replicas(self, namespace: str, pool: str, *, desired: int, actual: int,
                         ready: int) -> None:
        self.desired_replicas.labels(namespace, pool).set(desired)
        self.replicas.labels(namespace, pool).set(actual)
        self.ready_replicas.labels(namespace, pool).set(ready)

    def observe_scale(self, namespace: str, pool: str, *, before: int, after: int) -> None:
        if after != before:
            self.scale_changes.labels(namespace, pool, "up" if after > before else "down").inc()

    def forget(self, namespace: str, pool: str) -> None:
        """Drop a deleted pool's series."""
        for gauge in (self.desired_replicas, self.replicas, self.ready_replicas,
                      self.oldest_pending_age, self.backlog_known):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, pool)
        for state in ("pending", "running", "delayed"):
            with contextlib.suppress(KeyError):
                self.backlog.remove(namespace, pool, state)
