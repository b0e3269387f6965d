"""`durable rate-limits ...` (`durable activities enqueue --concurrency-key` is in client_commands)."""

from __future__ import annotations

import click

from durable.cli.client_commands import address_option, run
from durable.cli.render import table
from durable.proto.v1 import durable_pb2 as pb


@click.group("rate-limits")
def rate_limits() -> None:
    """Rate limits per activity type: at most R starts per second across the cluster."""


@rate_limits.command("set")
@address_option
@click.argument("activity_type")
@click.option("--rate", required=True, type=click.FloatRange(min=0, min_open=True), help="Starts per second.")
@click.option("--burst", default=None, type=click.FloatRange(min=1),
              help="Starts at once after a quiet spell (the bucket's size; default: a tenth of a "
                   "second's starts, at least 1).")
def set_limit(address: str, activity_type: str, rate: float, burst: float | None) -> None:
    """Limit ACTIVITY_TYPE to --rate starts per second (retunes an existing limit)."""
    info = run(address, lambda c: c.set_rate_limit(activity_type, rate, burst=burst or 0.0))
    click.echo(f"rate limit {info.activity_type}: {info.rate:g}/s, burst {info.burst:g}")


@rate_limits.command("delete")
@address_option
@click.argument("activity_type")
def delete_limit(address: str, activity_type: str) -> None:
    """Remove the rate limit of ACTIVITY_TYPE."""
    run(address, lambda c: c.delete_rate_limit(activity_type))
    click.echo(f"deleted the rate limit of {activity_type}")


@rate_limits.command("list")
@address_option
def list_limits(address: str) -> None:
    """Rate limits with their tokens now, and the concurrency keys busiest now."""
    limits, keys = run(address, lambda c: c.rate_limits())
    click.echo(render_gates(limits, keys))


def render_gates(limits: list[pb.RateLimitInfo], keys: list[pb.ConcurrencyKeyInfo]) -> str:
    """The rate-limit and busiest-key tables (also shown by `durable stats`)."""
    parts = []
    if limits:
        parts.append(table(["rate-limited type", "rate/s", "burst", "tokens", "pending", "running"],
                           [(r.activity_type, f"{r.rate:g}", f"{r.burst:g}", f"{r.tokens:.2f}", r.pending, r.running)
                            for r in limits]))
    if keys:
        parts.append(table(["concurrency key", "running", "limit"], [(k.key, k.running, k.limit) for k in keys]))
    return "\n\n".join(parts) if parts else "no rate limits; no keyed task running"
