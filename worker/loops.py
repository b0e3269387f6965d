"""The worker's long-running loops. Each has `run_once()` (tests call it) and `run()`.

- Registrar: (re-)registers whenever the link is down, with capped, jittered backoff.
- ClaimLoop: long-polls ClaimTasks for free capacity, pausing at the high watermark.
- TaskHeartbeatLoop: one batched HeartbeatTasks for every held task; cancels lost ones.
- WorkerHeartbeatLoop: WorkerHeartbeat with the current load.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from durable.common import DurableError, InvalidArgument, NotFound, WrongState
from durable.common.status import DATABASE_UNAVAILABLE_DETAILS
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.batching import ENVELOPE_BYTES, chunks, entry_size, request_budget
from durable.worker.link import ControlPlaneUnreachable

if TYPE_CHECKING:
    from durable.worker.runtime import Worker

log = logging.getLogger(__name__)

# The control plane hands out at most this many tasks per ClaimTasks call.
MAX_CLAIM_BATCH = 1000


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; True when it is set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


class Registrar:
    """Registers the worker, and registers it again after the link went down."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.backoff = worker.new_backoff()
        self.last_failure: str | None = None  # why the last attempt failed
        self._reported: str | None = None  # the failure last logged at WARNING

    async def run_once(self) -> bool:
        """One RegisterWorker attempt; True when the worker is registered. A failed attempt
        leaves its reason in `last_failure`."""
        w = self.worker
        request = pb.RegisterWorkerRequest(
            worker_id=w.worker_id,
            worker_group=w.settings.worker_group,
            activity_types=list(w.activity_types),
            workflow_types=list(w.workflow_types),
            max_concurrency=w.settings.max_concurrent_tasks,
            hostname=w.hostname,
            version=w.version,
            circuit_breakers=w.circuit_breakers(),
        )
        try:
            response = await w.link.call("RegisterWorker", request)
            w.apply_server_limits(response.max_request_bytes, response.journals)
            if w.draining:
                await w.link.call("DrainWorker", pb.DrainWorkerRequest(worker_id=w.worker_id))
        except ControlPlaneUnreachable as exc:
            self.last_failure = str(exc).removeprefix("RegisterWorker: ")
            return False
        except InvalidArgument:
            raise  # a configuration error (a type name, the capacity): retrying cannot fix it
        except DurableError as exc:
            self.last_failure = f"RegisterWorker refused: {exc}"
            return False
        self.backoff.reset()
        self.last_failure = self._reported = None
        await w.link.mark_up()
        return True

    def report(self, delay: float) -> None:
        """Log a failed attempt: at WARNING when its reason changed, else at DEBUG."""
        address = self.worker.settings.grpc_address
        level = logging.WARNING if self.last_failure != self._reported else logging.DEBUG
        if DATABASE_UNAVAILABLE_DETAILS in (self.last_failure or ""):
            # it answered: the other side of it is down, and the message should say so
            log.log(level, "the control plane at %s answers but cannot reach its database; "
                    "retrying in %.1f s", address, delay)
        else:
            log.log(level, "cannot reach the control plane at %s: %s; retrying in %.1f s",
                    address, self.last_failure, delay)
        self._reported = self.last_failure

    async def run(self) -> None:
        while True:
            await self.worker.link.wait_down()
            if not await self.run_once():
                delay = self.backoff.next_delay()
                self.report(delay)
                await asyncio.sleep(delay)


