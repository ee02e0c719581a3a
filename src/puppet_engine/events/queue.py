"""Database operations for the event queue, the outbox and agent state.

Inserts keyed by a deterministic ``key`` use ``ON CONFLICT DO NOTHING`` so the same
logical event or side effect is recorded once, whatever restarts or overlaps happen.
Claims are one ``UPDATE … RETURNING`` (SQLite ≥ 3.35 and PostgreSQL); on PostgreSQL the
candidates are locked ``FOR UPDATE SKIP LOCKED`` so several processes share one queue.
Lists of agent ids travel as one parameter (a JSON array on SQLite, an array on
PostgreSQL), so a process owning 10,000 agents does not bind 10,000 values per query.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.events.event import Action, ActionSpec, Event, HandlerResult
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, agents, events

SMALL_LIST = 64  # up to this many ids are bound one by one (the plan cache stays warm)
RETURNING_SQLITE = sqlite3.sqlite_version_info >= (3, 35)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def insert_ignoring_conflicts(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` on the primary key, for SQLite and PostgreSQL."""
    return _insert(conn, table).on_conflict_do_nothing()


def in_ids(conn: AsyncConnection, column: sa.ColumnElement[Any], ids: Iterable[str]) -> sa.ColumnElement[bool]:
    """``column IN ids``, with a large list sent as one parameter."""
    values = list(ids)
    if len(values) <= SMALL_LIST:
        return column.in_(values)
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.literal(values, type_=postgresql.ARRAY(sa.String)))
    each = sa.func.json_each(sa.literal(json.dumps(values))).table_valued("value")
    return column.in_(sa.select(each.c.value))


def fixed_in(column: sa.ColumnElement[Any], values: Iterable[str]) -> sa.ColumnElement[bool]:
    """``column IN values`` for constant values, with a parameter each: the compiled statement
    is cached and reused as is (an expanding IN is rendered again on every execution)."""
    return column.in_([sa.literal(value) for value in values])


def _owned(conn: AsyncConnection, agent_ids: Iterable[str] | None) -> sa.ColumnElement[bool]:
    if agent_ids is None:
        return sa.true()
    return sa.or_(in_ids(conn, events.c.agent_id, agent_ids), events.c.agent_id.is_(None))


async def insert_event(conn: AsyncConnection, event: Event, now: float, default_attempts: int = 5) -> int | None:
    """Insert ``event``; returns its id, or ``None`` when its key already exists."""
    stmt = _statement(("event", conn.dialect.name), lambda: _insert(conn, events).values(
        {name: sa.bindparam(f"b_{name}", type_=events.c[name].type) for name in _EVENT_COLUMNS},
    ).on_conflict_do_nothing(index_elements=["key"]).returning(events.c.id))
    row = (await conn.execute(stmt, {f"b_{k}": v for k, v in _event_row(event, now, default_attempts).items()})).first()
    return int(row[0]) if row else None


async def insert_action(conn: AsyncConnection, spec: ActionSpec, event_id: int | None, now: float, *,
                        sending: bool = False) -> int | None:
    """Record a side effect; returns its id, or ``None`` when its key was already recorded.

    ``sending``: recorded as already claimed (``sending``, one attempt) by a caller that
    sends it right after the commit; interrupted before that, it is reconciled like any
    interrupted send.
    """
    stmt = _statement(("action", conn.dialect.name), lambda: _insert(conn, actions).values(
        key=sa.bindparam("b_key"), agent_id=sa.bindparam("b_agent"), kind=sa.bindparam("b_kind"),
        payload=sa.bindparam("b_payload", type_=actions.c.payload.type), status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts", type_=sa.Integer), not_before=0.0,
        event_id=sa.bindparam("b_event", type_=sa.Integer),
        created_at=sa.bindparam("b_now", type_=sa.Float), updated_at=sa.bindparam("b_now", type_=sa.Float),
    ).on_conflict_do_nothing(index_elements=["key"]).returning(actions.c.id))
    res = await conn.execute(stmt, {"b_key": spec.key, "b_agent": spec.agent_id, "b_kind": spec.kind,
                                    "b_payload": spec.payload, "b_event": event_id, "b_now": now,
                                    "b_status": "sending" if sending else "pending", "b_attempts": int(sending)})
    row = res.first()
    return int(row[0]) if row else None


