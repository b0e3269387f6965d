"""Authentication and scopes on the control plane's gRPC port.

Every call but the health service needs a credential: a bearer token, or (under mutual TLS) a
client certificate listed in the credentials file (durable.common.credentials). Then its scope
decides, in this one table:

  admin    every method
  client   durable.v1.ClientService/* but ADMIN_METHODS, externalscaler.ExternalScaler/*
  read     READ_METHODS below, externalscaler.ExternalScaler/*
  worker   durable.v1.WorkerService/*, and only with the request's worker_id starting with
           the credential's worker-id prefix

A missing or unknown credential is UNAUTHENTICATED; a known one outside its scope, or a worker
credential naming another worker id, is PERMISSION_DENIED. A method added to ClientService later
is `client` until it is listed in READ_METHODS; a new service is `admin` only.

`current_scope()` tells a handler the scope of the call it serves.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from durable.common.credentials import Credentials, CredentialsFile, Grant, Scope
from durable.common.security import AUTH_HEADER, OPEN_METHOD_PREFIXES, SCOPE_HEADER
from durable.controlplane.grpc.errors import Malformed

__all__ = ["ADMIN_METHODS", "READ_METHODS", "ScopedAuthInterceptor", "allowed", "current_scope"]

logger = logging.getLogger(__name__)

WORKER_SERVICE = "durable.v1.WorkerService"
CLIENT_SERVICE = "durable.v1.ClientService"
KEDA_SERVICE = "externalscaler.ExternalScaler"
READ_METHODS = frozenset(
    f"/{CLIENT_SERVICE}/{name}"
    for name in (
        "DescribeWorkflow", "ListWorkflows", "GetHistory", "WaitWorkflow",
        "ListDeadLetters", "GetQueueStats", "ListWorkers",
        "CountWorkflows", "ListWorkflowTasks", "ListCircuitBreakers", "ListRateLimits", "QueryWorkflow",
        "ListSchedules", "DescribeSchedule", "GetThroughput",
    )
)
# ClientService methods too destructive for the client scope: deletes of many rows by filter.
ADMIN_METHODS = frozenset(
    f"/{CLIENT_SERVICE}/{name}" for name in ("BulkDeleteWorkflows", "BulkDeleteDeadLetters")
)

_ADMIN = Grant(Scope.ADMIN, source="no authentication configured")
_current: contextvars.ContextVar[Grant] = contextvars.ContextVar("durable_grant", default=_ADMIN)


def current_scope() -> Scope:
    """The scope of the call being served (ADMIN when the control plane requires no credential)."""
    return _current.get().scope


def allowed(grant: Grant, method: str) -> bool:
    """Whether `grant` may call `method` ("/package.Service/Method"), worker ids aside."""
    if grant.scope is Scope.ADMIN:
        return True
    service = method.split("/")[1] if method.count("/") == 2 else ""
    if grant.scope is Scope.WORKER:
        return service == WORKER_SERVICE
    if grant.scope is Scope.CLIENT:
        return service in (CLIENT_SERVICE, KEDA_SERVICE) and method not in ADMIN_METHODS
    return service == KEDA_SERVICE or method in READ_METHODS  # read


def _presented_token(metadata: Any) -> str | None:
    """The bearer token of the call; "" for an authorization header that is not one."""
    value = dict(metadata or ()).get(AUTH_HEADER)
    if value is None:
        return None
    value = value.decode() if isinstance(value, bytes) else str(value)
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _certificate_names(context: grpc.aio.ServicerContext) -> list[str]:
    auth = context.auth_context() or {}
    names: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        names.extend(v.decode() if isinstance(v, bytes) else str(v) for v in auth.get(key, ()))
    return names


_UNAUTHENTICATED = (
    "missing or invalid bearer token: send `authorization: Bearer <token>` "
    "(workers and the CLI read DURABLE_AUTH_TOKEN or DURABLE_AUTH_TOKEN_FILE)"
)
_NO_CERTIFICATE_GRANT = (
    "missing bearer token, and the client certificate ({names}) is not listed in the "
    "control plane's DURABLE_AUTH_TOKENS_FILE: send a token or add a `<scope> cert:<name>` line"
)


def _denied(grant: Grant, method: str) -> str:
    return (
        f"{method} is outside this credential's scope ({grant.describe()}); "
        "use a credential with a scope that includes it (see docs/kubernetes.md, Scoped credentials)"
    )


class ScopedAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call (health aside) and enforces its credential's scope."""

    def __init__(self, admin_tokens: list[str], credentials_file: CredentialsFile | None = None) -> None:
        self._admin = Credentials.admin_tokens(admin_tokens, "DURABLE_AUTH_TOKEN")
        self._file = credentials_file
        self._reported_error: str | None = None
        self._credentials = self._merge()

    def _merge(self) -> Credentials:
        if self._file is None:
            return self._admin
        credentials, _ = self._file.current()
        return self._admin.merged(credentials)

    def credentials(self) -> Credentials:
        """What is accepted now: the file is re-read when it has changed."""
        if self._file is None:
            return self._credentials
        credentials, reloaded = self._file.current()
        if reloaded:
            self._credentials = self._admin.merged(credentials)
            logger.info("credentials reloaded from %s: %d tokens, %d certificates",
                        self._file.path, len(credentials.tokens), len(credentials.certificates))
        if self._file.error != self._reported_error:
            self._reported_error = self._file.error
            if self._file.error:
                logger.error("credentials file not reloaded, the previous credentials stay in force: %s",
                             self._file.error)
        return self._credentials

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None  # UNIMPLEMENTED, as without authentication
        method = details.method
        token = _presented_token(details.invocation_metadata)
        credentials = self.credentials()
        if method.startswith(OPEN_METHOD_PREFIXES):
            grant = credentials.for_token(token) if token else None
            return _wrap(handler, method, lambda context: grant or self._certificate_grant(context, credentials),
                         report_scope=True)
        if token is not None:
            grant = credentials.for_token(token) if token else None
            if grant is None:
                return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)
            if not allowed(grant, method):
                return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED, _denied(grant, method))
            return _wrap(handler, method, lambda context: grant)
        if not credentials.certificates:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)
        return _wrap(handler, method, lambda context: self._certificate_grant(context, credentials))

    @staticmethod
    def _certificate_grant(context: grpc.aio.ServicerContext, credentials: Credentials) -> Grant | None:
        return credentials.for_certificate(_certificate_names(context)) if credentials.certificates else None


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    return grpc.unary_unary_rpc_method_handler(refuse)


