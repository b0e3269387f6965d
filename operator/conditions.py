"""Status conditions as the Kubernetes API conventions define them.

A list keyed by `type`; `status` True/False/Unknown; CamelCase `reason`; human `message`;
`lastTransitionTime` changes only when `status` changes; `observedGeneration` is the pool's
generation the condition was computed for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = ["BACKLOG_KNOWN", "CONDITION_TYPES", "READY", "SCALING_LIMITED", "Conditions"]

READY = "Ready"
BACKLOG_KNOWN = "BacklogKnown"
SCALING_LIMITED = "ScalingLimited"
CONDITION_TYPES = (READY, BACKLOG_KNOWN, SCALING_LIMITED)

Status = Literal["True", "False", "Unknown"]


class Conditions:
    """A working copy of a status' conditions; `changed` tells whether to write it back."""

    def __init__(self, existing: Iterable[Mapping[str, Any]] | None, *, generation: int | None,
                 now: str) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        for item in existing or ():
            if isinstance(item, Mapping) and isinstance(item.get("type"), str):
                self._items[item["type"]] = dict(item)
        self._original = [dict(item) for item in self._items.values()]
        self._generation = generation
        self._now = now

    def get(self, type_: str) -> Mapping[str, Any] | None:
        return self._items.get(type_)

    def set(self, type_: str, status: Status, reason: str, message: str) -> None:
        previous = self._items.get(type_)
        transition = self._now
        if previous is not None and previous.get("status") == status:
            transition = previous.get("lastTransitionTime") or self._now
        item: dict[str, Any] = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": transition,
        }
        if self._generation is not None:
            item["observedGeneration"] = self._generation
        self._items[type_] = item

    def set_missing_unknown(self, reason: str, message: str) -> None:
        for type_ in CONDITION_TYPES:
            if type_ not in self._items:
                self.set(type_, "Unknown", reason, message)

    def as_list(self) -> list[dict[str, Any]]:
        ordered = [self._items[t] for t in CONDITION_TYPES if t in self._items]
        others = [v for k, v in self._items.items() if k not in CONDITION_TYPES]
        return ordered + others

    @property
    def changed(self) -> bool:
        return self.as_list() != self._original
