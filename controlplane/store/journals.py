"""Journals: a decision's commands written while it is still being made (ctx.step).

A workflow that runs steps in the worker (``await ctx.step(...)``) has each step's outcome
written before its next step runs: the worker sends the decision's commands so far as a
journal (CompleteWorkflowTask with `journal`), and the store appends their events while the
decision task stays the worker's. The rules:

1. A journal applies as a decision would (the same checks, the same commands), but it
   finishes nothing: the workflow is not decided through what the journal saw, its signals
   stay undelivered, no decision is queued for events that came meanwhile (the decision's
   own end does that), and the task stays claimed.
2. It carries no ending action: a workflow ends by its decision.
3. The task's heartbeat details count the commands this attempt's journals wrote
   ({"attempt", "journalled"}). A journal says how many it counts before it; one that counts
   fewer was written already (its answer was lost, the worker made it again) and is answered
   applied with nothing written; one that counts more than were written is refused.
4. Not applied (the workflow ended, the task's attempt moved on): as a decision that is not
   applied, the task is completed and the workflow woken; the worker drops the decision.
5. Its answer says `unseen` when the history holds events after what the decision saw (a
   signal, a completion, a cancellation request; a journal made again counts its own first
   writing among them). Its worker then ends the decision, the steps it waits on deferred
   (durable.worker.workflows.local, rule 7), and the decision's end queues the next one.

A batch's journals of markers alone (a step's outcome, the common case) where their history
ends go in one statement (`write_markers`); the others take the decision's single path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from durable.common.errors import ConcurrencyConflict, InvalidArgument
from durable.controlplane.store import workflow_batches
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import Event, WorkflowInstance

if TYPE_CHECKING:
    from durable.controlplane.store.decisions import Decision, DecisionStore


def check(planned: list[dict[str, Any]], terminal_actions: tuple[str, ...]) -> None:
    """Rule 2 (InvalidArgument)."""
    if any(a["type"] in terminal_actions for a in planned):
        raise InvalidArgument("a journal carries no ending action (complete/fail/cancel/continue_as_new): "
                              "the workflow ends with its decision")


def written(details: Any, decision: Decision) -> int:
    """How many commands the decision's attempt's journals wrote (the task's heartbeat
    details); InvalidArgument when the journal counts more (rule 3). Nothing is written yet."""
    if isinstance(details, str):
        details = json.loads(details)
    done = 0
    if isinstance(details, dict) and details.get("attempt") == decision.attempt:
        done = int(details.get("journalled") or 0)
    if decision.journalled > done:
        raise InvalidArgument(f"this journal counts {decision.journalled} commands written before it, but the "
                              f"journals of its task's attempt wrote {done}")
    return done


async def write(
    store: DecisionStore,
    conn: asyncpg.Connection,
    wf: WorkflowInstance,
    task_id: UUID,
    decision: Decision,
    planned: list[dict[str, Any]],
    done: int,
    now: datetime,
) -> tuple[bool, bool, tuple[Event, ...], bool]:
    """One journal on its locked workflow and task, `done` commands written before it:
    (applied, the run ended, the command events told when they end the history, unseen:
    rule 5)."""
    if not store._applies(wf, decision, planned):  # rule 4
        await store._not_applied(conn, wf, task_id, now)
        return False, False, (), False
    unseen = wf.last_event_seq > decision.seen_through_seq
    if decision.journalled < done:  # rule 3: made again; the first was written
        return True, False, (), unseen
    told: list[Event] | None = None if unseen else []
    ended = await store._apply(conn, wf, task_id, decision.seen_through_seq, planned, now, told=told,
                               journal=(decision.attempt, done + len(planned)))
    return not ended, ended, tuple(told or ()), unseen


@dataclass(frozen=True, slots=True)
class Marked:
    """A journal of markers alone, for write_markers: `done` commands written before it."""

    wf: WorkflowInstance
    task_id: UUID
    decision: Decision
    planned: list[dict[str, Any]]
    done: int


def set_based(store: DecisionStore, marked: Marked) -> bool:
    """Whether the journal goes in the batch's statement: markers alone, new (rule 3), applied
    (rule 4) where the history ends, and a history far from its limits."""
    wf, decision, planned = marked.wf, marked.decision, marked.planned
    return (bool(planned) and all(a["type"] == "record_marker" for a in planned)
            and decision.journalled == marked.done and wf.last_event_seq == decision.seen_through_seq
            and store._applies(wf, decision, planned)
            and not (wf.history_warned or store.history_limits.warns(wf.last_event_seq + len(planned), wf.history_bytes)))


async def write_markers(
    conn: asyncpg.Connection, worker_id: str, journals: Sequence[Marked], now: datetime
) -> dict[str, tuple[Event, ...]]:
    """The journals (set_based) of `worker_id`, which holds their instances, in one statement,
    on their locked workflows and tasks; per workflow the events told. ConcurrencyConflict
    when a history is not where its journal saw it (the caller rolls back)."""
    ids: list[str] = []
    seqs: list[int] = []
    data: list[str] = []
    told: dict[str, tuple[Event, ...]] = {}
    for j in journals:
        d = workflow_batches.Decided(j.wf, j.task_id, j.decision.seen_through_seq, j.planned, worker_id)
        planned = workflow_batches.command_events(d, [None] * len(j.planned), None, now)
        for seq, _, event_data in planned.events:
            ids.append(j.wf.id)
            seqs.append(seq)
            data.append(event_data)
        told[j.wf.id] = tuple(planned.told)
    rows = await conn.fetch(
        Q.journal_markers, ids, seqs, data, [j.wf.id for j in journals],
        [j.decision.seen_through_seq for j in journals], [j.task_id for j in journals],
        [j.decision.attempt for j in journals], [j.done + len(j.planned) for j in journals], now)
    if len(rows) != len(journals):
        raise ConcurrencyConflict("a journal's history moved while its workflow was locked")
    return told
