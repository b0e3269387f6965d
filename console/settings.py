"""The console's settings, read once from the environment and validated before it serves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AuthMode = Literal["auto", "signin", "proxy", "open"]


class ConsoleSettings(BaseSettings):
    """How `durable console` listens, where the control plane is, and who may sign in.

    Token and TLS towards the control plane come from the CLI's variables
    (DURABLE_AUTH_TOKEN(_FILE), DURABLE_TLS_*; see durable.common.security).
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(
        "127.0.0.1", validation_alias="DURABLE_CONSOLE_HOST",
        description="Address the HTTP server listens on (default 127.0.0.1; 0.0.0.0 in a pod).",
    )
    port: int = Field(
        8080, ge=1, le=65535, validation_alias="DURABLE_CONSOLE_PORT", description="HTTP port (default 8080)."
    )
    grpc_address: str = Field(
        "127.0.0.1:9001", validation_alias="GRPC_ADDRESS", description="The control plane's gRPC host:port."
    )
    auth: AuthMode = Field(
        "auto", validation_alias="DURABLE_CONSOLE_AUTH",
        description=(
            "Who may use the console. `auto` (default): `signin` when a token is configured, else `open`. "
            "`signin`: a sign-in form; each session's calls carry the token its user signed in with. "
            "`proxy`: no sign-in, every call carries the configured token; only behind an "
            "authenticating proxy. `open`: no sign-in (a laptop, `durable dev --serve`)."
        ),
    )
    session_seconds: float = Field(
        8 * 3600, gt=0, validation_alias="DURABLE_CONSOLE_SESSION_SECONDS",
        description="Seconds a sign-in lasts without use (default 28800, 8 h).",
    )
    secure_cookies: bool = Field(
        False, validation_alias="DURABLE_CONSOLE_SECURE_COOKIES",
        description="Mark cookies Secure (set it when the console is served over HTTPS). Default false.",
    )
    poll_seconds: float = Field(
        2.0, ge=0.5, le=60, validation_alias="DURABLE_CONSOLE_POLL_SECONDS",
        description="Seconds between the live updates of lists and running workflows (default 2).",
    )
    rpc_timeout: float = Field(
        10.0, gt=0, validation_alias="DURABLE_CONSOLE_RPC_TIMEOUT_SECONDS",
        description="Seconds a call to the control plane may take before the page reports it (default 10).",
    )
