"""Reading the engine's tables a page at a time: workflows by filter, counts by status, a
workflow's tasks, dead letters by error text, circuit breakers. Every list is keyset-paged on
an index, so a page costs the same on the millionth row as on the first.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from durable.common.errors import InvalidArgument, NotFound
from durable.controlplane.store.base import StoreBase, check_name
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import CircuitBreaker, DeadLetter, Task, WorkflowInstance

WORKFLOW_STATUSES = ("pending", "running", "completed", "failed", "cancelled")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_page_token(at: datetime, key: Any) -> str:
    """An opaque cursor: the sort key (a time, exact to the microsecond, and an id) of a
    page's last row."""
    raw = f"{(at - _EPOCH) // _MICROSECOND}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        micros, key = raw.split("|", 1)
        return _EPOCH + int(micros) * _MICROSECOND, key
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token is not one this server handed out") from None


def like_prefix(prefix: str | None) -> str | None:
    """A LIKE pattern matching text that starts with `prefix` literally."""
    if not prefix:
        return None
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _bounds(after: datetime | None, before: datetime | None) -> None:
    if after and before and after >= before:
        raise InvalidArgument("created_after must be earlier than created_before")


class BrowseStore(StoreBase):
    async def browse_workflows(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_token: str | None = None,
        limit: int = 50,
    ) -> tuple[list[WorkflowInstance], str | None]:
        """One page of workflows, newest first, and the token of the next page (None at the end)."""
        if status is not None and status not in WORKFLOW_STATUSES:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(WORKFLOW_STATUSES)}")
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        _bounds(created_after, created_before)
        after_at, after_id = decode_page_token(page_token) if page_token else (None, None)
        rows = await self.pool.fetch(
            Q.browse_workflows, status, workflow_type, like_prefix(id_prefix), created_after, created_before,
            after_at, after_id, limit + 1,
        )
        page = [WorkflowInstance.from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_page_token(page[-1].created_at, page[-1].id) if more else None

    async def count_workflows(
        self,
        *,
        workflow_type: str | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        at_most: int | None = None,
    ) -> dict[str, int]:
        """Workflows per status (every status, in lifecycle order, zeros included) under the
        filters; with `at_most`, each count stops there (a count equal to it means "at least")."""
        _bounds(created_after, created_before)
        if at_most is not None and at_most < 1:
            raise InvalidArgument("at_most must be >= 1 (or unset for exact counts)")
        rows = await self.pool.fetch(
            Q.count_workflows, workflow_type, like_prefix(id_prefix), created_after, created_before,
            list(WORKFLOW_STATUSES), at_most,
        )
        found = {r["status"]: r["n"] for r in rows}
        return {s: found.get(s, 0) for s in WORKFLOW_STATUSES}

    async def workflow_tasks(self, workflow_id: str, *, include_finished: bool = False, limit: int = 200) -> list[Task]:
        """The tasks of a workflow, oldest first; live ones (pending, claimed) unless include_finished."""
        check_name(workflow_id, "workflow_id")
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        rows = await self.pool.fetch(Q.workflow_tasks, workflow_id, include_finished, limit)
        if not rows and await self.pool.fetchval(Q.get_workflow, workflow_id) is None:
            raise NotFound(f"workflow {workflow_id!r} does not exist")
        return [Task.from_row(r) for r in rows]

    async def browse_dead_letters(
        self,
        *,
        activity_type: str | None = None,
        error_contains: str | None = None,
        page_token: str | None = None,
        limit: int = 100,
    ) -> tuple[list[DeadLetter], str | None]:
        """One page of dead letters, newest first, and the token of the next page."""
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        after_at: datetime | None = None
        after_id: UUID | None = None
        if page_token:
            after_at, key = decode_page_token(page_token)
            try:
                after_id = UUID(key)
            except ValueError:
                raise InvalidArgument("page_token is not one this server handed out") from None
        rows = await self.pool.fetch(
            Q.browse_dead_letters, activity_type or None, error_contains or None, after_at, after_id, limit + 1
        )
        page = [DeadLetter.from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_page_token(page[-1].dead_at, page[-1].id) if more else None

    async def list_circuit_breakers(self) -> list[CircuitBreaker]:
        rows = await self.pool.fetch(Q.list_breakers)
        return [CircuitBreaker.from_row(r) for r in rows]
