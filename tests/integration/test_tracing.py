"""OpenTelemetry: one trace from a workflow's start through every task and decision; off by
default at no cost."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durable.client import Client
from durable.common import tracing
from durable.examples.agent_turn import app as agent_app
from durable.worker import Worker, WorkerSettings
from durable.worker.testing import RunningWorker
from tests.support.controlplane import running_control_plane


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.setup("durable-test", exporter=exporter)
    yield exporter
    tracing.reset()


async def test_one_trace_from_start_through_tasks_and_decisions(database_url: str, spans: InMemorySpanExporter, db) -> None:  # type: ignore[no-untyped-def]
    async with running_control_plane(database_url) as address:
        worker = Worker(agent_app, WorkerSettings(GRPC_ADDRESS=address, WORKER_ID="traced", WORKER_HEALTH_PORT=0))
        async with RunningWorker(worker), Client(address) as client:
            with tracing.span("caller") as caller:
                workflow_id, _ = await client.start_workflow("agent_turn", {"message": "what is 1+2?"})
            view = await client.wait_workflow(workflow_id, timeout=60)
            assert view.status == "completed"
    finished = spans.get_finished_spans()
    caller_trace = tracing.parse_traceparent(caller)[0]  # type: ignore[index]
    by_name: dict[str, int] = {}
    for s in finished:
        by_name[s.name] = by_name.get(s.name, 0) + 1
        assert f"{s.context.trace_id:032x}" == caller_trace, f"{s.name} is in another trace"
    assert by_name["durable.workflow.start"] == 1
    assert by_name["durable.activity process_input"] == 1
    assert by_name["durable.activity reason"] == 2 and by_name["durable.activity act"] == 1
    assert by_name["durable.decision agent_turn"] >= 4
    start = next(s for s in finished if s.name == "durable.workflow.start")
    for s in finished:
        if s.name.startswith(("durable.activity", "durable.decision")):
            assert s.parent is not None and s.parent.span_id == start.context.span_id
    row = await db.fetchrow("SELECT trace_id, span_id FROM durable_workflow_instances")
    assert row["trace_id"] == caller_trace and row["span_id"] == f"{start.context.span_id:016x}"
    assert await db.fetchval("SELECT count(*) FROM durable_task_queue WHERE trace_id IS DISTINCT FROM $1", caller_trace) == 0


def test_tracing_is_off_and_not_imported_by_default() -> None:
    import subprocess

    code = (
        "import sys; from durable.common import tracing; import durable.worker, durable.client;"
        "import durable.controlplane.app;"
        "assert not tracing.enabled();"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported'"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
