"""Bulk actions by filter: cancel workflows, delete ended ones, requeue or delete dead letters.

One call handles one bounded batch and says where the next starts (a keyset cursor, oldest
first), so no transaction is long and a caller can show progress, stop and go on. Each
workflow is cancelled, and each dead letter requeued, in its own short transaction by the same
statement (a requeue goes through the same durable_dlq_requeue trigger as one by one, so it
still makes exactly one live task, and an ended workflow's step is still refused); deletes are one statement per batch. Rows that
changed between the batch's selection and its action are skipped and said why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from durable.common.errors import DurableError, InvalidArgument
from durable.controlplane.store import Store
from durable.controlplane.store.base import check_name
from durable.controlplane.store.browse import WORKFLOW_STATUSES, decode_page_token, encode_page_token, like_prefix
from durable.controlplane.store.queries import Q

DEFAULT_BATCH = 100
MAX_BATCH = 1000
MAX_ERRORS = 10
MAX_ERROR_CHARS = 300
LIVE_STATUSES = ("pending", "running")
ENDED_STATUSES = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """Which workflows: every field optional."""

    workflow_type: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    error_contains: str | None = None
    id_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead-letter entries: every field optional."""

    activity_type: str | None = None
    dead_after: datetime | None = None
    dead_before: datetime | None = None
    error_contains: str | None = None
    workflow_id: str | None = None


@dataclass(slots=True)
class BulkOutcome:
    """One call's work: how many it took up, changed and skipped (and why, for a few), and the
    cursor of the next batch (None when nothing is left)."""

    matched: int = 0
    affected: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    next_page_token: str | None = None

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(why[:MAX_ERROR_CHARS])


def _batch(size: int) -> int:
    size = size or DEFAULT_BATCH
    if not 1 <= size <= MAX_BATCH:
        raise InvalidArgument(f"batch_size must be between 1 and {MAX_BATCH}, not {size}")
    return size


def _bounds(after: datetime | None, before: datetime | None, names: str) -> None:
    if after and before and after >= before:
        raise InvalidArgument(f"{names} must be earlier than {names.replace('after', 'before')}")


def _statuses(status: str | None, allowed: tuple[str, ...], action: str, hint: str) -> list[str]:
    if status is None:
        return list(allowed)
    if status not in WORKFLOW_STATUSES:
        raise InvalidArgument(f"status {status!r} is not one of {', '.join(WORKFLOW_STATUSES)}")
    if status not in allowed:
        raise InvalidArgument(f"{action} takes {' or '.join(allowed)} workflows, not {status} ones; {hint}")
    return [status]


