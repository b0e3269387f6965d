"""A decision's journal: its commands so far, written before each step runs (ctx.step).

While a decision's code runs steps in the worker, each step's outcome is written before the
next step starts (durable.worker.workflows.local, rule 6): the commands the decision issued
so far go to the control plane as a journal (CompleteWorkflowTask with `journal`, coalesced
with the worker's other decisions), and the decision's task stays this worker's. The store's
rules: durable.controlplane.store.journals.

A journal is retried while the control plane is unreachable, and counts what this decision's
journals wrote before it, so one made again after its answer was lost is not written twice.
A journal that is not applied, or whose task this worker no longer holds, drops the
decision (DecisionDropped): the next decision runs on from the history. One the control plane
refuses (too large, invalid) fails the decision, and the workflow blocks saying why. One
answered `unseen` (events came meanwhile) ends a decision that ran a step already, its next
steps deferred to the decision those events start (durable.worker.workflows.local, rule 7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from durable.common import DurableError, InvalidArgument, NotFound, WrongState
from durable.common.errors import MessageTooLarge
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.batching import DecisionBatcher
from durable.worker.link import Backoff, ControlPlaneUnreachable
from durable.worker.protocol import actions_to_proto, history_from_proto
from durable.worker.workflows import WorkflowCodeError
from durable.worker.workflows.instance import Decision, WorkflowInstance

log = logging.getLogger(__name__)

MAX_JOURNAL_ERRORS = 5  # other errors (INTERNAL, UNKNOWN, ...) are retried this many times


class DecisionDropped(Exception):
    """The decision's journal was not applied, or its task is no longer this worker's."""


class Journal:
    """The journal of one decision of `task` on `instance`, sent through `decisions`."""

    def __init__(self, task: pb.Task, instance: WorkflowInstance, decisions: DecisionBatcher,
                 worker_id: str, backoff: Callable[[], Backoff]) -> None:
        self.task = task
        self.instance = instance
        self.decisions = decisions
        self.worker_id = worker_id
        self._backoff = backoff
        self.written = 0  # commands this decision's journals wrote
        self.unseen = False  # the last answer: events came that the decision has not seen

    async def __call__(self, decision: Decision) -> Decision:
        """Write `decision`'s commands; the decision that then stands (those not sent again)."""
        task = self.task
        request = pb.CompleteWorkflowTaskRequest(
            worker_id=self.worker_id, task_id=task.id, attempt=task.attempt,
            seen_through_seq=decision.seen_through_seq, actions=actions_to_proto(decision.actions),
            journal=True, journalled=self.written,
        )
        response = await self._send(request)
        if response is None or not response.applied:
            raise DecisionDropped(f"workflow {task.workflow_id}: a journal of task {task.id} was not applied "
                                  "(the workflow ended, or the task was taken back)")
        count = len(decision.actions)
        self.written += count
        self.unseen = response.unseen
        return self.instance.journalled(count, history_from_proto(response.events))

    async def _send(self, request: pb.CompleteWorkflowTaskRequest) -> pb.CompleteWorkflowTaskResponse | None:
        backoff: Backoff | None = None
        errors = 0
        while True:
            try:
                return await self.decisions.decide(request)
            except ControlPlaneUnreachable:
                pass
            except (WrongState, NotFound) as exc:
                log.info("task %s: a journal refused (%s); the decision is dropped", self.task.id, exc)
                return None
            except (InvalidArgument, MessageTooLarge) as exc:
                raise WorkflowCodeError(f"a journal of the decision was refused: {exc}") from None
            except DurableError as exc:
                errors += 1
                if errors >= MAX_JOURNAL_ERRORS:
                    log.error("task %s: a journal failed %d times (%s); the decision is dropped, and the "
                              "control plane will take the task back", self.task.id, errors, exc)
                    return None
            backoff = backoff or self._backoff()
            await asyncio.sleep(backoff.next_delay())
