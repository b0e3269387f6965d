"""Log lines carry the ids of what they concern; JSON when asked."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from durable.common.logs import ContextFilter, JsonFormatter, PlainFormatter, log_context


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("durable.test", logging.INFO, __file__, 1, message, (), None)
    ContextFilter().filter(record)
    return record


def test_json_lines_carry_bound_ids() -> None:
    with log_context(worker_id="w1", task_id="t1", attempt=2, workflow_id="wf-9"):
        line = JsonFormatter().format(_record("task failed"))
    entry = json.loads(line)
    assert entry["message"] == "task failed" and entry["level"] == "INFO"
    assert (entry["worker_id"], entry["task_id"], entry["attempt"], entry["workflow_id"]) == ("w1", "t1", 2, "wf-9")
    assert "task_id" not in json.loads(JsonFormatter().format(_record("outside")))


def test_plain_lines_append_ids() -> None:
    with log_context(worker_id="w1", task_id="t1"):
        line = PlainFormatter("%(message)s").format(_record("hello"))
    assert line == "hello worker_id=w1 task_id=t1"


@pytest.mark.asyncio
async def test_asyncio_tasks_keep_their_own_ids() -> None:
    seen: dict[str, str] = {}

    async def work(task_id: str) -> None:
        with log_context(task_id=task_id):
            await asyncio.sleep(0)
            seen[task_id] = json.loads(JsonFormatter().format(_record("x")))["task_id"]

    await asyncio.gather(work("a"), work("b"))
    assert seen == {"a": "a", "b": "b"}
