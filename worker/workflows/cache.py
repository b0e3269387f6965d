"""Workflow instances kept in memory between decisions (sticky decisions).

After a decision a worker keeps the workflow's instance, standing where the history it saw
ends, and says so to the control plane, which routes the workflow's next decision back with
only the events after that point (Task.history_after_seq). Fed those, the instance decides
without replaying. The cache is bounded by count, least recently used first out; an instance
is used by one decision at a time (taken out while it decides, put back after).

A kept instance is only ever resumed from exactly its point: a task whose history starts
elsewhere (the instance was evicted, its decision was dropped, another worker decided since)
is a miss, and the whole history is replayed on a fresh instance.

Once its decision is applied, the control plane may tell the worker the command events the
decision appended; fed those (`confirm`), the instance stands where the history ends
(`position`), and the completion of its next activity can carry the next decision
(durable.worker.following), taken out with `take_confirmed`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from durable.worker.workflows.history import HistoryEvent
from durable.worker.workflows.instance import WorkflowInstance


@dataclass
class Kept:
    instance: WorkflowInstance
    seen_through_seq: int  # the last event the decision saw (where the next task's history starts)
    position: int | None = None  # confirmed: the history's last event, which the instance was fed


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

    def workflow_type(self, workflow_id: str) -> str | None:
        """The type of the workflow whose instance is kept (None: none is)."""
        kept = self._kept.get(workflow_id)
        return kept.instance.info.workflow_type if kept is not None else None

    def take_confirmed(self, workflow_id: str) -> tuple[WorkflowInstance, int] | None:
        """The instance and its position, taken out of the cache, if it was confirmed to stand
        where the history ends (None: not kept, or not confirmed; it then stays)."""
        kept = self._kept.get(workflow_id)
        if kept is None or kept.position is None:
            return None
        del self._kept[workflow_id]
        return kept.instance, kept.position

    def confirm(self, workflow_id: str, instance: WorkflowInstance, events: list[HistoryEvent],
                decided_through_seq: int) -> None:
        """Feed `instance`, still kept after its applied decision, the command events that
        decision appended (none: it appended none, and the history ends where it saw): it then
        stands where the history ends. An instance those events do not fit (or do not
        confirm) is dropped."""
        kept = self._kept.get(workflow_id)
        if kept is None or kept.instance is not instance:
            return
        if not events:
            kept.position = kept.seen_through_seq
            return
        try:
            decision = instance.advance(events, decided_through_seq)
        except Exception:  # noqa: BLE001 - it does not stand where the history does
            decision = None
        if decision is None or decision.actions or decision.local_activities:
            self.drop(workflow_id, instance)
            return
        kept.position = events[-1].sequence_num

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
