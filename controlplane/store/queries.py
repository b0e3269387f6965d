"""Loads the named queries of the store's .sql files (queries.sql, schedules.sql, idempotency.sql, bulk.sql,
lineage.sql, gates.sql, batches.sql, workflow_batches.sql) once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

SQL_FILES = ("queries.sql", "schedules.sql", "idempotency.sql", "bulk.sql", "lineage.sql", "gates.sql", "batches.sql",
             "workflow_batches.sql")
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    found: dict[str, str] = {}
    for file in SQL_FILES:
        text = resources.files("durable.controlplane.store").joinpath(file).read_text()
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice (again in {file})")
            found[name] = body.strip().rstrip(";")
    return found


class _Queries:
    """Attribute access to the named queries: Q.claim_tasks."""

    def __getattr__(self, name: str) -> str:
        try:
            return queries()[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in queries.sql") from None


Q = _Queries()
