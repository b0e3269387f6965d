"""The sticky fallback loop: decisions routed to the worker that keeps their workflow's instance
go to any worker of the type when that worker has not claimed them within
DURABLE_STICKY_FALLBACK_SECONDS (it was killed, or it is busy). See controlplane/store/sticky.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from durable.controlplane.database_state import DatabaseState
from durable.controlplane.passes import PassLoop
from durable.controlplane.store import Store
from durable.controlplane.store.sticky import unstick

logger = logging.getLogger(__name__)


class StickyFallback(PassLoop):
    """A loop with run_once() (frees what waited too long) and run() (a pass every quarter of
    the fallback, so a decision waits at most about 1.25 x the fallback for its worker)."""

    what = "sticky fallback"

    def __init__(
        self, store: Store, *, fallback: float, batch_size: int = 1000, database: DatabaseState | None = None,
        on_freed: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(interval=max(fallback / 4, 0.05), batch_size=batch_size, database=database)
        self.store = store
        self.fallback = fallback
        self.on_freed = on_freed

    async def run_once(self) -> int:
        before = self.store.now() - timedelta(seconds=self.fallback)
        async with self.store.pool.acquire() as conn:
            freed = await unstick(conn, before=before, limit=self.batch_size)
        if freed:
            logger.debug("sticky fallback: %d decisions to any worker", freed)
            if self.on_freed is not None:
                self.on_freed(freed)
        return freed
