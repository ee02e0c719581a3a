"""What the engine records, in its own types: events inserted and claimed, handlers'
outcomes (event done, its actions, follow-ups, state changes), outbox actions.

The statements live in ``storage.repos`` (events, outbox, agent states); this module turns
``Event``/``ActionSpec``/``HandlerResult`` into their rows and rows back into
``Event``/``Action``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.events.event import Action, ActionSpec, Event, HandlerResult
from puppet_engine.storage.repos import agent_states, facts, llm_calls, outbox, recordings, review
from puppet_engine.storage.repos import events as event_rows


def event_row(event: Event, now: float, default_attempts: int) -> dict[str, Any]:
    """The row a new ``event`` is inserted as."""
    return {
        "key": event.key, "type": event.type, "agent_id": event.agent_id, "payload": event.payload,
        "due_at": event.due_at or now, "status": "pending", "attempts": 0,
        "max_attempts": event.max_attempts or default_attempts, "created_at": now, "trace_id": event.trace_id,
    }


async def insert_event(conn: AsyncConnection, event: Event, now: float, default_attempts: int = 5) -> int | None:
    """Insert ``event``; returns its id, or ``None`` when its key already exists."""
    return await event_rows.insert_event(conn, event_row(event, now, default_attempts))


async def insert_new_events(conn: AsyncConnection, batch: list[Event], now: float,
                            default_attempts: int = 5) -> list[int | None]:
    """:func:`insert_event` for each of ``batch``, in a few statements when their keys are distinct."""
    keys = [event.key for event in batch]
    if len(batch) < 2 or None in keys or len(set(keys)) != len(keys):  # unkeyed, or a key twice: in order
        return [await insert_event(conn, event, now, default_attempts) for event in batch]
    inserted = await event_rows.insert_keyed_events(conn, [event_row(e, now, default_attempts) for e in batch])
    return [inserted.get(key) for key in keys if key is not None]


async def insert_action(conn: AsyncConnection, spec: ActionSpec, event_id: int | None, now: float, *,
                        sending: bool = False) -> int | None:
    """Record a side effect; returns its id, or ``None`` when its key was already recorded.

    ``sending``: recorded as already claimed (``sending``, one attempt) by a caller that
    sends it right after the commit; interrupted before that, it is reconciled like any
    interrupted send. An action with a ``review`` item is recorded ``awaiting_review`` (never
    ``sending``) together with its item, in the same transaction.
    """
    action_id = await outbox.insert_action(conn, spec.key, spec.agent_id, spec.kind, spec.payload, event_id, now,
                                           sending=sending, held=spec.review is not None)
    if action_id is not None and spec.review is not None:
        await review.insert_item(conn, action_id, spec.agent_id, spec.review, now)
    return action_id


async def insert_actions(conn: AsyncConnection, specs: list[tuple[ActionSpec, int | None]], now: float, *,
                         sending: bool = False) -> list[int | None]:
    """:func:`insert_action` for each ``(spec, event id)``, in order: in one statement when their
    keys are distinct (a key twice is recorded once, by the first: one by one, in order)."""
    keys = [spec.key for spec, _ in specs]
    if len(specs) < 2 or len(set(keys)) != len(keys):
        return [await insert_action(conn, spec, event_id, now, sending=sending) for spec, event_id in specs]
    ids = await outbox.insert_keyed_actions(conn, [
        outbox.action_row(spec.key, spec.agent_id, spec.kind, spec.payload, event_id, now, sending=sending,
                          held=spec.review is not None) for spec, event_id in specs])
    for spec, _ in specs:
        if spec.review is not None and spec.key in ids:
            await review.insert_item(conn, ids[spec.key], spec.agent_id, spec.review, now)
    return [ids.get(key) for key in keys]


def new_action(action_id: int, spec: ActionSpec, event_id: int | None, now: float, *, sending: bool = False) -> Action:
    """The :class:`Action` that :func:`insert_action` just wrote (no need to read it back)."""
    return Action(id=action_id, key=spec.key, agent_id=spec.agent_id, kind=spec.kind, payload=spec.payload,
                  status="sending" if sending else "pending", external_id=None, attempts=int(sending),
                  not_before=0.0, error=None, event_id=event_id, result=None, created_at=now, updated_at=now)


async def record_outcomes(conn: AsyncConnection, outcomes: list[tuple[Event, HandlerResult]], now: float,
                          default_attempts: int = 5) -> list[list[Action]]:
    """Record what several handlers returned, in a few statements: events done, their actions
    (returned, to send: they are recorded as ``sending``, so the caller sends them without
    claiming them again; those held for review are recorded but not returned), follow-up
    events, agent state changes, the handlers' own writes. Each list of actions is in order.
    """
    await event_rows.mark_done(conn, [(event.id, hr.result, now) for event, hr in outcomes])
    ids = iter(await insert_actions(conn, [(spec, event.id) for event, hr in outcomes for spec in hr.actions], now,
                                    sending=True))
    recorded: list[list[Action]] = []
    for event, hr in outcomes:
        mine: list[Action] = []
        for spec in hr.actions:
            action_id = next(ids)
            if action_id is not None and spec.review is None:
                mine.append(new_action(action_id, spec, event.id, now, sending=True))
        recorded.append(mine)
    follow_ups = [event_row(f, now, default_attempts) for _, hr in outcomes for f in hr.follow_ups]
    if follow_ups:
        await event_rows.insert_events(conn, follow_ups)
    await agent_states.merge_states(conn, [(e.agent_id, hr.state) for e, hr in outcomes if hr.state and e.agent_id],
                                    now)
    await facts.insert(conn, outcome_facts(outcomes, now))  # the history of those changes: one statement
    await recordings.insert_batches(conn, [hr.recordings for _, hr in outcomes if hr.recordings])  # for replay
    calls = [row for _, hr in outcomes for row in hr.llm_calls]
    if calls:
        await llm_calls.insert_calls(conn, calls)
    for _, hr in outcomes:
        for write in hr.writes:
            await write(conn)
    return recorded


def outcome_facts(outcomes: list[tuple[Event, HandlerResult]], now: float) -> list[dict[str, Any]]:
    """The facts of handlers' outcomes: each agent state change, and each decision not to act."""
    rows = []
    for event, hr in outcomes:
        if not event.agent_id:
            continue
        if hr.state:
            rows.append(facts.fact(event.agent_id, "state", hr.state, now, event.id))
        skipped = (hr.result.get("skipped") or hr.result.get("rejected")) if hr.result else None
        if skipped:
            reason = "; ".join(map(str, skipped)) if isinstance(skipped, list) else str(skipped)
            rows.append(facts.fact(event.agent_id, "skip", {"event": event.type, "reason": reason}, now, event.id))
    return rows


