"""A control-plane loop of passes: run_once() until a pass does less than a batch, then wait
(`interval`, or until the database is back, or until `signals` wake its key), retrying a
failed pass with a doubling delay (capped at 30 s). The timer firer and the sticky fallback
are such loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from durable.controlplane.database_state import DatabaseState, LoopBackoff
from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.store.base import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)


class PassLoop:
    """Subclasses set `what` (for logs) and implement run_once(); `key`, when set, is the
    TaskSignals key that wakes the loop before its interval is over."""

    what = "pass"
    key: str | None = None

    def __init__(
        self, *, interval: float, batch_size: int, database: DatabaseState | None = None,
        signals: TaskSignals | None = None,
    ) -> None:
        self.interval = interval
        self.batch_size = batch_size
        self.database = database or DatabaseState()
        self.signals = signals

    async def run_once(self) -> int:
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        backoff = LoopBackoff(self.interval)
        while not stop.is_set():
            waking = self.signals is not None and self.key is not None
            # registered before the pass, so a wake-up announced during it is not missed
            with self.signals.waiting([self.key]) if waking else contextlib.nullcontext() as woken:  # type: ignore[union-attr,list-item]
                failed = True
                try:
                    while await self.run_once() >= self.batch_size and not stop.is_set():
                        pass
                    failed = False
                    self.database.reachable()
                except DATABASE_UNAVAILABLE as exc:
                    self.database.lost(self.what, exc)
                except Exception:
                    if backoff.failures == 0:
                        logger.exception("%s pass failed; retrying with backoff", self.what)
                    else:
                        logger.debug("%s pass failed again", self.what, exc_info=True)
                delay = backoff.next(failed)
                if woken is None or failed:
                    await self.database.pause(stop, delay)
                else:
                    await _until_woken(stop, woken, delay)


async def _until_woken(stop: asyncio.Event, woken: asyncio.Event, delay: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
