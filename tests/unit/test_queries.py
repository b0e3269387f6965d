"""Every named query the control plane uses exists in queries.sql, and none is unused; claims
return what ClaimedTask reads."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from durable.controlplane.store.queries import queries
from durable.controlplane.store.records import ClaimedTask

ROOT = Path(__file__).resolve().parents[2]


def test_used_queries_exist_and_defined_ones_are_used() -> None:
    used: set[str] = set()
    for path in (ROOT / "controlplane").rglob("*.py"):
        used |= set(re.findall(r"\bQ\.(\w+)", path.read_text()))
    defined = set(queries())
    assert not used - defined, f"missing from queries.sql: {sorted(used - defined)}"
    assert not defined - used, f"defined but unused: {sorted(defined - used)}"


def test_claim_statements_return_the_columns_of_a_claimed_task_in_order() -> None:
    """ClaimedTask.from_row takes a claim's row positionally: the RETURNING list must name its
    fields in order (JSON columns `input` and `heartbeat_details` arrive as `*_json` text)."""
    expected = [f.name.removesuffix("_json") for f in dataclasses.fields(ClaimedTask)]
    for name in ("claim_tasks", "claim_tasks_of_type", "claim_tasks_of_types"):
        returning = queries()[name].rsplit("RETURNING", 1)[1].rstrip().rstrip(";")
        columns = [c.strip().removeprefix("t.") for c in returning.split(",")]
        assert columns == expected, name
