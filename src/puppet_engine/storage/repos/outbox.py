"""The actions table (the outbox): record a side effect once by key, claim it, mark it sent,
and the questions the behaviours ask of what agents posted.

Rows are returned as read; ``events.records`` makes outbox rows ``Action``s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.sql import bound_ids, bound_in, cached, dialect_insert, fixed_in, page_of
from puppet_engine.storage.tables import actions

POST_KINDS = ("post", "reply", "quote", "thread")


async def insert_action(conn: AsyncConnection, key: str, agent_id: str, kind: str, payload: dict[str, Any],
                        event_id: int | None, now: float, *, sending: bool = False, held: bool = False) -> int | None:
    """Record a side effect; its id, or ``None`` when ``key`` was already recorded.

    ``sending``: recorded as already claimed (``sending``, one attempt); ``held``: recorded
    ``awaiting_review`` (sent only once a person approves it).
    """
    stmt = cached(("action", conn.dialect.name), lambda: Prepared(dialect_insert(conn, actions).values(
        key=sa.bindparam("b_key"), agent_id=sa.bindparam("b_agent"), kind=sa.bindparam("b_kind"),
        payload=sa.bindparam("b_payload", type_=actions.c.payload.type), status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts", type_=sa.Integer), not_before=0.0,
        event_id=sa.bindparam("b_event", type_=sa.Integer),
        created_at=sa.bindparam("b_now", type_=sa.Float), updated_at=sa.bindparam("b_now", type_=sa.Float),
    ).on_conflict_do_nothing(index_elements=["key"]).returning(actions.c.id)))
    found = await stmt.rows(conn, {"b_key": key, "b_agent": agent_id, "b_kind": kind, "b_payload": payload,
                                   "b_event": event_id, "b_now": now,
                                   "b_status": "awaiting_review" if held else "sending" if sending else "pending",
                                   "b_attempts": int(sending and not held)})
    return int(found[0][0]) if found else None


def action_row(key: str, agent_id: str, kind: str, payload: dict[str, Any], event_id: int | None, now: float, *,
               sending: bool = False, held: bool = False) -> dict[str, Any]:
    """The row :func:`insert_action` writes (for :func:`insert_keyed_actions`)."""
    return {"key": key, "agent_id": agent_id, "kind": kind, "payload": payload,
            "status": "awaiting_review" if held else "sending" if sending else "pending",
            "attempts": int(sending and not held), "not_before": 0.0, "event_id": event_id, "created_at": now,
            "updated_at": now}


async def insert_keyed_actions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Record action rows (:func:`action_row`) of distinct keys in one statement; key → id of each
    row recorded (a key recorded already is left out)."""
    stmt = cached(("actions.keyed", conn.dialect.name), lambda: Prepared(dialect_insert(conn, actions)
                  .on_conflict_do_nothing(index_elements=["key"]).returning(actions.c.id, actions.c.key)))
    return {str(key): int(action_id) for action_id, key in await stmt.rows(conn, rows)}


async def load_actions(conn: AsyncConnection, *, ids: list[int] | None = None, status: str | None = None,
                       due_before: float | None = None, limit: int = 100,
                       agent_ids: Iterable[str] | None = None) -> list[Any]:
    """Outbox rows by id, status, back-off end and agent, oldest first."""
    dialect = conn.dialect.name
    params: dict[str, Any] = {"limit": limit}
    if ids is not None:
        params["ids"] = bound_ids(dialect, ids)
    if status is not None:
        params["status"] = status
    if due_before is not None:
        params["due_before"] = due_before
    if agent_ids is not None:
        params["owned"] = bound_ids(dialect, agent_ids)
    # One statement per combination of filters (the outbox asks a few, on every pass).
    return await cached(("load_actions", dialect, *sorted(params)), lambda: Prepared(
        sa.select(actions).where(*_action_filters(dialect, params)).order_by(actions.c.id)
        .limit(sa.bindparam("limit")))).rows(conn, params)


