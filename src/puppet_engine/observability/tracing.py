"""Tracing with OpenTelemetry, off by default and nearly free when off.

``OTEL_TRACES_EXPORTER`` picks where spans go: ``none`` (default; :func:`span` then
returns a shared no-op object without touching the SDK), ``console`` (spans printed
as JSON, for development) or ``otlp`` (an OpenTelemetry collector; needs the
``opentelemetry-exporter-otlp`` package and reads the standard ``OTEL_EXPORTER_OTLP_*``
variables). ``OTEL_SERVICE_NAME`` names the service (default ``puppet-engine``).

Use it around units of work::

    with span("event.handle", event_type=event.type, agent_id=event.agent_id):
        ...

Exceptions leaving the block are recorded on the span and mark it as an error.
Log lines written inside a span carry its ``trace_id`` (see observability.logging).
"""

from __future__ import annotations

import os
from typing import IO, Any

from opentelemetry import trace

from puppet_engine.errors import ConfigError

_EXPORTERS = ("none", "console", "otlp")


class _NoopSpan:
    """Stands in for a span when tracing is off; every method does nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        return None

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        return None

    def record_exception(self, exception: BaseException, **_: Any) -> None:
        return None

    def is_recording(self) -> bool:
        return False

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP = _NoopSpan()


class _State:
    provider: Any = None
    tracer: Any = None
    exporter: str = "none"


_state = _State()


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry accepts str, bool, int, float (and lists of them); others become text."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


def _otlp_exporter() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(
                "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                "pip install opentelemetry-exporter-otlp (or set OTEL_TRACES_EXPORTER=none)"
            ) from None
    return OTLPSpanExporter()


def configure_tracing(
    exporter: str | None = None, *, service_name: str | None = None, stream: IO[str] | None = None
) -> None:
    """Set up tracing; ``exporter`` defaults to ``OTEL_TRACES_EXPORTER`` (``none``).

    Calling it again replaces the previous setup (the old provider is flushed and shut down).
    ``stream`` redirects the console exporter (default stdout).
    """
    chosen = (exporter or os.environ.get("OTEL_TRACES_EXPORTER") or "none").strip().lower()
    if chosen not in _EXPORTERS:
        raise ConfigError(f"OTEL_TRACES_EXPORTER: expected one of none, console, otlp, got {chosen!r}")
    shutdown_tracing()
    if chosen == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "puppet-engine"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if chosen == "console":
        console = ConsoleSpanExporter(out=stream) if stream is not None else ConsoleSpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(console))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    _state.provider = provider
    _state.tracer = provider.get_tracer("puppet_engine")
    _state.exporter = chosen


def shutdown_tracing() -> None:
    """Flush pending spans and turn tracing off."""
    provider, _state.provider, _state.tracer, _state.exporter = _state.provider, None, None, "none"
    if provider is not None:
        provider.shutdown()


def tracing_enabled() -> bool:
    """Whether spans are being recorded and exported."""
    return _state.tracer is not None


def span(name: str, **attrs: Any) -> Any:
    """Context manager for a span named ``name`` with ``attrs``; yields the span.

    When tracing is off this returns a shared no-op object: no allocation beyond the call.
    """
    tracer = _state.tracer
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(name, attributes=_clean(attrs))


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, or ``None`` outside a recorded span."""
    if _state.tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x")
