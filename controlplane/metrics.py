"""Prometheus metrics of the control plane, on METRICS_PORT (default 9090, 0 = off).

Events (claims, completions, failures, reclaims) are counted where they happen. State that
lives in the database (backlog, oldest pending age, DLQ size, breaker states, workers) is
read by a loop every `interval` seconds, never on the scrape itself, so scrapes cost the
database nothing and many replicas can be scraped at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from durable.common.metrics_endpoint import MetricsEndpoint
from durable.controlplane.database_state import DatabaseState, LoopBackoff
from durable.controlplane.store import FireReport, ReaperReport, Store
from durable.controlplane.store.base import DATABASE_UNAVAILABLE, StoreObserver
from durable.controlplane.store.queries import Q
from durable.controlplane.store.served_types import ServedTypeStore, unserved_of

logger = logging.getLogger(__name__)

BREAKER_STATES = ("closed", "half_open", "open")
WORKER_STATUSES = ("active", "draining", "stopped", "lost")


class _DatabaseState(Collector):
    """Serves the last snapshot taken by ControlPlaneMetrics.refresh()."""

    def __init__(self) -> None:
        self.backlog: list[Any] = []
        self.dlq: list[Any] = []
        self.breakers: list[Any] = []
        self.workers: list[Any] = []
        self.unserved: list[Any] = []
        self.up = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily("durable_tasks_pending", "Tasks waiting for a worker, visible now.", labels=["kind", "type"])
        delayed = GaugeMetricFamily("durable_tasks_delayed", "Pending tasks not yet visible (backoff, start delay).", labels=["kind", "type"])
        running = GaugeMetricFamily("durable_tasks_running", "Tasks claimed by a worker.", labels=["kind", "type"])
        oldest = GaugeMetricFamily(
            "durable_oldest_pending_task_age_seconds", "Age of the oldest visible pending task.", labels=["kind", "type"]
        )
        for s in self.backlog:
            labels = [s.kind, s.type]
            pending.add_metric(labels, s.pending)
            delayed.add_metric(labels, s.delayed)
            running.add_metric(labels, s.claimed)
            oldest.add_metric(labels, s.oldest_pending_age)
        dlq = GaugeMetricFamily("durable_dead_letter_tasks", "Dead-letter entries not requeued.", labels=["type"])
        for row in self.dlq:
            dlq.add_metric([row["activity_type"]], row["n"])
        breakers = GaugeMetricFamily(
            "durable_circuit_breaker_state", "1 for the state each breaker is in.", labels=["key", "state"]
        )
        for row in self.breakers:
            for state in BREAKER_STATES:
                breakers.add_metric([row["key"], state], 1.0 if row["state"] == state else 0.0)
        workers = GaugeMetricFamily(
            "durable_workers", "Registered workers by status (stopped ones are not counted).", labels=["status"]
        )
        counts = {r["status"]: r["n"] for r in self.workers}
        for status in (s for s in WORKER_STATUSES if s != "stopped"):
            workers.add_metric([status], counts.get(status, 0))
        unserved = GaugeMetricFamily(
            "durable_unserved_types",
            "Tasks waiting (visible or delayed) of a type no active worker serves; only such types are listed.",
            labels=["kind", "type"],
        )
        for s in self.unserved:
            unserved.add_metric([s.kind, s.type], s.pending + s.delayed)
        up = GaugeMetricFamily("durable_database_up", "1 when the last state refresh reached the database.")
        up.add_metric([], self.up)
        yield from (pending, delayed, running, oldest, dlq, breakers, workers, unserved, up)


class _InFlight(Collector):
    def __init__(self, read: Any) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("durable_rpcs_in_flight", "Calls being served now, by budget.", labels=["budget"])
        for budget, calls in self.read().items():
            gauge.add_metric([budget], calls)
        yield gauge


class ControlPlaneMetrics(MetricsEndpoint, StoreObserver):
    """One registry per control plane (so several can live in one test process). It is the
    store's observer: the store reports claims, completions and failures as they commit."""

    def __init__(self, *, interval: float = 5.0) -> None:
        super().__init__(CollectorRegistry())
        self.interval = interval
        self.claims = Counter("durable_tasks_claimed", "Tasks handed to workers.", ["kind", "type"], registry=self.registry)
        self.claim_latency = Histogram(
            "durable_claim_duration_seconds", "Time of one claim statement (not the long-poll wait).",
            registry=self.registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.completions = Counter("durable_tasks_completed", "Activity completions accepted.", ["type"], registry=self.registry)
        self.failures = Counter(
            "durable_task_failures", "Failed attempts reported, by outcome (retrying or dead).", ["type", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter("durable_task_retries", "Failed attempts scheduled for a retry.", ["type"], registry=self.registry)
        self.reclaims = Counter("durable_reaper_reclaimed_tasks", "Tasks taken back from silent workers.", registry=self.registry)
        self.poisoned = Counter("durable_reaper_poisoned_tasks", "Tasks dead-lettered by the poison guard.", registry=self.registry)
        self.retention_deleted = Counter(
            "durable_retention_deleted", "Rows deleted by retention: workflows by final status, standalone tasks, "
            "resolved dead letters, workers.", ["kind"], registry=self.registry,
        )
        self.timeouts = Counter(
            "durable_reaper_timed_out_tasks", "Attempts failed by start-to-close or schedule-to-start timeouts.",
            registry=self.registry,
        )
        self.workflows_started = Counter("durable_workflows_started", "Workflows started.", ["type"], registry=self.registry)
        self.decisions = Counter(
            "durable_workflow_decisions", "Workflow decisions, applied or dropped on a moved history.", ["type", "result"],
            registry=self.registry,
        )
        self.journals = Counter(
            "durable_workflow_journals", "Journals of decisions (ctx.step): applied, unseen (applied after events the decision had "
            "not seen: it ends there, its next step deferred) or dropped.", ["type", "result"],
            registry=self.registry,
        )
        self.decision_failures = Counter(
            "durable_workflow_decision_failures",
            "Workflow decisions that failed (workflow code raised, or a non-determinism): the "
            "workflow stays running, blocked, and the decision is retried.", ["type", "error_type"],
            registry=self.registry,
        )
        self.sticky_fallbacks = Counter(
            "durable_sticky_fallbacks",
            "Decisions routed to the worker that keeps their workflow's instance that went to any "
            "worker instead (not claimed within DURABLE_STICKY_FALLBACK_SECONDS).",
            registry=self.registry,
        )
        self.decision_tasks_sent = Counter(
            "durable_workflow_tasks_sent",
            "Workflow tasks handed to workers, by what history they carried: whole, or new_events "
            "(sticky: the worker keeps the instance).", ["history"], registry=self.registry,
        )
        self.decision_bytes_sent = Counter(
            "durable_workflow_task_bytes_sent",
            "Bytes of the workflow tasks handed to workers, by what history they carried.", ["history"],
            registry=self.registry,
        )
        self.history_warnings = Counter(
            "durable_workflow_history_warnings",
            "Workflows whose history passed 80% of DURABLE_HISTORY_MAX_EVENTS or DURABLE_HISTORY_MAX_BYTES "
            "(a HistorySizeWarning event; once per run).", ["type"], registry=self.registry,
        )
        self.history_limit_failures = Counter(
            "durable_workflow_history_limit_failures",
            "Workflows failed with HistoryLimitExceeded (their history reached a limit).", ["type"],
            registry=self.registry,
        )
        self.schedule_fires = Counter(
            "durable_schedule_fires",
            "Schedule ticks handled, by outcome: started, skipped, buffered, cancelled (a previous run "
            "asked to cancel or terminated), missed (later than the catch-up window), existing (the "
            "run had started), failed (the firing failed; retried later).", ["outcome"],
            registry=self.registry,
        )
        self.rpcs_refused = Counter(
            "durable_rpcs_refused",
            "Calls refused at the call limits, by budget: short (DURABLE_MAX_CONCURRENT_RPCS) or "
            "waiting (DURABLE_MAX_WAITING_RPCS).", ["budget"], registry=self.registry,
        )
        self.state = _DatabaseState()
        self.registry.register(self.state)

    def rpc_refused(self, budget: str) -> None:
        self.rpcs_refused.labels(budget).inc()

    def watch_calls(self, in_flight: Any) -> None:
        """Serve durable_rpcs_in_flight{budget} from `in_flight()`: {budget: calls} at scrape."""
        self.registry.register(_InFlight(in_flight))

    # -- StoreObserver ---------------------------------------------------------------------

    def claimed(self, kind: str, activity_type: str, count: int = 1) -> None:
        self.claims.labels(kind, activity_type).inc(count)

    def claim_timed(self, seconds: float) -> None:
        self.claim_latency.observe(seconds)

    def completed(self, activity_type: str, count: int = 1) -> None:
        self.completions.labels(activity_type).inc(count)

    def failed(self, activity_type: str, outcome: str) -> None:
        self.failures.labels(activity_type, outcome).inc()
        if outcome == "retrying":
            self.retries.labels(activity_type).inc()

    def workflow_started(self, workflow_type: str) -> None:
        self.workflows_started.labels(workflow_type).inc()

    def decided(self, workflow_type: str, applied: bool) -> None:
        self.decisions.labels(workflow_type, "applied" if applied else "dropped").inc()

    def journalled(self, workflow_type: str, applied: bool, unseen: bool = False) -> None:
        self.journals.labels(workflow_type, ("unseen" if unseen else "applied") if applied else "dropped").inc()

    def decision_failed(self, workflow_type: str, error_type: str) -> None:
        self.decision_failures.labels(workflow_type, error_type).inc()

    def decision_sent(self, new_events_only: bool, size: int) -> None:
        history = "new_events" if new_events_only else "whole"
        self.decision_tasks_sent.labels(history).inc()
        self.decision_bytes_sent.labels(history).inc(size)
    def history_warned(self, workflow_type: str) -> None:
        self.history_warnings.labels(workflow_type).inc()

    def history_limit_exceeded(self, workflow_type: str) -> None:
        self.history_limit_failures.labels(workflow_type).inc()

    def record_reaper(self, report: ReaperReport) -> None:
        self.reclaims.inc(report.reclaimed)
        self.poisoned.inc(report.poisoned)
        self.timeouts.inc(report.timed_out + report.unstarted)

    def record_schedules(self, report: FireReport) -> None:
        for outcome in ("started", "skipped", "buffered", "cancelled", "missed", "existing", "failed"):
            if getattr(report, outcome):
                self.schedule_fires.labels(outcome).inc(getattr(report, outcome))

    def record_retention(self, report: Any) -> None:
        """A retention pass's report (durable.controlplane.retention.RetentionReport)."""
        for status, n in report.workflows.items():
            if n:
                self.retention_deleted.labels(f"workflow_{status}").inc(n)
        for kind in ("tasks", "dead_letters", "workers", "idempotency_keys"):
            n = getattr(report, kind)
            if n:
                self.retention_deleted.labels(kind).inc(n)

    async def refresh(
        self, store: Store, database: DatabaseState | None = None, types: ServedTypeStore | None = None
    ) -> bool:
        """Take the database snapshot the scrape serves; False when the database failed."""
        try:
            self.state.backlog = await store.queue_stats()
            if types is not None:
                self.state.unserved = unserved_of(self.state.backlog, await types.served_types())
            self.state.dlq = await store.pool.fetch(Q.dead_letter_counts)
            self.state.breakers = await store.pool.fetch(Q.breaker_states)
            self.state.workers = await store.pool.fetch(Q.worker_counts)
            self.state.up = 1.0
        except Exception as exc:  # keep the last numbers; the outage is logged once, elsewhere
            self.state.up = 0.0
            if database is not None and isinstance(exc, DATABASE_UNAVAILABLE):
                database.lost("metrics", exc)
            logger.debug("metrics refresh failed: %s", exc)
            return False
        if database is not None:
            database.reachable()
        return True

    async def run(
        self, store: Store, stop: asyncio.Event, database: DatabaseState | None = None,
        types: ServedTypeStore | None = None,
    ) -> None:
        """A refresh every `interval` seconds; after a failed one the delay doubles (to 30 s)
        unless the database comes back first."""
        database = database or DatabaseState()
        backoff = LoopBackoff(self.interval)
        while not stop.is_set():
            ok = await self.refresh(store, database, types)
            await database.pause(stop, backoff.next(not ok))