def _action_filters(dialect: str, params: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
    found = []
    if "ids" in params:
        found.append(bound_in(dialect, actions.c.id, "ids"))
    if "status" in params:
        found.append(actions.c.status == sa.bindparam("status"))
    if "due_before" in params:
        found.append(actions.c.not_before <= sa.bindparam("due_before"))
    if "owned" in params:
        found.append(bound_in(dialect, actions.c.agent_id, "owned"))
    return found


async def pending_actions(conn: AsyncConnection, limit: int, agent_ids: Iterable[str] | None = None) -> list[Any]:
    """Up to ``limit`` pending outbox rows, the soonest back-off end first."""
    dialect = conn.dialect.name
    params: dict[str, Any] = {"limit": limit, "status": "pending"}
    if agent_ids is not None:
        params["owned"] = bound_ids(dialect, agent_ids)
    return await cached(("pending_actions", dialect, "owned" in params), lambda: Prepared(
        sa.select(actions).where(*_action_filters(dialect, params))
        .order_by(actions.c.not_before, actions.c.id).limit(sa.bindparam("limit")))).rows(conn, params)


_CLAIM_ACTION = Prepared(actions.update().where(actions.c.id == sa.bindparam("b_id"), actions.c.status == "pending").values(
    status="sending", attempts=actions.c.attempts + 1, updated_at=sa.bindparam("b_now", type_=sa.Float)))


async def claim_action(conn: AsyncConnection, action_id: int, now: float) -> bool:
    """``pending → sending``, only if still pending: exactly one process gets to send it."""
    return bool(await _CLAIM_ACTION.run(conn, {"b_id": action_id, "b_now": now}))


_MARK_DONE = Prepared(actions.update().where(actions.c.id == sa.bindparam("b_id")).values(
    status="done", external_id=sa.bindparam("b_external", type_=sa.String), error=None,
    result=sa.bindparam("b_result", type_=actions.c.result.type), updated_at=sa.bindparam("b_now", type_=sa.Float)))


async def mark_actions_done(conn: AsyncConnection, done: list[tuple[int, float, str | None, dict[str, Any]]]
                            ) -> list[None]:
    """Several sent actions done at once: ``(id, now, external id, result)`` each."""
    await _MARK_DONE.run(conn, [{"b_id": action_id, "b_now": now, "b_external": external, "b_result": result}
                                    for action_id, now, external, result in done])
    return [None] * len(done)


async def update_action(conn: AsyncConnection, action_id: int, now: float, **values: Any) -> None:
    """Set columns of one action (status, not_before, error, …)."""
    await conn.execute(actions.update().where(actions.c.id == action_id).values(updated_at=now, **values))


# Built once (these run in every post and interaction round).
_RECENT_POSTS = (
    sa.select(actions.c.kind, actions.c.payload)
    .where(actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, POST_KINDS),
           actions.c.status != "failed")
    .order_by(actions.c.id.desc())
    .limit(sa.bindparam("limit"))
)
# Posts, threads and quotes since a time (the (agent_id, kind, created_at) index): X's duplicate window.
_OWN_POSTS_SINCE = (
    sa.select(actions.c.kind, actions.c.payload)
    .where(actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, ("post", "thread", "quote")),
           actions.c.created_at >= sa.bindparam("since"), actions.c.status != "failed")
    .order_by(actions.c.id.desc())
    .limit(sa.bindparam("limit"))
)


def _post_history() -> sa.Select[Any]:
    """The agent's latest posts (``nth`` + 1 of them) and every post since ``since``, newest first:
    what :data:`_RECENT_POSTS` and :data:`_OWN_POSTS_SINCE` read, in one statement."""

    def posts() -> list[sa.ColumnElement[bool]]:
        return [actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, POST_KINDS),
                actions.c.status != "failed"]

    nth_newest = (sa.select(actions.c.id).where(*posts()).order_by(actions.c.id.desc())
                  .limit(1).offset(sa.bindparam("nth")).scalar_subquery())
    return (sa.select(actions.c.kind, actions.c.payload, actions.c.created_at)
            .where(*posts(), sa.or_(actions.c.created_at >= sa.bindparam("since"),
                                    actions.c.id >= sa.func.coalesce(nth_newest, 0)))
            .order_by(actions.c.id.desc()))


_POST_HISTORY = Prepared(_post_history())

