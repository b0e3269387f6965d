"""The base class of workflows: deterministic handlers that return actions.

A workflow object is rebuilt from scratch for every decision: the replay engine calls its
handlers for every event of the history, in order. Handlers must therefore be deterministic
(no clocks, randomness or I/O: activities do those) and keep their state on `self`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable.worker.workflows.commands import Action, fail


class Workflow:
    """Optional base class for `@app.workflow` classes, with the default handlers.

    Handlers (override the ones you need; each returns a list of actions, or None):

    - ``on_start(input)``: the workflow started with `input`.
    - ``on_activity_completed(activity_id, result, activity_type)``.
    - ``on_activity_failed(activity_id, error, activity_type)``: the activity failed for good
      (retries exhausted or non-retryable); `error` is ``{"message", "type"}``. The default
      fails the workflow with the activity's error.
    - ``on_timer_fired(timer_id)``.
    - ``on_signal(signal_type, payload)``: signals arrive in the order they were received.

    The trailing `activity_type` argument is passed only to handlers that declare it.
    `workflow_id` and `workflow_type` are set before the first handler runs.
    """

    workflow_id: str = ""
    workflow_type: str = ""

    def on_start(self, input: dict[str, Any]) -> Sequence[Action] | None:
        return []

    def on_activity_completed(
        self, activity_id: str, result: dict[str, Any], activity_type: str = ""
    ) -> Sequence[Action] | None:
        return []

    def on_activity_failed(
        self, activity_id: str, error: dict[str, Any], activity_type: str = ""
    ) -> Sequence[Action] | None:
        return default_on_activity_failed(activity_id, error)

    def on_timer_fired(self, timer_id: str) -> Sequence[Action] | None:
        return []

    def on_signal(self, signal_type: str, payload: dict[str, Any]) -> Sequence[Action] | None:
        return []


def default_on_activity_failed(activity_id: str, error: dict[str, Any]) -> list[Action]:
    """The default reaction to a failed activity: fail the workflow with its error."""
    message = str(error.get("message") or f"activity {activity_id} failed")
    return [
        fail(
            f"activity {activity_id} failed: {message}",
            type=str(error.get("type") or "ActivityFailed"),
            details={"activity_id": activity_id, "error": error},
        )
    ]
