"""Fires durable timers: a timer is a row in the task queue, so it survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from durable.controlplane.database_state import DatabaseState, LoopBackoff
from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.store.base import DATABASE_UNAVAILABLE
from durable.controlplane.store import Store

logger = logging.getLogger(__name__)


class TimerFirer:
    """A loop with run_once() (fires what is due) and run() (every `interval` seconds, and at
    once when `signals` says a timer is due: timers are announced with their due time)."""

    KEY = "timer:timer"

    def __init__(
        self, store: Store, *, interval: float = 0.5, batch_size: int = 100, database: DatabaseState | None = None,
        signals: TaskSignals | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.batch_size = batch_size
        self.database = database or DatabaseState()
        self.signals = signals

    async def run_once(self) -> int:
        fired = await self.store.fire_due_timers(self.batch_size)
        if fired:
            logger.debug("fired %d timers", fired)
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every `interval` seconds; a failed one is retried with a doubling delay
        (capped at 30 s), or as soon as the database is back."""
        backoff = LoopBackoff(self.interval)
        while not stop.is_set():
            # registered before the pass, so a timer announced during it is not missed
            with self.signals.waiting([self.KEY]) if self.signals else contextlib.nullcontext() as woken:
                failed = True
                try:
                    while await self.run_once() >= self.batch_size and not stop.is_set():
                        pass
                    failed = False
                    self.database.reachable()
                except DATABASE_UNAVAILABLE as exc:
                    self.database.lost("timers", exc)
                except Exception:
                    if backoff.failures == 0:
                        logger.exception("timer pass failed; retrying with backoff")
                    else:
                        logger.debug("timer pass failed again", exc_info=True)
                delay = backoff.next(failed)
                if woken is None or failed:
                    await self.database.pause(stop, delay)
                else:
                    await self._until_due(stop, woken, delay)

    @staticmethod
    async def _until_due(stop: asyncio.Event, woken: asyncio.Event, delay: float) -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