# No condition on status in SQL: without statistics SQLite would pick the status index
# (nearly every row is "done") and read the whole table instead of these agents' rows.
def _peer_posts(peers: int) -> Prepared:
    # A parameter per agent (what an expanding IN sends), so the statement is prepared once per count.
    return cached(("peer_posts", peers), lambda: Prepared(
        sa.select(actions.c.agent_id, actions.c.kind, actions.c.status, actions.c.external_id, actions.c.payload,
                  actions.c.updated_at)
        .where(actions.c.agent_id.in_([sa.bindparam(f"a{i}") for i in range(peers)]),
               fixed_in(actions.c.kind, ("post", "thread", "quote")), actions.c.created_at > sa.bindparam("since"))
        .order_by(actions.c.created_at.desc())
        .limit(sa.bindparam("limit"))))


async def recent_posts(db: Database, agent_id: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, payload)`` of the agent's latest posts, replies, quotes and threads (not failed),
    newest first."""
    async with db.connect() as conn:
        rows = (await conn.execute(_RECENT_POSTS, {"agent_id": agent_id, "limit": limit})).fetchall()
    return [(kind, payload) for kind, payload in rows]


async def own_posts_since(db: Database, agent_id: str, since: float, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, payload)`` of the agent's posts, threads and quotes (not failed) recorded since
    ``since``, newest first."""
    async with db.connect() as conn:
        rows = (await conn.execute(_OWN_POSTS_SINCE, {"agent_id": agent_id, "since": since, "limit": limit})).fetchall()
    return [(kind, payload) for kind, payload in rows]


async def post_history(db: Database, agent_id: str, recent: int, since: float
                       ) -> list[tuple[str, dict[str, Any], float]]:
    """``(kind, payload, created_at)`` of the agent's posts, replies, quotes and threads (not
    failed), newest first: the latest ``recent`` and all those recorded since ``since`` (what
    :func:`recent_posts` and :func:`own_posts_since` give, in one read)."""
    async with db.connect() as conn:
        params = {"agent_id": agent_id, "nth": max(0, recent - 1), "since": since}
        rows = await _POST_HISTORY.rows(conn, params)
    return [(kind, payload, created_at) for kind, payload, created_at in rows]


async def posts_since(db: Database, agent_ids: list[str], since: float, limit: int) -> list[Any]:
    """Rows ``(agent_id, kind, status, external_id, payload, updated_at)`` of these agents'
    posts, threads and quotes recorded after ``since``, newest first, ``limit`` in all."""
    if not agent_ids:
        return []
    params = {"since": since, "limit": limit, **{f"a{i}": agent_id for i, agent_id in enumerate(agent_ids)}}
    async with db.connect() as conn:
        return await _peer_posts(len(agent_ids)).rows(conn, params)


async def reply_payloads_since(db: Database, agent_id: str, since: float) -> list[dict[str, Any]]:
    """Payloads of the agent's replies and threads (not failed) recorded since ``since``, newest first."""
    q = (sa.select(actions.c.payload)
         .where(actions.c.agent_id == agent_id, actions.c.kind.in_(("reply", "thread")),
                actions.c.status != "failed", actions.c.created_at >= since)
         .order_by(actions.c.id.desc()))
    async with db.connect() as conn:
        return [payload for (payload,) in (await conn.execute(q)).fetchall()]


async def page_for(db: Database, agent_id: str, *, kind: str | None, limit: int,
                   offset: int) -> tuple[list[dict[str, Any]], int]:
    """The agent's actions (of ``kind``), newest first, one page, and how many in all."""
    q = sa.select(actions).where(actions.c.agent_id == agent_id)
    if kind:
        q = q.where(actions.c.kind == kind)
    async with db.connect() as conn:
        return await page_of(conn, q, actions.c.id.desc(), limit=limit, offset=offset)


async def counts_by_status(db: Database) -> dict[str, int]:
    """status → how many actions have it."""
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(actions.c.status, sa.func.count()).group_by(actions.c.status))).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


async def done_counts(db: Database) -> list[tuple[str, str, int]]:
    """``(agent id, kind, how many)`` of the actions done."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(actions.c.agent_id, actions.c.kind, sa.func.count())
                                  .where(actions.c.status == "done").group_by(actions.c.agent_id, actions.c.kind))
        return [(a, k, int(n)) for a, k, n in rows]
