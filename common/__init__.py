"""Pieces shared by every part of durable: errors, payload rules and retry policies."""

from __future__ import annotations

from durable.common.errors import (
    ActivityCancelled,
    ConcurrencyConflict,
    DurableError,
    InvalidArgument,
    MessageTooLarge,
    NonRetryableError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RetryableError,
    StaleAttempt,
    WrongState,
)
from durable.common.payloads import MAX_PAYLOAD_BYTES, validate_payload
from durable.common.policies import ActivityOptions, CircuitBreakerPolicy, RetryPolicy

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ActivityCancelled",
    "ActivityOptions",
    "CircuitBreakerPolicy",
    "ConcurrencyConflict",
    "DurableError",
    "InvalidArgument",
    "MessageTooLarge",
    "NonRetryableError",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RetryPolicy",
    "RetryableError",
    "StaleAttempt",
    "WrongState",
    "validate_payload",
]
