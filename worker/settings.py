"""Worker settings, read once from the environment and validated before anything starts."""

from __future__ import annotations

import os
import random
import socket
import string
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable.common import InvalidArgument


def default_worker_id() -> str:
    """hostname-pid-random: unique per process, readable in `durable workers`."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"{socket.gethostname()}-{os.getpid()}-{suffix}"


def _split(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    items = [item.strip() for item in str(value).split(",") if item.strip()]
    return ",".join(items) if items else None


class WorkerSettings(BaseSettings):
    """How a worker process connects, how much it runs at once and how it stops.

    Every field is read from the environment variable in its alias (no prefix).
    """

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    grpc_address: str = Field(
        "127.0.0.1:9001",
        alias="GRPC_ADDRESS",
        description="host:port of the control plane's gRPC API. Default 127.0.0.1:9001.",
    )
    worker_id: str = Field(
        default_factory=default_worker_id,
        alias="WORKER_ID",
        min_length=1,
        max_length=255,
        description="Unique id of this worker process. Default: hostname-pid-random.",
    )
    max_concurrent_tasks: int = Field(
        10,
        alias="MAX_CONCURRENT_TASKS",
        ge=1,
        le=10_000,
        description="Tasks run at once (activities and workflow decisions). Default 10.",
    )
    workflow_cache_size: int = Field(
        1000,
        alias="DURABLE_WORKFLOW_CACHE_SIZE",
        ge=0,
        le=1_000_000,
        description="Workflow instances kept in memory after their decisions (least recently "
        "used go first); their next decisions come to this worker with only the new events. "
        "0 = off: every decision replays the whole history. Default 1000.",
    )
    eager_activities: bool = Field(
        True,
        alias="DURABLE_EAGER_ACTIVITIES",
        description="Eager dispatch: a decision asks for the activities it schedules that this "
        "worker serves, as many as it has free slots for (held for the decision's round trip), "
        "and runs them from the decision's answer instead of claiming them later. With "
        "following decisions a run of sequential steps then stays on one worker at one round "
        "trip per step. Default true.",
    )
    following_decisions: bool = Field(
        True,
        alias="DURABLE_FOLLOWING_DECISIONS",
        description="When an activity of a workflow whose instance this worker keeps completes, "
        "the worker makes the workflow's next decision at once and sends it with the completion; "
        "the control plane applies it in the same transaction instead of queueing a decision "
        "task (or, if the history moved meanwhile, queues one as without it). Needs the "
        "workflow cache. Default true.",
    )
    worker_group: str = Field(
        "default",
        alias="WORKER_GROUP",
        min_length=1,
        max_length=255,
        description="Pool this worker belongs to (a DurableWorkerPool's group). Default 'default'.",
    )
    activity_types: str | None = Field(
        None,
        alias="DURABLE_ACTIVITY_TYPES",
        description="Comma list of the activity types to serve; default: every registered one.",
    )
    workflow_types: str | None = Field(
        None,
        alias="DURABLE_WORKFLOW_TYPES",
        description="Comma list of the workflow types to serve; default: every registered one.",
    )
    health_port: int = Field(
        9002,
        alias="WORKER_HEALTH_PORT",
        ge=0,
        le=65535,
        description="Port of the grpc.health.v1 server (0: any free port). Default 9002.",
    )
    metrics_port: int = Field(
        9091,
        alias="WORKER_METRICS_PORT",
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics endpoint (0: off). Default 9091, next to "
        "the control plane's 9090, so both run on one host.",
    )
    health_host: str = Field(
        "0.0.0.0",
        alias="WORKER_HEALTH_HOST",
        description="Address the health server binds. Default 0.0.0.0.",
    )
    task_heartbeat_interval: float = Field(
        10.0,
        alias="DURABLE_TASK_HEARTBEAT_INTERVAL",
        gt=0,
        le=3600,
        description="Seconds between batched heartbeats of running tasks. Default 10.",
    )
    worker_heartbeat_interval: float = Field(
        10.0,
        alias="DURABLE_WORKER_HEARTBEAT_INTERVAL",
        gt=0,
        le=3600,
        description="Seconds between WorkerHeartbeat calls reporting the load. Default 10.",
    )
    drain_grace_period: float = Field(
        30.0,
        alias="DURABLE_DRAIN_GRACE_PERIOD",
        ge=0,
        le=86_400,
        description="Seconds running tasks may take to finish on SIGTERM before being "
        "handed back. Default 30.",
    )
    claim_wait: float = Field(
        10.0,
        alias="DURABLE_CLAIM_WAIT",
        ge=0,
        le=60,
        description="Seconds one ClaimTasks long-poll waits for work (0..60). Default 10.",
    )
    cancel_grace_period: float = Field(
        5.0,
        alias="DURABLE_CANCEL_GRACE_PERIOD",
        ge=0,
        le=3600,
        description="Seconds a cancelled async activity may take to return on its own "
        "before it is interrupted with CancelledError. Default 5.",
    )
    rpc_timeout: float = Field(
        10.0,
        alias="DURABLE_RPC_TIMEOUT",
        gt=0,
        le=300,
        description="Deadline of one control-plane call other than ClaimTasks, seconds. "
        "Default 10.",
    )
    reconnect_initial_backoff: float = Field(
        0.2,
        alias="DURABLE_RECONNECT_INITIAL_BACKOFF",
        gt=0,
        le=60,
        description="First delay before retrying an unreachable control plane, seconds.",
    )
    reconnect_max_backoff: float = Field(
        10.0,
        alias="DURABLE_RECONNECT_MAX_BACKOFF",
        gt=0,
        le=600,
        description="Cap of the (jittered, doubling) reconnect delay, seconds. Default 10.",
    )

    @field_validator("grpc_address")
    @classmethod
    def _address(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9001")
        return value.strip()

    @field_validator("activity_types", "workflow_types", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> str | None:
        return _split(value)

    @field_validator("worker_id", "worker_group")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @property
    def activity_type_filter(self) -> tuple[str, ...] | None:
        return tuple(self.activity_types.split(",")) if self.activity_types else None

    @property
    def workflow_type_filter(self) -> tuple[str, ...] | None:
        return tuple(self.workflow_types.split(",")) if self.workflow_types else None

    @property
    def high_watermark(self) -> int:
        """Running tasks at which claiming pauses (90% of capacity, at least 1)."""
        return max(1, -(-self.max_concurrent_tasks * 9 // 10))

    @property
    def low_watermark(self) -> int:
        """Running tasks at or below which claiming resumes (70% of capacity)."""
        return min(self.max_concurrent_tasks * 7 // 10, self.high_watermark - 1)

    @classmethod
    def from_env(cls, **overrides: Any) -> WorkerSettings:
        """Read the environment (plus `overrides`, by field name or variable name).

        Raises InvalidArgument naming every bad variable.
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise InvalidArgument(explain(exc)) from None


def explain(exc: ValidationError) -> str:
    """A one-line message naming each invalid environment variable."""
    aliases = {name: f.alias or name for name, f in WorkerSettings.model_fields.items()}
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(settings)"
        variable = aliases.get(where, where)
        problems.append(f"{variable}={err.get('input')!r} is invalid: {err['msg']}")
    return "invalid worker configuration: " + "; ".join(problems)


__all__ = ["WorkerSettings", "default_worker_id", "explain"]
