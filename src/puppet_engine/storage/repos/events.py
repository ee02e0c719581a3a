"""The events table: insert once by key, claim due events, finish them, read the queue's shape.

Inserts keyed by a deterministic ``key`` use ``ON CONFLICT DO NOTHING`` so the same
logical event is recorded once, whatever restarts or overlaps happen. Claims are one
``UPDATE … RETURNING`` (SQLite ≥ 3.35 and PostgreSQL); on PostgreSQL the candidates are
locked ``FOR UPDATE SKIP LOCKED`` so several processes share one queue. A claim is limited
to the agents this process owns through a temporary table on its connection, written when
that set changes (:func:`sync_owned`), so a process owning 10,000 agents neither binds nor
unpacks 10,000 ids per claim. Rows are returned as read; ``events.records`` makes them
``Event``s.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.sql import (
    bound_ids,
    bound_in,
    cached,
    count_rows,
    dialect_insert,
)
from puppet_engine.storage.tables import events

RETURNING_SQLITE = sqlite3.sqlite_version_info >= (3, 35)
EVENT_COLUMNS = ("key", "type", "agent_id", "payload", "due_at", "status", "attempts", "max_attempts", "created_at",
                 "trace_id")


async def insert_event(conn: AsyncConnection, row: dict[str, Any]) -> int | None:
    """Insert one event row (:data:`EVENT_COLUMNS`); its id, or ``None`` when its key exists."""
    stmt = cached(("event", conn.dialect.name), lambda: dialect_insert(conn, events).values(
        {name: sa.bindparam(f"b_{name}", type_=events.c[name].type) for name in EVENT_COLUMNS},
    ).on_conflict_do_nothing(index_elements=["key"]).returning(events.c.id))
    found = (await conn.execute(stmt, {f"b_{k}": v for k, v in row.items()})).first()
    return int(found[0]) if found else None


async def insert_keyed_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert event rows of distinct keys in a few statements; key → id of each row inserted
    (a key that exists already is left out)."""
    stmt = cached(("keyed", conn.dialect.name), lambda: dialect_insert(conn, events).on_conflict_do_nothing(
        index_elements=["key"]).returning(events.c.id, events.c.key))
    return {str(key): int(event_id) for event_id, key in (await conn.execute(stmt, rows)).all()}


