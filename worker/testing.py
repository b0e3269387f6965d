"""Helpers to test workers: run one in the background of a test, wait for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from durable.worker.runtime import Worker


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait until `predicate()` is true, at most `timeout` seconds (AssertionError after)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class RunningWorker:
    """``async with RunningWorker(worker) as w:`` runs `worker` in a named background task
    (signals not handled) and drains it on exit; `task` is the run() task."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.task = asyncio.create_task(worker.run(handle_signals=False),
                                        name=f"worker:{worker.worker_id}")

    async def __aenter__(self) -> Worker:
        started = asyncio.create_task(self.worker.wait_started(), name="worker:wait-started")
        await asyncio.wait([started, self.task], return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            started.cancel()
            self.task.result()
        return self.worker

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.worker.stop()
        await self.task
