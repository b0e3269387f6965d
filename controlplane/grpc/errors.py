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

from durable.common.errors import DurableError
from durable.common.logs import bind
from durable.common.status import code_for

logger = logging.getLogger(__name__)

R = TypeVar("R")
_LOGGED_FIELDS = ("worker_id", "workflow_id", "task_id", "attempt")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]

# Connection-level failures: the database is away or restarting.
_UNAVAILABLE = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
)


def rpc(handler: Handler[R]) -> Handler[R]:
    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        bind(**{f: getattr(request, f) for f in _LOGGED_FIELDS if hasattr(request, f)})
        try:
            return await handler(self, request, context)
        except DurableError as exc:
            code = code_for(exc) or grpc.StatusCode.INTERNAL
            await context.abort(code, str(exc))
        except asyncpg.DataError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid value: {exc}")
        except asyncpg.IntegrityConstraintViolationError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rejected by a database constraint: {exc}")
        except _UNAVAILABLE as exc:
            logger.warning("%s: database unavailable: %s", handler.__name__, exc)
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the control plane cannot reach its database ({type(exc).__name__}); retry with backoff",
            )
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.exceptions.OperatorInterventionError):
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"the database is restarting: {exc}; retry with backoff")
            logger.exception("%s failed in the database", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"database error in {handler.__name__}; see control-plane logs")
        raise AssertionError("unreachable")  # context.abort always raises

    return wrapper
