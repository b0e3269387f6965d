"""Payload rules: every workflow input, result, signal and activity payload is one JSON value.

The size limit is one number for the whole engine: 1 MiB of UTF-8 JSON by default, set by
``DURABLE_MAX_PAYLOAD_BYTES`` on the control plane. Larger data belongs in object storage,
with a reference in the payload.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every call (json.loads with keyword arguments builds a new one each time);
# NaN and Infinity, which Python's json accepts, are refused as encode_payload refuses them.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def check_object(value: Any, field: str) -> None:
    """For the few values that must be objects (options, details)."""
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"{field} must be a JSON object, got {type(value).__name__}; "
            f"wrap scalar values, e.g. {{\"value\": ...}}"
        )


def _check_size(size: int, field: str, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(
            f"{field} is {size} bytes, over the limit of {limit} bytes; "
            "store large data elsewhere and pass a reference"
        )


def _check_depth(value: Any, size: int, field: str) -> None:
    # Nesting deeper than the limit needs at least two brackets per level: short texts are
    # shallow enough, and only longer ones pay for the walk.
    if size > 2 * MAX_PAYLOAD_DEPTH and _depth(value, MAX_PAYLOAD_DEPTH) > MAX_PAYLOAD_DEPTH:
        raise InvalidArgument(f"{field} nests deeper than {MAX_PAYLOAD_DEPTH} levels")


def encode_payload(
    value: Any, *, field: str = "payload", limit: int | None = None, allow_none: bool = False
) -> str:
    """Validate a payload and return its JSON text. Raises InvalidArgument naming `field`."""
    if isinstance(value, Checked):
        _check_size(_utf8_size(value.text), field, MAX_PAYLOAD_BYTES if limit is None else limit)
        return value.text
    if value is None and allow_none:
        value = {}
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{field} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{field} nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None
    size = _utf8_size(text)
    _check_depth(value, size, field)
    _check_size(size, field, MAX_PAYLOAD_BYTES if limit is None else limit)
    return text


def decode_payload(
    text: str | bytes, *, field: str = "payload", limit: int | None = None
) -> Any:
    """Parse JSON text received from a caller into an object, enforcing the same rules."""
    return check_payload(text, field=field, limit=limit).value


def check_payload(text: str | bytes, *, field: str = "payload", limit: int | None = None) -> Checked:
    """The rules of decode_payload, keeping the text: a layer that only passes the payload on
    (the control plane writing an activity's result) stores `.text` without encoding again."""
    if not text:
        return Checked("{}", {})
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{field} is not valid UTF-8: {exc}") from None
    size = _utf8_size(text)
    _check_size(size, field, MAX_PAYLOAD_BYTES if limit is None else limit)
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from None
    _check_depth(value, size, field)
    return Checked(text, value)


@dataclass(frozen=True, slots=True)
class Checked:
    """A payload that passed the rules: its JSON text and its value."""

    text: str
    value: Any


def plain(value: Any) -> Any:
    """The value of a payload given as a Checked or as itself."""
    return value.value if isinstance(value, Checked) else value


def validate_payload(value: Any, *, field: str = "payload", limit: int | None = None) -> None:
    """Raise InvalidArgument unless `value` is JSON within the size limit."""
    encode_payload(value, field=field, limit=limit)
