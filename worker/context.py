"""What an activity sees of its task: identity, attempt, heartbeats and cancellation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from durable.common import ActivityCancelled, DurableError
from durable.common.payloads import decode_payload, encode_payload


class ActivityContext:
    """Passed as the first argument of every activity.

    - `attempt` (1-based), `task_id`, `workflow_id` (None for a standalone activity),
      `activity_id`, `activity_type`, `max_attempts`.
    - `heartbeat(details)` records progress (a JSON object); it is reported to the control
      plane with the worker's next batched task heartbeat, and a later attempt sees it as
      `previous_heartbeat_details`. It raises ActivityCancelled once the task is cancelled,
      which lets synchronous activities stop cooperatively.
    - `cancelled` is an asyncio.Event set when the task is cancelled (the workflow was
      cancelled, the worker lost the task, or the worker is shutting down); `is_cancelled`
      reads it from any thread. Async activities are also interrupted with CancelledError
      after the worker's cancel grace period.
    """

    def __init__(
        self,
        *,
        task_id: str,
        attempt: int,
        activity_type: str,
        activity_id: str = "",
        workflow_id: str | None = None,
        max_attempts: int = 0,
        previous_heartbeat_details: dict[str, Any] | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.activity_type = activity_type
        self.activity_id = activity_id
        self.workflow_id = workflow_id
        self.max_attempts = max_attempts
        self.previous_heartbeat_details = previous_heartbeat_details
        self._cancelled: asyncio.Event | None = None  # made when first asked for: most never are
        self.cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._details_json = ""

    @classmethod
    def for_task(cls, task: Any) -> ActivityContext:
        """The context of a claimed activity task (a durable.v1.Task)."""
        previous: dict[str, Any] | None = None
        if task.heartbeat_details_json:
            try:
                previous = decode_payload(task.heartbeat_details_json, field="heartbeat_details")
            except DurableError:
                previous = None
        return cls(
            task_id=task.id,
            attempt=task.attempt,
            activity_type=task.activity_type,
            activity_id=task.activity_id,
            workflow_id=task.workflow_id or None,
            max_attempts=task.max_attempts,
            previous_heartbeat_details=previous,
        )

    @property
    def cancelled(self) -> asyncio.Event:
        """Set when the task is cancelled. Ask for it on the event loop (async activities)."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
            if self.cancel_reason is not None:
                self._cancelled.set()
        return self._cancelled

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_reason is not None

    def heartbeat(self, details: dict[str, Any] | None = None) -> None:
        """Record progress; reported with the next batched heartbeat. Thread-safe."""
        if self.is_cancelled:
            raise ActivityCancelled(self.cancel_reason or "the task was cancelled")
        text = encode_payload(details, field="heartbeat details", allow_none=True)
        with self._lock:
            self._details_json = text

    @property
    def heartbeat_details_json(self) -> str:
        """The latest recorded progress as JSON text ("" when none)."""
        with self._lock:
            return self._details_json

    def _cancel(self, reason: str) -> None:
        """Mark the task cancelled (called by the worker, on the event loop)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self._cancelled is not None:
            self._cancelled.set()
