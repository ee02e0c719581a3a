"""Events: the queue and history, the engine that routes them, the outbox, schedule maths."""

from puppet_engine.events.engine import EventEngine, RetryPolicy
from puppet_engine.events.event import Action, ActionSpec, Event, HandlerResult
from puppet_engine.events.outbox import ActionExecutor, ActionOutcome, Outbox

__all__ = [
    "Action", "ActionExecutor", "ActionOutcome", "ActionSpec", "Event", "EventEngine", "HandlerResult",
    "Outbox", "RetryPolicy",
]