@dataclass
class Claim:
    """What one claim found: the events now running, and what it saw of the rest of the queue."""

    events: list[Event]
    next_due: float | None  # the earliest pending event due after ``now`` (owned agents)
    blocked: bool  # due events wait for an agent that is busy: look again when one finishes


async def claim(
    conn: AsyncConnection, now: float, limit: int, owner: str, *, busy: Collection[str] = (),
    agent_ids: Iterable[str] | None = None,
) -> Claim:
    """Mark up to ``limit`` due events running (at most one per agent, none for ``busy`` agents).

    One statement claims; a second, in the same transaction, tells the caller when to look
    again, so an idle engine does not poll the database.
    """
    rows, next_due, blocked = await event_rows.claim(conn, now, limit, owner, busy, agent_ids)
    return Claim(_by_due(rows), next_due, blocked)


def _by_due(rows: list[Any]) -> list[Event]:
    return sorted((Event.from_row(r) for r in rows), key=lambda e: (e.due_at, e.id or 0))


async def load_actions(conn: AsyncConnection, *, ids: list[int] | None = None, status: str | None = None,
                       due_before: float | None = None, limit: int = 100,
                       agent_ids: Iterable[str] | None = None) -> list[Action]:
    """Outbox actions by id, status, back-off end and agent, oldest first."""
    rows = await outbox.load_actions(conn, ids=ids, status=status, due_before=due_before, limit=limit,
                                     agent_ids=agent_ids)
    return [Action.from_row(r) for r in rows]


async def due_actions(conn: AsyncConnection, now: float, limit: int,
                      agent_ids: Iterable[str] | None = None) -> tuple[list[Action], float | None]:
    """Pending actions whose back-off is over (oldest first), and when the next one will be."""
    rows = [Action.from_row(r) for r in await outbox.pending_actions(conn, limit + 1, agent_ids)]
    due = [a for a in rows if a.not_before <= now][:limit]
    later = [a.not_before for a in rows if a.not_before > now]
    if len(due) == limit and len(rows) > limit and not later:
        return due, now  # more are due than one batch
    return due, (later[0] if later else None)
