"""Batched producer calls against a real control plane: EnqueueActivities and StartWorkflows
answer per item (a bad item fails alone, naming its index and field), over-large batches are
refused whole in one line, and the client coalesces concurrent single calls into them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import grpc
import pytest

from durable.client import Activity, Client, Enqueued, Started, WorkflowStart
from durable.common.errors import InvalidArgument, WrongState
from durable.proto.v1 import durable_pb2 as pb
from durable.proto.v1 import durable_pb2_grpc as pb_grpc
from tests.support.controlplane import running_control_plane


@pytest.fixture
async def address(database_url: str) -> AsyncIterator[str]:
    async with running_control_plane(database_url) as address:
        yield address


@pytest.fixture
async def stub(address: str) -> AsyncIterator[pb_grpc.ClientServiceStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.ClientServiceStub(channel)


def activity(activity_type: str = "a", input_json: str = "{}", **kwargs: object) -> pb.EnqueueActivityRequest:
    return pb.EnqueueActivityRequest(activity_type=activity_type, input_json=input_json, **kwargs)  # type: ignore[arg-type]


async def test_a_bad_item_fails_alone_naming_its_index_and_field(
    stub: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    reply = await stub.EnqueueActivities(pb.EnqueueActivitiesRequest(activities=[
        activity(input_json='{"i": 0}'),
        activity(input_json='{"i": '),
        activity(input_json='{"i": 2}', options=pb.ActivityOptions(priority=7, start_delay=30)),
        activity(activity_type=""),
        activity(input_json='{"i": 4}', options=pb.ActivityOptions(priority=5000)),
        activity(input_json='{"i": 5}', idempotency_key="order-5"),
    ]))
    codes = [o.code for o in reply.outcomes]
    assert codes == ["", "INVALID_ARGUMENT", "", "INVALID_ARGUMENT", "INVALID_ARGUMENT", ""]
    assert reply.outcomes[1].message.startswith("activities[1]: input_json is not valid JSON")
    assert reply.outcomes[3].message == "activities[3]: activity_type is required"
    assert reply.outcomes[4].message.startswith("activities[4]: invalid options: options.priority")
    rows = {str(r["id"]): r for r in await db.fetch(
        "SELECT id, input, priority, visible_at - created_at AS delay, status, kind, workflow_id "
        "FROM durable_task_queue")}
    landed = [reply.outcomes[i].task_id for i in (0, 2, 5)]
    assert set(rows) == set(landed)
    assert [json.loads(rows[t]["input"])["i"] for t in landed] == [0, 2, 5]
    assert rows[landed[1]]["priority"] == 7 and rows[landed[1]]["delay"].total_seconds() == 30
    assert {(r["kind"], r["workflow_id"], r["status"]) for r in rows.values()} == {("activity", None, "pending")}
    # the keyed item went through the keyed path: the same key again is a duplicate
    again = await stub.EnqueueActivities(pb.EnqueueActivitiesRequest(activities=[
        activity(input_json='{"i": 6}', idempotency_key="order-5"), activity(input_json='{"i": 7}')]))
    assert (again.outcomes[0].task_id, again.outcomes[0].duplicate) == (landed[2], True)
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 4


async def test_an_over_large_batch_is_refused_whole_in_one_line(
    stub: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EnqueueActivities(pb.EnqueueActivitiesRequest(activities=[activity() for _ in range(1001)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "EnqueueActivities takes at most 1000 activities per call, not 1001; split the batch"
    big = json.dumps({"pad": "x" * 1_000_000})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartWorkflows(pb.StartWorkflowsRequest(starts=[
            pb.StartWorkflowRequest(workflow_type="wf", input_json=big) for _ in range(9)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details.startswith("StartWorkflows takes at most 8388608 bytes per call, not 9") and "\n" not in details
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue") == 0
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 0


async def test_start_workflows_with_existing_ids(
    address: str, stub: pb_grpc.ClientServiceStub, db: asyncpg.Connection
) -> None:
    async with Client(address, coalesce=False) as client:
        assert await client.start_workflow("wf", {"n": 1}, workflow_id="single") == ("single", True)
    reply = await stub.StartWorkflows(pb.StartWorkflowsRequest(starts=[
        pb.StartWorkflowRequest(workflow_type="wf", workflow_id="single", input_json='{"n": 2}'),
        pb.StartWorkflowRequest(workflow_type="wf", workflow_id="batch", input_json='{"n": 3}'),
        pb.StartWorkflowRequest(workflow_type="wf", workflow_id="batch", input_json='{"n": 4}'),
        pb.StartWorkflowRequest(workflow_type="other", workflow_id="single"),
        pb.StartWorkflowRequest(workflow_type="wf", input_json="[1, 2"),
        pb.StartWorkflowRequest(workflow_type="wf"),
    ]))
    o = reply.outcomes
    assert [(x.workflow_id, x.created, x.code) for x in o[:3]] == [
        ("single", False, ""), ("batch", True, ""), ("batch", False, "")]
    assert (o[3].code, o[3].message) == ("FAILED_PRECONDITION", "starts[3]: workflow 'single' already exists "
                                         "with type 'wf', not 'other'; choose another id")
    assert o[4].code == "INVALID_ARGUMENT" and o[4].message.startswith("starts[4]: input_json is not valid JSON")
    assert o[5].created and o[5].workflow_id
    assert await db.fetchval("SELECT count(*) FROM durable_workflow_instances") == 3
    # a batched start writes what a single start writes: the instance, its first event, a decision
    instance = ("SELECT workflow_type, status, input, last_event_seq, decided_through_seq, created_at = updated_at "
                "AS same, trace_id, span_id FROM durable_workflow_instances WHERE id = $1")
    event = ("SELECT sequence_num, event_type, event_data - 'random_seed' AS data, jsonb_typeof(event_data->'random_seed') "
             "AS seed FROM durable_workflow_events WHERE workflow_id = $1")
    task = ("SELECT kind, activity_type, status, attempt, max_attempts, priority, visible_at = created_at AS now, "
            "sticky_to FROM durable_task_queue WHERE workflow_id = $1")
    for query in (instance, event, task):
        single, batch = await db.fetch(query, "single"), await db.fetch(query, "batch")
        assert len(single) == len(batch) == 1
        assert {k: v for k, v in dict(single[0]).items() if k not in ("input", "data")} == \
            {k: v for k, v in dict(batch[0]).items() if k not in ("input", "data")}
    assert json.loads(await db.fetchval("SELECT input FROM durable_workflow_instances WHERE id = 'batch'")) == {"n": 3}
    data = json.loads(await db.fetchval(
        "SELECT event_data FROM durable_workflow_events WHERE workflow_id = 'batch'"))
    assert (data["workflow_type"], data["input"], type(data["random_seed"])) == ("wf", {"n": 3}, int)
    # and counts its first event's bytes towards the history limit, as a single start does (the
    # random seeds' digits may differ)
    sizes = dict(await db.fetch("SELECT id, history_bytes FROM durable_workflow_instances WHERE id IN ('single', 'batch')"))
    assert sizes["batch"] > len('{"n": 3}') and abs(sizes["batch"] - sizes["single"]) <= 3, sizes


async def test_concurrent_single_calls_coalesce_and_each_gets_its_own_outcome(
    address: str, db: asyncpg.Connection
) -> None:
    async with Client(address) as client:
        def call(i: int) -> Awaitable[str]:
            if i == 7:
                return client.enqueue_activity("", {"i": i})
            return client.enqueue_activity("a", {"i": i}, priority=5000 if i == 12 else 0)

        outcomes = await asyncio.gather(*(call(i) for i in range(20)), return_exceptions=True)
        [enqueues, _] = client.coalescers
        assert (enqueues.batches, enqueues.items) == (1, 20)
        # each error is the one the single call raises, with the single call's message
        assert isinstance(outcomes[7], InvalidArgument) and str(outcomes[7]) == "activity_type is required"
        assert isinstance(outcomes[12], InvalidArgument) and str(outcomes[12]).startswith("invalid options: options.priority")
        ids = {i: o for i, o in enumerate(outcomes) if i not in (7, 12)}
        assert all(isinstance(o, str) for o in ids.values()) and len(set(ids.values())) == 18
        rows = {str(r["id"]): json.loads(r["input"]) for r in await db.fetch("SELECT id, input FROM durable_task_queue")}
        assert {t: rows[t]["i"] for t in ids.values()} == {t: i for i, t in ids.items()}  # type: ignore[misc]

        starts = await asyncio.gather(
            client.start_workflow("wf", {"n": 1}, workflow_id="w-1"),
            client.start_workflow("wf", {"n": 2}, workflow_id="w-1"),
            client.start_workflow("other", workflow_id="w-1"),
            client.start_workflow("wf"), return_exceptions=True)
        assert starts[:2] == [Started("w-1", True), Started("w-1", False)]
        assert isinstance(starts[2], WrongState) and str(starts[2]).startswith("workflow 'w-1' already exists")
        assert isinstance(starts[3], Started) and starts[3].created
        assert client.coalescers[1].batches == 1


async def test_a_lone_call_waits_for_no_linger(address: str) -> None:
    # a linger far longer than any call: an idle queue goes out at once, so each call returns
    # well before the linger would end, also the next call of a caller the last answer woke
    async with Client(address, linger=30.0) as client:
        for _ in range(3):
            await asyncio.wait_for(client.enqueue_activity("a", {}), timeout=10)
            await asyncio.wait_for(client.start_workflow("wf"), timeout=10)
        assert [(c.batches, c.items) for c in client.coalescers] == [(3, 3), (3, 3)]


async def test_calls_that_wait_for_an_answer_in_flight_go_when_it_comes(address: str) -> None:
    # busy: the calls made while one is in flight go together as soon as it answers, not
    # after the (here 30 s) linger
    async with Client(address, linger=30.0) as client:
        first = asyncio.create_task(client.enqueue_activity("a", {"i": 0}))
        await asyncio.sleep(0)  # the first call is sent
        rest = [client.enqueue_activity("a", {"i": i}) for i in range(1, 6)]
        ids = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=10)
        assert len(set(ids)) == 6
        [enqueues, _] = client.coalescers
        assert (enqueues.batches, enqueues.items) == (2, 6)


async def test_the_client_lists_split_into_calls_and_keep_their_indexes(
    address: str, db: asyncpg.Connection
) -> None:
    items = [Activity("a", {"i": i}) for i in range(1005)]
    items[1003] = Activity("", {"i": 1003})
    items[4] = Activity("a", {"i": 4}, idempotency_key="k")
    async with Client(address) as client:
        out = await client.enqueue_activities(items)
        assert len(out) == 1005
        assert isinstance(out[1003], InvalidArgument) and str(out[1003]) == "activities[1003]: activity_type is required"
        assert all(isinstance(o, Enqueued) for i, o in enumerate(out) if i != 1003)
        again = await client.enqueue_activities([Activity("a", {}, idempotency_key="k")])
        assert again == [Enqueued(out[4].task_id, duplicate=True)]  # type: ignore[union-attr]
        # byte budget: large inputs go in several calls, each under it
        small = Client(address, batch_bytes=300_000)
        try:
            big = await small.enqueue_activities([Activity("b", {"pad": "y" * 100_000}) for _ in range(10)])
        finally:
            await small.close()
        assert all(isinstance(o, Enqueued) for o in big)
        started = await client.start_workflows([WorkflowStart("wf", {"n": 1}, "s-1"), WorkflowStart("", {}),
                                                WorkflowStart("wf", {"n": 2}, "s-1")])
        assert started[0] == Started("s-1", True) and started[2] == Started("s-1", False)
        assert isinstance(started[1], InvalidArgument) and str(started[1]) == "starts[1]: workflow_type is required"
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE kind = 'activity'") == 1004 + 10


class _OlderControlPlane(pb_grpc.ClientServiceServicer):
    """A ClientService from before the batched calls: EnqueueActivity only."""

    def __init__(self) -> None:
        self.calls = 0

    async def EnqueueActivity(self, request: pb.EnqueueActivityRequest, context: object) -> pb.EnqueueActivityResponse:
        self.calls += 1
        return pb.EnqueueActivityResponse(task_id=f"t-{request.input_json}")


async def test_against_an_older_control_plane_the_client_goes_back_to_single_calls() -> None:
    older = _OlderControlPlane()
    server = grpc.aio.server()
    pb_grpc.add_ClientServiceServicer_to_server(older, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with Client(f"127.0.0.1:{port}") as client:
            ids = await asyncio.gather(*(client.enqueue_activity("a", {"i": i}) for i in range(3)))
            assert ids == [f't-{{"i":{i}}}' for i in range(3)] and older.calls == 3
            assert await client.enqueue_activity("a", {"i": 9}) == 't-{"i":9}'
            assert client.coalescers[0].batches == 1  # the one refused; single calls since
    finally:
        await server.stop(None)


async def test_coalesced_and_batched_items_keep_their_concurrency_keys(address: str, db: asyncpg.Connection) -> None:
    async with Client(address) as client:
        done = await asyncio.gather(
            client.enqueue_activity("a", {}, concurrency_key="customer-1", concurrency_limit=2),
            client.enqueue_activity("a", {}),
            client.start_workflow("wf", {}, workflow_id="keyed-1", concurrency_key="tenant-1", concurrency_limit=3),
            client.start_workflow("wf", {}, workflow_id="plain-1"),
        )
        batched = await client.start_workflows([WorkflowStart("wf", {}, "keyed-2", "tenant-1", 3)])
    keyed_task, plain_task = done[0], done[1]
    rows = {str(r["id"]): (r["concurrency_key"], r["concurrency_limit"]) for r in await db.fetch(
        "SELECT id, concurrency_key, concurrency_limit FROM durable_task_queue WHERE kind = 'activity'")}
    assert rows[keyed_task] == ("customer-1", 2) and rows[plain_task] == (None, None)
    workflows = {r["id"]: (r["concurrency_key"], r["concurrency_limit"]) for r in await db.fetch(
        "SELECT id, concurrency_key, concurrency_limit FROM durable_workflow_instances")}
    assert workflows == {"keyed-1": ("tenant-1", 3), "plain-1": (None, None), "keyed-2": ("tenant-1", 3)}
    assert isinstance(batched[0], Started) and batched[0].created