async def _admit(
    method: str, request: Any, context: grpc.aio.ServicerContext,
    resolve: Callable[[grpc.aio.ServicerContext], Grant | None], report_scope: bool,
) -> Grant | None:
    """The call's grant after every check; aborts the call when it is refused."""
    grant = resolve(context)
    if report_scope:  # the health service: open, but it says what a credential would get
        await context.send_initial_metadata(((SCOPE_HEADER, grant.scope.value if grant else "none"),))
        return grant
    if grant is None:
        names = ", ".join(_certificate_names(context)) or "none presented"
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _NO_CERTIFICATE_GRANT.format(names=names))
        raise AssertionError("unreachable")
    if not allowed(grant, method):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, _denied(grant, method))
    if grant.scope is Scope.WORKER and not isinstance(request, Malformed):
        worker_id = getattr(request, "worker_id", None)
        if not isinstance(worker_id, str) or not grant.may_act_as(worker_id):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this credential ({grant.describe()}) may not act for worker id {worker_id!r}; "
                "a worker credential acts only for the worker ids bound to it",
            )
    return grant


def _wrap(
    handler: grpc.RpcMethodHandler, method: str,
    resolve: Callable[[grpc.aio.ServicerContext], Grant | None], *, report_scope: bool = False,
) -> grpc.RpcMethodHandler:
    options = {"request_deserializer": handler.request_deserializer,
               "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            grant = await _admit(method, request, context, resolve, report_scope)
            reset = _current.set(grant) if grant else None
            try:
                return await inner(request, context)
            finally:
                if reset is not None:
                    _current.reset(reset)

        return grpc.unary_unary_rpc_method_handler(unary, **options)
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            grant = await _admit(method, request, context, resolve, report_scope)
            reset = _current.set(grant) if grant else None
            try:
                result = inner_stream(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a behaviour that writes with context.write (the health service's Watch)
                    await result
            finally:
                if reset is not None:
                    _current.reset(reset)

        return grpc.unary_stream_rpc_method_handler(stream, **options)
    return handler  # no client-streaming methods exist; nothing to wrap