async def insert_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert several event rows; those whose key exists are left out."""
    stmt = cached(("follow", conn.dialect.name),
                  lambda: Prepared(dialect_insert(conn, events).on_conflict_do_nothing(index_elements=["key"])))
    await stmt.run(conn, rows)


_FINISH_DONE = Prepared(events.update().where(events.c.id == sa.bindparam("b_id")).values(
    status="done", result=sa.bindparam("b_result", type_=events.c.result.type), error=None,
    finished_at=sa.bindparam("b_now", type_=sa.Float)))


async def mark_done(conn: AsyncConnection, done: list[tuple[int | None, dict[str, Any], float]]) -> None:
    """Several events done at once: ``(id, result, now)`` each."""
    await _FINISH_DONE.run(conn, [{"b_id": event_id, "b_result": result, "b_now": now}
                                      for event_id, result, now in done])


async def finish_event(conn: AsyncConnection, event_id: int, status: str, now: float, *,
                       result: dict[str, Any] | None = None, error: str | None = None,
                       retry_at: float | None = None) -> None:
    """Close an event with ``status`` or, with ``retry_at``, put it back to pending until then."""
    values: dict[str, Any] = {"result": result, "error": error}
    if retry_at is not None:
        values.update(status="pending", due_at=retry_at, owner=None)
    else:
        values.update(status=status, finished_at=now)
    await conn.execute(events.update().where(events.c.id == event_id).values(**values))


async def claim(conn: AsyncConnection, now: float, limit: int, owner: str, busy: Collection[str],
                agent_ids: Iterable[str] | None) -> tuple[list[Any], float | None, bool]:
    """Mark up to ``limit`` due events running (one per agent, none for ``busy``), and look at
    the rest of the queue in the same transaction: the claimed rows, the earliest pending event
    due after ``now`` (owned agents), and whether a busy or just-claimed agent has another
    event due (look again when one finishes). So an idle engine does not poll the database.
    """
    pg = conn.dialect.name == "postgresql"
    mode = owned_mode(agent_ids)
    stamp = await sync_owned(conn, agent_ids) if agent_ids is not None else ""
    rows = await _claim_rows(conn, now, limit, owner, busy, mode, stamp) if limit > 0 else []
    waiting = sorted(set(busy) | {r.agent_id for r in rows if r.agent_id is not None})
    stmt = cached(("hint", pg, mode, bool(waiting)), lambda: Prepared(_hint_statement(pg, mode, bool(waiting))))
    [hint] = await stmt.rows(conn, {"b_now": now, "b_waiting": _id_list(pg, waiting), "b_stamp": stamp})
    if mode == "table" and not hint[2]:  # not our table: nothing was claimed; write it and look again
        forget_owned(conn)
        return rows, now, bool(hint[1])
    return rows, (float(hint[0]) if hint[0] is not None else None), bool(hint[1])


async def _claim_rows(conn: AsyncConnection, now: float, limit: int, owner: str, busy: Collection[str],
                      mode: str, stamp: str) -> list[Any]:
    pg = conn.dialect.name == "postgresql"
    params: dict[str, Any] = dict(b_now=now, b_window=limit * 4 + len(busy) + 8, b_limit=limit, b_owner=owner,
                                  b_busy=_id_list(pg, sorted(busy)), b_stamp=stamp)
    if not pg and not RETURNING_SQLITE:
        cand = cached(("cand", pg, mode, bool(busy)), lambda: _candidates(pg, mode, bool(busy)))
        return await _claim_select_update(conn, now, limit, owner, cand, params)
    stmt = cached(("claim", pg, mode, bool(busy)), lambda: Prepared(_claim_statement(pg, mode, bool(busy))))
    return await stmt.rows(conn, params)


async def next_due_at(db: Database, agent_ids: Iterable[str] | None = None) -> float | None:
    """The earliest due time of a pending event (of these agents, and agent-less ones)."""
    async with db.connect() as conn:
        dialect = conn.dialect.name
        if agent_ids is None:
            rows = await cached(("next_due",), lambda: Prepared(_next_due(sa.true()))).rows(conn)
        else:
            stmt = cached(("next_due.owned", dialect), lambda: Prepared(_next_due(sa.or_(
                bound_in(dialect, events.c.agent_id, "owned"), events.c.agent_id.is_(None)))))
            rows = await stmt.rows(conn, {"owned": bound_ids(dialect, agent_ids)})
    value = rows[0][0]
    return float(value) if value is not None else None


def _next_due(owned: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return sa.select(sa.func.min(events.c.due_at)).where(events.c.status == "pending", owned)


async def requeue_running(db: Database, agent_ids: Iterable[str] | None = None) -> int:
    """Events left running by a dead process go back to pending (handlers are idempotent).

    With ``agent_ids`` (multi-process), only the events of agents this process now owns.
    """
    async with db.transaction() as conn:
        cond = events.c.status == "running"
        params = {}
        if agent_ids is not None:
            cond = sa.and_(cond, bound_in(conn.dialect.name, events.c.agent_id, "owned"))
            params["owned"] = bound_ids(conn.dialect.name, agent_ids)
        res = await conn.execute(events.update().where(cond).values(status="pending", owner=None), params)
    return int(res.rowcount or 0)


async def pending_types(db: Database, agent_ids: Iterable[str], chunk: int = 500) -> dict[str, set[str]]:
    """agent id → the event types it has pending or running (what its schedules already are)."""
    ids = list(agent_ids)
    found: dict[str, set[str]] = {agent_id: set() for agent_id in ids}
    async with db.connect() as conn:
        for start in range(0, len(ids), chunk):
            # agent_id first: the (agent_id, status) index, never a walk of every event of a type
            q = sa.select(events.c.agent_id, events.c.type).distinct().where(
                events.c.agent_id.in_(ids[start:start + chunk]), events.c.status.in_(("pending", "running")))
            for agent_id, event_type in await conn.execute(q):
                found[agent_id].add(event_type)
    return found


# The owned agents live in a temporary table on each connection that claims (SQLite: the
# persistent writer connection; PostgreSQL: each pooled connection once), written only when
# the set changes: a lease moved, an agent started or stopped. A claim then probes a table
# with a primary key instead of unpacking 10,000 ids, and finds the table current by the
# identity of the (immutable) set it was written from. A stamp written with the table and
# tested by the claim itself makes a table this process did not write (a pooler handing
# another client's server connection) claim nothing, never someone else's agents.
_TEMP = sa.MetaData()
OWNED_TABLE = sa.Table("puppet_owned_agents", _TEMP, sa.Column("agent_id", sa.String, primary_key=True),
                       prefixes=["TEMPORARY"])
STAMP_TABLE = sa.Table("puppet_owned_stamp", _TEMP, sa.Column("stamp", sa.String), prefixes=["TEMPORARY"])
_OWNED_KEY = "puppet_engine.owned_agents"  # in the DBAPI connection's info: (the set the table holds, stamp)
_INSERT_OWNED = OWNED_TABLE.insert().values(agent_id=sa.bindparam("b_id"))
_DELETE_OWNED = OWNED_TABLE.delete().where(OWNED_TABLE.c.agent_id == sa.bindparam("b_id"))


async def sync_owned(conn: AsyncConnection, agent_ids: Iterable[str]) -> str:
    """Make the connection's temporary table of owned agents hold ``agent_ids``, in the
    caller's transaction; returns the stamp a claim must find beside it. Nothing is written
    when the table already holds them (the same frozenset object as last time, or an equal
    set); otherwise only the difference, after checking that the table is the one this
    process wrote (else it is written whole).

    The table lives as long as the DBAPI connection; a rolled back transaction forgets
    what it holds (a listener clears the memo, so the next claim writes it again).
    """
    info = conn.info
    memo = info.get(_OWNED_KEY)
    if memo is not None and memo[0] is agent_ids:
        return str(memo[1])
    wanted = agent_ids if isinstance(agent_ids, frozenset) else frozenset(agent_ids)
    if memo is not None and memo[0] == wanted:
        info[_OWNED_KEY] = (wanted, memo[1])
        return str(memo[1])
    held: frozenset[str] | None = None
    if memo is not None:
        found = (await conn.execute(sa.select(STAMP_TABLE.c.stamp))).scalars().all()
        held = memo[0] if list(found) == [memo[1]] else None
    if held is None:  # a new connection, a rolled back write, or a table someone else wrote
        _forget_on_rollback(conn)
        for ddl in ("CREATE TEMPORARY TABLE IF NOT EXISTS puppet_owned_agents (agent_id VARCHAR PRIMARY KEY)",
                    "CREATE TEMPORARY TABLE IF NOT EXISTS puppet_owned_stamp (stamp VARCHAR)"):
            await conn.execute(sa.text(ddl))
        await conn.execute(OWNED_TABLE.delete())
        held = frozenset()
    added, removed = wanted - held, held - wanted
    if removed:
        await conn.execute(_DELETE_OWNED, [{"b_id": agent_id} for agent_id in removed])
    if added:
        await conn.execute(_INSERT_OWNED, [{"b_id": agent_id} for agent_id in added])
    if conn.dialect.name == "postgresql" and len(added) + len(removed) > 100:
        await conn.execute(sa.text("ANALYZE puppet_owned_agents"))  # temporary tables get no autovacuum
    stamp = uuid.uuid4().hex
    await conn.execute(STAMP_TABLE.delete())
    await conn.execute(STAMP_TABLE.insert().values(stamp=stamp))
    info[_OWNED_KEY] = (wanted, stamp)
    return stamp


def forget_owned(conn: AsyncConnection) -> None:
    """The next claim on this connection writes the table again (its stamp was not found)."""
    conn.info.pop(_OWNED_KEY, None)


def _forget_on_rollback(conn: AsyncConnection) -> None:
    engine = conn.sync_connection.engine if conn.sync_connection is not None else None
    if engine is not None and not event.contains(engine, "rollback", _forget_owned):
        event.listen(engine, "rollback", _forget_owned)


def _forget_owned(sync_conn: Any) -> None:
    sync_conn.info.pop(_OWNED_KEY, None)


def owned_mode(agent_ids: Iterable[str] | None) -> str:
    """How the claim limits itself to owned agents: ``all`` (no limit) or ``table``."""
    return "all" if agent_ids is None else "table"


def _owned_clause(pg: bool, mode: str) -> sa.ColumnElement[bool]:
    if mode == "all":
        return sa.true()
    # A correlated EXISTS: the walk stays on (status, due_at) in due order and probes the
    # table's key per row; an IN would let SQLite walk every owned agent's events instead.
    # The stamp test is uncorrelated: evaluated once per statement.
    # On PostgreSQL the OFFSET keeps the EXISTS a probe per row: without it the planner turns
    # it into a hash of every owned id, built again by each claim (1.3 ms at 10,000 agents).
    probe = sa.select(sa.literal(1)).where(OWNED_TABLE.c.agent_id == events.c.agent_id)
    match = (probe.offset(0) if pg else probe).exists()
    return sa.and_(_stamp_found(), sa.or_(match, events.c.agent_id.is_(None)))


def _stamp_found() -> sa.ColumnElement[bool]:
    return sa.exists().where(STAMP_TABLE.c.stamp == sa.bindparam("b_stamp", type_=sa.String))


def _in_list(pg: bool, name: str) -> sa.ColumnElement[bool]:
    """``agent_id`` in the list bound as ``name`` (:func:`_id_list`): one parameter, so the
    statement's text stays the same whatever the list's length, and SQLite and SQLAlchemy
    reuse it as prepared (an expanding ``IN`` is a new statement for each length)."""
    if pg:
        return events.c.agent_id == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String)))
    listed = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
    return events.c.agent_id.in_(sa.select(listed.c.value))


def _id_list(pg: bool, ids: list[str]) -> Any:
    """A list of ids as :func:`_in_list` binds it: an array on PostgreSQL, JSON on SQLite."""
    return ids if pg else json.dumps(ids)


def _hint_statement(pg: bool, mode: str, waiting: bool) -> Any:
    # Two index walks, not a scan of the queue: the first pending event after now
    # (status, due_at), and whether a busy agent has one due.
    now = sa.bindparam("b_now", type_=sa.Float)
    future = sa.select(sa.func.min(events.c.due_at)).where(
        events.c.status == "pending", events.c.due_at > now, _owned_clause(pg, mode)).scalar_subquery()
    blocked: sa.ColumnElement[Any] = sa.literal(False)
    if waiting:
        blocked = sa.exists().where(_in_list(pg, "b_waiting"),
                                    events.c.status == "pending", events.c.due_at <= now)
    ours: sa.ColumnElement[Any] = _stamp_found() if mode == "table" else sa.literal(True)
    return sa.select(future, blocked, ours)


def _candidates(pg: bool, mode: str, busy: bool) -> sa.Select[Any]:
    cand = sa.select(events.c.id, events.c.agent_id, events.c.due_at).where(
        events.c.status == "pending", events.c.due_at <= sa.bindparam("b_now", type_=sa.Float),
        _owned_clause(pg, mode))
    if busy:
        cand = cand.where(sa.or_(sa.not_(_in_list(pg, "b_busy")),
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


async def _claim_select_update(conn: AsyncConnection, now: float, limit: int, owner: str,
                               cand: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
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
    return list((await conn.execute(sa.select(events).where(
        events.c.id.in_(chosen), events.c.owner == owner, events.c.status == "running"))).fetchall())


async def live_keys(db: Database, keys: list[str]) -> set[str]:
    """Which of these event keys belong to pending or running events."""
    async with db.connect() as conn:
        return {k for (k,) in await conn.execute(
            sa.select(events.c.key).where(events.c.key.in_(keys), events.c.status.in_(("pending", "running"))))}


async def upcoming_for(db: Database, agent_id: str, limit: int = 20) -> list[Any]:
    """The agent's pending and running events, soonest first (rows)."""
    async with db.connect() as conn:
        return list((await conn.execute(
            sa.select(events).where(events.c.agent_id == agent_id, events.c.status.in_(("pending", "running")))
            .order_by(events.c.due_at).limit(limit))).fetchall())


