"""Whether the control plane's database answers, as all of its loops see it.

During an outage every loop fails at once, and each used to say so on every pass. Here they
report to one `DatabaseState`, which logs one line when the database goes and one when it is
back; each loop then waits with its own doubling backoff, or until the database is back,
whichever comes first. The driver's own pool warnings (a traceback per reconnect attempt) are
folded into the same state.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


class DatabaseState:
    """Up or down; `lost()` and `reachable()` log only when that changes."""

    def __init__(self) -> None:
        self.available = True
        self.outages = 0
        self._back = asyncio.Event()
        self._back.set()

    def lost(self, source: str, exc: BaseException | None) -> None:
        """`source` (a loop's name) could not use the database."""
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "no answer"
        if self.available:
            self.available = False
            self.outages += 1
            self._back.clear()
            logger.error("database unreachable (%s: %s); reporting NOT_SERVING and retrying with backoff",
                         source, reason)
        else:
            logger.debug("%s: database still unreachable: %s", source, reason)

    def reachable(self) -> None:
        """A statement succeeded."""
        if not self.available:
            self.available = True
            self._back.set()
            logger.info("database reachable again")

    async def pause(self, stop: asyncio.Event, delay: float) -> None:
        """Wait `delay` seconds, or until `stop` is set, or until the database is back (when
        it is down now): a loop's wait between passes."""
        waits = [asyncio.ensure_future(stop.wait())]
        if not self.available:
            waits.append(asyncio.ensure_future(self._back.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


class LoopBackoff:
    """A loop's wait after a failed pass: `interval`, doubling per failure, capped."""

    def __init__(self, interval: float, cap: float = 30.0) -> None:
        self.interval = interval
        self.cap = max(cap, interval)
        self.failures = 0

    def next(self, failed: bool) -> float:
        """The wait before the next pass; `failed` says whether this pass failed."""
        if not failed:
            self.failures = 0
            return self.interval
        self.failures += 1
        return float(min(self.cap, self.interval * 2 ** min(self.failures, 30)))


class PoolLogFilter(logging.Filter):
    """Turns asyncpg's "Failed to restore the pool connection floor" warnings (each with a
    traceback, every second of an outage) into a report to the DatabaseState."""

    def __init__(self, state: DatabaseState) -> None:
        super().__init__()
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and "connection floor" in record.getMessage():
            exc = record.exc_info[1] if record.exc_info else None
            self.state.lost("connection pool", exc)
            return False
        return True


__all__ = ["DatabaseState", "LoopBackoff", "PoolLogFilter"]
