"""Recording for replay: each event's starting state, what it read and what it decided.

:class:`Recorder` wraps the engine's handlers. While one runs, the clients an agent acts
through (the LLM wrapper :class:`~puppet_engine.llm.wrappers.CaptureProvider`, the memory
wrapper :class:`~puppet_engine.memory.recording.RecordingMemory`) and the behaviours' reads
(mentions and threads, peers' posts, the market and balances) add
what they were asked and answered with :func:`note`; when it returns, the event's records
travel in its :class:`HandlerResult` and are inserted in the transaction that commits the
event's outcome (no commit of their own); a run that failed is written on its own. Outside an
event (API calls, start-up) :func:`note` records nothing. A record that cannot be encoded is
logged and never fails the event: recording is for debugging, the agent's work comes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog

from puppet_engine.clock import Clock
from puppet_engine.events.event import Event, HandlerResult
from puppet_engine.storage import Database
from puppet_engine.storage.group_commit import GroupCommitter
from puppet_engine.storage.repos import llm_calls, recordings
from puppet_engine.storage.repos.recordings import RecordCodec

log = structlog.get_logger("puppet_engine.recording")

Handler = Callable[[Event], Awaitable[HandlerResult | None]]
StartFacts = Callable[[str], Awaitable[dict[str, Any]]]
PeerLookup = Callable[[set[str]], dict[str, str]]


@dataclass
class Capture:
    """The records of the event running in this task."""

    agent_id: str
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    llm_calls: list[dict[str, Any]] = field(default_factory=list)  # rows to write with the outcome


_capture: ContextVar[Capture | None] = ContextVar("puppet_engine_capture", default=None)


def capturing() -> bool:
    """Whether an event is being recorded in this task (wrappers skip their work otherwise)."""
    return _capture.get() is not None


def note(kind: str, body: dict[str, Any]) -> None:
    """Add a record (``llm`` or ``read``) to the event being recorded, if any."""
    capture = _capture.get()
    if capture is not None:
        capture.records.append((kind, body))


def ride_along(llm_call: dict[str, Any]) -> bool:
    """Keep an ``llm_calls`` row to be inserted in the transaction of the event's outcome (no
    commit of its own); ``False`` outside a recorded event: the caller writes it itself."""
    capture = _capture.get()
    if capture is None:
        return False
    capture.llm_calls.append(llm_call)
    return True


def event_json(event: Event) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "key": event.key, "payload": event.payload,
            "due_at": event.due_at, "attempts": event.attempts, "max_attempts": event.max_attempts}


def outcome_json(hr: HandlerResult) -> dict[str, Any]:
    """What a handler decided, as recorded (and as a replay compares it)."""
    return {"result": hr.result,
            "actions": [{"key": a.key, "kind": a.kind, "payload": a.payload} for a in hr.actions],
            "follow_ups": [{"type": f.type, "key": f.key, "due_at": f.due_at, "payload": f.payload}
                           for f in hr.follow_ups],
            "state": hr.state}


def authors(records: list[tuple[str, dict[str, Any]]], event: Event) -> set[str]:
    """Every author id the event saw (its tweet, the mentions and threads it read)."""
    found = {str(a) for a in [event.payload.get("tweet", {}).get("author_id")] if a}
    for kind, body in records:
        if kind == "read":
            found.update(str(p["author_id"]) for p in body.get("posts", []) if p.get("author_id"))
    return found


class Recorder:
    """Records every agent event its handlers run (see the module docstring)."""

    def __init__(self, db: Database, clock: Clock, codec: RecordCodec, *, start_facts: StartFacts,
                 peers: PeerLookup | None = None) -> None:
        self.db, self.clock, self.codec = db, clock, codec
        self.start_facts, self.peers = start_facts, peers or (lambda _ids: {})
        self._writer = GroupCommitter(db, recordings.insert_batches)
        self._calls = GroupCommitter(db, llm_calls.insert_calls)

    def wrap(self, handler: Handler) -> Handler:
        """``handler``, recorded."""

        async def recorded(event: Event) -> HandlerResult | None:
            if not event.agent_id:
                return await handler(event)
            started = self.clock.now()
            body: dict[str, Any] = {"event": event_json(event), "start": await self.start_facts(event.agent_id),
                                    "started_at": started}
            capture = Capture(event.agent_id)
            token = _capture.set(capture)
            try:
                hr = await handler(event)
            except Exception as exc:
                body["error"] = {"type": exc.__class__.__name__, "message": str(exc)[:500]}
                await self._write(event, started, body, capture)
                raise
            finally:
                _capture.reset(token)
            hr = hr or HandlerResult()
            body["outcome"] = outcome_json(hr)
            # Committed with the event's outcome, in its transaction: no commit of their own.
            hr.recordings = self._rows(event, started, body, capture)
            hr.llm_calls = capture.llm_calls
            return hr

        return recorded

    def _rows(self, event: Event, started: float, body: dict[str, Any], capture: Capture) -> list[dict[str, Any]]:
        agent_id = capture.agent_id
        try:
            body["peers"] = self.peers(authors(capture.records, event))
            rows = [self._row(agent_id, event.id, "event", 0, started, body)]
            return rows + [self._row(agent_id, event.id, kind, i, started, rec)
                           for i, (kind, rec) in enumerate(capture.records, start=1)]
        except Exception:
            log.exception("recording_failed", agent_id=agent_id, event_type=event.type)
            return []

    async def _write(self, event: Event, started: float, body: dict[str, Any], capture: Capture) -> None:
        """A failed run's records and LLM calls (no outcome commits them): written on their own."""
        rows = self._rows(event, started, body, capture)
        try:
            if capture.llm_calls:  # the calls were made (and count against budgets) all the same
                await asyncio.gather(*(self._calls.write(row) for row in capture.llm_calls))
            if rows:
                await self._writer.write(rows)
        except Exception:
            log.exception("recording_failed", agent_id=capture.agent_id, event_type=event.type)

    def _row(self, agent_id: str, event_id: int | None, kind: str, seq: int, at: float,
             body: dict[str, Any]) -> dict[str, Any]:
        return {"agent_id": agent_id, "event_id": event_id, "kind": kind, "seq": seq, "created_at": at,
                "body": self.codec.encode(body, agent_id=agent_id, kind=kind)}
