"""The worker's decision batcher (worker/batching.py): decisions made at nearly the same moment
go in one CompleteWorkflowTasks call, each caller gets its own outcome, and a control plane
that does not know the call (an older one) gets single CompleteWorkflowTask calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable.common.errors import Unimplemented, WrongState
from durable.proto.v1 import durable_pb2 as pb
from durable.worker.batching import DecisionBatcher


class FakeLink:
    def __init__(self, batched: bool = True) -> None:
        self.batched = batched
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, request: Any, **_: Any) -> Any:
        self.calls.append((method, request))
        if method == "CompleteWorkflowTasks":
            if not self.batched:
                raise Unimplemented("CompleteWorkflowTasks: Method not found!")
            outcomes = []
            for d in request.decisions:
                if d.attempt == 9:
                    outcomes.append(pb.CompletionOutcome(task_id=d.task_id, accepted=False,
                                                         code="FAILED_PRECONDITION", message="stale"))
                else:
                    handed = [pb.Task(id=f"act-{d.task_id}", kind="activity")] if d.keeps_instance else []
                    outcomes.append(pb.CompletionOutcome(task_id=d.task_id, accepted=True, applied=True, tasks=handed))
            return pb.CompleteWorkflowTasksResponse(outcomes=outcomes)
        assert method == "CompleteWorkflowTask"
        return pb.CompleteWorkflowTaskResponse(applied=True)


def decision(task_id: str, attempt: int = 1, keeps: bool = False) -> pb.CompleteWorkflowTaskRequest:
    return pb.CompleteWorkflowTaskRequest(worker_id="w", task_id=task_id, attempt=attempt, seen_through_seq=1,
                                          keeps_instance=keeps)


async def test_decisions_at_the_same_moment_go_in_one_call_with_their_own_outcomes() -> None:
    link = FakeLink()
    batcher = DecisionBatcher(link, "w")  # type: ignore[arg-type]
    results = await asyncio.gather(
        batcher.decide(decision("a")), batcher.decide(decision("b", keeps=True)),
        batcher.decide(decision("c", attempt=9)), return_exceptions=True)
    assert [m for m, _ in link.calls] == ["CompleteWorkflowTasks"]
    assert [d.task_id for d in link.calls[0][1].decisions] == ["a", "b", "c"]
    a, b, c = results
    assert isinstance(a, pb.CompleteWorkflowTaskResponse) and a.applied and not a.tasks
    assert isinstance(b, pb.CompleteWorkflowTaskResponse) and [t.id for t in b.tasks] == ["act-b"]
    assert isinstance(c, WrongState)  # a stale attempt: the worker drops the decision


async def test_an_older_control_plane_gets_single_calls() -> None:
    link = FakeLink(batched=False)
    batcher = DecisionBatcher(link, "w")  # type: ignore[arg-type]
    first = await asyncio.gather(batcher.decide(decision("a")), batcher.decide(decision("b")))
    assert all(r.applied for r in first)
    later = await batcher.decide(decision("c"))
    assert later.applied
    assert [m for m, _ in link.calls] == ["CompleteWorkflowTasks", "CompleteWorkflowTask", "CompleteWorkflowTask",
                                          "CompleteWorkflowTask"]


@pytest.mark.parametrize("size", [4 * 1024 * 1024])
async def test_a_decision_too_large_to_travel_fails_alone(size: int) -> None:
    from durable.common.errors import MessageTooLarge

    link = FakeLink()
    batcher = DecisionBatcher(link, "w", max_request_bytes=1024 * 1024)  # type: ignore[arg-type]
    big = decision("big")
    big.actions.add().complete_workflow.result_json = '"' + "x" * size + '"'
    with pytest.raises(MessageTooLarge):
        await batcher.decide(big)
    assert link.calls == []
