"""Circuit breakers keyed per activity type, kept in durable_circuit_breaker_state.

A type has a breaker once one is configured for it. While a breaker is open its tasks are not
handed out (they wait; they burn no attempts). After the reset timeout it turns half-open and
lets a limited number of trial tasks run; enough successes close it, one failure re-opens it.
Every count changes in one atomic UPDATE, so concurrent workers never lose updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from durable.common.errors import NotFound
from durable.common.policies import CircuitBreakerPolicy
from durable.controlplane.store.base import StoreBase, check_name
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import CircuitBreaker

# The notification (on the task channel) that a breaker was made or retuned.
BREAKERS_CHANGED = "breakers:changed"


class BreakerStore(StoreBase):
    async def configure_circuit_breaker(
        self, key: str, policy: CircuitBreakerPolicy | dict[str, object] | None = None
    ) -> CircuitBreaker:
        """Create or retune the breaker of `key` (an activity type). Its state is kept."""
        check_name(key, "key")
        p = policy if isinstance(policy, CircuitBreakerPolicy) else CircuitBreakerPolicy.parse(
            policy, field="circuit_breaker"  # type: ignore[arg-type]
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                Q.configure_breaker,
                key,
                p.failure_threshold,
                p.window,
                p.reset_timeout,
                p.half_open_max_trials,
                p.success_threshold,
                self.now(),
            )
            await self.notify(conn, {BREAKERS_CHANGED: 1})  # other replicas forget their cache
        # after the commit: a claim that read the keys meanwhile does not keep them
        self.forget_breaker_keys()
        return CircuitBreaker.from_row(row)  # type: ignore[no-any-return]

    async def get_circuit_breaker(self, key: str) -> CircuitBreaker:
        rows = await self.pool.fetch(Q.breakers_for, [key])
        if not rows:
            raise NotFound(f"no circuit breaker is configured for {key!r}")
        return CircuitBreaker.from_row(rows[0])  # type: ignore[no-any-return]

    async def _breaker_admission(
        self, conn: asyncpg.Connection, activity_types: Sequence[str], now: datetime
    ) -> tuple[set[str], dict[str, int]]:
        """Within a claim: which types are held back, and trial slots reserved for half-open ones."""
        keys = await self.breaker_keys(conn)
        guarded = [t for t in activity_types if t in keys]
        if not guarded:
            return set(), {}
        rows = await conn.fetch(Q.breakers_for, guarded)
        if not rows or all(r["state"] == "closed" for r in rows):
            return set(), {}
        await conn.execute(Q.breakers_to_half_open, [r["key"] for r in rows], now)
        blocked: set[str] = set()
        trials: dict[str, int] = {}
        for key in sorted(r["key"] for r in rows if r["state"] != "closed"):
            row = await conn.fetchrow(Q.lock_breaker, key)
            if row["state"] == "open":
                blocked.add(key)
            elif row["state"] == "half_open":
                free = row["half_open_max_trials"] - row["half_open_in_flight"]
                if free > 0:
                    await conn.execute(Q.set_trials_in_flight, key, row["half_open_max_trials"], now)
                    trials[key] = free
                else:
                    blocked.add(key)
        return blocked, trials

    async def _return_unused_trials(self, conn: asyncpg.Connection, key: str, unused: int, now: datetime) -> None:
        if unused > 0:
            await conn.execute(Q.return_trials, key, unused, now)
