"""The workflow's own event loop: deterministic, driven by the history, with durable timers.

It runs only the workflow's tasks and futures. `call_soon` callbacks run in FIFO order when
the instance drives the loop (`run_until_idle`); `call_later`/`call_at` become durable
timers (a StartTimer command, fired by a TimerFired event); `time()` is the workflow's
clock (the time of the event being delivered). Everything that would reach outside (I/O,
threads, subprocesses, signals) raises DeterminismViolation. Each workflow instance has
one loop, made the running loop only while its code runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durable.worker.workflows.rules import LOOP_RULE, enter_workflow_code, leave_workflow_code, violation

if TYPE_CHECKING:
    from durable.worker.workflows.instance import WorkflowInstance


class DurableTimerHandle(asyncio.TimerHandle):
    """A call_later callback backed by a durable timer; cancelling it cancels the timer."""

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...],
                 loop: DeterministicLoop, context: contextvars.Context | None, timer_id: str) -> None:
        super().__init__(when, callback, args, loop, context)
        self.timer_id = timer_id
        self.fired = False


class DeterministicLoop(asyncio.AbstractEventLoop):
    """An asyncio loop stepped by a WorkflowInstance, never run by itself."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._now = 0.0
        self._closed = False
        self._exception_handler: Any = None
        self.tasks: list[asyncio.Task[Any]] = []  # every task made on this loop (teardown)

    # -- what the instance drives --------------------------------------------------------

    def set_time(self, timestamp: float) -> None:
        """Advance the workflow clock (never backwards)."""
        self._now = max(self._now, timestamp)

    def run_until_idle(self) -> None:
        """Run ready callbacks, FIFO, until none is left (the code waits on the history)."""
        if not self._ready:
            return
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        enter_workflow_code()
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            leave_workflow_code()
            asyncio.events._set_running_loop(previous)

    @property
    def idle(self) -> bool:
        return not self._ready

    def fire(self, handle: DurableTimerHandle) -> None:
        """A TimerFired event for this handle: its callback runs next."""
        handle.fired = True
        if not handle._cancelled:
            self._ready.append(handle)

    # -- the asyncio API the workflow's tasks and futures use -----------------------------

    def time(self) -> float:
        return self._now

    def call_soon(self, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    call_soon_threadsafe = call_soon  # type: ignore[assignment]

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if delay <= 0:
            return self.call_soon(callback, *args, context=context)  # type: ignore[return-value]
        timer_id = self._instance.start_timer(delay)
        handle = DurableTimerHandle(self._now + delay, callback, args, self, context, timer_id)
        self._instance.timer_handles[timer_id] = handle
        return handle

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_later(when - self._now, callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if isinstance(handle, DurableTimerHandle) and not handle.fired:
            self._instance.cancel_timer(handle.timer_id)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self.tasks.append(task)
        return task

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self._instance.unhandled(context)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)

    def get_task_factory(self) -> None:
        return None

    def set_task_factory(self, factory: Any) -> None:
        raise violation("loop.set_task_factory()", LOOP_RULE)

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        pass

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        pass

    # -- everything else reaches outside the workflow ------------------------------------

    def run_forever(self) -> None:
        raise violation("loop.run_forever()", LOOP_RULE)

    def run_until_complete(self, future: Any) -> Any:
        raise violation("loop.run_until_complete()", LOOP_RULE)

    def stop(self) -> None:
        raise violation("loop.stop()", LOOP_RULE)


def _refuse(name: str) -> Callable[..., Any]:
    def refused(self: DeterministicLoop, *args: Any, **kwargs: Any) -> Any:
        for arg in args:  # do not leave a coroutine argument un-awaited and warning
            if asyncio.iscoroutine(arg):
                arg.close()
        raise violation(f"loop.{name}()", LOOP_RULE)

    refused.__name__ = name
    return refused


for _name in (
    "run_in_executor", "set_default_executor", "getaddrinfo", "getnameinfo",
    "create_connection", "create_server", "create_unix_connection", "create_unix_server",
    "create_datagram_endpoint", "connect_accepted_socket", "connect_read_pipe",
    "connect_write_pipe", "subprocess_exec", "subprocess_shell", "add_reader", "remove_reader",
    "add_writer", "remove_writer", "sock_recv", "sock_recv_into", "sock_recvfrom",
    "sock_recvfrom_into", "sock_sendall", "sock_sendto", "sock_connect", "sock_accept",
    "sock_sendfile", "sendfile", "start_tls", "add_signal_handler", "remove_signal_handler",
):
    setattr(DeterministicLoop, _name, _refuse(_name))
