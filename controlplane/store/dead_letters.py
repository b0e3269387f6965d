"""The dead-letter queue: list and requeue.

Requeue is the very UPDATE operators run by hand (`SET requeued_at = NOW()`); the
`durable_dlq_requeue` trigger puts exactly one fresh task on the queue per change.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from durable.common.errors import InvalidArgument, NotFound, WrongState
from durable.controlplane.store.base import StoreBase, parse_uuid
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import DeadLetter


class DeadLetterStore(StoreBase):
    async def list_dead_letters(self, activity_type: str | None = None, limit: int = 100) -> list[DeadLetter]:
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        rows = await self.pool.fetch(Q.list_dead_letters, activity_type or None, limit)
        return [DeadLetter.from_row(r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: Any) -> DeadLetter:
        row = await self.pool.fetchrow(Q.get_dead_letter, parse_uuid(dead_letter_id, "dead_letter_id"))
        if row is None:
            raise NotFound(f"dead-letter entry {dead_letter_id} does not exist")
        return DeadLetter.from_row(row)  # type: ignore[no-any-return]

    async def delete_dead_letter(self, dead_letter_id: Any) -> None:
        """Delete an entry (`durable dlq delete`); a standalone activity's dead task goes with it."""
        entry_id = parse_uuid(dead_letter_id, "dead_letter_id")
        if not await self.pool.fetchval(Q.delete_dead_letter, entry_id):
            raise NotFound(f"dead-letter entry {dead_letter_id} does not exist")

    async def requeue_dead_letter(self, dead_letter_id: Any) -> UUID:
        """Put a fresh task for the entry on the queue; returns the new task's id."""
        entry_id = parse_uuid(dead_letter_id, "dead_letter_id")
        try:
            task_id = await self.pool.fetchval(Q.requeue_dead_letter, entry_id, self.now())
        except asyncpg.UniqueViolationError as exc:
            raise WrongState(str(exc).split("\n")[0] + "; wait for it to finish or fail first") from None
        except asyncpg.ObjectNotInPrerequisiteStateError as exc:
            raise WrongState(str(exc).split("\n")[0] + "; start a new workflow, or delete the entry") from None
        if task_id is None:
            raise NotFound(f"dead-letter entry {dead_letter_id} does not exist")
        return task_id  # type: ignore[no-any-return]
