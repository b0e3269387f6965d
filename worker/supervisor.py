"""Named, supervised asyncio tasks: none is orphaned, a dying critical one stops the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class CriticalTaskFailed(RuntimeError):
    """A loop the worker cannot run without has died."""


class Supervisor:
    """Owns every background task of a worker.

    `spawn(name, coro, critical=True)`: a critical task that ends with an exception (or ends at
    all before `closing` is set) records the failure and calls `on_fatal`, which stops the
    worker; `run()` then re-raises it as CriticalTaskFailed. Non-critical tasks have their
    errors logged.
    """

    def __init__(self, on_fatal: Callable[[BaseException], None]) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_fatal = on_fatal
        self.closing = False
        self.failure: CriticalTaskFailed | None = None

    def spawn(
        self, name: str, coro: Coroutine[Any, Any, Any], *, critical: bool = True
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, critical))
        return task

    def _done(self, task: asyncio.Task[Any], critical: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            if critical and not self.closing:
                self._fatal(task, CriticalTaskFailed(f"task {task.get_name()} was cancelled"))
            return
        exc = task.exception()
        if exc is None:
            if critical and not self.closing:
                self._fatal(task, CriticalTaskFailed(f"task {task.get_name()} exited unexpectedly"))
            return
        if critical:
            failure = CriticalTaskFailed(f"task {task.get_name()} died: {exc!r}")
            failure.__cause__ = exc
            self._fatal(task, failure)
        else:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    def _fatal(self, task: asyncio.Task[Any], failure: CriticalTaskFailed) -> None:
        log.critical("%s; stopping the worker", failure, exc_info=failure.__cause__)
        if self.failure is None:
            self.failure = failure
        self._on_fatal(failure)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for them."""
        self.closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
