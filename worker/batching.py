"""Coalesces activity completions into CompleteTasks calls, within a byte budget.

Many small tasks finish at nearly the same moment; one round trip for all of them costs the
control plane and PostgreSQL one statement instead of one transaction each. A completion waits
at most `linger` seconds (default 2 ms) for company, and a batch holds at most `max_batch`
completions and at most `budget` bytes: below the control plane's receive limit
(`max_request_bytes`, told at registration), so large results never make a batch that gRPC
refuses. Should gRPC refuse one anyway (the limit changed under us), the batch is split in
halves and sent again; only a completion too large to travel alone fails, with a message
naming the field and the limit. Each caller gets its own outcome, raised the way the single
CompleteTask call would raise it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from durable.common.errors import MessageTooLarge, PayloadTooLarge
from durable.common.status import error_for
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.link import ControlPlaneLink, ControlPlaneUnreachable

log = logging.getLogger(__name__)

# What an older control plane (that does not say its limit) receives: 2 x 1 MiB + 1 MiB.
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024
# Room kept in every request for its other fields and gRPC's framing.
ENVELOPE_BYTES = 64 * 1024
# The tag and length prefix of one entry of a repeated field, at most.
_ENTRY_OVERHEAD = 6


def request_budget(max_request_bytes: int) -> int:
    """Bytes of batched entries a request may carry under the control plane's receive limit."""
    return max(max_request_bytes - ENVELOPE_BYTES, max_request_bytes // 2)


def entry_size(message: pb.TaskCompletion | pb.TaskRef) -> int:
    return message.ByteSize() + _ENTRY_OVERHEAD


def chunks(items: list[pb.TaskRef], budget: int) -> list[list[pb.TaskRef]]:
    """Consecutive runs of `items` of at most `budget` bytes each (an item larger than the
    budget travels alone)."""
    out: list[list[pb.TaskRef]] = []
    current: list[pb.TaskRef] = []
    used = 0
    for item in items:
        size = entry_size(item)
        if current and used + size > budget:
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        out.append(current)
    return out


@dataclass
class _Pending:
    completion: pb.TaskCompletion
    size: int
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CompletionBatcher:
    def __init__(
        self,
        link: ControlPlaneLink,
        worker_id: str,
        *,
        linger: float = 0.002,
        max_batch: int = 256,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.link = link
        self.worker_id = worker_id
        self.linger = linger
        self.max_batch = max_batch
        # The control plane's receive limit; the worker sets it from RegisterWorker's answer.
        self.max_request_bytes = max_request_bytes
        self._queue: list[_Pending] = []
        self._queued_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.completions = 0
        self.splits = 0

    @property
    def budget(self) -> int:
        return request_budget(self.max_request_bytes)

    async def complete(self, request: pb.CompleteTaskRequest) -> pb.CompleteTaskResponse:
        """Complete one task as part of a batch; raises like WorkerService.CompleteTask."""
        completion = pb.TaskCompletion(
            task_id=request.task_id, attempt=request.attempt, result_json=request.result_json
        )
        size = entry_size(completion)
        if size + 1024 > self.max_request_bytes:
            raise self._too_large(completion)
        if self._queue and self._queued_bytes + size > self.budget:
            self._flush_now()
        pending = _Pending(completion, size)
        self._queue.append(pending)
        self._queued_bytes += size
        if len(self._queue) >= self.max_batch or self._queued_bytes >= self.budget:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="durable-worker-completion-batch")
        await pending.done
        return pb.CompleteTaskResponse()

    def _too_large(self, completion: pb.TaskCompletion) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"result_json is {len(completion.result_json.encode())} bytes: with its task it is over "
            f"the control plane's message limit of {self.max_request_bytes} bytes "
            "(DURABLE_MAX_MESSAGE_BYTES); store large data elsewhere and pass a reference"
        )

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.linger)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        if batch:
            asyncio.create_task(self._send(batch), name="durable-worker-completion-send")

    async def _send(self, batch: list[_Pending]) -> None:
        request = pb.CompleteTasksRequest(worker_id=self.worker_id, completions=[p.completion for p in batch])
        try:
            response = await self.link.call("CompleteTasks", request)
        except MessageTooLarge as exc:
            # gRPC refused the message, not the control plane a payload: smaller batches.
            if len(batch) == 1:
                self._settle(batch[0], self._too_large(batch[0].completion))
                return
            self.splits += 1
            log.info("CompleteTasks of %d completions refused by gRPC (%s); splitting", len(batch), exc)
            half = len(batch) // 2
            await asyncio.gather(self._send(batch[:half]), self._send(batch[half:]))
            return
        except BaseException as exc:  # every waiter sees the call's failure and retries itself
            for p in batch:
                self._settle(p, exc if isinstance(exc, Exception) else ControlPlaneUnreachable(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.completions += len(batch)
        for p, outcome in zip(batch, response.outcomes, strict=False):
            if outcome.accepted:
                self._settle(p, None)
            else:
                # per-item outcomes are the control plane's own rules (from_durable)
                code = grpc.StatusCode[outcome.code] if outcome.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
                self._settle(p, error_for(code, f"CompleteTasks: {outcome.message}"))
        for p in batch[len(response.outcomes):]:
            self._settle(p, ControlPlaneUnreachable("CompleteTasks answered fewer outcomes than asked"))

    @staticmethod
    def _settle(p: _Pending, error: BaseException | None) -> None:
        if p.done.done():
            return
        if error is None:
            p.done.set_result(None)
        else:
            p.done.set_exception(error)
