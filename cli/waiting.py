"""Waiting for a workflow to end (`workflows start --wait`, `workflows wait`), with exit codes a
script can branch on, riding out a control plane or database that is away for a while."""

from __future__ import annotations

import asyncio
import enum
import sys
import time
import uuid
from typing import Any

import click

from durable.cli.render import activity_types, short, step
from durable.client import Client, Unavailable
from durable.client.client import EventView


class Exit(enum.IntEnum):
    """Exit codes of the client commands (documented in `--help` and the README)."""

    COMPLETED = 0
    ERROR = 1  # any other error (a bad id, a refused request)
    USAGE = 2  # click's usage errors
    FAILED = 3  # the workflow failed
    CANCELLED = 4  # the workflow was cancelled
    TIMED_OUT = 5  # still running when --timeout passed
    UNREACHABLE = 6  # the control plane (or its database) could not be reached


EXIT_CODES_HELP = (
    "Exit codes: 0 completed, 1 other error, 2 usage error, 3 failed, 4 cancelled, "
    "5 timed out waiting, 6 control plane unreachable."
)

_BY_STATUS = {"completed": Exit.COMPLETED, "failed": Exit.FAILED, "cancelled": Exit.CANCELLED}


class Progress:
    """The one-line "waiting..." status on an interactive stderr; nothing when piped."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.interactive:
            click.echo(f"\r\033[K{text}", nl=False, err=True)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)
            self.shown = False


class Outage:
    """Rides out a control plane (or its database) that is away until a deadline: says so once
    per reason on stderr, waits with a doubling delay (0.2 s to 5 s), says when it is back."""

    def __init__(self, client: Client, deadline: float, timeout: float, progress: Progress) -> None:
        self.client = client
        self.deadline = deadline
        self.timeout = timeout
        self.progress = progress
        self.delay = 0.2
        self.reason: str | None = None

    async def wait(self, exc: Unavailable, what: str) -> bool:
        """After a failed call: False when the deadline leaves no time to retry (the error is
        printed), else True once the retry delay has passed."""
        if time.monotonic() + self.delay > self.deadline:
            self.progress.clear()
            click.echo(f"Error: {exc}; gave up {what} after {self.timeout:.0f} s", err=True)
            return False
        if str(exc) != self.reason:
            self.progress.clear()
            click.echo(f"{exc}; retrying until --timeout ({self.timeout:.0f} s) passes", err=True)
            self.reason = str(exc)
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, 5.0)
        return True

    def answered(self) -> None:
        """A call went through."""
        if self.reason is not None:
            self.progress.clear()
            click.echo(f"the control plane at {self.client.address} answers again", err=True)
            self.reason, self.delay = None, 0.2


async def start_and_follow(
    client: Client, workflow_type: str, payload: dict[str, Any], workflow_id: str | None, timeout: float,
    concurrency: tuple[str, int] | None = None,
) -> Exit:
    """`workflows start --wait`: start (retried through an outage: the id is chosen here when
    not given, so a retried start is idempotent), then follow until the workflow ends."""
    deadline = time.monotonic() + timeout
    outage = Outage(client, deadline, timeout, Progress())
    chosen = workflow_id or str(uuid.uuid4())
    retried = False
    while True:
        try:
            wid, created = await client.start_workflow(
                workflow_type, payload, workflow_id=chosen,
                concurrency_key=concurrency[0] if concurrency else None,
                concurrency_limit=concurrency[1] if concurrency else None,
            )
            break
        except Unavailable as exc:
            if not await outage.wait(exc, f"starting {workflow_type}"):
                return Exit.UNREACHABLE
            retried = True
    outage.answered()
    # A retry of a start that went through the first time finds "its" workflow existing.
    click.echo(f"{'started' if created or (retried and workflow_id is None) else 'already exists:'} {wid}")
    return await follow(client, wid, max(0.0, deadline - time.monotonic()), timeout_shown=timeout)


async def follow(
    client: Client, workflow_id: str, timeout: float, *, events: bool = True, timeout_shown: float | None = None
) -> Exit:
    """Print events as they arrive (when `events`) until the workflow ends; return its exit code.

    While the control plane or its database is away, say so once (to stderr) and retry with a
    doubling delay (0.2 s to 5 s) until `timeout`.
    """
    started = time.monotonic()
    deadline = started + timeout
    shown = timeout if timeout_shown is None else timeout_shown
    seen = 0
    progress = Progress()
    outage = Outage(client, deadline, shown, progress)
    types: dict[str, str] = {}
    said_blocked: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            if events:
                seen = _print_events(await client.history(workflow_id, after_seq=seen), types, progress, seen)
            # The long-poll returns at once when the workflow has ended, else after about 1 s.
            view = await client.wait_workflow(workflow_id, timeout=max(0.0, min(1.0, remaining)))
            outage.answered()
            if view.is_terminal:
                if events:
                    _print_events(await client.history(workflow_id, after_seq=seen), types, progress, seen)
                progress.clear()
                outcome = view.result if view.status == "completed" else view.error
                click.echo(f"{view.status}: {short(outcome, None)}")
                return _BY_STATUS[view.status]
            status = view.status
            blocked = f"{view.blocked.get('type', 'Error')}: {view.blocked.get('message', '')}" if view.blocked else None
            if blocked != said_blocked:
                progress.clear()
                if blocked:
                    click.echo(f"workflow {workflow_id} is blocked, its decisions fail ({blocked}); still "
                               "waiting: deploy fixed code (see `durable workflows show`)", err=True)
                else:
                    click.echo(f"workflow {workflow_id} is no longer blocked", err=True)
                said_blocked = blocked
        except Unavailable as exc:
            if not await outage.wait(exc, f"waiting for {workflow_id}"):
                return Exit.UNREACHABLE
            continue
        if time.monotonic() >= deadline:
            progress.clear()
            click.echo(f"Error: workflow {workflow_id} is still {status} after {shown:.0f} s", err=True)
            return Exit.TIMED_OUT
        progress.show(f"  waiting... {time.monotonic() - started:5.1f} s, status {status}")


def _print_events(events: list[EventView], types: dict[str, str], progress: Progress, seen: int) -> int:
    """Print one line per event; returns the last sequence number printed."""
    types.update(activity_types(events))
    for event in events:
        progress.clear()
        click.echo(f"  {event.sequence_num:>4}  {event.event_type:<20} {step(event, types):<24} {short(event.data)}")
        seen = event.sequence_num
    return seen
