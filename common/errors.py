"""The error types of durable. Each carries its policy; gRPC codes are mapped in one place
(`durable.common.status`)."""

from __future__ import annotations

from datetime import timedelta


class DurableError(Exception):
    """Base of every error durable raises on purpose."""


class InvalidArgument(DurableError):
    """A request or a setting is malformed: the message says which field and why."""


class NotFound(DurableError):
    """The named workflow, task or DLQ entry does not exist."""


class PayloadTooLarge(InvalidArgument):
    """A payload is larger than the configured limit."""


class MessageTooLarge(DurableError):
    """gRPC refused a message over its size limit (RESOURCE_EXHAUSTED from the transport, not
    from durable's payload rules). No payload broke a rule: the sender splits its batch or
    sends less; it is never reported as the user's error."""


class Overloaded(DurableError):
    """The control plane refused the call because it serves its limit of calls at once
    (DURABLE_MAX_CONCURRENT_RPCS or DURABLE_MAX_WAITING_RPCS): retry with backoff."""


class Unimplemented(DurableError):
    """The control plane does not know the call (an older version): use an older one."""


class ConcurrencyConflict(DurableError):
    """An optimistic write lost: the workflow history moved since the caller read it."""


class StaleAttempt(DurableError):
    """The caller no longer owns this attempt of the task (it was taken back, retried,
    completed or cancelled); its call changed nothing."""


class WrongState(DurableError):
    """The object exists but is in a state that does not allow the operation
    (for example signalling a completed workflow)."""


class TimedOut(DurableError):
    """Nobody answered in time (a query no worker took up)."""


class RetryableError(DurableError):
    """Raised by an activity for a failure worth retrying, optionally with the next delay."""

    def __init__(
        self, message: str, *, type: str | None = None, next_retry_delay: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.type = type or self.__class__.__name__
        self.next_retry_delay = next_retry_delay


class NonRetryableError(DurableError):
    """Raised by an activity for a failure that no retry can fix: the task goes to the DLQ."""

    def __init__(self, message: str, *, type: str | None = None) -> None:
        super().__init__(message)
        self.type = type or self.__class__.__name__


class ActivityCancelled(DurableError):
    """The activity's task was cancelled (its workflow was cancelled or ended)."""
