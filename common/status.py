"""The one place where durable errors meet gRPC status codes, both directions."""

from __future__ import annotations

import grpc

from durable.common import errors

# The start of the UNAVAILABLE details the control plane sends when *its database* is away (as
# opposed to the control plane itself not answering); clients tell the two apart by it.
DATABASE_UNAVAILABLE_DETAILS = "the control plane cannot reach its database"

_TO_CODE: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (errors.PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.StaleAttempt, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConcurrencyConflict, grpc.StatusCode.ABORTED),
    (errors.TimedOut, grpc.StatusCode.DEADLINE_EXCEEDED),
]

_FROM_CODE: dict[grpc.StatusCode, type[errors.DurableError]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.PayloadTooLarge,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: errors.WrongState,
    grpc.StatusCode.ABORTED: errors.ConcurrencyConflict,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.TimedOut,
}


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC status for a durable error, or None when it is not one of ours."""
    for kind, code in _TO_CODE:
        if isinstance(exc, kind):
            return code
    return None


def error_for(code: grpc.StatusCode, message: str) -> errors.DurableError:
    """The durable error a client raises for a status it received."""
    return _FROM_CODE.get(code, errors.DurableError)(message)
