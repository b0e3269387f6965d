"""Batched enqueues and starts: many standalone activities, or many workflow starts, in one
statement and one transaction (EnqueueActivities, StartWorkflows).

The items come checked (payload text, parsed options): what is left to fail here is the
database. Ids are chosen here, so the answer follows the items' order whatever order the
statement's rows take. A batch that the database refuses as a whole (a value no check up front
caught) is not half-applied: the transaction rolls back, and the caller may try the items one
by one to find the bad one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from durable.common.errors import DurableError, WrongState
from durable.common.policies import ActivityOptions
from durable.controlplane.store.base import StoreBase, policy_json
from durable.controlplane.store.queries import Q


@dataclass(frozen=True, slots=True)
class NewActivity:
    """A standalone activity to enqueue: its type, its input as checked JSON text, its options."""

    activity_type: str
    input_json: str
    options: ActivityOptions
    trace: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """A workflow to start: its id (chosen by the caller or made up), type and input as checked JSON text."""

    workflow_id: str
    workflow_type: str
    input_json: str
    trace: tuple[str, str] | None = None


class BatchStore(StoreBase):
    async def enqueue_activities(self, items: Sequence[NewActivity]) -> list[UUID]:
        """Queue standalone activities in one INSERT; their task ids, in item order."""
        if not items:
            return []
        now = self.now()
        ids = [uuid.uuid4() for _ in items]
        columns: tuple[list[object], ...] = tuple([] for _ in range(11))
        (types, inputs, priorities, visible, attempts, policies, to_start, to_close, heartbeat,
         trace_ids, span_ids) = columns
        for item in items:
            opts = item.options
            trace_id, span_id = item.trace or (None, None)
            types.append(item.activity_type)
            inputs.append(item.input_json)
            priorities.append(opts.priority)
            visible.append(now + timedelta(seconds=opts.start_delay) if opts.start_delay else now)
            attempts.append(opts.retry_policy.max_attempts)
            policies.append(policy_json(opts))
            to_start.append(opts.schedule_to_start_timeout)
            to_close.append(opts.start_to_close_timeout)
            heartbeat.append(opts.heartbeat_timeout)
            trace_ids.append(trace_id)
            span_ids.append(span_id)
        async with self.pool.acquire() as conn:
            await conn.execute(Q.insert_standalone_tasks, now, ids, *columns)
        return ids

    async def start_workflows(self, items: Sequence[NewWorkflow]) -> list[tuple[str, bool] | DurableError]:
        """Start workflows in one statement: per item (workflow id, created), or WrongState when
        the id exists with another type. An id that exists (or comes twice) starts nothing."""
        if not items:
            return []
        now = self.now()
        first: dict[str, NewWorkflow] = {}
        for item in items:
            first.setdefault(item.workflow_id, item)
        fresh = list(first.values())
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                Q.insert_started_workflows, now,
                [w.workflow_id for w in fresh], [w.workflow_type for w in fresh], [w.input_json for w in fresh],
                [w.trace[0] if w.trace else None for w in fresh], [w.trace[1] if w.trace else None for w in fresh],
                [self._started_event(w) for w in fresh], self.workflow_task_max_attempts,
            )
            created = {r["id"] for r in rows}
            types = {workflow_id: first[workflow_id].workflow_type for workflow_id in created}
            missing = [workflow_id for workflow_id in first if workflow_id not in created]
            if missing:
                types.update((r["id"], r["workflow_type"]) for r in await conn.fetch(Q.workflow_types_of, missing))
        out: list[tuple[str, bool] | DurableError] = []
        for item in items:
            if item.workflow_id in created and first[item.workflow_id] is item:
                out.append((item.workflow_id, True))
                continue
            kind = types.get(item.workflow_id)
            if kind is None:  # deleted between the insert and the read (retention)
                out.append(WrongState(f"workflow {item.workflow_id!r} was deleted while it was started; start it again"))
            elif kind != item.workflow_type:
                out.append(WrongState(
                    f"workflow {item.workflow_id!r} already exists with type {kind!r}, "
                    f"not {item.workflow_type!r}; choose another id"))
            else:
                out.append((item.workflow_id, False))
        for item in fresh:
            if item.workflow_id in created:
                self.observer.workflow_started(item.workflow_type)
        return out

    def _started_event(self, w: NewWorkflow) -> str:
        # the event's JSON text around the checked input text: the input is not parsed again
        seed = self.rng.getrandbits(63)
        return f'{{"workflow_type":{json.dumps(w.workflow_type)},"input":{w.input_json},"random_seed":{seed}}}'
