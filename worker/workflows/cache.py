"""Workflow instances kept in memory between decisions (sticky decisions).

After a decision a worker keeps the workflow's instance, standing where the history it saw
ends, and says so to the control plane, which routes the workflow's next decision back with
only the events after that point (Task.history_after_seq). Fed those, the instance decides
without replaying. The cache is bounded by count, least recently used first out; an instance
is used by one decision at a time (taken out while it decides, put back after).

A kept instance is only ever resumed from exactly its point: a task whose history starts
elsewhere (the instance was evicted, its decision was dropped, another worker decided since)
is a miss, and the whole history is replayed on a fresh instance.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from durable.worker.workflows.instance import WorkflowInstance


@dataclass
class Kept:
    instance: WorkflowInstance
    seen_through_seq: int  # the last event the instance was fed


class InstanceCache:
    def __init__(self, size: int, *, on_event: Callable[[str], None] | None = None) -> None:
        self.size = size
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._on_event = on_event or (lambda _result: None)

    def __len__(self) -> int:
        return len(self._kept)

    def take(self, workflow_id: str, at_seq: int) -> WorkflowInstance | None:
        """The instance standing at `at_seq`, taken out of the cache (None: not kept there; an
        instance kept at another point is dropped)."""
        kept = self._kept.pop(workflow_id, None)
        if kept is not None and kept.seen_through_seq == at_seq:
            self._on_event("hit")
            return kept.instance
        if kept is not None:
            kept.instance.close()
        return None

    def missed(self) -> None:
        """A decision replayed from the whole history (the cache is on)."""
        self._on_event("miss")

    def put(self, workflow_id: str, instance: WorkflowInstance, seen_through_seq: int) -> None:
        old = self._kept.pop(workflow_id, None)
        if old is not None and old.instance is not instance:
            old.instance.close()
        self._kept[workflow_id] = Kept(instance, seen_through_seq)
        while len(self._kept) > self.size:
            _, evicted = self._kept.popitem(last=False)
            evicted.instance.close()
            self._on_event("eviction")

    def drop(self, workflow_id: str, instance: WorkflowInstance) -> None:
        """Forget `instance` (its decision was not applied), if it is still the one kept."""
        kept = self._kept.get(workflow_id)
        if kept is not None and kept.instance is instance:
            del self._kept[workflow_id]
            instance.close()
