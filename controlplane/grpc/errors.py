"""Every RPC handler runs inside `rpc`: durable errors become their gRPC status (mapped once, in
durable.common.status), a lost database becomes UNAVAILABLE, and anything unexpected is logged
and answered INTERNAL without leaking internals."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc

from durable.common.errors import DurableError, InvalidArgument
from durable.common.logs import bind
from durable.common.status import DATABASE_UNAVAILABLE_DETAILS, ERROR_TYPE_KEY, code_for
from durable.controlplane.store.base import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

R = TypeVar("R")
_LOGGED_FIELDS = ("worker_id", "workflow_id", "task_id", "attempt")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]




class Malformed:
    """Stands in for a request whose bytes are not the expected message."""

    def __init__(self, message_name: str, error: Exception) -> None:
        self.message_name = message_name
        self.error = error


def tolerant(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer that never raises (gRPC would answer UNKNOWN and log a trace)."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as exc:  # DecodeError, RecursionError on hostile nesting, ...
            return Malformed(name, exc)

    return parse


@functools.cache
def _logged_fields(descriptor: Any) -> tuple[str, ...]:
    """The ids a request of this message type carries for the log context (read once per type)."""
    return tuple(f for f in _LOGGED_FIELDS if f in descriptor.fields_by_name)


def rpc(handler: Handler[R]) -> Handler[R]:
    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        if isinstance(request, Malformed):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message_name} message ({request.error}); "
                "use the durable.v1 protobuf definitions",
            )
        descriptor = getattr(request, "DESCRIPTOR", None)  # not every wrapped call takes a message
        logged = _logged_fields(descriptor) if descriptor is not None else ()
        if logged:  # a call without such fields (EnqueueActivity) binds nothing, as before
            bind(**{f: getattr(request, f) for f in logged})
        try:
            return await handler(self, request, context)
        except DurableError as exc:
            code = code_for(exc) or grpc.StatusCode.INTERNAL
            # marks the error as durable's own (a RESOURCE_EXHAUSTED without it is gRPC's)
            await context.abort(code, str(exc), trailing_metadata=((ERROR_TYPE_KEY, type(exc).__name__),))
        except asyncpg.DataError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid value: {exc}")
        except asyncpg.IntegrityConstraintViolationError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rejected by a database constraint: {exc}")
        except DATABASE_UNAVAILABLE as exc:  # away or restarting
            # The health check and the loops log the outage once; one line per call would not.
            logger.debug("%s: database unavailable: %s", handler.__name__, exc)
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{DATABASE_UNAVAILABLE_DETAILS} ({type(exc).__name__}); retry with backoff",
            )
        except asyncpg.PostgresError:
            logger.exception("%s failed in the database", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"database error in {handler.__name__}; see control-plane logs")
        raise AssertionError("unreachable")  # context.abort always raises

    return wrapper


def generic_handler(servicer: Any, service: Any) -> grpc.GenericRpcHandler:
    """The service's unary methods, with tolerant request parsing."""
    from durable.proto.v1 import durable_pb2 as pb

    handlers = {}
    for method in service.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=tolerant(request_class),
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def required(value: str, field: str) -> str:
    """A request field that must not be empty."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    return value