class BulkActions:
    """Bulk actions on a Store (its own object: the servicer holds one)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- workflows -----------------------------------------------------------------------

    def _workflow_args(self, f: WorkflowFilter, statuses: list[str], skip_requested: bool, skip_pinned: bool
                       ) -> tuple[object, ...]:
        _bounds(f.created_after, f.created_before, "created_after")
        if f.workflow_type is not None:
            check_name(f.workflow_type, "workflow_type")
        return (statuses, f.workflow_type, like_prefix(f.id_prefix), f.created_after, f.created_before,
                f.error_contains or None, skip_requested, skip_pinned)

    async def _workflow_batch(
        self, args: tuple[object, ...], page_token: str | None, size: int
    ) -> tuple[list[str], str | None]:
        after_at, after_id = decode_page_token(page_token) if page_token else (None, None)
        *where, skip_pinned = args
        rows = await self.store.pool.fetch(Q.bulk_select_workflows, *where, after_at, after_id, size, skip_pinned)
        token = encode_page_token(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == size else None
        return [r["id"] for r in rows], token

    async def cancel_workflows(
        self, f: WorkflowFilter, *, reason: str = "", terminate: bool = False, dry_run: bool = False,
        page_token: str | None = None, batch_size: int = 0,
    ) -> BulkOutcome:
        """Cancel (or with `terminate`, end at once) the next batch of pending and running
        workflows under the filter; a dry run counts them all."""
        size = _batch(batch_size)
        statuses = _statuses(f.status, LIVE_STATUSES, "cancel", "an ended workflow cannot be cancelled")
        args = self._workflow_args(f, statuses, not terminate, False)
        if dry_run:
            return BulkOutcome(matched=int(await self.store.pool.fetchval(Q.bulk_count_workflows, *args)))
        ids, token = await self._workflow_batch(args, page_token, size)
        out = BulkOutcome(matched=len(ids), next_page_token=token)
        for workflow_id in ids:
            try:
                await self.store.cancel_workflow(workflow_id, reason, terminate=terminate)
                out.affected += 1
            except DurableError as exc:  # ended or deleted since the batch was read
                out.skip(f"{workflow_id}: {exc}")
        return out

    async def delete_workflows(
        self, f: WorkflowFilter, *, dry_run: bool = False, page_token: str | None = None, batch_size: int = 0,
    ) -> BulkOutcome:
        """Delete the next batch of ended, unpinned workflows under the filter, with their
        events, tasks, signals and dead letters; a dry run counts them all."""
        size = _batch(batch_size)
        statuses = _statuses(f.status, ENDED_STATUSES, "delete", "cancel them first")
        args = self._workflow_args(f, statuses, False, True)
        if dry_run:
            return BulkOutcome(matched=int(await self.store.pool.fetchval(Q.bulk_count_workflows, *args)))
        ids, token = await self._workflow_batch(args, page_token, size)
        out = BulkOutcome(matched=len(ids), next_page_token=token)
        if ids:
            out.affected = int(await self.store.pool.fetchval(Q.bulk_delete_workflows, ids))
            for _ in range(len(ids) - out.affected):
                out.skip("a workflow changed (pinned, or held by another change) while the batch ran")
        return out

    # -- dead letters --------------------------------------------------------------------

    def _dead_letter_args(self, f: DeadLetterFilter) -> tuple[object, ...]:
        _bounds(f.dead_after, f.dead_before, "dead_after")
        if f.activity_type is not None:
            check_name(f.activity_type, "activity_type")
        return (f.activity_type, f.dead_after, f.dead_before, f.error_contains or None, f.workflow_id or None)

    async def _dead_letter_batch(
        self, f: DeadLetterFilter, requeueable: bool, page_token: str | None, size: int
    ) -> tuple[list[UUID], str | None]:
        after_at: datetime | None = None
        after_id: UUID | None = None
        if page_token:
            after_at, key = decode_page_token(page_token)
            try:
                after_id = UUID(key)
            except ValueError:
                raise InvalidArgument("page_token is not one this server handed out") from None
        rows = await self.store.pool.fetch(
            Q.bulk_select_dead_letters, *self._dead_letter_args(f), after_at, after_id, size, requeueable)
        token = encode_page_token(rows[-1]["dead_at"], rows[-1]["id"]) if len(rows) == size else None
        return [r["id"] for r in rows], token

    async def requeue_dead_letters(
        self, f: DeadLetterFilter, *, dry_run: bool = False, page_token: str | None = None, batch_size: int = 0,
    ) -> BulkOutcome:
        """Requeue the next batch of unresolved entries under the filter (standalone, or of a
        workflow that has not ended); a dry run counts them all."""
        size = _batch(batch_size)
        if dry_run:
            count = await self.store.pool.fetchval(Q.bulk_count_dead_letters, *self._dead_letter_args(f), True)
            return BulkOutcome(matched=int(count))
        ids, token = await self._dead_letter_batch(f, True, page_token, size)
        out = BulkOutcome(matched=len(ids), next_page_token=token)
        for entry_id in ids:
            why = await self._requeue_one(entry_id)
            if why is None:
                out.affected += 1
            else:
                out.skip(f"{entry_id}: {why}")
        return out

    async def _requeue_one(self, entry_id: UUID) -> str | None:
        """Requeue an entry not requeued yet, in its own statement; None, or why not."""
        try:
            task_id = await self.store.pool.fetchval(Q.bulk_requeue_dead_letter, entry_id, self.store.now())
        except (asyncpg.UniqueViolationError, asyncpg.ObjectNotInPrerequisiteStateError) as exc:
            return str(exc).split("\n")[0]  # the trigger's refusal: live task, or an ended workflow
        return None if task_id is not None else "requeued or deleted by someone else meanwhile"

    async def delete_dead_letters(
        self, f: DeadLetterFilter, *, dry_run: bool = False, page_token: str | None = None, batch_size: int = 0,
    ) -> BulkOutcome:
        """Delete the next batch of entries under the filter (a standalone activity's dead task
        with its entry); a dry run counts them all."""
        size = _batch(batch_size)
        if dry_run:
            count = await self.store.pool.fetchval(Q.bulk_count_dead_letters, *self._dead_letter_args(f), False)
            return BulkOutcome(matched=int(count))
        ids, token = await self._dead_letter_batch(f, False, page_token, size)
        out = BulkOutcome(matched=len(ids), next_page_token=token)
        if ids:
            out.affected = int(await self.store.pool.fetchval(Q.bulk_delete_dead_letters, ids))
            for _ in range(len(ids) - out.affected):
                out.skip("an entry was deleted by someone else while the batch ran")
        return out
