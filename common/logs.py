"""Logging for every durable process: plain or JSON lines, with the ids of what a line concerns.

`log_context(workflow_id=..., task_id=..., attempt=..., worker_id=...)` binds ids for the code
inside it (asyncio tasks inherit the binding); every record logged there carries them, in the
JSON object or as `key=value` after the message. Set DURABLE_LOG_FORMAT=json (or --log-format).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("durable_log_context", default={})
FIELDS = ("worker_id", "workflow_id", "task_id", "attempt", "activity_type")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ids to every log record emitted inside (None values are left out)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v not in (None, "")}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Bind ids for the rest of the current task (for request handlers)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.durable = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "durable", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = getattr(record, "durable", {})
        return line + "".join(f" {k}={ids[k]}" for k in FIELDS if k in ids)


def configure_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """Configure the root logger once for a durable process."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
