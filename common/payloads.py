"""Payload rules: every workflow input, result, signal and activity payload is a JSON object.

The size limit is one number for the whole engine: 1 MiB of UTF-8 JSON by default, set by
``DURABLE_MAX_PAYLOAD_BYTES`` on the control plane. Larger data belongs in object storage,
with a reference in the payload.
"""

from __future__ import annotations

import json
import os
from typing import Any

from durable.common.errors import InvalidArgument, PayloadTooLarge

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = int(os.environ.get("DURABLE_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES))
# Deeply nested JSON is a denial-of-service vector for every parser on the way.
MAX_PAYLOAD_DEPTH = 64


def _depth(value: Any, limit: int) -> int:
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        depth = max(depth, level)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return depth


def encode_payload(
    value: Any, *, field: str = "payload", limit: int | None = None, allow_none: bool = False
) -> str:
    """Validate a payload and return its JSON text. Raises InvalidArgument naming `field`."""
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    if value is None and allow_none:
        value = {}
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"{field} must be a JSON object, got {type(value).__name__}; "
            f"wrap scalar values, e.g. {{\"value\": ...}}"
        )
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{field} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{field} nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None
    # Nesting deeper than the limit needs at least two brackets per level: short texts are
    # shallow enough, and only longer ones pay for the walk.
    if len(text) > 2 * MAX_PAYLOAD_DEPTH and _depth(value, MAX_PAYLOAD_DEPTH) > MAX_PAYLOAD_DEPTH:
        raise InvalidArgument(f"{field} nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    size = len(text.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"{field} is {size} bytes, over the limit of {limit} bytes; "
            "store large data elsewhere and pass a reference"
        )
    return text


def decode_payload(
    text: str | bytes, *, field: str = "payload", limit: int | None = None
) -> dict[str, Any]:
    """Parse JSON text received from a caller into an object, enforcing the same rules."""
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    if not text:
        return {}
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > limit:
        raise PayloadTooLarge(
            f"{field} is {len(raw)} bytes, over the limit of {limit} bytes; "
            "store large data elsewhere and pass a reference"
        )
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from None
    encode_payload(value, field=field, limit=limit)
    return value  # type: ignore[no-any-return]


def validate_payload(value: Any, *, field: str = "payload", limit: int | None = None) -> None:
    """Raise InvalidArgument unless `value` is a JSON object within the size limit."""
    encode_payload(value, field=field, limit=limit)
