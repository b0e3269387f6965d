"""Coalesces activity completions into CompleteTasks calls.

Many small tasks finish at nearly the same moment; one round trip for all of them costs the
control plane and PostgreSQL one statement instead of one transaction each. A completion waits
at most `linger` seconds (default 2 ms) for company, and a batch holds at most `max_batch`.
Each caller gets its own outcome, raised the way the single CompleteTask call would raise it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from durable.common.status import error_for
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.link import ControlPlaneLink, ControlPlaneUnreachable

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: pb.CompleteTaskRequest
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CompletionBatcher:
    def __init__(self, link: ControlPlaneLink, worker_id: str, *, linger: float = 0.002, max_batch: int = 256) -> None:
        self.link = link
        self.worker_id = worker_id
        self.linger = linger
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.completions = 0

    async def complete(self, request: pb.CompleteTaskRequest) -> pb.CompleteTaskResponse:
        """Complete one task as part of a batch; raises like WorkerService.CompleteTask."""
        pending = _Pending(request)
        self._queue.append(pending)
        if len(self._queue) >= self.max_batch:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="durable-worker-completion-batch")
        await pending.done
        return pb.CompleteTaskResponse()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.linger)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        if batch:
            asyncio.create_task(self._send(batch), name="durable-worker-completion-send")

    async def _send(self, batch: list[_Pending]) -> None:
        request = pb.CompleteTasksRequest(
            worker_id=self.worker_id,
            completions=[
                pb.TaskCompletion(task_id=p.request.task_id, attempt=p.request.attempt, result_json=p.request.result_json)
                for p in batch
            ],
        )
        try:
            response = await self.link.call("CompleteTasks", request)
        except BaseException as exc:  # every waiter sees the call's failure and retries itself
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(exc if isinstance(exc, Exception) else ControlPlaneUnreachable(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.completions += len(batch)
        for p, outcome in zip(batch, response.outcomes, strict=False):
            if p.done.done():
                continue
            if outcome.accepted:
                p.done.set_result(None)
            else:
                code = grpc.StatusCode[outcome.code] if outcome.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
                p.done.set_exception(error_for(code, f"CompleteTasks: {outcome.message}"))
        for p in batch[len(response.outcomes):]:
            if not p.done.done():
                p.done.set_exception(ControlPlaneUnreachable("CompleteTasks answered fewer outcomes than asked"))
