"""Idempotency keys of EnqueueActivity: the same key within the window returns the first task.

A key row is written before its task, in the task's transaction, so a duplicate never touches
the queue table: the key's primary key makes a concurrent enqueue of the same key wait for the
first one's commit, then read its row. A key older than the window is taken over by the next
enqueue that names it (and retention deletes the rest). Unkeyed enqueues never come here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from durable.common.errors import InvalidArgument
from durable.common.policies import ActivityOptions
from durable.controlplane.store.base import StoreBase, check_name, policy_json
from durable.controlplane.store.queries import Q

DEFAULT_WINDOW_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What an enqueue did: the task's id, and whether an earlier enqueue with the same key
    had already made it (`duplicate`)."""

    task_id: UUID
    duplicate: bool = False


class IdempotencyStore(StoreBase):
    def __init__(self, *args: Any, window: float = DEFAULT_WINDOW_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not window > 0:
            raise ValueError("the idempotency window must be > 0 seconds")
        self.window = window

    async def enqueue_activity_once(
        self,
        activity_type: str,
        input: Any,
        key: str,
        *,
        options: ActivityOptions | dict[str, Any] | None = None,
        trace: tuple[str, str] | None = None,
    ) -> Enqueued:
        """Queue a standalone activity unless `key` was used within the window; then return
        the first task (duplicate=True). The same key for another activity type is refused."""
        check_name(activity_type, "activity_type")
        check_name(key, "idempotency_key")
        opts = options if isinstance(options, ActivityOptions) else ActivityOptions.parse(options, field="options")
        input_json = self.payload(input, "input")
        policy = opts.retry_policy
        trace_id, span_id = trace or (None, None)
        for _ in range(3):  # a key that vanished between the two statements (retention): again
            now = self.now()
            fresh = uuid.uuid4()
            async with self.pool.acquire() as conn, conn.transaction():
                taken = await conn.fetchval(
                    Q.take_idempotency_key, key, fresh, activity_type, now, now - timedelta(seconds=self.window))
                if taken is not None:
                    await conn.execute(
                        Q.insert_keyed_task, fresh, activity_type, input_json, opts.priority,
                        now + timedelta(seconds=opts.start_delay), policy.max_attempts, policy_json(opts),
                        opts.schedule_to_start_timeout, opts.start_to_close_timeout, opts.heartbeat_timeout,
                        now, trace_id, span_id, opts.concurrency_key, opts.concurrency_limit,
                    )
                    return Enqueued(fresh, duplicate=False)
                first = await conn.fetchrow(Q.get_idempotency_key, key)
            if first is None:
                continue
            if first["activity_type"] != activity_type:
                raise InvalidArgument(
                    f"idempotency_key {key!r} was used for activity type {first['activity_type']!r} "
                    f"(task {first['task_id']}); use another key for {activity_type!r}"
                )
            return Enqueued(first["task_id"], duplicate=True)
        raise InvalidArgument(f"idempotency_key {key!r} is being deleted as often as it is used; try again")
