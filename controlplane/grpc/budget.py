"""Byte budgets of answers: what fits in one gRPC message, decided before it is sent.

gRPC refuses a message over the channel's limit only when it is already built, and then the
whole call fails: a claim's tasks would stay claimed with nobody running them. So every answer
that carries a list is packed here, item by item, against the control plane's response budget
(DURABLE_MAX_RESPONSE_BYTES), and what does not fit is left out on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

# The tag and length prefix of one entry of a repeated message field, at most.
_ENTRY_OVERHEAD = 6
# Room kept for the answer's other fields.
_ANSWER_OVERHEAD = 1024


def entry_size(message: Message) -> int:
    """Bytes that `message` adds to an answer as one entry of a repeated field."""
    return message.ByteSize() + _ENTRY_OVERHEAD


def pack(items: Iterable[M], budget: int) -> tuple[list[M], list[M]]:
    """Split `items` (in order) into those that fit in `budget` bytes and the rest. The first
    item that does not fit ends the packing: order is kept (priority, sequence)."""
    kept: list[M] = []
    rest: list[M] = []
    used = _ANSWER_OVERHEAD
    for item in items:
        if rest:
            rest.append(item)
            continue
        size = entry_size(item)
        if used + size > budget:
            rest.append(item)
        else:
            kept.append(item)
            used += size
    return kept, rest