class ClaimLoop:
    """Claims tasks while capacity allows: up to (capacity - running) per long-poll.

    Claiming stops when the running tasks reach the high watermark (90% of capacity) and
    resumes when they fall to the low watermark (70%).
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.paused = False
        self.backoff = worker.new_backoff()

    async def run_once(self) -> int:
        """Claim one batch (waiting for capacity or the link first); returns tasks started."""
        w = self.worker
        settings = w.settings
        if not w.link.connected:
            await w.link.wait_up()
            return 0
        running = w.load
        if self.paused:
            if running > settings.low_watermark:
                await w.wait_capacity_change()
                return 0
            self.paused = False
            log.debug("claiming resumed at %d running tasks", running)
        elif running >= settings.high_watermark:
            self.paused = True
            log.debug("claiming paused at %d running tasks", running)
            return 0
        request = pb.ClaimTasksRequest(
            worker_id=w.worker_id,
            activity_types=list(w.activity_types),
            workflow_types=list(w.workflow_types),
            max_tasks=min(settings.max_concurrent_tasks - running, MAX_CLAIM_BATCH),
            wait_seconds=settings.claim_wait,
            pages_history=True,  # a history too large for the answer comes in pages
        )
        try:
            response = await w.link.call(
                "ClaimTasks", request, timeout=settings.claim_wait + settings.rpc_timeout
            )
        except ControlPlaneUnreachable:
            return 0
        except WrongState as exc:
            # Not registered (anymore): the control plane forgot or gave us up.
            await w.link.mark_down(f"ClaimTasks refused: {exc}")
            return 0
        except DurableError as exc:
            log.error("ClaimTasks failed: %s", exc)
            await asyncio.sleep(self.backoff.next_delay())
            return 0
        self.backoff.reset()
        for task in response.tasks:
            w.start_task(task)
        return len(response.tasks)

    async def run(self) -> None:
        if not self.worker.activity_types and not self.worker.workflow_types:
            log.warning("this worker serves no activity or workflow type; it claims nothing")
            await asyncio.Event().wait()
        while True:
            if await self.run_once():
                # One turn of the event loop for the tasks just started before the next claim
                # counts the free slots: a short task has finished by then and its slot goes
                # into that claim (counted as running, it made the claims alternate big and
                # small, one round trip each).
                await asyncio.sleep(0)


class TaskHeartbeatLoop:
    """Heartbeats every held task in one call; cancels tasks the control plane says we lost
    (accepted=false) or that were cancelled (cancel_requested)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def run_once(self) -> int:
        """One batched heartbeat; returns how many tasks it cancelled."""
        w = self.worker
        # queries are answered in moments and have no task row to heartbeat
        held = [rt for rt in w.running.values() if rt.cancel_reason is None and rt.task.kind != "query"]
        if not held or not w.link.connected:
            return 0
        results: list[pb.TaskHeartbeatResult] = []
        # One call per byte budget's worth of tasks (progress details can be large); a task
        # whose details alone are over the limit heartbeats without them.
        for chunk in chunks([self._fitting(rt.ref) for rt in held], request_budget(w.max_request_bytes)):
            request = pb.HeartbeatTasksRequest(worker_id=w.worker_id, tasks=chunk)
            try:
                response = await w.link.call("HeartbeatTasks", request)
            except ControlPlaneUnreachable:
                break
            except DurableError as exc:
                log.warning("HeartbeatTasks failed: %s", exc)
                continue
            results.extend(response.results)
        cancelled = 0
        for result in results:
            running = w.running.get(result.task_id)
            if running is None or running.cancel_reason is not None:
                continue
            if result.cancel_requested:
                w.cancel_task(running, "cancel requested by the control plane")
                cancelled += 1
            elif not result.accepted:
                w.cancel_task(running, "the control plane no longer assigns this attempt to us")
                cancelled += 1
        return cancelled

    def _fitting(self, ref: pb.TaskRef) -> pb.TaskRef:
        limit = self.worker.max_request_bytes - ENVELOPE_BYTES
        if ref.details_json and entry_size(ref) > limit:
            log.warning(
                "task %s: heartbeat details of %d bytes are over the control plane's message limit "
                "of %d bytes; heartbeating without them", ref.task_id, len(ref.details_json.encode()),
                self.worker.max_request_bytes,
            )
            return pb.TaskRef(task_id=ref.task_id, attempt=ref.attempt)
        return ref

    async def run(self) -> None:
        while True:
            await _wait(self.worker.stopped_heartbeats, self.worker.settings.task_heartbeat_interval)
            if self.worker.stopped_heartbeats.is_set():
                return
            await self.run_once()


class WorkerHeartbeatLoop:
    """Reports this worker's load; re-registers if the control plane lost or stopped it."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.last_status: str | None = None

    async def run_once(self) -> str | None:
        w = self.worker
        if not w.link.connected:
            return None
        request = pb.WorkerHeartbeatRequest(worker_id=w.worker_id, current_load=w.load)
        try:
            response = await w.link.call("WorkerHeartbeat", request)
        except ControlPlaneUnreachable:
            return None
        except (WrongState, NotFound) as exc:
            if not w.draining:
                await w.link.mark_down(f"WorkerHeartbeat refused: {exc}")
            return None
        except DurableError as exc:
            log.warning("WorkerHeartbeat failed: %s", exc)
            return None
        status = str(response.status)
        if status != self.last_status:
            log.info("control plane reports this worker as %s", status or "(unknown)")
            self.last_status = status
        if status in ("lost", "stopped") and not w.draining:
            await w.link.mark_down(f"the control plane marked this worker {status}")
        return status

    async def run(self) -> None:
        while True:
            await _wait(
                self.worker.stopped_heartbeats, self.worker.settings.worker_heartbeat_interval
            )
            if self.worker.stopped_heartbeats.is_set():
                return
            await self.run_once()
