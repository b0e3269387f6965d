"""Every named query the control plane uses exists in queries.sql, and none is unused."""

from __future__ import annotations

import re
from pathlib import Path

from durable.controlplane.store.queries import queries

ROOT = Path(__file__).resolve().parents[2]


def test_used_queries_exist_and_defined_ones_are_used() -> None:
    used: set[str] = set()
    for path in (ROOT / "controlplane").rglob("*.py"):
        used |= set(re.findall(r"\bQ\.(\w+)", path.read_text()))
    defined = set(queries())
    assert not used - defined, f"missing from queries.sql: {sorted(used - defined)}"
    assert not defined - used, f"defined but unused: {sorted(defined - used)}"
