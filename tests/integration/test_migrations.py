"""Migrations: from empty, idempotent, concurrent-safe, immutable once applied."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from durable.controlplane.migrator import Migration, MigrationError, load_migrations, migrate

SEED_TABLES = {
    "durable_workflow_instances",
    "durable_workflow_events",
    "durable_task_queue",
    "durable_dead_letter_queue",
    "durable_workers",
    "durable_signals",
    "durable_circuit_breaker_state",
}
# Tables the engine added beyond the seed's seven (not part of the SQL contract).
ENGINE_TABLES = {
    "durable_workflow_queries",  # queries while their caller waits (0004)
    "durable_schedules",  # schedules (0005)
    "durable_idempotency_keys",  # EnqueueActivity idempotency keys (0011)
    "durable_workflow_runs",  # closed runs of workflows that continued as new (0012)
    "durable_rate_limits",  # token buckets per activity type (0013)
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrate_from_empty_creates_the_seed_tables(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await migrate(conn)
        assert applied == [m.version for m in load_migrations()]
        assert SEED_TABLES | ENGINE_TABLES | {"durable_schema_migrations"} == await _tables(conn)
        again = await migrate(conn)
        assert again == []
        count = await conn.fetchval("SELECT count(*) FROM durable_schema_migrations")
        assert count == len(load_migrations())
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in load_migrations()]
        assert SEED_TABLES <= await _tables(conns[0])
    finally:
        for c in conns:
            await c.close()


async def test_changed_applied_file_is_refused(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn)
        tampered = [dataclasses.replace(m, sql=m.sql + "\n-- edited") for m in load_migrations()]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tampered)
    finally:
        await conn.close()


async def test_unknown_applied_version_is_refused(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn)
        extra = Migration(len(load_migrations()) + 1, "future", "SELECT 1")
        await migrate(conn, [*load_migrations(), extra])
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn, load_migrations())
    finally:
        await conn.close()
