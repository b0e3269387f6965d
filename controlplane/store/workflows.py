"""Workflow instances and their event log: start, read, append, signal, cancel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from durable.common.errors import InvalidArgument, NotFound, WrongState
from durable.controlplane.store import lineage
from durable.controlplane.store.base import StoreBase, check_name, dumps
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import Event, Signal, WorkflowInstance

WORKFLOW_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")
_TRANSITIONS = {
    "pending": {"running", "completed", "failed", "cancelled"},
    "running": {"completed", "failed", "cancelled"},
}


class WorkflowStore(StoreBase):
    async def start_workflow(
        self,
        workflow_type: str,
        input: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        *,
        trace: tuple[str, str] | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> tuple[WorkflowInstance, bool]:
        """Start a workflow; with a caller-chosen id that exists, return the existing one
        (WrongState if that one has another type).

        `trace` is the (trace_id, span_id) its tasks' spans descend from. With a concurrency
        key and limit, at most that many workflows of the key run at once: this one stays
        pending until it may start. Returns (instance, created).
        """
        check_name(workflow_type, "workflow_type")
        key = check_concurrency(concurrency_key, concurrency_limit)
        if workflow_id is not None and workflow_id != "":
            check_name(workflow_id, "workflow_id")
        else:
            workflow_id = str(uuid.uuid4())
        input_json = self.payload(input, "input")
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            created = await self._create_workflow(conn, workflow_type, input_json, workflow_id, now, trace, key)
            if not created:
                existing = WorkflowInstance.from_row(await conn.fetchrow(Q.get_workflow, workflow_id))
                if existing.workflow_type != workflow_type:
                    raise WrongState(
                        f"workflow {workflow_id!r} already exists with type {existing.workflow_type!r}, "
                        f"not {workflow_type!r}; choose another id"
                    )
                return existing, False
            row = await conn.fetchrow(Q.get_workflow, workflow_id)
        self.observer.workflow_started(workflow_type)
        return WorkflowInstance.from_row(row), True

    async def _create_workflow(
        self,
        conn: asyncpg.Connection,
        workflow_type: str,
        input_json: str,
        workflow_id: str,
        now: datetime,
        trace: tuple[str, str] | None = None,
        key: tuple[str, int] | None = None,
    ) -> bool:
        """Insert the workflow and its WorkflowStarted event in the caller's transaction;
        False (nothing written) when the id exists. The caller tells the observer. A keyed
        workflow's first decision task carries its (concurrency key, limit)."""
        trace_id, span_id = trace or (None, None)
        key_name, key_limit = key or (None, None)
        inserted = await conn.fetchval(Q.insert_workflow, workflow_id, workflow_type, input_json, now, trace_id, span_id,
                                       key_name, key_limit)
        if inserted is None:
            return False
        # the row is ours alone until commit: no lock needed to append its first event
        await self._append(
            conn,
            workflow_id,
            0,
            [("WorkflowStarted", {"workflow_type": workflow_type, "input": json.loads(input_json),
                                  "random_seed": self.rng.getrandbits(63)})],
            now,
            wake=key is None,
        )
        if key is not None:
            await conn.execute(Q.insert_keyed_decision, workflow_id, workflow_type, now, self.workflow_task_max_attempts,
                               trace_id, span_id, key_name, key_limit)
        return True

    async def get_workflow(self, workflow_id: str) -> WorkflowInstance:
        row = await self.pool.fetchrow(Q.get_workflow, workflow_id)
        if row is None:
            raise NotFound(f"workflow {workflow_id!r} does not exist")
        return WorkflowInstance.from_row(row)  # type: ignore[no-any-return]

    async def list_workflows(
        self, status: str | None = None, workflow_type: str | None = None, limit: int = 50
    ) -> list[WorkflowInstance]:
        if status is not None and status not in WORKFLOW_STATUSES:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(WORKFLOW_STATUSES)}")
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        if status is not None and workflow_type is not None:
            rows = await self.pool.fetch(Q.list_workflows_by_type_and_status, workflow_type, status, limit)
        elif status is not None:
            rows = await self.pool.fetch(Q.list_workflows_by_status, status, limit)
        elif workflow_type is not None:
            rows = await self.pool.fetch(Q.list_workflows_by_type, workflow_type, limit)
        else:
            rows = await self.pool.fetch(Q.list_workflows, limit)
        return [WorkflowInstance.from_row(r) for r in rows]

    async def load_events(self, workflow_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[Event]:
        """Events after `after_seq`, in order; at most `limit` of them (None: all)."""
        rows = await self.pool.fetch(Q.load_events, workflow_id, after_seq, limit)
        if not rows and await self.pool.fetchval(Q.get_workflow, workflow_id) is None:
            raise NotFound(f"workflow {workflow_id!r} does not exist")
        return [Event.from_row(r) for r in rows]

    async def append_events(
        self,
        workflow_id: str,
        expected_last_seq: int,
        events: Sequence[tuple[str, dict[str, Any]]],
    ) -> int:
        """Append events if the history still ends at `expected_last_seq`.

        A conflicting append raises ConcurrencyConflict and writes nothing.
        """
        checked = []
        for event_type, data in events:
            check_name(event_type, "event_type")
            self.payload(data, "event_data")
            checked.append((event_type, data))
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._append(conn, workflow_id, expected_last_seq, checked, now)

    async def set_workflow_status(
        self,
        workflow_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> WorkflowInstance:
        """Move a workflow along pending -> running -> completed | failed | cancelled."""
        if status not in WORKFLOW_STATUSES:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(WORKFLOW_STATUSES)}")
        result_json = self.payload(result, "result") if result is not None else None
        error_json = dumps(error) if error is not None else None
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            wf = await self._lock_workflow(conn, workflow_id)
            if status not in _TRANSITIONS.get(wf.status, set()):
                raise WrongState(f"workflow {workflow_id!r} cannot go from {wf.status} to {status}")
            row = await conn.fetchrow(Q.set_workflow_status, workflow_id, status, result_json, error_json, now)
            if status in TERMINAL:
                await self._cancel_open_steps(conn, workflow_id, now)
                await lineage.tell_parent(self, conn, wf, status, result if status == "completed" else error, now)
        if status in TERMINAL:
            await lineage.cancel_children(self, workflow_id, now)
        return WorkflowInstance.from_row(row)  # type: ignore[no-any-return]

    async def signal_workflow(
        self, workflow_id: str, signal_type: str, payload: dict[str, Any] | None = None
    ) -> int:
        """Deliver a custom signal: recorded, then handed to the workflow in order, once.

        Returns the sequence number of the SignalReceived event.
        """
        check_name(signal_type, "signal_type")
        if signal_type == "cancel":
            raise InvalidArgument("use cancel_workflow to cancel a workflow")
        payload_json = self.payload(payload, "payload")
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            wf = await self._lock_workflow(conn, workflow_id)
            if wf.is_terminal:
                raise WrongState(f"workflow {workflow_id!r} is {wf.status}; it takes no more signals")
            seq = await self._append(
                conn,
                workflow_id,
                wf.last_event_seq,
                [("SignalReceived", {"signal_type": signal_type, "payload": {} if payload is None else payload})],
                now,
                wake=True,
            )
            await conn.execute(Q.insert_signal, workflow_id, signal_type, payload_json, seq, now)
        return seq

    async def cancel_workflow(self, workflow_id: str, reason: str = "", *, terminate: bool = False) -> int:
        """Ask a workflow to cancel: a WorkflowCancelRequested event reaches its code (a
        CancelledError where it waits; its finally blocks and compensations run) and it ends
        `cancelled` when the code lets the cancellation out. With `terminate` it ends
        `cancelled` at once instead, its code not run again, its tasks and timers cancelled.

        Asking again, or cancelling a cancelled workflow, is a no-op; returns the number of
        tasks cancelled at once (terminate only).
        """
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            cancelled = await self._cancel_workflow(conn, workflow_id, reason, terminate, now)
        if terminate:  # after the commit: the children's locks come after the parent's (lineage)
            await lineage.cancel_children(self, workflow_id, now)
        return cancelled

    async def _cancel_workflow(
        self, conn: asyncpg.Connection, workflow_id: str, reason: str, terminate: bool, now: datetime
    ) -> int:
        """cancel_workflow in the caller's transaction (it locks the workflow's row)."""
        wf = await self._lock_workflow(conn, workflow_id)
        if wf.status == "cancelled":
            return 0
        if wf.is_terminal:
            raise WrongState(f"workflow {workflow_id!r} already ended {wf.status}")
        if not terminate:
            if wf.cancel_requested_at is not None:
                return 0
            seq = await self._append(
                conn, workflow_id, wf.last_event_seq,
                [("WorkflowCancelRequested", {"reason": reason})], now, wake=True,
            )
            await conn.execute(Q.insert_signal, workflow_id, "cancel", dumps({"reason": reason}), seq, now)
            await conn.execute(Q.request_cancel, workflow_id, now)
            return 0
        seq = await self._append(
            conn, workflow_id, wf.last_event_seq,
            [("WorkflowCancelled", {"reason": reason, "terminated": True})], now,
        )
        await conn.execute(Q.insert_signal, workflow_id, "cancel", dumps({"reason": reason}), seq, now)
        await conn.execute(Q.mark_signals_delivered, workflow_id, seq, now)
        cancelled = await self._cancel_open_steps(conn, workflow_id, now)
        await conn.execute(Q.set_workflow_status, workflow_id, "cancelled", None, None, now)
        await lineage.tell_parent(self, conn, wf, "cancelled", reason or "terminated", now)
        return cancelled

    async def pin_workflow(self, workflow_id: str, pinned: bool = True) -> bool:
        """Keep a workflow for ever (retention skips it), or unpin it; returns the new state."""
        check_name(workflow_id, "workflow_id")
        value = await self.pool.fetchval(Q.pin_workflow, workflow_id, pinned)
        if value is None:
            raise NotFound(f"workflow {workflow_id!r} does not exist")
        return bool(value)

    async def list_signals(self, workflow_id: str) -> list[Signal]:
        rows = await self.pool.fetch(Q.list_signals, workflow_id)
        return [Signal.from_row(r) for r in rows]


def check_concurrency(key: str | None, limit: int | None) -> tuple[str, int] | None:
    """A workflow's (concurrency key, limit), both or neither given; None for neither."""
    if not key and not limit:
        return None
    if not key or not limit:
        raise InvalidArgument("concurrency_key and concurrency_limit go together: give a key and a limit >= 1, or neither")
    check_name(key, "concurrency_key")
    if not 1 <= limit <= 1_000_000:
        raise InvalidArgument(f"concurrency_limit must be from 1 to 1000000, got {limit}")
    return key, int(limit)
