"""A workflow's lineage in the store: child workflows, continue-as-new and history limits.

Functions the decision code (and the other places a workflow ends) call inside their
transaction, plus the few the control plane calls after one; SQL in lineage.sql.

- **Children.** A start_child_workflow action inserts the child (its own row and history,
  `parent_workflow_id` set) and records ChildWorkflowStarted in the parent. A child id that
  exists already starts nothing: ChildWorkflowStarted (with "started": false) is followed,
  after the decision, by ChildWorkflowFailed of type ChildWorkflowAlreadyExists, which the
  parent's code gets as a ChildWorkflowError. When a child ends, `tell_parent` appends
  ChildWorkflowCompleted / ChildWorkflowFailed / ChildWorkflowCancelled to its parent and
  wakes it, in the child's transaction.
- **Lock order.** A child's end locks the child, then its parent (upwards). A parent's end
  never locks its children in its own transaction: `cancel_children` asks them to cancel
  right after it commits, one short transaction each, and the reaper's `cancel_orphaned_children`
  sweep catches a control plane that stopped in between.
- **Continue-as-new.** The workflow keeps its id and row: the closed run goes to
  durable_workflow_runs (input, next input, its events as a JSON array), its events and
  finished steps leave the live tables, and the row starts over with a fresh WorkflowStarted.
  Signals (and a cancel request) recorded after the event the closed run's code last handled
  are appended again to the new run, so each reaches a run once. Runs are deleted with their
  workflow (ON DELETE CASCADE): retention needs no change.
- **History limits.** `history_bytes` grows in the append statement itself. When a decision
  is applied over a limit the workflow fails with HistoryLimitExceeded; past `warn_ratio` of
  either limit one HistorySizeWarning event is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import WorkflowInstance

if TYPE_CHECKING:
    from durable.controlplane.store.base import StoreBase

logger = logging.getLogger(__name__)

DEFAULT_HISTORY_MAX_EVENTS = 51_200
DEFAULT_HISTORY_MAX_BYTES = 50 * 1024 * 1024
CHILD_EVENTS = {"completed": "ChildWorkflowCompleted", "failed": "ChildWorkflowFailed",
                "cancelled": "ChildWorkflowCancelled"}


@dataclass(frozen=True)
class HistoryLimits:
    """How long one run's history may grow: `max_events` events, `max_bytes` bytes of event
    data; a warning at `warn_ratio` of either."""

    max_events: int = DEFAULT_HISTORY_MAX_EVENTS
    max_bytes: int = DEFAULT_HISTORY_MAX_BYTES
    warn_ratio: float = 0.8

    def exceeded(self, events: int, size: int) -> bool:
        return events >= self.max_events or size >= self.max_bytes

    def warns(self, events: int, size: int) -> bool:
        return events >= self.warn_ratio * self.max_events or size >= self.warn_ratio * self.max_bytes

    def failure(self, events: int, size: int) -> dict[str, Any]:
        return {
            "type": "HistoryLimitExceeded",
            "message": (
                f"the workflow's history reached its limit ({events} events of {self.max_events}, "
                f"{size} bytes of {self.max_bytes}; DURABLE_HISTORY_MAX_EVENTS, DURABLE_HISTORY_MAX_BYTES): "
                "a workflow that runs long should call ctx.continue_as_new(...) to go on with an empty history"
            ),
        }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


# -- children ---------------------------------------------------------------------------


async def start_child(
    store: StoreBase, conn: asyncpg.Connection, parent: WorkflowInstance, action: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Insert the child of a start_child_workflow action. Returns the ChildWorkflowStarted
    data, and the ChildWorkflowFailed data to append after the decision when the id exists."""
    child_id, workflow_type = action["child_id"], action["workflow_type"]
    policy = action["parent_close_policy"]
    trace_id, span_id = (parent.trace_id, parent.span_id) if parent.trace_id and parent.span_id else (None, None)
    inserted = await conn.fetchval(
        Q.insert_workflow, child_id, workflow_type, action["input_json"], now, trace_id, span_id,
        None, None)  # no concurrency key: a child runs when its parent asks
    started = {"child_id": child_id, "workflow_type": workflow_type, "input": action["input"],
               "parent_close_policy": policy}
    if inserted is None:
        started["started"] = False
        return started, {
            "child_id": child_id, "workflow_type": workflow_type,
            "error": {"type": "ChildWorkflowAlreadyExists",
                      "message": f"a workflow with id {child_id!r} exists already; start the child with another id"},
        }
    await conn.execute(Q.set_workflow_parent, child_id, parent.id, policy)
    await store._append(conn, child_id, 0, [("WorkflowStarted", {
        "workflow_type": workflow_type, "input": action["input"], "random_seed": store.rng.getrandbits(63),
        "parent_workflow_id": parent.id,
    })], now, wake=True)
    started["started"] = True
    return started, None


