"""The worker process: registers with the control plane, claims and runs tasks, heartbeats,
reconnects, and drains on SIGTERM/SIGINT.

    worker = Worker.from_env(app)
    await worker.run()          # until SIGTERM/SIGINT or `await worker.stop()`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

from durable.common import DurableError, InvalidArgument
from durable.common.ports import ensure_free
from durable.common.security import load_client_security
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.app import App
from durable.worker.batching import DEFAULT_MAX_REQUEST_BYTES
from durable.worker.execution import RunningTask, TaskRunner
from durable.worker.health import HealthServer
from durable.worker.link import Backoff, ControlPlaneLink
from durable.worker.metrics import WorkerMetrics
from durable.worker.loops import ClaimLoop, Registrar, TaskHeartbeatLoop, WorkerHeartbeatLoop
from durable.worker.settings import WorkerSettings
from durable.worker.supervisor import CriticalTaskFailed, Supervisor

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("durable-engine")
    except metadata.PackageNotFoundError:
        return "0"


def _served(registered: Iterable[str], wanted: tuple[str, ...] | None, variable: str) -> tuple[str, ...]:
    names = tuple(sorted(registered))
    if wanted is None:
        return names
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise InvalidArgument(
            f"{variable}={','.join(wanted)!r} is invalid: {', '.join(unknown)} not registered "
            f"in the app (registered: {', '.join(names) or 'none'})"
        )
    return tuple(dict.fromkeys(wanted))


class Worker:
    """Runs the activities and workflows of an App against the control plane."""

    def __init__(self, app: App, settings: WorkerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or WorkerSettings.from_env()
        self.security = load_client_security()  # DURABLE_AUTH_TOKEN(_FILE), DURABLE_TLS_*
        self.metrics = WorkerMetrics(running=lambda: len(self.running))
        self.worker_id = self.settings.worker_id
        self.activity_types = _served(
            app.activities, self.settings.activity_type_filter, "DURABLE_ACTIVITY_TYPES"
        )
        self.workflow_types = _served(
            app.workflows, self.settings.workflow_type_filter, "DURABLE_WORKFLOW_TYPES"
        )
        self.hostname = socket.gethostname()
        self.version = _version()
        self.running: dict[str, RunningTask] = {}
        self.draining = False
        self.health_port: int | None = None
        # Created in run(), on the worker's event loop.
        self.link: ControlPlaneLink
        self.health: HealthServer
        self.supervisor: Supervisor
        self._runner: TaskRunner
        self._executor: ThreadPoolExecutor | None = None
        self.stopped_heartbeats = asyncio.Event()
        self._capacity_changed = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._started = asyncio.Event()
        self._finished = asyncio.Event()
        self._ran = False
        self._shut_down = False
        self._fatal: BaseException | None = None
        self.released_tasks = 0
        self.reserved = 0  # slots held for eager activities (see reserve)
        # The control plane's receive limit (RegisterWorker says it): batches stay below it.
        self.max_request_bytes = DEFAULT_MAX_REQUEST_BYTES

    @classmethod
    def from_env(cls, app: App, **overrides: Any) -> Worker:
        """A worker configured from the environment (see WorkerSettings); `overrides` win.
        Raises InvalidArgument naming the bad variable."""
        return cls(app, WorkerSettings.from_env(**overrides))

    # -- state shared with the loops ----------------------------------------------------------

    @property
    def load(self) -> int:
        """Tasks running user code, and the slots decisions hold for activities they asked for
        eagerly. A task whose outcome is being reported no longer counts: its slot is free for
        the next claim while the report's round trip completes."""
        return sum(1 for r in self.running.values() if r.phase == "running") + self.reserved

    def reserve(self, wanted: int) -> int:
        """Hold up to `wanted` free slots for a decision's eager activities (none while
        draining); returns how many. A held slot idles for the decision's round trip."""
        if self.draining or not self.settings.eager_activities:
            return 0
        granted = max(0, min(wanted, self.settings.max_concurrent_tasks - self.load))
        self.reserved += granted
        return granted

    def release(self, count: int) -> None:
        self.reserved -= count
        self._capacity_changed.set()

    def circuit_breakers(self) -> list[pb.ActivityCircuitBreaker]:
        """The breakers the served activities ask for (sent with each registration)."""
        out = []
        for name in self.activity_types:
            numbers = self.app.activities[name].circuit_breaker
            if numbers is None:
                continue
            out.append(pb.ActivityCircuitBreaker(
                activity_type=name,
                failure_threshold=int(numbers.get("failure_threshold", 0)),
                window_seconds=numbers.get("window", 0.0),
                reset_timeout_seconds=numbers.get("reset_timeout", 0.0),
                half_open_max_trials=int(numbers.get("half_open_max_trials", 0)),
                success_threshold=int(numbers.get("success_threshold", 0)),
            ))
        return out

    def apply_server_limits(self, max_request_bytes: int, journals: bool = False) -> None:
        """Budget completion and heartbeat batches below the control plane's receive limit
        (0: an older control plane that does not say; the default stays); `journals`: it
        writes journals (else ctx.step runs as a local activity)."""
        if max_request_bytes > 0 and max_request_bytes != self.max_request_bytes:
            log.debug("control plane receives messages up to %d bytes", max_request_bytes)
            self.max_request_bytes = max_request_bytes
        if hasattr(self, "_runner"):
            self._runner.completions.max_request_bytes = self.max_request_bytes
            self._runner.decisions.max_request_bytes = self.max_request_bytes
            self._runner.journals = journals

    def new_backoff(self) -> Backoff:
        return Backoff(self.settings.reconnect_initial_backoff, self.settings.reconnect_max_backoff)

    async def wait_capacity_change(self) -> None:
        self._capacity_changed.clear()
        await self._capacity_changed.wait()

    def start_task(self, task: pb.Task) -> RunningTask:
        """Run a claimed task in its own supervised asyncio task."""
        running = RunningTask(task=task)
        self.running[task.id] = running
        name = f"{task.kind}:{task.activity_type}:{task.id}#{task.attempt}"
        running.handle = self.supervisor.spawn(name, self._execute(running), critical=False)
        return running

    async def _execute(self, running: RunningTask) -> None:
        try:
            await self._runner.execute(running)
        finally:
            # A newer attempt of the same task may have been claimed meanwhile: keep it.
            if self.running.get(running.task.id) is running:
                del self.running[running.task.id]
            self._capacity_changed.set()

    def cancel_task(self, running: RunningTask, reason: str) -> None:
        running.cancel(reason, hard_after=self.settings.cancel_grace_period)

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until stopped (SIGTERM/SIGINT when `handle_signals`, or `stop()`), then drain.

        Raises CriticalTaskFailed when one of the worker's loops died.
        """
        if self._ran:
            raise RuntimeError("a Worker runs once")
        self._ran = True
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        try:
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.max_concurrent_tasks,
                thread_name_prefix=f"durable-activity-{self.worker_id}",
            )
            self.supervisor = Supervisor(self._on_fatal)
            self.health = HealthServer(self.settings.health_host, self.settings.health_port)
            self.link = ControlPlaneLink(
                self.settings.grpc_address,
                rpc_timeout=self.settings.rpc_timeout,
                on_change=self._on_link_change,
                security=self.security,
            )
            self._runner = TaskRunner(
                self.app,
                self.link,
                worker_id=self.worker_id,
                executor=self._executor,
                backoff=self.new_backoff,
                metrics=self.metrics,
                on_slot_freed=self._capacity_changed.set,
                cache_size=self.settings.workflow_cache_size,
                following_decisions=self.settings.following_decisions,
                slots=self,
                served_activity_types=self.activity_types,
            )
            if self.settings.metrics_port:  # both ports checked before either server starts
                ensure_free(self.settings.health_host, self.settings.metrics_port, "WORKER_METRICS_PORT")
            self.health_port = await self.health.start()
            if self.settings.metrics_port:
                self.metrics.serve(self.settings.metrics_port, self.settings.health_host,
                                   setting="WORKER_METRICS_PORT")
            if handle_signals:
                installed = self._install_signal_handlers(loop)
            log.info(
                "worker %s starting: control plane %s, capacity %d, activities [%s], "
                "workflows [%s]",
                self.worker_id, self.settings.grpc_address, self.settings.max_concurrent_tasks,
                ", ".join(self.activity_types), ", ".join(self.workflow_types),
            )
            spawn = self.supervisor.spawn
            spawn("worker:registrar", Registrar(self).run())
            spawn("worker:claim-loop", ClaimLoop(self).run())
            spawn("worker:task-heartbeats", TaskHeartbeatLoop(self).run())
            spawn("worker:worker-heartbeats", WorkerHeartbeatLoop(self).run())
            self._started.set()
            await self._stop_requested.wait()
            await self._shutdown()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if not self._shut_down:
                await self._abandon()
            self._finished.set()
        if self._fatal is not None:
            raise self._fatal if isinstance(self._fatal, CriticalTaskFailed) else CriticalTaskFailed(
                str(self._fatal)
            )

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
        return installed

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s: draining", sig.name)
        self.request_stop()

    def _on_fatal(self, failure: BaseException) -> None:
        if self._fatal is None:
            self._fatal = failure
        self.request_stop()

    def request_stop(self) -> None:
        """Ask the worker to drain and stop (safe from signal handlers; returns at once)."""
        self._stop_requested.set()

    async def stop(self) -> None:
        """Drain and stop; idempotent, and waits until the worker has stopped."""
        self.request_stop()
        if not self._ran:
            return
        await self._finished.wait()

    async def wait_started(self) -> None:
        """Wait until run() has started its loops (the health port is bound by then)."""
        await self._started.wait()

    async def _on_link_change(self, connected: bool) -> None:
        await self._update_health()

    async def _update_health(self) -> None:
        await self.health.set_serving(self.link.connected and not self.draining)

    async def _shutdown(self) -> None:
        """The graceful stop, in order: NOT_SERVING, DrainWorker, stop claiming, let running
        tasks finish within the grace period, hand back the rest (ReleaseTasks), then
        DeregisterWorker and stop the health server."""
        grace = 0.0 if self._fatal is not None else self.settings.drain_grace_period
        self.draining = True
        self.supervisor.closing = True
        await self._update_health()
        log.info("worker %s draining (%d tasks running, grace %.1f s)",
                 self.worker_id, self.load, grace)
        await self._best_effort("DrainWorker", pb.DrainWorkerRequest(worker_id=self.worker_id))
        await self._cancel_loops("worker:claim-loop")
        await self._wait_running(grace)
        unfinished = list(self.running.values())
        if unfinished:
            for running in unfinished:
                running.cancel("handed back: the worker is stopping", hard_after=0)
            refs = [running.ref for running in unfinished]
            response = await self._best_effort(
                "ReleaseTasks", pb.ReleaseTasksRequest(worker_id=self.worker_id, tasks=refs)
            )
            released = response.released if response is not None else 0
            self.released_tasks += released
            log.info("handed back %d unfinished task(s) (%d released)", len(refs), released)
            await self._wait_running(self.settings.cancel_grace_period)
        self.stopped_heartbeats.set()
        await self._cancel_loops(
            "worker:task-heartbeats", "worker:worker-heartbeats", "worker:registrar"
        )
        response = await self._best_effort(
            "DeregisterWorker", pb.DeregisterWorkerRequest(worker_id=self.worker_id)
        )
        if response is not None:
            log.info("deregistered (%d task(s) released)", response.released_tasks)
        await self.supervisor.cancel_all()
        await self.health.stop()
        self.metrics.close()
        await self.link.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._shut_down = True
        log.info("worker %s stopped", self.worker_id)

    async def _abandon(self) -> None:
        """Cleanup when run() ends without a drain (startup failed, or run() was cancelled):
        stop everything local; the control plane's reaper takes the tasks back."""
        self._shut_down = True
        with contextlib.suppress(Exception):
            if hasattr(self, "supervisor"):
                await self.supervisor.cancel_all()
            if hasattr(self, "health"):
                await self.health.stop(grace=0)
            if hasattr(self, "link"):
                await self.link.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _cancel_loops(self, *names: str) -> None:
        tasks = [t for t in self.supervisor.tasks if t.get_name() in names]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_running(self, timeout: float) -> None:
        handles = [running.handle for running in self.running.values() if running.handle is not None]
        if handles:
            await asyncio.wait(handles, timeout=timeout)

    async def _best_effort(self, method: str, request: Any) -> Any:
        """A shutdown call: one attempt with a short deadline (the pod's termination grace
        period is ticking); errors are logged, and the reaper covers what it could not do."""
        try:
            return await self.link.call(method, request, timeout=min(self.settings.rpc_timeout, 5.0))
        except DurableError as exc:
            log.warning("%s failed during shutdown: %s", method, exc)
            return None
