"""Control-plane settings: validated once, from the environment names the product documents."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# What a worker's channel receives at most (worker/link.py): no answer may be larger.
MAX_WORKER_RECEIVE_BYTES = 64 * 1024 * 1024
# Room for a message's fields around its payloads (ids, names, options, framing).
ENVELOPE_BYTES = 64 * 1024


class DatabaseSettings(BaseSettings):
    """Where the engine's PostgreSQL is and how many connections the control plane keeps."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(
        ...,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL, e.g. postgresql://user:pass@host:5432/db. Required.",
    )
    pool_min_size: int = Field(2, ge=0, validation_alias="DATABASE_POOL_MIN", description="Connections kept open.")
    pool_max_size: int = Field(20, ge=1, validation_alias="DATABASE_POOL_MAX", description="Connection cap.")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value


class ReaperSettings(BaseSettings):
    """The reaper: takes back tasks from workers that stopped heartbeating."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    interval: float = Field(10.0, gt=0, validation_alias="REAPER_INTERVAL_SECONDS", description="Seconds between passes.")
    stale_after: float = Field(
        30.0, gt=0, validation_alias="REAPER_STALE_AFTER_SECONDS",
        description="Seconds without a task heartbeat before a claimed task is taken back.",
    )
    worker_lost_after: float = Field(
        30.0, gt=0, validation_alias="REAPER_WORKER_LOST_AFTER_SECONDS",
        description="Seconds without a worker heartbeat before the worker is marked lost.",
    )
    max_reclaims: int = Field(
        3, ge=0, validation_alias="REAPER_MAX_RECLAIMS",
        description="Poison guard: times a task may be taken back before it goes to the DLQ.",
    )
    batch_size: int = Field(1000, ge=1, validation_alias="REAPER_BATCH_SIZE", description="Rows per statement.")
    workflow_schedule_to_start: float = Field(
        0.0, validation_alias="DURABLE_WORKFLOW_SCHEDULE_TO_START_TIMEOUT",
        description="Longest wait of a workflow's decision for a worker of its type, seconds or a "
                    "duration (30s, 5m, 1h); past it the workflow fails with ScheduleToStartTimeout. "
                    "Counted from when the decision became due, for decisions no worker took yet. "
                    "Default 0: no limit.",
    )

    @field_validator("workflow_schedule_to_start", mode="before")
    @classmethod
    def _schedule_to_start(cls, value: Any) -> float:
        return parse_duration(value)


class BreakerSettings(BaseSettings):
    """Circuit breakers: the defaults of a breaker, and the activity types that get one from the
    control plane. A worker asks for one per activity type (`@app.activity(circuit_breaker=...)`);
    what it leaves out takes these defaults."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    types: str = Field(
        "", validation_alias="DURABLE_CIRCUIT_BREAKERS",
        description="Comma-separated activity types given a breaker with the defaults below at "
                    "start-up (an existing breaker of the type is retuned; its state kept). Default none.",
    )
    failure_threshold: int = Field(
        5, ge=1, validation_alias="DURABLE_CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        description="Failures within the window that open a breaker. Default 5.",
    )
    window: float = Field(
        60.0, gt=0, validation_alias="DURABLE_CIRCUIT_BREAKER_WINDOW_SECONDS",
        description="Failure counting window, seconds. Default 60.",
    )
    reset_timeout: float = Field(
        30.0, gt=0, validation_alias="DURABLE_CIRCUIT_BREAKER_RESET_TIMEOUT_SECONDS",
        description="Seconds a breaker stays open before it lets trial tasks through (half-open). Default 30.",
    )
    half_open_max_trials: int = Field(
        1, ge=1, validation_alias="DURABLE_CIRCUIT_BREAKER_HALF_OPEN_MAX_TRIALS",
        description="Trial tasks let through at once while half-open. Default 1.",
    )
    success_threshold: int = Field(
        1, ge=1, validation_alias="DURABLE_CIRCUIT_BREAKER_SUCCESS_THRESHOLD",
        description="Trial successes that close a half-open breaker (one failure re-opens it). Default 1.",
    )

    @field_validator("types")
    @classmethod
    def _type_names(cls, value: str) -> str:
        for name in (t.strip() for t in value.split(",")):
            if len(name) > 255:
                raise ValueError(f"activity type {name[:40]!r}... is longer than 255 characters")
        return value

    @property
    def type_names(self) -> list[str]:
        return [t.strip() for t in self.types.split(",") if t.strip()]

    def policy(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """A breaker's numbers: these defaults, with what `overrides` sets (None/0 = default)."""
        numbers: dict[str, Any] = {
            "failure_threshold": self.failure_threshold, "window": self.window,
            "reset_timeout": self.reset_timeout, "half_open_max_trials": self.half_open_max_trials,
            "success_threshold": self.success_threshold,
        }
        numbers.update({k: v for k, v in (overrides or {}).items() if v})
        return numbers


class GrpcSettings(BaseSettings):
    """The control plane's gRPC server."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    address: str = Field("0.0.0.0:9001", validation_alias="GRPC_ADDRESS", description="host:port to listen on.")
    runner_mode: Literal["durable"] = Field(
        "durable", validation_alias="RUNNER_MODE",
        description="Kept for the seed's configuration; this build has one runner, 'durable'.",
    )
    max_payload_bytes: int = Field(
        1024 * 1024, ge=1024, validation_alias="DURABLE_MAX_PAYLOAD_BYTES",
        description="Largest JSON payload accepted, bytes (default 1 MiB).",
    )
    decision_retry_max: float = Field(
        60.0, gt=0, validation_alias="DURABLE_DECISION_RETRY_MAX_SECONDS",
        description="Longest wait, seconds, before a blocked workflow's failing decision is "
                    "tried again (doubling from 1 s; default 60).",
    )
    sticky_fallback: float = Field(
        2.0, gt=0, le=300, validation_alias="DURABLE_STICKY_FALLBACK_SECONDS",
        description="How long a workflow's next decision waits for the worker that keeps its "
                    "instance (sticky) before any worker of the type may take it with the whole "
                    "history, seconds (default 2).",
    )
    history_max_events: int = Field(
        51_200, ge=10, validation_alias="DURABLE_HISTORY_MAX_EVENTS",
        description="Most events one run of a workflow may record (default 51,200): at 80% a "
                    "HistorySizeWarning event, at the limit the workflow fails with HistoryLimitExceeded; "
                    "a workflow that runs long calls ctx.continue_as_new.",
    )
    history_max_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, validation_alias="DURABLE_HISTORY_MAX_BYTES",
        description="Most bytes of event data one run of a workflow may record (default 50 MiB), "
                    "warned at 80% and enforced like DURABLE_HISTORY_MAX_EVENTS.",
    )
    keda_address: str | None = Field(
        None, validation_alias="DURABLE_KEDA_ADDRESS",
        description="host:port of a second, read-only port serving only KEDA's external scaler "
        "and health, without credentials (KEDA cannot send a token); unset = none. "
        "E.g. 0.0.0.0:9003.",
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024, le=MAX_WORKER_RECEIVE_BYTES, validation_alias="DURABLE_MAX_MESSAGE_BYTES",
        description=(
            "Largest gRPC message the control plane receives, bytes (default 16 MiB); at least "
            "the payload limit plus 64 KiB. Workers learn it at registration and split their "
            "completion and heartbeat batches below it; a decision must fit in it."
        ),
    )
    max_response_bytes: int = Field(
        MAX_WORKER_RECEIVE_BYTES, ge=64 * 1024, le=MAX_WORKER_RECEIVE_BYTES,
        validation_alias="DURABLE_MAX_RESPONSE_BYTES",
        description=(
            "Byte budget of one answer, bytes (default and most 64 MiB, what a worker receives): "
            "a claim hands back at once the tasks that do not fit, history pages and listings "
            "end early. At least twice the payload limit plus 64 KiB."
        ),
    )

    max_concurrent_rpcs: int = Field(
        1000, ge=1, validation_alias="DURABLE_MAX_CONCURRENT_RPCS",
        description="Short calls served at once (default 1000); one more is refused with "
                    "RESOURCE_EXHAUSTED (Overloaded) and retried by workers with backoff. "
                    "Waiting calls and the health service are not counted.",
    )
    max_waiting_rpcs: int = Field(
        10_000, ge=1, validation_alias="DURABLE_MAX_WAITING_RPCS",
        description="Waiting calls served at once (default 10000): long-poll ClaimTasks, "
                    "WaitWorkflow, QueryWorkflow and KEDA's StreamIsActive, which sleep "
                    "without a database connection.",
    )

    @model_validator(mode="after")
    def _limits_hold_a_payload(self) -> GrpcSettings:
        floor = self.max_payload_bytes + ENVELOPE_BYTES
        if self.max_message_bytes < floor:
            raise ValueError(
                f"DURABLE_MAX_MESSAGE_BYTES={self.max_message_bytes} is below "
                f"DURABLE_MAX_PAYLOAD_BYTES + 64 KiB ({floor}): one payload would not fit in a message"
            )
        # an activity task carries two payloads: its input and its last heartbeat's details
        if self.max_response_bytes < floor + self.max_payload_bytes:
            raise ValueError(
                f"DURABLE_MAX_RESPONSE_BYTES={self.max_response_bytes} is below "
                f"2 x DURABLE_MAX_PAYLOAD_BYTES + 64 KiB ({floor + self.max_payload_bytes}): "
                "one activity task would not fit in an answer"
            )
        return self

    @field_validator("address", "keda_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be host:port, e.g. 0.0.0.0:9001")
        return value.strip()

    @field_validator("runner_mode", mode="before")
    @classmethod
    def _runner(cls, value: str) -> str:
        if str(value).lower() == "temporal":
            raise ValueError(
                "'temporal' is not available: this build runs only the PostgreSQL-backed "
                "'durable' runner; unset RUNNER_MODE or set it to 'durable'"
            )
        return str(value).lower()


class MetricsSettings(BaseSettings):
    """Prometheus metrics of the control plane."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    port: int = Field(9090, ge=0, le=65535, validation_alias="METRICS_PORT", description="HTTP port of /metrics; 0 = off.")
    refresh: float = Field(
        5.0, gt=0, validation_alias="METRICS_REFRESH_SECONDS",
        description="Seconds between reads of the database state the metrics report (backlog, DLQ, workers).",
    )


class ScheduleSettings(BaseSettings):
    """The schedule loop: fires the due ticks of durable_schedules on every control-plane replica."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    enabled: bool = Field(
        True, validation_alias="DURABLE_SCHEDULES_ENABLED",
        description="Run the schedule loop in this control plane (default true). Every replica may run it.",
    )
    interval: float = Field(
        1.0, gt=0, le=60, validation_alias="DURABLE_SCHEDULES_INTERVAL_SECONDS",
        description="Longest wait, seconds, between passes (default 1); a pass also runs when the "
                    "earliest schedule is due, if that is sooner.",
    )
    batch_size: int = Field(
        100, ge=1, le=10_000, validation_alias="DURABLE_SCHEDULES_BATCH_SIZE",
        description="Schedules handled per pass, each in its own short transaction (default 100).",
    )
    buffer_recheck: float = Field(
        1.0, gt=0, validation_alias="DURABLE_SCHEDULES_BUFFER_RECHECK_SECONDS",
        description="Seconds between looks at a schedule whose buffered tick waits for its "
                    "previous run to end (default 1).",
    )
    max_backoff: float = Field(
        30.0, gt=0, validation_alias="DURABLE_SCHEDULES_MAX_BACKOFF_SECONDS",
        description="Longest wait, seconds, between passes while the database is unreachable "
                    "(doubling from the interval; default 30).",
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from a number of seconds or a text like "90", "30s", "15m", "12h", "7d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).lower())
        if not match:
            raise ValueError("must be a duration: seconds, or a number with s, m, h or d (e.g. 7d, 12h, 0 = for ever)")
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds < 0:
        raise ValueError("must be >= 0 (0 = keep for ever)")
    return seconds


DAY = 86400.0


class RetentionSettings(BaseSettings):
    """Retention: what is deleted, and after how long. Durations are seconds, or a number with
    s, m, h or d ("7d"); 0 keeps for ever. A pinned workflow is kept for ever, and so is a
    workflow with a dead-letter entry nobody resolved (requeued or deleted)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    completed: float = Field(
        7 * DAY, validation_alias="DURABLE_RETENTION_COMPLETED",
        description="Completed workflows (with their events, tasks and signals), after they ended. Default 7d.",
    )
    failed: float = Field(
        30 * DAY, validation_alias="DURABLE_RETENTION_FAILED",
        description="Failed workflows, after they ended. Default 30d.",
    )
    cancelled: float = Field(
        30 * DAY, validation_alias="DURABLE_RETENTION_CANCELLED",
        description="Cancelled workflows, after they ended. Default 30d.",
    )
    tasks: float = Field(
        7 * DAY, validation_alias="DURABLE_RETENTION_TASKS",
        description="Finished standalone activity tasks (not of a workflow), after they finished. Default 7d.",
    )
    dead_letters: float = Field(
        30 * DAY, validation_alias="DURABLE_RETENTION_DEAD_LETTERS",
        description="Resolved (requeued) dead-letter entries, after their requeue. Default 30d. "
                    "Unresolved entries stay until requeued or deleted.",
    )
    workers: float = Field(
        DAY, validation_alias="DURABLE_RETENTION_WORKERS",
        description="Stopped and lost worker rows, after their last heartbeat. Default 1d.",
    )
    idempotency_window: float = Field(
        DAY, gt=0, validation_alias="DURABLE_IDEMPOTENCY_WINDOW",
        description="How long an EnqueueActivity idempotency key returns its first task; older keys "
                    "are deleted and the key enqueues anew. Default 24h.",
    )
    interval: float = Field(
        60.0, gt=0, validation_alias="DURABLE_RETENTION_INTERVAL_SECONDS",
        description="Seconds between retention passes. Default 60.",
    )
    batch_size: int = Field(
        250, ge=1, le=10_000, validation_alias="DURABLE_RETENTION_BATCH_SIZE",
        description="Rows deleted per statement (one short transaction each). Default 250 "
                    "(500 doubled the claims' p99 during a large pass in the retention benchmark).",
    )
    pause: float = Field(
        0.01, ge=0, le=10, validation_alias="DURABLE_RETENTION_PAUSE_SECONDS",
        description="Seconds between two batches of a pass (default 0.01): the queue's claims "
                    "get the database to themselves between deletions. 0 = none.",
    )

    @field_validator(
        "completed", "failed", "cancelled", "tasks", "dead_letters", "workers", "idempotency_window", mode="before"
    )
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    def for_status(self, status: str) -> float:
        """The retention of workflows that ended with `status`, seconds (0 = for ever)."""
        return float(getattr(self, status))
