"""Rate limits per activity type (durable_rate_limits): set, delete and list them, and the
concurrency keys busiest now. The claim spends the tokens (durable.controlplane.store.gates)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg

from durable.common.errors import InvalidArgument, NotFound
from durable.controlplane.store.base import StoreBase, check_name
from durable.controlplane.store.queries import Q

MAX_RATE = 1_000_000.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A type's token bucket: `rate` starts per second, `burst` at most at once; `tokens` now."""

    key: str
    rate: float
    burst: float
    tokens: float
    pending: int = 0
    running: int = 0

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RateLimit:
        return cls(key=row["key"], rate=float(row["rate"]), burst=float(row["burst"]),
                   tokens=float(row["tokens"]), pending=int(row.get("pending") or 0),
                   running=int(row.get("running") or 0))


@dataclass(frozen=True, slots=True)
class KeyLoad:
    """A concurrency key's claimed tasks now, and its limit."""

    key: str
    running: int
    limit: int


class RateLimitStore(StoreBase):
    """Rate limits per activity type: set, delete, list (durable rate-limits, durable stats)."""

    async def set_rate_limit(self, activity_type: str, rate: float, burst: float | None = None) -> RateLimit:
        """Create or retune the limit of `activity_type`: at most `rate` starts per second,
        `burst` at once after a quiet spell (default: a tenth of a second's starts, at least 1,
        which absorbs the wake-up latency of claims without letting a second run far over)."""
        check_name(activity_type, "activity_type")
        if not (isinstance(rate, int | float) and 0 < rate <= MAX_RATE and math.isfinite(rate)):
            raise InvalidArgument(f"rate must be a number of starts per second in (0, {MAX_RATE:.0f}], got {rate!r}")
        burst = max(1.0, rate / 10) if burst is None or burst == 0 else float(burst)
        if not (1 <= burst <= MAX_RATE and math.isfinite(burst)):
            raise InvalidArgument(f"burst must be between 1 and {MAX_RATE:.0f} starts, got {burst!r}")
        row = await self.pool.fetchrow(Q.set_rate_limit, activity_type, float(rate), burst, self.now())
        return RateLimit.from_row(row)

    async def delete_rate_limit(self, activity_type: str) -> None:
        check_name(activity_type, "activity_type")
        if await self.pool.fetchval(Q.delete_rate_limit, activity_type) is None:
            raise NotFound(f"no rate limit is set for {activity_type!r}")

    async def list_rate_limits(self) -> list[RateLimit]:
        return [RateLimit.from_row(r) for r in await self.pool.fetch(Q.list_rate_limits, self.now())]

    async def busiest_keys(self, limit: int = 10) -> list[KeyLoad]:
        rows = await self.pool.fetch(Q.busiest_keys, limit)
        return [KeyLoad(r["key"], int(r["running"]), int(r["concurrency_limit"])) for r in rows]
