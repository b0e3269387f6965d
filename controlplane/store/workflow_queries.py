"""Queries: asked by a client, answered by a worker from the workflow's replayed state.

The control plane holds no workflow code, so a query is a short-lived row: the client's
call inserts it and waits; a worker of the workflow's type claims it with its next claim
(the workflow's history travels with it), replays, runs the query handler and answers; the
call returns the answer and deletes the row. Nothing is written to the history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from durable.common.errors import InvalidArgument, NotFound
from durable.controlplane.store.base import StoreBase, check_name, check_names, dumps
from durable.controlplane.store.queries import Q
from durable.controlplane.store.records import Event, WorkflowInstance
from durable.controlplane.store.tasks import load_with_histories

QUERY_SWEEP_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ClaimedQuery:
    """A query a worker took, with what it needs to answer: the workflow and its history."""

    id: UUID
    workflow: WorkflowInstance
    name: str
    arg_json: str
    history: list[Event]


class WorkflowQueryStore(StoreBase):
    async def ask_query(self, query_id: UUID, workflow_id: str, name: str, arg: Any, timeout: float) -> str:
        """Record a query (its id chosen by the caller, who already listens for the answer);
        returns the workflow's type. NotFound for an unknown workflow."""
        check_name(workflow_id, "workflow_id")
        check_name(name, "name")
        if not 0 < timeout <= 300:
            raise InvalidArgument("timeout must be within (0, 300] seconds")
        arg_json = self.payload(arg, "arg") if arg is not None else None
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            workflow_type = await conn.fetchval(
                Q.ask_query, query_id, workflow_id, name, arg_json, now, now + timedelta(seconds=timeout))
            if workflow_type is None:
                raise NotFound(f"workflow {workflow_id!r} does not exist")
            await self.notify(conn, {f"query:{workflow_type}": 1})
        return str(workflow_type)

    async def claim_queries(self, worker_id: str, workflow_types: list[str], limit: int) -> list[ClaimedQuery]:
        """Take up to `limit` pending queries of these types, with their workflows' histories."""
        workflow_types = check_names(workflow_types, "workflow_types")
        if not workflow_types:
            return []
        now = self.now()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q.claim_queries, worker_id, workflow_types, limit, now)
            if not rows:
                return []
            # the workflows and their histories in one statement: one snapshot
            workflows, histories, _ = await load_with_histories(conn, list({r["workflow_id"] for r in rows}))
        return [
            ClaimedQuery(r["id"], workflows[r["workflow_id"]], r["name"], r["arg"] or "", histories[r["workflow_id"]])
            for r in rows if r["workflow_id"] in workflows
        ]

    async def answer_query(
        self, worker_id: str, query_id: UUID, result_json: str | None, error: dict[str, Any] | None
    ) -> bool:
        """A worker's answer; False when the query is no longer this worker's (gone, timed out)."""
        now = self.now()
        status = "failed" if error is not None else "answered"
        async with self.pool.acquire() as conn, conn.transaction():
            answered = await conn.fetchval(
                Q.answer_query, query_id, worker_id, status, result_json, dumps(error) if error else None, now)
            if answered is not None:
                await self.notify(conn, {f"answer:{query_id}": 1})
        return answered is not None

    async def query_outcome(self, query_id: UUID) -> tuple[str, str | None, dict[str, Any] | None] | None:
        row = await self.pool.fetchrow(Q.query_outcome, query_id)
        if row is None:
            return None
        error = row["error"]
        return row["status"], row["result"], (json.loads(error) if isinstance(error, str) else error)

    async def drop_query(self, query_id: UUID) -> None:
        await self.pool.execute(Q.drop_query, query_id)

    async def sweep_queries(self, now: datetime, limit: int = 1000) -> int:
        """Delete queries whose caller is gone (a control plane stopped mid-wait)."""
        status = await self.pool.execute(Q.sweep_queries, now, QUERY_SWEEP_GRACE_SECONDS, limit)
        return int(status.split()[-1])
