"""The DurableWorkerPool spec as the operator reads it, validated field by field.

The CRD's OpenAPI schema and CEL rules normally reject a bad pool at the API server; these
models repeat those rules because a pool can still slip past (an older CRD, a test API
server without validation). A pool that fails here gets Ready=False naming the field, and
the operator creates nothing for it (see `durable.operator.reconciler`).

The shape is /work/notes/pool-spec.md: camelCase in YAML, snake_case here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from durable.operator.scaling import ScalingPolicy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = ["InvalidPoolSpec", "PoolSpec", "ScalingSpec", "parse_pool_spec"]

TypeName = Annotated[str, Field(min_length=1, max_length=255)]


class _Model(BaseModel):
    # Unknown fields are ignored, as the API server prunes them under a structural schema.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)


class ScalingSpec(_Model):
    """`spec.scaling`."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(10, ge=1)
    target_backlog_per_replica: int | None = Field(None, ge=1)
    max_oldest_pending_age_seconds: float | None = Field(None, gt=0)
    poll_interval_seconds: float = Field(15, ge=1, le=3600)
    scale_up_stabilization_seconds: int = Field(0, ge=0, le=3600)
    scale_down_stabilization_seconds: int = Field(300, ge=0, le=3600)
    max_step: int | None = Field(None, ge=1)
    idle_before_scale_to_zero_seconds: int = Field(300, ge=0)
    tolerance: float = Field(0.1, ge=0, le=1)
    paused: bool = False

    @model_validator(mode="after")
    def _min_le_max(self) -> ScalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be <= maxReplicas ({self.max_replicas})")
        return self


_DEFAULT_SCALING = ScalingSpec.model_validate({})


class EnvVar(_Model):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1)
    value: str | None = None
    value_from: dict[str, Any] | None = None


class Resources(_Model):
    limits: dict[str, int | str] | None = None
    requests: dict[str, int | str] | None = None


class PodTemplateMetadata(_Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_Model):
    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    spec: dict[str, Any] = Field(default_factory=dict)


class PoolSpec(_Model):
    """`spec` of a DurableWorkerPool."""

    control_plane_address: str | None = Field(None, min_length=1)
    worker_group: str | None = Field(None, min_length=1)
    workflow_types: list[TypeName] = Field(default_factory=list)
    activity_types: list[TypeName] = Field(default_factory=list)
    max_concurrent_tasks: int = Field(10, ge=1, le=10000)
    drain_grace_period_seconds: int | None = Field(None, ge=0, le=86_400)
    replicas: int | None = Field(None, ge=0)
    image: str = Field(min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    resources: Resources | None = None
    pod_template: PodTemplate = Field(default_factory=PodTemplate)
    scaling: ScalingSpec | None = None

    @field_validator("workflow_types", "activity_types")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate items: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _some_types(self) -> PoolSpec:
        if not self.workflow_types and not self.activity_types:
            raise ValueError("at least one of workflowTypes or activityTypes must be non-empty")
        return self

    @property
    def autoscaling(self) -> bool:
        """Whether the autoscaler decides the replicas (a scaling block that is not paused)."""
        return self.scaling is not None and not self.scaling.paused

    def policy(self) -> ScalingPolicy:
        """The scaling policy with defaults applied (target defaults to maxConcurrentTasks)."""
        scaling = self.scaling or _DEFAULT_SCALING
        return ScalingPolicy(
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            target_per_replica=scaling.target_backlog_per_replica or self.max_concurrent_tasks,
            tolerance=scaling.tolerance,
            scale_up_stabilization=float(scaling.scale_up_stabilization_seconds),
            scale_down_stabilization=float(scaling.scale_down_stabilization_seconds),
            max_step=scaling.max_step,
            max_oldest_pending_age=scaling.max_oldest_pending_age_seconds,
            idle_before_scale_to_zero=float(scaling.idle_before_scale_to_zero_seconds),
        )

    @property
    def poll_interval(self) -> float:
        return (self.scaling or _DEFAULT_SCALING).poll_interval_seconds


class InvalidPoolSpec(ValueError):
    """The pool's spec breaks the schema; `field` is the dotted path (``spec.scaling.x``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
    return path


def parse_pool_spec(raw: Mapping[str, Any] | None) -> PoolSpec:
    """Validate a raw `spec`; raise `InvalidPoolSpec` naming the first bad field."""
    try:
        return PoolSpec.model_validate(dict(raw or {}))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if len(errors) > 1:
            message = f"{message} (and {len(errors) - 1} more problem(s))"
        raise InvalidPoolSpec(_path(tuple(first["loc"])), message) from None
