"""Push dispatch: long-polling claims sleep until PostgreSQL says tasks of their types arrived.

A trigger on durable_task_queue sends NOTIFY durable_tasks with "kind:type=count,..." whenever a
statement inserts pending tasks (enqueue, decisions, requeue); reclaims and hand-backs notify
explicitly. One listening connection per control plane turns those into wake-ups of about twice
as many claims waiting on those types as tasks arrived (not a thundering herd). Tasks that
become visible later (a start delay, a timer, a retry's backoff) are announced with their due
time ("kind:type=count@<unix time>"): waiting claims are woken at that time by a loop timer,
not by polling. Claims also re-check on an interval, the fallback for notifications lost while
the listener reconnects and for due times a control plane never heard of (it started after).

The same connection listens on durable_workflows: a workflow that ends sends its id there
(set_workflow_status), and every WaitWorkflow call waiting on it is woken (key "ended:<id>").
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import asyncpg

from durable.controlplane.database_state import DatabaseState
from durable.controlplane.store.breakers import BREAKERS_CHANGED

logger = logging.getLogger(__name__)

CHANNEL = "durable_tasks"
WORKFLOW_CHANNEL = "durable_workflows"
# A due wake-up fires this long after the due time, so the claim it wakes finds the task visible.
DUE_SLACK = 0.002
# Due times remembered per key; more than this many distinct ones wait for the fallback re-check.
MAX_DUE_PER_KEY = 10_000


class TaskSignals:
    """Wake-ups for waiting claims, keyed "activity:<type>" and "workflow:<type>"."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        # due times of tasks that are not visible yet, per key, and the timer of the earliest
        self._due: dict[str, list[tuple[float, str]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Workflow types with queries waiting (a hint: claims of those types look for them).
        self._query_types: set[str] = set()
        self._all_queries = False
        # Told when a circuit breaker was made or retuned (by any replica): the store forgets
        # its cache of breaker keys.
        self.on_breakers_changed: Callable[[], None] | None = None

    def take_query_hint(self, workflow_types: list[str]) -> bool:
        """Whether queries of these types may wait (and forget the hint for them)."""
        if self._all_queries:
            self._all_queries = False
            return True
        hinted = self._query_types.intersection(workflow_types)
        self._query_types.difference_update(hinted)
        return bool(hinted)

    @contextmanager
    def waiting(self, keys: Iterable[str]) -> Iterator[asyncio.Event]:
        """Register before claiming, so a notification between claim and wait is not lost."""
        event = asyncio.Event()
        keys = list(keys)
        for key in keys:
            self._waiters[key].add(event)
        try:
            yield event
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    def notify(self, items: Iterable[str]) -> None:
        """Wake waiting claims: items are "kind:type=count" (that many), "kind:type" (all), or
        with "@<unix time>" (tasks that become visible then: a retry's backoff, a start delay,
        a timer): those wake their waiters at that time, not at the next fallback re-check."""
        now = time.time()
        for item in items:
            head, _, due = item.partition("@")
            key, _, count = head.partition("=")
            if key == BREAKERS_CHANGED:
                if self.on_breakers_changed is not None:
                    self.on_breakers_changed()
                continue
            if key.startswith("query:"):
                self._query_types.add(key[6:])
            if due:
                try:
                    at = float(due)
                except ValueError:
                    continue  # cut short by the payload limit: the fallback re-check covers it
                if at > now + DUE_SLACK:
                    self._schedule(key, at, count)
                    continue
            self._wake(key, count)

    def ended(self, workflow_id: str) -> None:
        """Workflow `workflow_id` ended: wake every call waiting for it (key "ended:<id>")."""
        self._wake(ended_key(workflow_id), "")

    def _wake(self, key: str, count: str) -> None:
        waiters = self._waiters.get(key)
        if not waiters:
            return
        # A few more than the tasks: a woken claim may be slow to run (busy loop, pool
        # queue) and the next in line should not wait for the fallback re-check.
        wanted = 2 * int(count) + 2 if count.isdigit() else len(waiters)
        for event in waiters:
            if wanted <= 0:
                break
            if not event.is_set():
                event.set()
                wanted -= 1

    def _schedule(self, key: str, at: float, count: str) -> None:
        """Remember that `count` tasks of `key` become visible at `at`; one loop timer per key
        stands for the earliest (the queue of due times is bounded; beyond it, the fallback)."""
        due = self._due.setdefault(key, [])
        if len(due) >= MAX_DUE_PER_KEY:
            return
        heapq.heappush(due, (at, count))
        handle = self._timers.get(key)
        if handle is not None and handle.when() <= self._loop_time(at):
            return
        if handle is not None:
            handle.cancel()
        self._arm(key)

    def _loop_time(self, at: float) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(at - time.time(), 0.0) + DUE_SLACK

    def _arm(self, key: str) -> None:
        due = self._due.get(key)
        if not due:
            self._timers.pop(key, None)
            self._due.pop(key, None)
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_at(self._loop_time(due[0][0]), self._fire, key)

    def _fire(self, key: str) -> None:
        due = self._due.get(key, [])
        now = time.time()
        counts: list[str] = []
        while due and due[0][0] <= now + DUE_SLACK:
            counts.append(heapq.heappop(due)[1])
        if counts:
            total = sum(int(c) for c in counts if c.isdigit())
            self._wake(key, str(total) if all(c.isdigit() for c in counts) else "")
        self._arm(key)

    def close(self) -> None:
        """Cancel the scheduled wake-ups (the control plane is stopping)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._due.clear()

    def notify_all(self) -> None:
        self._all_queries = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def waiting_on(self, key: str) -> int:
        """How many calls wait on `key` now."""
        return len(self._waiters.get(key, ()))

    @property
    def waiting_count(self) -> int:
        return len({id(e) for w in self._waiters.values() for e in w})


def ended_key(workflow_id: str) -> str:
    """The wake-up key of the calls waiting for a workflow to end."""
    return f"ended:{workflow_id}"


class TaskListener:
    """Holds one LISTEN connection (both channels) per control plane; reconnects with backoff;
    wakes everyone after a gap."""

    def __init__(
        self, dsn: str, signals: TaskSignals, *, reconnect_max: float = 5.0, database: DatabaseState | None = None
    ) -> None:
        self.dsn = dsn
        self.signals = signals
        self.reconnect_max = reconnect_max
        self.database = database or DatabaseState()
        self.connected = asyncio.Event()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.signals.notify(payload.split(","))

    def _on_workflow_ended(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.signals.ended(payload)

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                await conn.add_listener(WORKFLOW_CHANNEL, self._on_workflow_ended)
                self.database.reachable()
                self.connected.set()
                self.signals.notify_all()  # anything that arrived while we were away
                delay = 0.1
                stopping = asyncio.ensure_future(stop.wait())
                losing = asyncio.ensure_future(lost.wait())
                try:
                    await asyncio.wait({stopping, losing}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    losing.cancel()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.database.lost("task listener", exc)
                logger.debug("task listener: retrying in %.1f s", delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close(timeout=2)
            if not stop.is_set():
                await self.database.pause(stop, delay)
                delay = min(delay * 2, self.reconnect_max)
