"""OpenTelemetry tracing, on when an OTLP endpoint is configured, free when it is not.

Set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and install the extra
`durable-engine[otel]`. The trace context travels as a W3C `traceparent`: in gRPC metadata from
clients, in the `trace_id`/`span_id` columns of workflows and tasks, and in each claimed task, so
one trace runs from a workflow's start through every task and decision. With tracing off no
OpenTelemetry module is imported and every call here returns at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

_tracer: Any = None
_enabled: bool | None = None


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace_id, span_id) of a W3C traceparent, or None when absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if not match or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[1], match[2]


def format_traceparent(trace_id: str | None, span_id: str | None) -> str:
    return f"00-{trace_id}-{span_id}-01" if trace_id and span_id else ""


def enabled() -> bool:
    global _enabled
    if _enabled is None:
        _enabled = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    return _enabled


def setup(service_name: str, exporter: Any = None) -> bool:
    """Install a tracer provider exporting over OTLP (or to `exporter`, in tests).

    Returns whether tracing is on. Without an endpoint (and no exporter) it does nothing.
    """
    global _tracer, _enabled
    if exporter is None and not enabled():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'durable-engine[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("durable")
    _enabled = True
    return True


def reset() -> None:
    """Forget the tracer (tests)."""
    global _tracer, _enabled
    _tracer = None
    _enabled = None


def recording() -> bool:
    """Whether spans are recorded (tracing configured and set up); callers on hot paths skip
    building a span's name and attributes when not."""
    return _tracer is not None


@contextmanager
def span(name: str, parent: str | None = None, **attributes: Any) -> Iterator[str]:
    """A span under the `parent` traceparent (or a new trace); yields its own traceparent.

    With tracing off it yields `parent` unchanged (propagation still works) and costs nothing.
    """
    if _tracer is None:
        yield parent or ""
        return
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    context = None
    ids = parse_traceparent(parent)
    if ids is not None:
        remote = SpanContext(int(ids[0], 16), int(ids[1], 16), is_remote=True, trace_flags=TraceFlags(1))
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    clean = {k: v for k, v in attributes.items() if v not in (None, "")}
    with _tracer.start_as_current_span(name, context=context, attributes=clean) as current:
        ctx = current.get_span_context()
        yield format_traceparent(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


def current_traceparent() -> str:
    """The traceparent of the active span, for outgoing calls ('' when none or off)."""
    if _tracer is None:
        return ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return format_traceparent(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
