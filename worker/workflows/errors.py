"""What workflow code raises, and what the runtime raises at it."""

from __future__ import annotations

from typing import Any


class WorkflowFailed(Exception):
    """Raise it to end the workflow as failed (the only way, with the workflow's own
    `failure_exceptions` option, that workflow code fails a workflow).

    >>> raise WorkflowFailed("no answer after 8 rounds", type="TooManyRounds")
    """

    def __init__(self, message: str, *, type: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "WorkflowFailed"
        self.details = details


class ActivityError(Exception):
    """An activity failed for good (retries exhausted, or a non-retryable error).

    Raised at the `await` of the activity in workflow code, which may catch it (and
    compensate). Left uncaught it fails the workflow with the activity's error.
    `type` is the error type the activity raised; `attempts` how many it took.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str,
        activity_type: str,
        activity_id: str,
        attempts: int = 0,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.activity_type = activity_type
        self.activity_id = activity_id
        self.attempts = attempts
        self.reason = reason

    def __str__(self) -> str:
        return (f"activity {self.activity_id} ({self.activity_type}) failed after "
                f"{self.attempts} attempt(s): {self.type}: {self.message}")


class WorkflowCodeError(Exception):
    """The workflow's code broke: it raised, returned something it may not, or broke a
    determinism rule. The decision fails and is retried; the workflow stays running,
    `blocked` with this error, until fixed code is deployed."""


class NonDeterminismError(WorkflowCodeError):
    """Replaying the history, the code issued a command other than the one recorded at that
    position (or none where one is recorded). The message names the event's sequence number,
    what the history holds and what the code did."""


class DeterminismViolation(WorkflowCodeError):
    """Workflow code called something that would break replay (a real clock, sleep, I/O,
    threads); the message names the call and the rule (see durable.worker.workflows.rules)."""


class ChildWorkflowError(Exception):
    """A child workflow ended failed or cancelled, or could not start (its id was taken).

    Raised at the `await ctx.child(...)` in the parent, which may catch it. Left uncaught it
    fails the parent with the child's error. `type` is the child's error type
    ("ChildWorkflowCancelled" when it was cancelled, "ChildWorkflowAlreadyExists" when its
    id was taken), `child_id` its workflow id.
    """

    def __init__(self, message: str, *, type: str, child_id: str, workflow_type: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.child_id = child_id
        self.workflow_type = workflow_type
        self.details = details

    def __str__(self) -> str:
        return f"child workflow {self.child_id} ({self.workflow_type}) failed: {self.type}: {self.message}"


class ContinuedAsNew(BaseException):  # noqa: N818 - a control-flow signal, like CancelledError
    """What `ctx.continue_as_new(input)` raises to end the run (a BaseException, so that an
    `except Exception` in workflow code does not swallow it)."""

    def __init__(self, input: Any) -> None:
        super().__init__("continue as new")
        self.input = input
