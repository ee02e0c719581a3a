"""The recorded stretch of an agent's life, as a replay reads it: one :class:`RecordedEvent` per
event run (a retried event is one per attempt), with what it read and was answered, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from puppet_engine import errors
from puppet_engine.errors import ConfigError, ProviderError
from puppet_engine.events import Event
from puppet_engine.storage import Database
from puppet_engine.storage.repos import recordings
from puppet_engine.storage.repos.recordings import RecordCodec, Recording


@dataclass
class RecordedEvent:
    """One event as it ran: the event, the agent's state and identity when it started, what it
    decided (``outcome``) or the error it raised, the peers among the authors it saw, and its
    LLM calls and reads in the order they happened."""

    event: Event
    started_at: float
    start: dict[str, Any]
    outcome: dict[str, Any] | None
    error: dict[str, Any] | None
    peers: dict[str, str]
    llm: list[dict[str, Any]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> dict[str, Any]:
        return dict(self.start.get("state") or {})


def group(rows: list[Recording]) -> list[RecordedEvent]:
    """Rows (ordered by time) → events; records of an event whose ``event`` row is missing
    (a write that failed half-way cannot happen: they are one insert) are ignored."""
    by_run: dict[tuple[int | None, float], RecordedEvent] = {}
    loose: dict[tuple[int | None, float], list[Recording]] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.event_id or 0, r.seq)):
        run = (row.event_id, row.created_at)
        if row.kind == "event":
            body = row.body
            e = body["event"]
            event = Event(type=e["type"], agent_id=row.agent_id, payload=e.get("payload") or {}, due_at=e["due_at"],
                          key=e.get("key"), id=e.get("id"), attempts=e.get("attempts", 1),
                          max_attempts=e.get("max_attempts", 5), status="running")
            by_run[run] = RecordedEvent(event, float(body.get("started_at", row.created_at)), body.get("start") or {},
                                        body.get("outcome"), body.get("error"), body.get("peers") or {})
            for early in loose.pop(run, []):
                _add(by_run[run], early)
        elif run in by_run:
            _add(by_run[run], row)
        else:
            loose.setdefault(run, []).append(row)
    return sorted(by_run.values(), key=lambda r: (r.started_at, r.event.id or 0))


def _add(run: RecordedEvent, row: Recording) -> None:
    (run.llm if row.kind == "llm" else run.reads).append(row.body)


async def load_stretch(db: Database, codec: RecordCodec, agent_id: str, since: float, until: float) -> list[RecordedEvent]:
    """The agent's recorded events that started in ``[since, until]``; a clear error when there are none."""
    rows = await recordings.load(db, codec, agent_id, since, until)
    runs = group(rows)
    if not runs:
        first = await recordings.first_event_at(db, agent_id)
        where = "nothing is recorded for this agent" if first is None else \
            f"its oldest kept recording starts at {first:.0f} (epoch seconds)"
        raise ConfigError(f"replay {agent_id!r}: no recorded events between {since:.0f} and {until:.0f}; {where} "
                          "(recording is on with REPLAY_RECORDING, kept for HISTORY_RETENTION_DAYS)")
    return runs


def error_from(data: dict[str, Any]) -> ProviderError:
    """The recorded failure again, as its class when it is one of the engine's provider errors."""
    cls = getattr(errors, str(data.get("type", "")), None)
    message = str(data.get("message", "recorded failure"))
    if isinstance(cls, type) and issubclass(cls, ProviderError):
        try:
            return cls(message)
        except TypeError:  # a subclass with other required arguments
            pass
    exc = ProviderError(message)
    exc.retryable = bool(data.get("retryable", False))
    return exc
