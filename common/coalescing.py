"""Coalesces concurrent single calls into batched RPCs, within an item count and a byte budget.

Used by the client (enqueue_activity and start_workflow into EnqueueActivities and
StartWorkflows) and by the worker (its completions into CompleteTasks, its decisions into
CompleteWorkflowTasks). Many coroutines that each make one call would pay one round trip and
one transaction each. A call joins a queue instead, and the queue goes out as one batch:
- as soon as it holds `max_batch` items or `budget` bytes;
- otherwise, with `idle_flush` (the client's), at the next turn of the event loop when nothing
  of it is in flight (a lone call waits for no timer), or else after `linger` seconds or when
  the calls in flight have all answered, whichever comes first;
- without it (the worker's, whose reports come in waves), `linger` seconds after its first item.
Each caller gets its own outcome: its result, or its own exception (raised as the single call
would raise it). A call that fails whole fails every item in it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
R = TypeVar("R")

# The tag and length prefix of one entry of a repeated field, at most.
ENTRY_OVERHEAD = 6


def entry_size(message: Message) -> int:
    """Bytes `message` adds to a request as one entry of a repeated field."""
    return message.ByteSize() + ENTRY_OVERHEAD


def chunks(messages: list[M], budget: int, max_items: int = sys.maxsize) -> list[list[M]]:
    """Consecutive runs of at most `budget` bytes and `max_items` messages each (a message
    larger than the budget travels alone)."""
    out: list[list[M]] = []
    current: list[M] = []
    used = 0
    for message in messages:
        size = entry_size(message)
        if current and (len(current) >= max_items or used + size > budget):
            out.append(current)
            current, used = [], 0
        current.append(message)
        used += size
    if current:
        out.append(current)
    return out


class Coalescer(Generic[M, R]):
    """One queue of single calls of one kind; `send` makes the batched call for a list of
    requests and answers, in order, each one's result or exception (it never raises for one
    item)."""

    def __init__(
        self,
        send: Callable[[list[M]], Awaitable[list[R | BaseException]]],
        *,
        name: str,
        linger: float = 0.001,
        max_batch: int = 1000,
        budget: int = 4 * 1024 * 1024,
        idle_flush: bool = True,
        aborted: Callable[[BaseException], Exception] | None = None,
    ) -> None:
        """`aborted`: what each caller is told when the batched call ends with something
        that is not an Exception (it was cancelled); by default a RuntimeError naming it."""
        if linger < 0 or max_batch < 1 or budget < 1:
            raise ValueError("linger must be >= 0 seconds, max_batch and budget >= 1")
        self.send = send
        self.name = name
        self.linger = linger
        self.max_batch = max_batch
        self.budget = budget
        self.idle_flush = idle_flush
        self.aborted = aborted or (lambda exc: RuntimeError(f"{name}: {exc!r}"))
        self._queue: list[tuple[M, asyncio.Future[R]]] = []
        self._queued_bytes = 0
        self._timer: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # calls not yet answered (a task is still in _sending for a moment after its answer:
        # the next call of a caller it woke must not count it as busy)
        self._in_flight = 0
        self.batches = 0  # batched calls made
        self.items = 0    # single calls they carried

    async def submit(self, message: M) -> R:
        """Send `message` as part of a batch; its own result, or its own exception."""
        loop = asyncio.get_running_loop()
        size = entry_size(message)
        if self._queue and self._queued_bytes + size > self.budget:
            self._flush()
        done: asyncio.Future[R] = loop.create_future()
        self._queue.append((message, done))
        self._queued_bytes += size
        if len(self._queue) >= self.max_batch or self._queued_bytes >= self.budget:
            self._flush()
        elif self._timer is None:
            # idle: at the next turn (callers of the same turn still join); busy: linger
            self._timer = (loop.call_soon(self._flush) if self.idle_flush and not (self._in_flight and self.linger)
                           else loop.call_later(self.linger, self._flush))
        return await done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.create_task(self._send(batch), name=f"durable-client-{self.name}-batch")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[M, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            try:
                outcomes = await self.send([message for message, _ in batch])
            finally:
                self._in_flight -= 1
                if self.idle_flush and not self._in_flight and self._queue:  # what waited for this answer goes now
                    self._flush()
        except BaseException as exc:  # the call failed whole: every caller sees it
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else self.aborted(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():  # its caller gave up waiting
                continue
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

    async def drain(self) -> None:
        """Send what is queued and wait for every batch in flight (Client.close)."""
        self._flush()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