async def tell_parent(
    store: StoreBase, conn: asyncpg.Connection, child: WorkflowInstance, status: str, value: Any, now: datetime
) -> None:
    """A child ended (`status`; `value` its result, error or cancel reason): append its end to
    the parent and wake it. The caller holds the child's lock; this locks the parent."""
    if not child.parent_workflow_id or status not in CHILD_EVENTS:
        return
    row = await conn.fetchrow(Q.lock_workflow, child.parent_workflow_id)
    if row is None:
        return
    parent = WorkflowInstance.from_row(row)
    if parent.is_terminal:
        return
    data: dict[str, Any] = {"child_id": child.id, "workflow_type": child.workflow_type}
    if status == "completed":
        data["result"] = value
    elif status == "failed":
        data["error"] = value if isinstance(value, dict) else {"type": "ChildWorkflowFailed", "message": str(value)}
    else:
        data["reason"] = str(value or "")
    await store._append(conn, parent.id, parent.last_event_seq, [(CHILD_EVENTS[status], data)], now, wake=True)


async def request_cancel(store: StoreBase, conn: asyncpg.Connection, workflow_id: str, reason: str, now: datetime) -> bool:
    """Ask one workflow to cancel (WorkflowCancelRequested), unless it ended or was asked."""
    row = await conn.fetchrow(Q.lock_workflow, workflow_id)
    if row is None:
        return False
    wf = WorkflowInstance.from_row(row)
    if wf.is_terminal or wf.cancel_requested_at is not None:
        return False
    seq = await store._append(conn, wf.id, wf.last_event_seq, [("WorkflowCancelRequested", {"reason": reason})],
                              now, wake=True)
    await conn.execute(Q.insert_signal, wf.id, "cancel", _dumps({"reason": reason}), seq, now)
    await conn.execute(Q.request_cancel, wf.id, now)
    return True


async def cancel_children(store: StoreBase, workflow_id: str | Sequence[str], now: datetime) -> int:
    """After `workflow_id` (or each of several) ended or continued as new: ask its children
    whose policy is "cancel" to cancel, each in its own transaction (one query finds them for
    all). Failures are logged (the reaper's sweep asks again); returns how many were asked."""
    parents = [workflow_id] if isinstance(workflow_id, str) else list(workflow_id)
    asked = 0
    if not parents:
        return 0
    try:
        rows = await store.pool.fetch(Q.children_to_cancel, parents, now)
        for row in rows:
            async with store.pool.acquire() as conn, conn.transaction():
                reason = f"its parent {row['parent_workflow_id']} ended"
                if await request_cancel(store, conn, row["id"], reason, now):
                    asked += 1
    except Exception as exc:  # noqa: BLE001 - the parent's change is committed; the sweep retries
        logger.warning("cancelling the children of workflows %s failed (the reaper asks again): %s",
                       ", ".join(parents[:5]), exc)
    return asked


async def cancel_orphaned_children(store: StoreBase, limit: int = 100) -> int:
    """The reaper's sweep: children to be cancelled whose parent ended or is gone."""
    now = store.now()
    asked = 0
    for row in await store.pool.fetch(Q.orphaned_children, limit):
        async with store.pool.acquire() as conn, conn.transaction():
            if await request_cancel(store, conn, row["id"], "its parent ended", now):
                asked += 1
    return asked


async def children_of(store: StoreBase, workflow_id: str) -> list[WorkflowInstance]:
    return [WorkflowInstance.from_row(r) for r in await store.pool.fetch(Q.list_children, workflow_id)]


# -- continue-as-new -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRun:
    """A closed run of a workflow that continued as new."""

    run_number: int
    status: str
    input: Any
    next_input: Any
    events: int
    started_at: datetime | None
    closed_at: datetime


async def runs_of(store: StoreBase, workflow_id: str) -> list[WorkflowRun]:
    rows = await store.pool.fetch(Q.list_runs, workflow_id)
    return [
        WorkflowRun(r["run_number"], r["status"], _loads(r["input"]), _loads(r["next_input"]), r["event_count"],
                    r["started_at"], r["closed_at"])
        for r in rows
    ]


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def continue_as_new(
    store: StoreBase, conn: asyncpg.Connection, wf: WorkflowInstance, action: dict[str, Any], now: datetime
) -> None:
    """Close the run (its WorkflowContinuedAsNew already appended and the decision finished)
    and start the next one. The caller holds the workflow's lock."""
    carried = await conn.fetch(Q.carried_events, wf.id, action["handled_through_seq"])
    await store._cancel_open_steps(conn, wf.id, now)
    await conn.execute(Q.archive_run, wf.id, action["input_json"], now)
    await conn.execute(Q.delete_run_events, wf.id)
    await conn.execute(Q.delete_run_steps, wf.id)
    cancel_carried = any(r["event_type"] == "WorkflowCancelRequested" for r in carried)
    await conn.execute(Q.start_next_run, wf.id, action["input_json"], now, cancel_carried)
    events: list[tuple[str, dict[str, Any]]] = [("WorkflowStarted", {
        "workflow_type": wf.workflow_type, "input": action["input"], "random_seed": store.rng.getrandbits(63),
        "run_number": wf.run_number + 1, "continued_from_run": wf.run_number,
        **({"parent_workflow_id": wf.parent_workflow_id} if wf.parent_workflow_id else {}),
    })]
    events += [(r["event_type"], json.loads(r["event_data"])) for r in carried]
    await store._append(conn, wf.id, 0, events, now, wake=True)
    for new_seq, row in enumerate(carried, start=2):
        if row["event_type"] == "SignalReceived":
            await conn.execute(Q.move_signal_to_run, wf.id, row["sequence_num"], new_seq)
