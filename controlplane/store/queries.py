"""Loads the named queries of queries.sql once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    text = resources.files("durable.controlplane.store").joinpath("queries.sql").read_text()
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise RuntimeError(f"query {name!r} is defined twice in queries.sql")
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
