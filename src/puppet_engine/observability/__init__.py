"""Observability: structured logs with redaction, Prometheus metrics, tracing, health checks."""

from puppet_engine.observability.health import (
    ComponentHealth,
    HealthRegistry,
    HealthReport,
    overall_status,
)
from puppet_engine.observability.logging import (
    bind_context,
    configure_logging,
    get_logger,
    log_context,
    redact,
    set_level,
    unbind_context,
    update_secrets,
)
from puppet_engine.observability.metrics import (
    Metrics,
    configure_metrics,
    get_metrics,
    render_latest,
)
from puppet_engine.observability.tracing import (
    configure_tracing,
    current_trace_id,
    shutdown_tracing,
    span,
)

__all__ = [
    "ComponentHealth",
    "HealthRegistry",
    "HealthReport",
    "Metrics",
    "bind_context",
    "configure_logging",
    "configure_metrics",
    "configure_tracing",
    "current_trace_id",
    "get_logger",
    "get_metrics",
    "log_context",
    "overall_status",
    "redact",
    "render_latest",
    "set_level",
    "shutdown_tracing",
    "span",
    "unbind_context",
    "update_secrets",
]
