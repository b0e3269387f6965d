"""Fires durable timers: a timer is a row in the task queue, so it survives restarts."""

from __future__ import annotations

import logging

from durable.controlplane.database_state import DatabaseState
from durable.controlplane.dispatch import TaskSignals
from durable.controlplane.passes import PassLoop
from durable.controlplane.store import Store

logger = logging.getLogger(__name__)


class TimerFirer(PassLoop):
    """A loop with run_once() (fires what is due) and run() (every `interval` seconds, and at
    once when `signals` says a timer is due: timers are announced with their due time)."""

    KEY = "timer:timer"
    key = KEY
    what = "timers"

    def __init__(
        self, store: Store, *, interval: float = 0.5, batch_size: int = 100, database: DatabaseState | None = None,
        signals: TaskSignals | None = None,
    ) -> None:
        super().__init__(interval=interval, batch_size=batch_size, database=database, signals=signals)
        self.store = store

    async def run_once(self) -> int:
        fired = await self.store.fire_due_timers(self.batch_size)
        if fired:
            logger.debug("fired %d timers", fired)
        return fired
