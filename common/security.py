"""Who may talk to the control plane: a bearer token, and TLS (optionally mutual) when certificates
are configured. Both sides read the same environment names.

Clients (workers, the operator, the CLI):
  DURABLE_AUTH_TOKEN / DURABLE_AUTH_TOKEN_FILE   the token sent as `authorization: Bearer ...`
  DURABLE_TLS_CA_FILE                            trust this CA for the server (enables TLS)
  DURABLE_TLS_CERT_FILE, DURABLE_TLS_KEY_FILE    the client certificate, for mutual TLS
  DURABLE_TLS_SERVER_NAME                        override the name checked in the server cert
The control plane:
  DURABLE_AUTH_TOKENS_FILE                       scoped credentials, one a line (durable.common.credentials)
  DURABLE_AUTH_TOKEN / DURABLE_AUTH_TOKEN_FILE   admin token(s), comma-separated
  DURABLE_TLS_CERT_FILE, DURABLE_TLS_KEY_FILE    its certificate (enables TLS)
  DURABLE_TLS_CLIENT_CA_FILE                     require client certificates signed by this CA
The gRPC health service answers without a token, so Kubernetes probes keep working; when a
token is sent to it anyway, the answer names the token's scope (`granted_scope()`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable.common.credentials import CredentialsFile

AUTH_HEADER = "authorization"
# Initial metadata of a health check that carried a credential: the scope granted to it
# ("admin", "client", "read", "worker", or "none" when the credential is refused).
SCOPE_HEADER = "durable-scope"
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


def _read(path: str | None, variable: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{variable}={path!r} cannot be read: {exc.strerror}") from None


class _Security(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    auth_token: str | None = Field(None, validation_alias="DURABLE_AUTH_TOKEN", description="Bearer token.")
    auth_token_file: str | None = Field(
        None, validation_alias="DURABLE_AUTH_TOKEN_FILE", description="File holding the token (a mounted Secret)."
    )
    tls_cert_file: str | None = Field(None, validation_alias="DURABLE_TLS_CERT_FILE", description="PEM certificate.")
    tls_key_file: str | None = Field(None, validation_alias="DURABLE_TLS_KEY_FILE", description="PEM private key.")

    def tokens(self) -> list[str]:
        raw = self.auth_token
        if raw is None and self.auth_token_file:
            data = _read(self.auth_token_file, "DURABLE_AUTH_TOKEN_FILE")
            raw = data.decode().strip() if data else None
        return [t.strip() for t in (raw or "").split(",") if t.strip()]

    @model_validator(mode="after")
    def _pairs(self) -> Any:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("DURABLE_TLS_CERT_FILE and DURABLE_TLS_KEY_FILE must be set together")
        if self.auth_token and self.auth_token_file:
            raise ValueError("set DURABLE_AUTH_TOKEN or DURABLE_AUTH_TOKEN_FILE, not both")
        self.tokens()  # a missing token file fails at start, naming the variable
        return self


class ClientSecurity(_Security):
    """How workers, the operator and the CLI authenticate to the control plane."""

    tls_ca_file: str | None = Field(None, validation_alias="DURABLE_TLS_CA_FILE", description="CA of the server.")
    tls_server_name: str | None = Field(
        None, validation_alias="DURABLE_TLS_SERVER_NAME", description="Name to verify in the server certificate."
    )

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca_file or self.tls_cert_file)


class ServerSecurity(_Security):
    """What the control plane accepts."""

    tls_client_ca_file: str | None = Field(
        None, validation_alias="DURABLE_TLS_CLIENT_CA_FILE", description="Require client certificates from this CA."
    )
    auth_tokens_file: str | None = Field(
        None, validation_alias="DURABLE_AUTH_TOKENS_FILE",
        description="Scoped credentials, one `scope[:worker-id-prefix] credential` a line "
        "(see durable.common.credentials); re-read when it changes.",
    )

    @model_validator(mode="after")
    def _client_ca_needs_tls(self) -> Any:
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("DURABLE_TLS_CLIENT_CA_FILE needs DURABLE_TLS_CERT_FILE and DURABLE_TLS_KEY_FILE")
        if self.auth_tokens_file:
            self.credentials_file()  # a bad or missing file fails at start, naming the line
        return self

    def credentials_file(self) -> CredentialsFile | None:
        """The scoped credentials file, loaded (None when DURABLE_AUTH_TOKENS_FILE is unset)."""
        return CredentialsFile(self.auth_tokens_file) if self.auth_tokens_file else None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert_file:
            return None
        key = _read(self.tls_key_file, "DURABLE_TLS_KEY_FILE")
        cert = _read(self.tls_cert_file, "DURABLE_TLS_CERT_FILE")
        client_ca = _read(self.tls_client_ca_file, "DURABLE_TLS_CLIENT_CA_FILE")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


class _BearerToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._metadata = (AUTH_HEADER, f"Bearer {token}")

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or ()) + [self._metadata]
        return await continuation(details._replace(metadata=metadata), request)


class _BearerTokenStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """The token on server-streaming calls too (KEDA's StreamIsActive). A class of its own: a
    channel files each interceptor under the first kind it is an instance of."""

    def __init__(self, token: str) -> None:
        self._metadata = (AUTH_HEADER, f"Bearer {token}")

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or ()) + [self._metadata]
        return await continuation(details._replace(metadata=metadata), request)


class _TraceContext(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Sends the active span's W3C traceparent, so the control plane continues the trace."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        from durable.common import tracing

        traceparent = tracing.current_traceparent()
        if traceparent:
            metadata = list(details.metadata or ()) + [(tracing.TRACEPARENT, traceparent)]
            details = details._replace(metadata=metadata)
        return await continuation(details, request)


def load_client_security() -> ClientSecurity:
    """ClientSecurity from the environment; a bad value raises InvalidArgument naming it."""
    from pydantic import ValidationError

    from durable.common.errors import InvalidArgument

    try:
        return ClientSecurity()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise InvalidArgument(f"invalid security configuration: {problems}") from None


def open_channel(
    address: str, security: ClientSecurity | None = None, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A channel to the control plane with the configured token and TLS."""
    security = security or ClientSecurity()
    from durable.common import tracing

    tokens = security.tokens()
    interceptors: list[Any] = [_BearerToken(tokens[0]), _BearerTokenStream(tokens[0])] if tokens else []
    if tracing.enabled():
        interceptors.append(_TraceContext())
    opts = list(options or [])
    if security.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", security.tls_server_name))
    if security.uses_tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(security.tls_ca_file, "DURABLE_TLS_CA_FILE"),
            private_key=_read(security.tls_key_file, "DURABLE_TLS_KEY_FILE"),
            certificate_chain=_read(security.tls_cert_file, "DURABLE_TLS_CERT_FILE"),
        )
        return grpc.aio.secure_channel(address, credentials, options=opts, interceptors=interceptors or None)
    return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors or None)


async def granted_scope(channel: grpc.aio.Channel, *, timeout: float = 10.0) -> str | None:
    """The scope the control plane grants this channel's credential (its token, or its client
    certificate under mutual TLS): "admin", "client", "read" or "worker"; None when the control
    plane refuses the credential. A control plane that requires no credential grants "admin".

    One health check, no database work: a console calls it after sign-in to decide whether to
    show actions (client, admin) or only pages (read)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from durable.common.status import error_for

    call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    try:
        metadata = await call.initial_metadata()
        await call
    except grpc.aio.AioRpcError as exc:  # unreachable, or refused: the caller's DurableError
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return None
        raise error_for(exc.code(), exc.details() or exc.code().name) from None
    value = dict(metadata or ()).get(SCOPE_HEADER)
    if value is None:
        return "admin"  # no authentication on the control plane: everything is allowed
    value = value.decode() if isinstance(value, bytes) else str(value)
    return None if value == "none" else value
