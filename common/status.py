"""The one place where durable errors meet gRPC status codes, both directions.

RESOURCE_EXHAUSTED has two senders: durable's payload rules (a payload over
DURABLE_MAX_PAYLOAD_BYTES, the caller's fault) and gRPC itself (a message over a channel's
size limit: a batch too large, nobody's fault). The control plane marks its own errors with
the trailing metadata `durable-error: <type>`; a RESOURCE_EXHAUSTED without it is the
transport's, and becomes MessageTooLarge, never PayloadTooLarge.
"""

from __future__ import annotations

from typing import Any

import grpc

from durable.common import errors

# Trailing metadata key the control plane sets on every error it raises on purpose.
ERROR_TYPE_KEY = "durable-error"
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
    grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
}


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC status for a durable error, or None when it is not one of ours."""
    for kind, code in _TO_CODE:
        if isinstance(exc, kind):
            return code
    return None


def error_for(code: grpc.StatusCode, message: str, *, from_durable: bool = True) -> errors.DurableError:
    """The durable error a client raises for a status it received.

    `from_durable`: the status was raised by durable's own rules (trailing metadata, or a
    per-item outcome of a batch). A RESOURCE_EXHAUSTED that was not is the transport's
    message size limit: MessageTooLarge.
    """
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not from_durable:
        return errors.MessageTooLarge(message)
    return _FROM_CODE.get(code, errors.DurableError)(message)


def durable_error_type(exc: Any) -> str | None:
    """The `durable-error` trailing metadata of an AioRpcError, if any."""
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - no metadata at all
        return None
    return next((str(value) for key, value in metadata if key == ERROR_TYPE_KEY), None)


def overloaded(exc: Any) -> bool:
    """Whether a failed call was refused by the control plane's call limits (retry later)."""
    return bool(exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and durable_error_type(exc) == "Overloaded")


def raised_by_durable(exc: Any) -> bool:
    """Whether an AioRpcError carries the control plane's `durable-error` trailing metadata."""
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - no metadata at all
        return False
    return any(key == ERROR_TYPE_KEY for key, _ in metadata)


def error_for_rpc(exc: Any, message: str) -> errors.DurableError:
    """The durable error for a failed call (a grpc.aio.AioRpcError), telling the control
    plane's own RESOURCE_EXHAUSTED from the transport's, and its call limits from both."""
    if overloaded(exc):
        return errors.Overloaded(message)
    return error_for(exc.code(), message, from_durable=raised_by_durable(exc))
