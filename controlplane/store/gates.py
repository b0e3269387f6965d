"""Concurrency keys and rate limits: the gated part of a claim (the settings of rate limits
are in rate_limits.py).

Concurrency keys. A task may carry a key (a customer id, say) and a limit; it is handed out
only while fewer than that many tasks of its key are claimed, cluster-wide (the limit of a key
is the one carried by the task at the head of its queue). Nothing counts slots: the count is
read from the claimed rows, so completing, failing, being taken back by the reaper, handed
back or dead-lettered frees a slot in the same write that ends the claim. Claimers serialise
per key on a transaction-scoped advisory lock taken without waiting (a held key is passed
over, as SKIP LOCKED passes a held row) and count in the next statement, whose snapshot sees
every claim committed before the lock was theirs. Keys are served round robin: each claim
walks the keys of a type in key order from where the last claim of that type stopped.
Workflow starts with a key work the same way, counting the key's running workflows.

Unkeyed tasks never come here: the claim index holds only them, and their claim statements
are the ones they always were. Keyed tasks are looked for when the unkeyed claim came up short.
After a claim that came back full, at most every KEYED_LOOK_EVERY seconds, a look in the
background (one statement, on a connection of its own) asks whether keyed tasks of its types
wait; if some do, the next claim of those types leaves them half of itself (the unkeyed ones
then get what they leave). So an unkeyed backlog that fills every claim does not hold keyed
tasks back until it has drained, and no claim waits for the look.

Rate limits. An activity type may have a token bucket in durable_rate_limits: at most `rate`
starts per second across the cluster, `burst` at once after a quiet spell. A claim of that
type locks the bucket row (SKIP LOCKED), refills it for the time passed, hands out at most the
whole tokens there are and writes back what is left, all in its transaction.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta

import asyncpg

from durable.controlplane.store.queries import Q

# keys one claim looks at: at least KEYS_PER_CLAIM (priorities are compared across them), at
# most MAX_KEYS_PER_CLAIM (one index probe and one advisory lock each)
KEYS_PER_CLAIM = 8
MAX_KEYS_PER_CLAIM = 200
# a claim leaves half of itself to keyed tasks when none has looked for them this long (seconds)
KEYED_LOOK_EVERY = 0.1
# advisory-lock namespaces (the first of the two int4 keys): activity keys and workflow keys
LOCK_NAMESPACES = {"activity": 1685418593, "workflow": 1685418615}


class Gates:
    """The gated claim paths, run inside a claim's transaction. Holds the round-robin cursors
    (per kind and type: the key the last claim looked at), which only steer fairness: any
    value is correct."""

    def __init__(self) -> None:
        self.cursors: dict[tuple[str, str], str] = {}
        self.keyed_looked_at = -math.inf  # time.monotonic() of the last look for keyed tasks
        # (activity types, workflow types) of a claim -> the keyed (kind, type)s found waiting
        self.owed: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tuple[str, str]]] = {}
        self._looks: set[asyncio.Task[None]] = set()

    def owed_to_keyed(self, key: tuple[tuple[str, ...], tuple[str, ...]]) -> list[tuple[str, str]] | None:
        """The keyed (kind, type)s a claim of these (activity types, workflow types) leaves half
        of itself to (found waiting after a claim of the same types that came back full),
        taken; None: no debt."""
        return self.owed.pop(key, None)

    def after_full_claim(self, pool: asyncpg.Pool, activity_types: list[str], workflow_types: list[str]) -> None:
        """A claim came back full: at most every KEYED_LOOK_EVERY, look (in the background, on
        a connection of its own: the claim's answer does not wait) whether keyed tasks of its
        types wait; if so, the next claim of those types owes them half of itself."""
        if time.monotonic() - self.keyed_looked_at < KEYED_LOOK_EVERY:
            return
        self.keyed_looked_at = time.monotonic()
        look = asyncio.get_running_loop().create_task(self._look(pool, activity_types, workflow_types))
        self._looks.add(look)
        look.add_done_callback(self._looks.discard)

    async def _look(self, pool: asyncpg.Pool, activity_types: list[str], workflow_types: list[str]) -> None:
        try:
            async with pool.acquire() as conn:
                waiting = await self.keyed_types(conn, activity_types, workflow_types, probe=True)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return  # best effort: the next full claim looks again
        if waiting:
            self.owed[(tuple(activity_types), tuple(workflow_types))] = waiting

    async def keyed_types(
        self, conn: asyncpg.Connection, activity_types: list[str], workflow_types: list[str], *, probe: bool = False
    ) -> list[tuple[str, str]]:
        """Which of these (kind, type)s have keyed tasks waiting: one statement (none for a
        single type unless `probe`: the key scan itself finds nothing then)."""
        if not activity_types and not workflow_types:
            return []
        if len(activity_types) + len(workflow_types) == 1 and not probe:
            return [("activity", activity_types[0])] if activity_types else [("workflow", workflow_types[0])]
        return [(r["kind"], r["type"]) for r in await conn.fetch(Q.keyed_types, activity_types, workflow_types)]

    async def claim_keyed(
        self, conn: asyncpg.Connection, worker_id: str, activity_type: str, limit: int, now: datetime
    ) -> list[asyncpg.Record]:
        """Up to `limit` keyed tasks of one activity type, round robin over its keys."""
        held = await self._held_keys(conn, "activity", activity_type, limit)
        if not held:
            return []
        return list(await conn.fetch(Q.claim_keyed, worker_id, held, "activity", activity_type, now, limit))

    async def claim_keyed_workflows(
        self, conn: asyncpg.Connection, worker_id: str, workflow_type: str, limit: int, now: datetime
    ) -> list[asyncpg.Record]:
        """Up to `limit` first decisions of keyed workflows of one type (starting them)."""
        held = await self._held_keys(conn, "workflow", workflow_type, limit)
        if not held:
            return []
        return list(await conn.fetch(Q.claim_keyed_workflows, worker_id, held, workflow_type, now, limit))

    async def _held_keys(self, conn: asyncpg.Connection, kind: str, type_: str, limit: int) -> list[str]:
        """The next keys of (kind, type) in round-robin order that this transaction could lock."""
        if limit <= 0:
            return []
        cursor_key = (kind, type_)
        after = self.cursors.get(cursor_key, "")
        want = min(max(limit, KEYS_PER_CLAIM), MAX_KEYS_PER_CLAIM)
        namespace = LOCK_NAMESPACES[kind]
        rows = list(await conn.fetch(Q.lock_keys_after, kind, type_, after, want, namespace))
        if len(rows) < want and after:  # wrap around to the first keys
            seen = {r["key"] for r in rows}
            rows += [r for r in await conn.fetch(Q.lock_keys_after, kind, type_, "", want - len(rows), namespace)
                     if r["key"] not in seen]
        if not rows:
            return []
        self.cursors[cursor_key] = rows[-1]["key"]
        return [r["key"] for r in rows if r["held"]]



    async def claim_rate_limited(
        self,
        conn: asyncpg.Connection,
        worker_id: str,
        activity_type: str,
        limit: int,
        now: datetime,
    ) -> tuple[list[asyncpg.Record], datetime | None]:
        """Up to `limit` tasks of a rate-limited type (unkeyed ones first, then keyed), as many as
        the bucket has whole tokens. Returns the rows and, when tokens ran out before the claim
        was filled, when the next token comes (to wake waiting claims then)."""
        bucket = await conn.fetchrow(Q.lock_rate_limit, activity_type, now)
        if bucket is None:  # another claimer holds it (or it was just deleted): it hands out
            return [], None
        tokens = float(bucket["tokens"])
        take = min(limit, int(math.floor(tokens + 1e-9)))
        rows: list[asyncpg.Record] = []
        if take > 0:
            rows = list(await conn.fetch(Q.claim_tasks_of_type, worker_id, activity_type, take, now))
            if len(rows) < take:
                rows += await self.claim_keyed(conn, worker_id, activity_type, take - len(rows), now)
        left = max(tokens - len(rows), 0.0)
        await conn.execute(Q.spend_tokens, activity_type, min(left, float(bucket["burst"])), now)
        wake = None
        if len(rows) == take and take < limit:  # ran out of tokens, perhaps not of tasks
            wake = now + timedelta(seconds=(1.0 - (left - math.floor(left))) / float(bucket["rate"]))
        return rows, wake
