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

from durable.common.errors import InvalidArgument
from durable.proto.v1 import durable_pb2 as pb

M = TypeVar("M", bound=Message)

# The tag and length prefix of one entry of a repeated message field, at most.
_ENTRY_OVERHEAD = 6
# Room kept for the answer's other fields.
ANSWER_OVERHEAD = 1024
DEFAULT_HISTORY_PAGE = 1000
MAX_HISTORY_PAGE = 10_000


def entry_size(message: Message) -> int:
    """Bytes that `message` adds to an answer as one entry of a repeated field."""
    return message.ByteSize() + _ENTRY_OVERHEAD


def pack(items: Iterable[M], budget: int) -> tuple[list[M], list[M]]:
    """Split `items` (in order) into those that fit in `budget` bytes and the rest. The first
    item that does not fit ends the packing: order is kept (priority, sequence)."""
    kept: list[M] = []
    rest: list[M] = []
    used = ANSWER_OVERHEAD
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


def pack_at_least_one(items: Iterable[M], budget: int) -> tuple[list[M], list[M]]:
    """pack(), but a first item larger than the budget still goes (alone): a listing always
    makes progress."""
    kept, rest = pack(items, budget)
    if not kept and rest:
        kept, rest = rest[:1], rest[1:]
    return kept, rest


def page_size(requested: int) -> int:
    """A history page's event count: `requested`, 0 = the default; refused out of range."""
    if not 0 <= requested <= MAX_HISTORY_PAGE:
        raise InvalidArgument(f"page_size must be between 0 and {MAX_HISTORY_PAGE} (0 = {DEFAULT_HISTORY_PAGE})")
    return requested or DEFAULT_HISTORY_PAGE


def history_page(events: list[pb.Event], size: int, after_seq: int, budget: int) -> pb.GetHistoryResponse:
    """The answer for events read with LIMIT size + 1: at most `size` of them, within `budget`
    bytes, and whether more follow."""
    kept, rest = pack(events[:size], budget)
    more = len(events) > size or bool(rest)
    next_after = kept[-1].sequence_num if kept else after_seq
    return pb.GetHistoryResponse(events=kept, has_more=more, next_after_seq=next_after)
