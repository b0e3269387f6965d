"""Applies the numbered SQL files of `durable.migrations`, forward only.

Every run takes one PostgreSQL advisory lock, so concurrent runs (several control-plane
replicas, a Helm hook Job) serialise; each file is applied in its own transaction and
recorded in `durable_schema_migrations` with the SHA-256 of its text. A file whose text
changed after it was applied is refused: migrations are immutable once released.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from durable.common.errors import DurableError

logger = logging.getLogger(__name__)

# A constant key: any 64-bit number unique to this purpose ("durable migrate").
ADVISORY_LOCK_KEY = 0x6475_7261_626C_65  # b"durable"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(DurableError):
    """The database's migration history does not match the files shipped with this build."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The migrations shipped with this build, in order."""
    found = []
    for entry in resources.files("durable.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files must be numbered 0001, 0002, ... without gaps: {versions}")
    return found


_HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS durable_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply what is missing; return the versions applied by this call."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_HISTORY_TABLE)
        rows = await conn.fetch("SELECT version, name, checksum FROM durable_schema_migrations")
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this build does not know; "
                "run a newer version of durable (migrations are forward-only)"
            )
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name}.sql changed after it was "
                        f"applied (recorded sha256 {row['checksum'][:12]}..., file "
                        f"{migration.checksum[:12]}...); applied migrations are immutable: "
                        "restore the file and put the change in a new numbered migration"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO durable_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return applied_now


async def migrate_url(dsn: str) -> list[int]:
    """Connect, migrate, disconnect. A failed connect raises DatabaseUnreachable (one line)."""
    from durable.controlplane.connect_errors import CONNECT_ERRORS, DatabaseUnreachable, explain

    try:
        conn = await asyncpg.connect(dsn)
    except CONNECT_ERRORS as exc:
        raise DatabaseUnreachable(explain(exc, dsn)) from None
    try:
        return await migrate(conn)
    finally:
        await conn.close()
