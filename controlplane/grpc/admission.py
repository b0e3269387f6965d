"""Bounded load: how many calls the control plane serves at once.

Two budgets, so neither kind of call can starve the other:

- short calls (everything below but the health service): at most DURABLE_MAX_CONCURRENT_RPCS
  in flight at once (default 1000). Each holds a database connection for a moment; past the
  cap they would only queue for the pool and grow memory, so the call is refused at once with
  RESOURCE_EXHAUSTED, a one-line message naming the setting, and `durable-error: Overloaded`
  (clients raise Overloaded; workers retry it with backoff without reconnecting).
- waiting calls (LONG_LIVED: long-poll claims, WaitWorkflow, QueryWorkflow, KEDA's
  StreamIsActive): they sleep most of their life without a connection, so they have their own,
  larger budget, DURABLE_MAX_WAITING_RPCS (default 10000). A fleet of long-polling workers
  never takes a short call's slot, and a burst of short calls never refuses a long-poll.

The health service is never counted: probes must answer under any load.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from durable.common.status import ERROR_TYPE_KEY

HEALTH_PREFIX = "/grpc.health.v1.Health/"
LONG_LIVED = frozenset({
    "/durable.v1.WorkerService/ClaimTasks",
    "/durable.v1.ClientService/WaitWorkflow",
    "/durable.v1.ClientService/QueryWorkflow",
    "/externalscaler.ExternalScaler/StreamIsActive",
})
OVERLOADED = "Overloaded"


class _Budget:
    def __init__(self, limit: int, setting: str, kind: str, on_refused: Callable[[str], None] | None) -> None:
        self.on_refused = on_refused
        self.limit = limit
        self.setting = setting
        self.kind = kind
        self.in_flight = 0
        self.refused = 0

    def message(self) -> str:
        return (f"the control plane is serving its limit of {self.limit} {self.kind} calls at once "
                f"({self.setting}); retry with backoff, or raise {self.setting}")


class CallLimiter(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses a call beyond its budget (see the module docstring); counts what it refused."""

    def __init__(
        self, max_concurrent: int, max_waiting: int, *, on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.short = _Budget(max_concurrent, "DURABLE_MAX_CONCURRENT_RPCS", "short", on_refused)
        self.waiting = _Budget(max_waiting, "DURABLE_MAX_WAITING_RPCS", "waiting", on_refused)

    def in_flight(self) -> dict[str, int]:
        """Calls being served now, per budget (the metrics read it at scrape)."""
        return {"short": self.short.in_flight, "waiting": self.waiting.in_flight}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        return _limited(handler, self.waiting if details.method in LONG_LIVED else self.short)


async def _refuse(budget: _Budget, context: grpc.aio.ServicerContext) -> None:
    budget.refused += 1
    if budget.on_refused is not None:
        budget.on_refused(budget.kind)
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, budget.message(),
                        trailing_metadata=((ERROR_TYPE_KEY, OVERLOADED),))


def _limited(handler: grpc.RpcMethodHandler, budget: _Budget) -> grpc.RpcMethodHandler:
    options = {"request_deserializer": handler.request_deserializer,
               "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if budget.in_flight >= budget.limit:
                await _refuse(budget, context)
            budget.in_flight += 1
            try:
                return await inner(request, context)
            finally:
                budget.in_flight -= 1

        return grpc.unary_unary_rpc_method_handler(unary, **options)
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if budget.in_flight >= budget.limit:
                await _refuse(budget, context)
            budget.in_flight += 1
            try:
                result = inner_stream(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a behaviour that writes with context.write
                    await result
            finally:
                budget.in_flight -= 1

        return grpc.unary_stream_rpc_method_handler(stream, **options)
    return handler  # no client-streaming methods exist
