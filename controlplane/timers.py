"""Fires durable timers: a timer is a row in the task queue, so it survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.store.base import DATABASE_UNAVAILABLE
from durable.controlplane.store import Store

logger = logging.getLogger(__name__)


class TimerFirer:
    """A loop with run_once() (fires what is due) and run() (every `interval` seconds, and at
    once when `signals` says a timer is due: timers are announced with their due time)."""

    KEY = "timer:timer"

    def __init__(
        self, store: Store, *, interval: float = 0.5, batch_size: int = 100, signals: TaskSignals | None = None
    ) -> None:
        self.store = store
        self.interval = interval
        self.batch_size = batch_size
        self.signals = signals

    async def run_once(self) -> int:
        fired = await self.store.fire_due_timers(self.batch_size)
        if fired:
            logger.debug("fired %d timers", fired)
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with self.signals.waiting([self.KEY]) if self.signals else contextlib.nullcontext() as woken:
                try:
                    while await self.run_once() >= self.batch_size and not stop.is_set():
                        pass
                except DATABASE_UNAVAILABLE as exc:
                    logger.warning("timer pass failed, database unreachable: %s", exc)
                except Exception:
                    logger.exception("timer pass failed")
                waits = [asyncio.ensure_future(stop.wait())]
                if woken is not None:
                    waits.append(asyncio.ensure_future(woken.wait()))
                try:
                    await asyncio.wait(waits, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
