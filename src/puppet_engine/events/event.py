"""Events: the unit of work. Everything an agent does starts as one, and is kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# A handler's own write, run on the connection of the transaction that commits its outcome.
OutcomeWrite = Callable[[Any], Awaitable[object]]
EventStatus = Literal["pending", "running", "done", "failed", "cancelled"]
ActionStatus = Literal["pending", "sending", "done", "failed", "unknown", "awaiting_review", "rejected", "expired"]


@dataclass
class Event:
    """A scheduled or triggered piece of work for one agent (or the system)."""

    type: str
    agent_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    due_at: float = 0.0
    key: str | None = None  # deterministic id: the same key is only ever scheduled once
    id: int | None = None
    status: EventStatus = "pending"
    attempts: int = 0
    max_attempts: int = 0  # 0: the engine's default
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    trace_id: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Event:
        m = row._mapping
        return cls(
            id=m["id"], key=m["key"], type=m["type"], agent_id=m["agent_id"], payload=m["payload"] or {},
            due_at=m["due_at"], status=m["status"], attempts=m["attempts"], max_attempts=m["max_attempts"],
            result=m["result"], error=m["error"], created_at=m["created_at"], started_at=m["started_at"],
            finished_at=m["finished_at"], trace_id=m["trace_id"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "key": self.key, "type": self.type, "agent_id": self.agent_id,
            "payload": self.payload, "due_at": self.due_at, "status": self.status,
            "attempts": self.attempts, "max_attempts": self.max_attempts, "result": self.result,
            "error": self.error, "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "trace_id": self.trace_id,
        }


@dataclass
class ActionSpec:
    """A side effect to perform after the event commits (the outbox row's content)."""

    key: str  # idempotency key: agent, behaviour and slot or source tweet
    agent_id: str
    kind: str  # post, reply, quote, like, retweet, thread, trade
    payload: dict[str, Any] = field(default_factory=dict)
    #: Set when a person must approve it first: recorded ``awaiting_review`` with this review
    #: item (``category``, ``reasons``, ``context``, ``expires_at``, ``on_expire``, ``notify``).
    review: dict[str, Any] | None = None
    #: What the agent knew when it decided (the mention and thread, the market): shown to a
    #: reviewer if the action is held, never stored with the action itself.
    context: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class Action:
    """An outbox row."""

    id: int
    key: str
    agent_id: str
    kind: str
    payload: dict[str, Any]
    status: ActionStatus
    external_id: str | None
    attempts: int
    not_before: float
    error: str | None
    event_id: int | None
    result: dict[str, Any] | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> Action:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class HandlerResult:
    """What a handler hands back; committed atomically with the event's completion.

    ``result`` is stored on the event; ``actions`` go to the outbox; ``follow_ups`` are
    new events (e.g. the next scheduled post); ``state`` is merged into the agent's state;
    ``recordings`` are the event's replay records (rows, see ``events/recording.py``), ``llm_calls``
    the rows of the LLM calls it made (both written in the outcome's transaction); ``writes``
    the handler's own changes (``write(conn)``, run last in that transaction): made exactly once,
    with the event's completion, never again by a retry of an event whose outcome was lost.
    """

    result: dict[str, Any] = field(default_factory=dict)
    actions: list[ActionSpec] = field(default_factory=list)
    follow_ups: list[Event] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    recordings: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
    llm_calls: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)  # llm_calls rows
    writes: list[OutcomeWrite] = field(default_factory=list, repr=False, compare=False)
