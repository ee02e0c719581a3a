"""The engine's own metric recording: one observer on events, one hook on the outbox."""

from __future__ import annotations

from puppet_engine.clock import Clock
from puppet_engine.events import Action, ActionOutcome, Event
from puppet_engine.observability import upstream
from puppet_engine.observability.metrics import Metrics

_ACTION_COUNTERS = {"post": "posts", "thread": "posts", "reply": "replies", "like": "likes", "quote": "quotes"}


class EngineMetrics:
    """Records event lag, handler latency and outcomes, and every completed side effect."""

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self.metrics = metrics
        self.clock = clock

    def on_event(self, event: Event, outcome: str, seconds: float) -> None:
        m = self.metrics
        m.handler_latency.labels(type=event.type).observe(seconds)
        waited = upstream.spent()
        if waited is not None:
            m.event_upstream.labels(type=event.type).observe(waited.seconds)
            m.event_overhead.labels(type=event.type).observe(max(0.0, seconds - waited.seconds))
        m.events_processed.labels(type=event.type, outcome=outcome).inc()
        if event.started_at is not None:
            m.event_lag.labels(type=event.type).observe(max(0.0, event.started_at - event.due_at))
        if outcome == "failed":
            m.errors.labels(component="events").inc()

    def on_upstream_call(self, service: str, outcome: str, seconds: float) -> None:
        self.metrics.http_client_latency.labels(service=service, outcome=outcome).observe(seconds)

    async def on_action_done(self, action: Action, outcome: ActionOutcome) -> None:
        name = _ACTION_COUNTERS.get(action.kind)
        if name is not None:
            getattr(self.metrics, name).labels(agent=action.agent_id).inc()

    async def on_action_failed(self, action: Action, error: str) -> None:
        self.metrics.errors.labels(component=f"outbox.{action.kind}").inc()