async def page_of_history(db: Database, *, limit: int, offset: int, type: str | None = None,
                          agent_id: str | None = None, status: str | None = None, since: float | None = None,
                          until: float | None = None) -> tuple[list[Any], int]:
    """Events, newest first, one page (rows), and how many match. ``type`` ending in ``*``
    matches a prefix; ``since``/``until`` bound the creation time (until excluded)."""
    q = sa.select(events)
    if type:
        if type.endswith("*"):
            prefix = type[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(events.c.type.like(prefix + "%", escape="\\"))
        else:
            q = q.where(events.c.type == type)
    if agent_id:
        q = q.where(events.c.agent_id == agent_id)
    if status:
        q = q.where(events.c.status == status)
    if since is not None:
        q = q.where(events.c.created_at >= since)
    if until is not None:
        q = q.where(events.c.created_at < until)
    async with db.connect() as conn:
        total = await count_rows(conn, q)
        rows = await conn.execute(q.order_by(events.c.id.desc()).limit(limit).offset(offset))
        return list(rows.fetchall()), total


async def overdue_count(db: Database, agent_ids: list[str], due_before: float) -> int:
    """How many pending events of these agents were due before ``due_before``."""
    q = sa.select(sa.func.count()).select_from(events).where(
        events.c.status == "pending", events.c.due_at < due_before, events.c.agent_id.in_(agent_ids))
    async with db.connect() as conn:
        return int((await conn.execute(q)).scalar() or 0)


async def counts_by_status(db: Database) -> dict[str, int]:
    """status → how many events have it."""
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(events.c.status, sa.func.count()).group_by(events.c.status))).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


async def finished_counts(db: Database) -> list[tuple[str | None, str, int]]:
    """``(agent id, status, how many)`` of the events done or failed."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(events.c.agent_id, events.c.status, sa.func.count())
                                  .where(events.c.status.in_(("done", "failed")))
                                  .group_by(events.c.agent_id, events.c.status))
        return [(a, s, int(n)) for a, s, n in rows]


async def bring_forward(db: Database, event_type: str, due_by: float) -> int:
    """Pending events of ``event_type`` due later than ``due_by`` become due then (the mention
    polls, when the X stream that made them idle goes down). Returns how many moved."""
    async with db.transaction() as conn:
        moved = await conn.execute(events.update().where(events.c.type == event_type, events.c.status == "pending",
                                                         events.c.due_at > due_by).values(due_at=due_by))
        return int(moved.rowcount or 0)
