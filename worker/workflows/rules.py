"""The determinism rules of workflow code, in one place, and the guards that enforce them.

A workflow's code runs again from the start whenever a worker that does not hold it in
memory takes its next decision (replay), and it must then do exactly what it did the first
time. So workflow code:

1. **Waits only on the workflow's own awaitables**: activities (`ctx.activity`, or a
   registered activity function called in the workflow), local activities
   (`ctx.local_activity`, run by the worker and recorded once), durable timers (`asyncio.sleep`,
   the deadlines of `asyncio.wait_for` and `asyncio.timeout`), signals (`ctx.wait_signal`,
   signal methods), `ctx.wait_condition`, and asyncio's tasks, futures, events, locks,
   `gather`, `wait` and `TaskGroup` built on them. The workflow runs on its own event loop
   (durable.worker.workflows.loop): no real time passes on it, and it has no I/O at all.
2. **Reads time, randomness and ids from the context**: `ctx.now()` (the time of the event
   being handled), `ctx.random()`, `ctx.uuid4()`; anything else non-deterministic goes
   through `ctx.side_effect(fn)`, whose result is recorded once and replayed after.
3. **Does no I/O and starts no threads or processes**: activities (or, for short steps,
   local activities) do those.
4. **Changes safely**: a change that alters the commands a running workflow issues is
   guarded with `if ctx.patched("change-id"):` (see WorkflowContext.patched).

Guarded calls raise DeterminismViolation naming the call and the rule, while workflow code
runs (on the thread running a workflow activation; activities on other threads are not
affected): `time.sleep`, `time.time`, `time.time_ns`, `time.monotonic`, `time.perf_counter`,
the `random` module's functions, `uuid.uuid1`/`uuid4`, `os.urandom`, socket connects and
binds, `threading.Thread.start`, `subprocess.Popen`, and the event loop's I/O, thread and
subprocess methods (`run_in_executor`, `create_connection`, `getaddrinfo`, ...). The loop's
`time()` is the workflow's clock, not the real one. `datetime.now()` cannot be intercepted:
rule 2 still applies to it.

Standard-library modules that read the clock for their own bookkeeping (logging's record
times, asyncio) are let through.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from durable.worker.workflows.errors import DeterminismViolation

SLEEP_RULE = "it blocks the worker and is not durable; use `await asyncio.sleep(...)` (a durable timer)"
CLOCK_RULE = "the real clock reads differently on replay; use ctx.now()"
RANDOM_RULE = "random values differ on replay; use ctx.random() or ctx.uuid4()"
IO_RULE = "workflow code does no I/O; do it in an activity"
THREAD_RULE = "workflow code starts no threads or processes; do the work in an activity"
LOOP_RULE = "the workflow's event loop has no I/O, threads or real time; do it in an activity"

# Callers from these packages may read the clock for their own bookkeeping.
_PASSTHROUGH = frozenset({"logging", "asyncio", "durable", "concurrent", "threading", "traceback",
                          "warnings", "importlib", "uuid", "random", "selectors", "_strptime"})

_active = threading.local()
_install_lock = threading.Lock()
_installed = False


def in_workflow() -> bool:
    """True while workflow code runs on this thread."""
    return getattr(_active, "depth", 0) > 0


def enter_workflow_code() -> None:
    """Guards on for this thread (pair with leave_workflow_code; the hot path's form)."""
    if not _installed:
        install()
    _active.depth = getattr(_active, "depth", 0) + 1


def leave_workflow_code() -> None:
    _active.depth -= 1


@contextlib.contextmanager
def workflow_code() -> Iterator[None]:
    """Mark this thread as running workflow code (guards on) for the block."""
    install()
    _active.depth = getattr(_active, "depth", 0) + 1
    try:
        yield
    finally:
        _active.depth -= 1


@contextlib.contextmanager
def engine_code() -> Iterator[None]:
    """Inside workflow code, a block of the engine's own (converters, logging): guards off."""
    depth = getattr(_active, "depth", 0)
    _active.depth = 0
    try:
        yield
    finally:
        _active.depth = depth


def violation(call: str, rule: str) -> DeterminismViolation:
    """The error for a guarded call; remembered on the thread, so that workflow code that
    catches it still fails its decision (take_violation)."""
    error = DeterminismViolation(f"{call} is not allowed in workflow code: {rule} "
                                 "(the rules: durable.worker.workflows.rules)")
    if getattr(_active, "violation", None) is None:
        _active.violation = error
    return error


def take_violation() -> DeterminismViolation | None:
    """The first violation since the last call on this thread (and forget it)."""
    error: DeterminismViolation | None = getattr(_active, "violation", None)
    _active.violation = None
    return error


def _caller_passes() -> bool:
    frame = sys._getframe(2)
    module = str(frame.f_globals.get("__name__", ""))
    return module.split(".", 1)[0] in _PASSTHROUGH


def _guard(call: str, rule: str, original: Callable[..., Any], *, passthrough: bool = False) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if getattr(_active, "depth", 0) > 0 and not (passthrough and _caller_passes()):
            raise violation(call, rule)
        return original(*args, **kwargs)

    guarded.__name__ = getattr(original, "__name__", call)
    guarded.__doc__ = getattr(original, "__doc__", None)
    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Put the guards in place, once per process (a no-op cost outside workflow code: one
    thread-local read per guarded call)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        time.sleep = _guard("time.sleep()", SLEEP_RULE, time.sleep)
        for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"):
            setattr(time, name, _guard(f"time.{name}()", CLOCK_RULE, getattr(time, name), passthrough=True))
        for name in ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample",
                     "uniform", "getrandbits", "randbytes", "gauss"):
            if hasattr(random, name):
                setattr(random, name, _guard(f"random.{name}()", RANDOM_RULE, getattr(random, name),
                                             passthrough=True))
        for name in ("uuid1", "uuid4"):
            setattr(uuid, name, _guard(f"uuid.{name}()", RANDOM_RULE, getattr(uuid, name)))
        os.urandom = _guard("os.urandom()", RANDOM_RULE, os.urandom, passthrough=True)
        for name in ("connect", "connect_ex", "bind"):
            setattr(socket.socket, name, _guard(f"socket.{name}()", IO_RULE, getattr(socket.socket, name)))
        socket.getaddrinfo = _guard("socket.getaddrinfo()", IO_RULE, socket.getaddrinfo)
        threading.Thread.start = _guard(  # type: ignore[method-assign]
            "threading.Thread.start()", THREAD_RULE, threading.Thread.start, passthrough=True)
        subprocess.Popen.__init__ = _guard(  # type: ignore[method-assign]
            "subprocess.Popen()", THREAD_RULE, subprocess.Popen.__init__)
        _installed = True
