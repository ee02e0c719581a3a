"""The engine's own metric recording and story: one observer on events, one hook on the outbox.

Observability sits below the events package: it reads events, actions and outcomes through
the hooks the engine registers (``EventEngine.observe``, ``Outbox.on_done``), by the fields
named in the protocols below, and imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from puppet_engine.clock import Clock
from puppet_engine.observability import upstream
from puppet_engine.observability.logging import STORY_LOGGER
from puppet_engine.observability.metrics import Metrics

_ACTION_COUNTERS = {"post": "posts", "thread": "posts", "reply": "replies", "like": "likes", "quote": "quotes"}
_VERBS = {"post": "posted", "thread": "posted", "reply": "replied", "quote": "quoted", "like": "liked",
          "retweet": "reposted", "trade": "traded"}
story = structlog.get_logger(STORY_LOGGER)


class Event(Protocol):
    """What the metrics read of an event (``puppet_engine.events.Event``)."""

    @property
    def type(self) -> str: ...
    @property
    def due_at(self) -> float: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def result(self) -> dict[str, Any] | None: ...


class Action(Protocol):
    """What the story and the counters read of a side effect (``puppet_engine.events.Action``)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


class ActionOutcome(Protocol):
    """What the story reads of a completed side effect (``puppet_engine.events.ActionOutcome``)."""

    @property
    def external_id(self) -> str | None: ...
    @property
    def result(self) -> Mapping[str, Any] | None: ...


def tell(action: Action, outcome: ActionOutcome) -> None:
    """One story line for a completed side effect: who did what, with the text or the trade.

    Every field a collector may want is on the line (``LOG_FORMAT=json``); ``summary`` is what
    the console shows after the agent and the verb."""
    p = action.payload
    fields: dict[str, Any] = {"agent_id": action.agent_id, "kind": action.kind, "action_key": action.key,
                              "external_id": outcome.external_id}
    if action.kind == "trade":
        result = outcome.result or {}
        fields.update(trade=result or None, reasoning=p.get("reasoning"))
        summary = str(result.get("summary") or f"{p.get('amount')} {p.get('input')} → {p.get('output')}")
    elif action.kind == "like":
        summary = f"tweet {p.get('tweet_id')}"
        fields["tweet_id"] = p.get("tweet_id")
    else:
        parts = [str(x) for x in p.get("parts") or [p.get("text") or ""]]
        fields.update(text="\n".join(parts), reply_to=p.get("reply_to"), quote=p.get("quote"))
        summary = f'"{parts[0]}"' + (f" (+{len(parts) - 1} more in the thread)" if len(parts) > 1 else "")
    story.info(_VERBS.get(action.kind, action.kind), summary=summary,
               **{k: v for k, v in fields.items() if v is not None})


class EngineMetrics:
    """Records event lag, handler latency and outcomes, and every completed side effect
    (counted, and told as a story line: :func:`tell`)."""

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
        if event.type == "engagement.sample" and outcome == "done" and event.agent_id and event.result:
            m.record_engagement(event.agent_id, event.result)

    def on_upstream_call(self, service: str, outcome: str, seconds: float) -> None:
        self.metrics.http_client_latency.labels(service=service, outcome=outcome).observe(seconds)

    async def on_action_done(self, action: Action, outcome: ActionOutcome) -> None:
        name = _ACTION_COUNTERS.get(action.kind)
        if name is not None:
            getattr(self.metrics, name).labels(agent=action.agent_id).inc()
        tell(action, outcome)

    async def on_action_failed(self, action: Action, error: str) -> None:
        self.metrics.errors.labels(component=f"outbox.{action.kind}").inc()
