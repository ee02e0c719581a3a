"""Database operations for the event queue, the outbox and agent state.

Inserts keyed by a deterministic ``key`` use ``ON CONFLICT DO NOTHING`` so the same
logical event or side effect is recorded once, whatever restarts or overlaps happen.
On PostgreSQL, claims use ``FOR UPDATE SKIP LOCKED`` so several processes can share
one queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.events.event import Action, ActionSpec, Event
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, agents, events


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


async def insert_event(conn: AsyncConnection, event: Event, now: float, default_attempts: int = 5) -> int | None:
    """Insert ``event``; returns its id, or ``None`` when its key already exists."""
    values = {
        "key": event.key, "type": event.type, "agent_id": event.agent_id, "payload": event.payload,
        "due_at": event.due_at or now, "status": "pending", "attempts": 0,
        "max_attempts": event.max_attempts or default_attempts, "created_at": now, "trace_id": event.trace_id,
    }
    stmt = _insert(conn, events).values(**values)
    if event.key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
    res = await conn.execute(stmt.returning(events.c.id))
    row = res.first()
    return int(row[0]) if row else None


async def insert_action(conn: AsyncConnection, spec: ActionSpec, event_id: int | None, now: float) -> int | None:
    stmt = _insert(conn, actions).values(
        key=spec.key, agent_id=spec.agent_id, kind=spec.kind, payload=spec.payload, status="pending",
        attempts=0, not_before=0.0, event_id=event_id, created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["key"])
    res = await conn.execute(stmt.returning(actions.c.id))
    row = res.first()
    return int(row[0]) if row else None


async def merge_agent_state(conn: AsyncConnection, agent_id: str, changes: dict[str, Any], now: float) -> None:
    row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
    if row is None:
        return
    state = dict(row[0] or {})
    state.update(changes)
    await conn.execute(agents.update().where(agents.c.id == agent_id).values(state=state, updated_at=now))


async def claim_due(
    conn: AsyncConnection, now: float, limit: int, owner: str, *, busy: Iterable[str] = (),
    agent_ids: Iterable[str] | None = None,
) -> list[Event]:
    """Mark up to ``limit`` due events as running: at most one per agent, none for ``busy`` agents."""
    busy_set = set(busy)
    q = (
        sa.select(events)
        .where(events.c.status == "pending", events.c.due_at <= now)
        .order_by(events.c.due_at, events.c.id)
        .limit(limit * 4 + len(busy_set) + 8)
    )
    if agent_ids is not None:
        q = q.where(sa.or_(events.c.agent_id.in_(list(agent_ids)), events.c.agent_id.is_(None)))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = (await conn.execute(q)).fetchall()
    picked: list[Event] = []
    seen: set[str] = set(busy_set)
    for row in rows:
        ev = Event.from_row(row)
        if ev.agent_id is not None:
            if ev.agent_id in seen:
                continue
            seen.add(ev.agent_id)
        picked.append(ev)
        if len(picked) >= limit:
            break
    if picked:
        ids = [e.id for e in picked]
        await conn.execute(
            events.update().where(events.c.id.in_(ids), events.c.status == "pending")
            .values(status="running", owner=owner, started_at=now, attempts=events.c.attempts + 1)
        )
        for ev in picked:
            ev.status = "running"
            ev.attempts += 1
            ev.started_at = now
    return picked


async def finish_event(conn: AsyncConnection, event_id: int, status: str, now: float, *,
                       result: dict[str, Any] | None = None, error: str | None = None,
                       retry_at: float | None = None) -> None:
    values: dict[str, Any] = {"result": result, "error": error}
    if retry_at is not None:
        values.update(status="pending", due_at=retry_at, owner=None)
    else:
        values.update(status=status, finished_at=now)
    await conn.execute(events.update().where(events.c.id == event_id).values(**values))


async def next_due_at(db: Database, agent_ids: Iterable[str] | None = None) -> float | None:
    q = sa.select(sa.func.min(events.c.due_at)).where(events.c.status == "pending")
    if agent_ids is not None:
        q = q.where(sa.or_(events.c.agent_id.in_(list(agent_ids)), events.c.agent_id.is_(None)))
    async with db.connect() as conn:
        value = (await conn.execute(q)).scalar()
    return float(value) if value is not None else None


async def requeue_running(db: Database, agent_ids: Iterable[str] | None = None) -> int:
    """Events left running by a dead process go back to pending (handlers are idempotent).

    With ``agent_ids`` (multi-process), only the events of agents this process now owns.
    """
    cond = events.c.status == "running"
    if agent_ids is not None:
        cond = sa.and_(cond, events.c.agent_id.in_(list(agent_ids)))
    async with db.transaction() as conn:
        res = await conn.execute(events.update().where(cond).values(status="pending", owner=None))
    return int(res.rowcount or 0)


async def load_actions(conn: AsyncConnection, *, ids: list[int] | None = None, status: str | None = None,
                       due_before: float | None = None, limit: int = 100) -> list[Action]:
    q = sa.select(actions).order_by(actions.c.id).limit(limit)
    if ids is not None:
        q = q.where(actions.c.id.in_(ids))
    if status is not None:
        q = q.where(actions.c.status == status)
    if due_before is not None:
        q = q.where(actions.c.not_before <= due_before)
    return [Action.from_row(r) for r in (await conn.execute(q)).fetchall()]


async def update_action(conn: AsyncConnection, action_id: int, now: float, **values: Any) -> None:
    await conn.execute(actions.update().where(actions.c.id == action_id).values(updated_at=now, **values))
