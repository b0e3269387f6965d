"""Retry and circuit-breaker policies: validated once, stored with each task as JSON."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from durable.common.errors import InvalidArgument


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def parse(cls, data: dict[str, Any] | None, *, field: str) -> Any:
        """Build the policy from a mapping, turning validation errors into InvalidArgument."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}.{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidArgument(f"invalid {field}: {problems}") from None


class RetryPolicy(_Policy):
    """How a failed activity attempt is retried. Defaults follow the seed engine:
    5 attempts, 1 s initial delay doubling up to 60 s, with 10% jitter."""

    max_attempts: int = Field(5, ge=1, le=10_000, description="Attempts in all, the first included.")
    initial_interval: float = Field(1.0, gt=0, description="Delay before the second attempt, seconds.")
    backoff_coefficient: float = Field(2.0, ge=1.0, le=100.0, description="Multiplier per attempt.")
    max_interval: float = Field(60.0, gt=0, description="Upper bound on one delay, seconds.")
    jitter: float = Field(0.1, ge=0.0, le=1.0, description="Fraction of the delay randomised, +/-.")
    non_retryable_error_types: tuple[str, ...] = Field(
        (), description="Error type names that go straight to the dead-letter queue."
    )

    @model_validator(mode="after")
    def _interval_order(self) -> RetryPolicy:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must be >= initial_interval")
        return self

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """Backoff after failed attempt number `attempt` (1-based)."""
        base = min(
            self.initial_interval * self.backoff_coefficient ** max(attempt - 1, 0),
            self.max_interval,
        )
        if self.jitter:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return timedelta(seconds=max(base, 0.0))


class CircuitBreakerPolicy(_Policy):
    """When tasks of one activity type stop being handed out.

    closed -> open after `failure_threshold` failures within `window` seconds;
    open -> half-open after `reset_timeout` seconds, letting `half_open_max_trials` tasks run;
    half-open -> closed after `success_threshold` successes (one failure re-opens it).
    """

    failure_threshold: int = Field(5, ge=1)
    window: float = Field(60.0, gt=0, description="Failure counting window, seconds.")
    reset_timeout: float = Field(30.0, gt=0, description="Time open before half-open, seconds.")
    half_open_max_trials: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)


class ActivityOptions(_Policy):
    """How one activity task is scheduled and supervised."""

    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    schedule_to_start_timeout: float | None = Field(
        None, gt=0, description="Seconds a task may wait for a worker before it is dead-lettered."
    )
    start_to_close_timeout: float | None = Field(
        None, gt=0, description="Seconds one attempt may run before it counts as failed."
    )
    heartbeat_timeout: float | None = Field(
        None, gt=0, description="Seconds without a heartbeat before the attempt is taken back "
        "(default: the reaper's threshold)."
    )
    start_delay: float = Field(0.0, ge=0, description="Seconds before the task becomes visible.")
    concurrency_key: str | None = Field(
        None, min_length=1, max_length=255,
        description="Tasks sharing this key (a customer id, say) run at most concurrency_limit at once, "
        "cluster-wide; the others wait without burning attempts.",
    )
    concurrency_limit: int | None = Field(
        None, ge=1, le=1_000_000, description="How many tasks of concurrency_key may run at once."
    )

    @model_validator(mode="after")
    def _key_with_limit(self) -> ActivityOptions:
        if (self.concurrency_key is None) != (self.concurrency_limit is None):
            raise ValueError("concurrency_key and concurrency_limit go together: give both or neither")
        return self
