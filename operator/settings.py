"""Operator settings: validated once at start, from the documented environment names."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["OperatorSettings"]


class OperatorSettings(BaseSettings):
    """Everything the durable operator reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    control_plane_address: str = Field(
        "durable-controlplane.durable.svc:9001",
        validation_alias="DURABLE_CONTROL_PLANE_ADDRESS",
        description="host:port of the control plane's gRPC API, used for pools without "
        "spec.controlPlaneAddress and given to their workers as GRPC_ADDRESS.",
    )
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="DURABLE_OPERATOR_NAMESPACES",
        description="Comma-separated namespaces (or kopf globs) to watch; empty = all namespaces.",
    )
    metrics_port: int = Field(
        9090, ge=0, le=65535, validation_alias="DURABLE_OPERATOR_METRICS_PORT",
        description="Port of the Prometheus /metrics endpoint; 0 disables it. Default 9090.",
    )
    standalone: bool = Field(
        True, validation_alias="DURABLE_OPERATOR_STANDALONE",
        description="Run without kopf peering (one operator replica). Default true.",
    )
    tick_seconds: float = Field(
        1.0, gt=0, le=60, validation_alias="DURABLE_OPERATOR_TICK_SECONDS",
        description="Seconds between per-pool checks (drift, due polls). Each pool polls the "
        "control plane every spec.scaling.pollIntervalSeconds; this is the finest grain. "
        "Default 1.",
    )
    grpc_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias="DURABLE_OPERATOR_GRPC_TIMEOUT_SECONDS",
        description="Deadline of each control-plane call, seconds. Default 5.",
    )
    backoff_max_seconds: float = Field(
        60.0, gt=0, validation_alias="DURABLE_OPERATOR_BACKOFF_MAX_SECONDS",
        description="Longest wait between polls of an unreachable control plane, seconds; "
        "the wait doubles from the pool's poll interval up to this. Default 60.",
    )
    liveness_endpoint: str | None = Field(
        None, validation_alias="DURABLE_OPERATOR_LIVENESS_ENDPOINT",
        description="kopf's liveness endpoint, e.g. http://0.0.0.0:8080/healthz; unset = none.",
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, validation_alias="DURABLE_OPERATOR_KUBE_TIMEOUT_SECONDS",
        description="Deadline of each Kubernetes API request the operator makes, seconds.",
    )

    scanning: bool = Field(
        True, validation_alias="DURABLE_OPERATOR_SCANNING",
        description="kopf's cluster-wide discovery watches (CustomResourceDefinitions and, when "
        "watching all namespaces, Namespaces). false: the resource is resolved once at start and "
        "nothing cluster-wide is read, so a Role in each watched namespace is enough; needs "
        "exact namespace names. Default true.",
    )

    @model_validator(mode="after")
    def _scanning_needs_exact_names(self) -> OperatorSettings:
        globbed = [n for n in self.namespaces if any(c in n for c in "*?[!")]
        if not self.scanning and globbed:
            raise ValueError(
                f"DURABLE_OPERATOR_SCANNING=false needs exact namespace names, not patterns: {', '.join(globbed)}"
            )
        return self

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
