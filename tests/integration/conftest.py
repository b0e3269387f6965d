"""Fixtures for tests against the store: a pool on a fresh database and a movable clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable.controlplane.store import Store
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool, clock: FakeClock) -> Store:
    return Store(pool, clock=clock, rng=random.Random(7))


@pytest.fixture
async def worker(store: Store) -> str:
    """A registered worker serving activity types a, b and workflow type wf."""
    await store.register_worker("w1", activity_types=["a", "b"], workflow_types=["wf"])
    return "w1"