def new_action(action_id: int, spec: ActionSpec, event_id: int | None, now: float, *, sending: bool = False) -> Action:
    """The :class:`Action` that :func:`insert_action` just wrote (no need to read it back)."""
    return Action(id=action_id, key=spec.key, agent_id=spec.agent_id, kind=spec.kind, payload=spec.payload,
                  status="sending" if sending else "pending", external_id=None, attempts=int(sending),
                  not_before=0.0, error=None, event_id=event_id, result=None, created_at=now, updated_at=now)


async def merge_agent_state(conn: AsyncConnection, agent_id: str, changes: dict[str, Any], now: float) -> None:
    """Merge ``changes`` into the agent's state in one UPDATE (no read, no lost update)."""
    await merge_agent_states(conn, [(agent_id, changes)], now)


async def merge_agent_states(conn: AsyncConnection, changes: list[tuple[str, dict[str, Any]]], now: float) -> None:
    """:func:`merge_agent_state` for several agents: one statement per shape of change."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    pg = conn.dialect.name == "postgresql"
    for agent_id, state in changes:
        if not state:
            continue
        try:
            encoded = [json.dumps(value, allow_nan=False) for value in state.values()]
        except (TypeError, ValueError):
            encoded = []
        if not encoded or any('"' in key or "\\" in key for key in state):
            await _merge_read_write(conn, agent_id, state, now)
            continue
        if pg:
            shapes.setdefault((), []).append({"b_id": agent_id, "b_now": now, "b_patch": json.dumps(state)})
        else:
            row: dict[str, Any] = {"b_id": agent_id, "b_now": now}
            row.update({f"b_v{i}": value for i, value in enumerate(encoded)})
            shapes.setdefault(tuple(state), []).append(row)
    for keys, rows in shapes.items():
        await conn.execute(_statement(("merge", pg, keys), lambda keys=keys: _merge_statement(pg, keys)), rows)


def _merge_statement(pg: bool, keys: tuple[str, ...]) -> Any:
    merged: sa.ColumnElement[Any]
    if pg:
        patch = sa.cast(sa.bindparam("b_patch", type_=sa.String), postgresql.JSONB)
        merged = sa.cast(sa.cast(agents.c.state, postgresql.JSONB).op("||")(patch), sa.JSON)
    else:
        args: list[Any] = [agents.c.state]
        for i, key in enumerate(keys):
            args += [sa.literal_column("'" + f'$."{key}"'.replace("'", "''") + "'"),
                     sa.func.json(sa.bindparam(f"b_v{i}", type_=sa.String))]
        merged = sa.func.json_set(*args)
    return agents.update().where(agents.c.id == sa.bindparam("b_id")).values(
        state=merged, updated_at=sa.bindparam("b_now", type_=sa.Float))


_EVENT_COLUMNS = ("key", "type", "agent_id", "payload", "due_at", "status", "attempts", "max_attempts", "created_at",
                  "trace_id")


def _event_row(event: Event, now: float, default_attempts: int) -> dict[str, Any]:
    return {
        "key": event.key, "type": event.type, "agent_id": event.agent_id, "payload": event.payload,
        "due_at": event.due_at or now, "status": "pending", "attempts": 0,
        "max_attempts": event.max_attempts or default_attempts, "created_at": now, "trace_id": event.trace_id,
    }


_FINISH_DONE = events.update().where(events.c.id == sa.bindparam("b_id")).values(
    status="done", result=sa.bindparam("b_result", type_=events.c.result.type), error=None,
    finished_at=sa.bindparam("b_now", type_=sa.Float))


async def record_outcomes(conn: AsyncConnection, outcomes: list[tuple[Event, HandlerResult]], now: float,
                          default_attempts: int = 5) -> list[list[Action]]:
    """Record what several handlers returned, in a few statements: events done, their actions
    (returned, to send: they are recorded as ``sending``, so the caller sends them without
    claiming them again), follow-up events, agent state changes. Each list of actions is in order.
    """
    await conn.execute(_FINISH_DONE, [{"b_id": event.id, "b_result": hr.result, "b_now": now}
                                      for event, hr in outcomes])
    recorded: list[list[Action]] = []
    for event, hr in outcomes:
        mine: list[Action] = []
        for spec in hr.actions:
            action_id = await insert_action(conn, spec, event.id, now, sending=True)
            if action_id is not None:
                mine.append(new_action(action_id, spec, event.id, now, sending=True))
        recorded.append(mine)
    follow_ups = [_event_row(f, now, default_attempts) for _, hr in outcomes for f in hr.follow_ups]
    if follow_ups:
        stmt = _statement(("follow", conn.dialect.name),
                          lambda: _insert(conn, events).on_conflict_do_nothing(index_elements=["key"]))
        await conn.execute(stmt, follow_ups)
    await merge_agent_states(conn, [(e.agent_id, hr.state) for e, hr in outcomes if hr.state and e.agent_id], now)
    return recorded


async def _merge_read_write(conn: AsyncConnection, agent_id: str, changes: dict[str, Any], now: float) -> None:
    row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
    if row is None:
        return
    state = dict(row[0] or {})
    state.update(changes)
    await conn.execute(agents.update().where(agents.c.id == agent_id).values(state=state, updated_at=now))


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
    pg = conn.dialect.name == "postgresql"
    mode, params = _owned_params(pg, agent_ids)
    picked = await _claim_rows(conn, now, limit, owner, busy, mode, params) if limit > 0 else []
    waiting = sorted(set(busy) | {e.agent_id for e in picked if e.agent_id is not None})
    stmt = _statement(("hint", pg, mode, bool(waiting)), lambda: _hint_statement(pg, mode, bool(waiting)))
    row = (await conn.execute(stmt, {**params, "b_now": now, "b_waiting": waiting})).one()
    return Claim(picked, float(row[0]) if row[0] is not None else None, bool(row[1]))


# Hot statements are built once per shape and executed with parameters: building and
# hashing a statement of this size costs more than running it.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement(key: tuple[Any, ...], build: Any) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


# The owned agents' ids as last encoded, by the (immutable) collection they came from: a
# process with 10,000 agents claims many times a second while the set rarely changes.
_OWNED_MEMO: list[tuple[frozenset[str], bool, tuple[str, dict[str, Any]]]] = []


def _owned_params(pg: bool, agent_ids: Iterable[str] | None) -> tuple[str, dict[str, Any]]:
    if agent_ids is None:
        return "all", {}
    if isinstance(agent_ids, frozenset):
        for memo_ids, memo_pg, found in _OWNED_MEMO:
            if memo_ids is agent_ids and memo_pg == pg:
                return found
    owned = list(agent_ids)
    found = ("list", {"b_owned": owned}) if len(owned) <= SMALL_LIST else (
        "array", {"b_owned": owned if pg else json.dumps(owned)})
    if isinstance(agent_ids, frozenset):
        _OWNED_MEMO[:] = [(agent_ids, pg, found), *_OWNED_MEMO[:3]]
    return found


def _owned_clause(pg: bool, mode: str) -> sa.ColumnElement[bool]:
    if mode == "all":
        return sa.true()
    match: sa.ColumnElement[bool]
    if mode == "list":
        match = events.c.agent_id.in_(sa.bindparam("b_owned", expanding=True))
    elif pg:
        match = events.c.agent_id == sa.any_(sa.bindparam("b_owned", type_=postgresql.ARRAY(sa.String)))
    else:
        each = sa.func.json_each(sa.bindparam("b_owned", type_=sa.String)).table_valued("value")
        match = events.c.agent_id.in_(sa.select(each.c.value))
    return sa.or_(match, events.c.agent_id.is_(None))


def _hint_statement(pg: bool, mode: str, waiting: bool) -> Any:
    # Two index walks, not a scan of the queue: the first pending event after now
    # (status, due_at), and whether a busy agent has one due.
    now = sa.bindparam("b_now", type_=sa.Float)
    future = sa.select(sa.func.min(events.c.due_at)).where(
        events.c.status == "pending", events.c.due_at > now, _owned_clause(pg, mode)).scalar_subquery()
    blocked: sa.ColumnElement[Any] = sa.literal(False)
    if waiting:
        blocked = sa.exists().where(events.c.agent_id.in_(sa.bindparam("b_waiting", expanding=True)),
                                    events.c.status == "pending", events.c.due_at <= now)
    return sa.select(future, blocked)


def _candidates(pg: bool, mode: str, busy: bool) -> sa.Select[Any]:
    cand = sa.select(events.c.id, events.c.agent_id, events.c.due_at).where(
        events.c.status == "pending", events.c.due_at <= sa.bindparam("b_now", type_=sa.Float),
        _owned_clause(pg, mode))
    if busy:
        cand = cand.where(sa.or_(events.c.agent_id.not_in(sa.bindparam("b_busy", expanding=True)),
                                 events.c.agent_id.is_(None)))
    cand = cand.order_by(events.c.due_at, events.c.id).limit(sa.bindparam("b_window", type_=sa.Integer))
    return cand.with_for_update(skip_locked=True) if pg else cand


def _claim_statement(pg: bool, mode: str, busy: bool) -> Any:
    c = _candidates(pg, mode, busy).subquery("cand")
    slot = sa.func.coalesce(c.c.agent_id, sa.literal("event:") + sa.cast(c.c.id, sa.String))
    rank = sa.func.row_number().over(partition_by=slot, order_by=(c.c.due_at, c.c.id)).label("rn")
    ranked = sa.select(c.c.id, c.c.due_at, rank).subquery("ranked")
    chosen = (sa.select(ranked.c.id).where(ranked.c.rn == 1).order_by(ranked.c.due_at, ranked.c.id)
              .limit(sa.bindparam("b_limit", type_=sa.Integer)))
    # No status test out here: the candidates are pending (locked on PostgreSQL), and SQLite
    # would otherwise walk every pending row of the status index instead of these few ids.
    return (
        events.update().where(events.c.id.in_(chosen))
        .values(status="running", owner=sa.bindparam("b_owner", type_=sa.String),
                started_at=sa.bindparam("b_now", type_=sa.Float), attempts=events.c.attempts + 1)
        .returning(*events.c)
    )


async def _claim_rows(conn: AsyncConnection, now: float, limit: int, owner: str, busy: Collection[str],
                      mode: str, owned: dict[str, Any]) -> list[Event]:
    pg = conn.dialect.name == "postgresql"
    params = dict(owned)
    params.update(b_now=now, b_window=limit * 4 + len(busy) + 8, b_limit=limit, b_owner=owner,
                  b_busy=sorted(busy))
    if not pg and not RETURNING_SQLITE:
        cand = _statement(("cand", pg, mode, bool(busy)), lambda: _candidates(pg, mode, bool(busy)))
        return await _claim_rows_select_update(conn, now, limit, owner, cand, params)
    stmt = _statement(("claim", pg, mode, bool(busy)), lambda: _claim_statement(pg, mode, bool(busy)))
    picked = [Event.from_row(r) for r in (await conn.execute(stmt, params)).fetchall()]
    picked.sort(key=lambda e: (e.due_at, e.id or 0))
    return picked


async def _claim_rows_select_update(conn: AsyncConnection, now: float, limit: int, owner: str,
                                    cand: sa.Select[Any], params: dict[str, Any]) -> list[Event]:
    """SQLite before 3.35 (no RETURNING): read the candidates, then mark the chosen ones."""
    seen: set[str] = set()
    chosen: list[int] = []
    for row in (await conn.execute(cand, {k: v for k, v in params.items() if k != "b_limit"})).fetchall():
        if row.agent_id is not None:
            if row.agent_id in seen:
                continue
            seen.add(row.agent_id)
        chosen.append(row.id)
        if len(chosen) >= limit:
            break
    if not chosen:
        return []
    await conn.execute(events.update().where(events.c.id.in_(chosen), events.c.status == "pending")
                       .values(status="running", owner=owner, started_at=now, attempts=events.c.attempts + 1))
    rows = (await conn.execute(sa.select(events).where(events.c.id.in_(chosen), events.c.owner == owner,
                                                       events.c.status == "running"))).fetchall()
    return sorted((Event.from_row(r) for r in rows), key=lambda e: (e.due_at, e.id or 0))


async def claim_due(
    conn: AsyncConnection, now: float, limit: int, owner: str, *, busy: Iterable[str] = (),
    agent_ids: Iterable[str] | None = None,
) -> list[Event]:
    """Mark up to ``limit`` due events as running: at most one per agent, none for ``busy`` agents."""
    mode, owned = _owned_params(conn.dialect.name == "postgresql", agent_ids)
    return await _claim_rows(conn, now, limit, owner, set(busy), mode, owned)


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
    """The earliest due time of a pending event (of these agents, and agent-less ones)."""
    async with db.connect() as conn:
        q = sa.select(sa.func.min(events.c.due_at)).where(events.c.status == "pending", _owned(conn, agent_ids))
        value = (await conn.execute(q)).scalar()
    return float(value) if value is not None else None


async def requeue_running(db: Database, agent_ids: Iterable[str] | None = None) -> int:
    """Events left running by a dead process go back to pending (handlers are idempotent).

    With ``agent_ids`` (multi-process), only the events of agents this process now owns.
    """
    async with db.transaction() as conn:
        cond = events.c.status == "running"
        if agent_ids is not None:
            cond = sa.and_(cond, in_ids(conn, events.c.agent_id, agent_ids))
        res = await conn.execute(events.update().where(cond).values(status="pending", owner=None))
    return int(res.rowcount or 0)


async def load_actions(conn: AsyncConnection, *, ids: list[int] | None = None, status: str | None = None,
                       due_before: float | None = None, limit: int = 100,
                       agent_ids: Iterable[str] | None = None) -> list[Action]:
    q = sa.select(actions).order_by(actions.c.id).limit(limit)
    if ids is not None:
        q = q.where(actions.c.id.in_(ids))
    if status is not None:
        q = q.where(actions.c.status == status)
    if due_before is not None:
        q = q.where(actions.c.not_before <= due_before)
    if agent_ids is not None:
        q = q.where(in_ids(conn, actions.c.agent_id, agent_ids))
    return [Action.from_row(r) for r in (await conn.execute(q)).fetchall()]


async def due_actions(conn: AsyncConnection, now: float, limit: int,
                      agent_ids: Iterable[str] | None = None) -> tuple[list[Action], float | None]:
    """Pending actions whose back-off is over (oldest first), and when the next one will be."""
    q = sa.select(actions).where(actions.c.status == "pending").order_by(actions.c.not_before, actions.c.id)
    if agent_ids is not None:
        q = q.where(in_ids(conn, actions.c.agent_id, agent_ids))
    rows = [Action.from_row(r) for r in (await conn.execute(q.limit(limit + 1))).fetchall()]
    due = [a for a in rows if a.not_before <= now][:limit]
    later = [a.not_before for a in rows if a.not_before > now]
    if len(due) == limit and len(rows) > limit and not later:
        return due, now  # more are due than one batch
    return due, (later[0] if later else None)


_CLAIM_ACTION = actions.update().where(actions.c.id == sa.bindparam("b_id"), actions.c.status == "pending").values(
    status="sending", attempts=actions.c.attempts + 1, updated_at=sa.bindparam("b_now", type_=sa.Float))


async def claim_action(conn: AsyncConnection, action_id: int, now: float) -> bool:
    """``pending → sending``, only if still pending: exactly one process gets to send it."""
    res = await conn.execute(_CLAIM_ACTION, {"b_id": action_id, "b_now": now})
    return bool(res.rowcount)


_MARK_DONE = actions.update().where(actions.c.id == sa.bindparam("b_id")).values(
    status="done", external_id=sa.bindparam("b_external", type_=sa.String), error=None,
    result=sa.bindparam("b_result", type_=actions.c.result.type), updated_at=sa.bindparam("b_now", type_=sa.Float))


async def mark_actions_done(conn: AsyncConnection, done: list[tuple[int, float, str | None, dict[str, Any]]]
                            ) -> list[None]:
    """Several sent actions done at once: ``(id, now, external id, result)`` each."""
    await conn.execute(_MARK_DONE, [{"b_id": action_id, "b_now": now, "b_external": external, "b_result": result}
                                    for action_id, now, external, result in done])
    return [None] * len(done)


async def update_action(conn: AsyncConnection, action_id: int, now: float, **values: Any) -> None:
    await conn.execute(actions.update().where(actions.c.id == action_id).values(updated_at=now, **values))
