"""Push dispatch: long-polling claims sleep until PostgreSQL says tasks of their types arrived.

A trigger on durable_task_queue sends NOTIFY durable_tasks with "kind:type=count,..." whenever a
statement inserts pending tasks (enqueue, decisions, requeue); reclaims and hand-backs notify
explicitly. One listening connection per control plane turns those into wake-ups of about twice
as many claims waiting on those types as tasks arrived (not a thundering herd). Claims also re-check on
an interval, the fallback for delayed tasks (retry backoff, start delay) and for notifications
lost while the listener reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import asyncpg

from durable.controlplane.database_state import DatabaseState

logger = logging.getLogger(__name__)

CHANNEL = "durable_tasks"


class TaskSignals:
    """Wake-ups for waiting claims, keyed "activity:<type>" and "workflow:<type>"."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Workflow types with queries waiting (a hint: claims of those types look for them).
        self._query_types: set[str] = set()
        self._all_queries = False

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
        """Wake waiting claims: items are "kind:type=count" (that many) or "kind:type" (all)."""
        for item in items:
            key, _, count = item.partition("=")
            if key.startswith("query:"):
                self._query_types.add(key[6:])
            waiters = self._waiters.get(key)
            if not waiters:
                continue
            # A few more than the tasks: a woken claim may be slow to run (busy loop, pool
            # queue) and the next in line should not wait for the fallback re-check.
            wanted = 2 * int(count) + 2 if count.isdigit() else len(waiters)
            for event in waiters:
                if wanted <= 0:
                    break
                if not event.is_set():
                    event.set()
                    wanted -= 1

    def notify_all(self) -> None:
        self._all_queries = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    @property
    def waiting_count(self) -> int:
        return len({id(e) for w in self._waiters.values() for e in w})


class TaskListener:
    """Holds one LISTEN connection; reconnects with backoff; wakes everyone after a gap."""

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

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
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
