"""The facts table: every change of an agent's state, with its time, kind and cause.

A fact is written in the transaction of the change it records (the event engine's outcome
commit, a relationship upsert, a memory insert, a config version …), so the facts never
disagree with the current tables, which are their projection.

Kinds and payloads (the contract the history reads, see ``puppet_engine.history``):

- ``state``: keys of ``agents.state`` that changed → new values (mood, schedule, cursors);
- ``skip``: ``{"event": type, "reason": text}`` — a handler that decided not to act;
- ``relationship``: the relationship row after the change (``other``, ``sentiment``,
  ``familiarity``, ``trust``, ``interactions``, ``notes`` when they changed), or
  ``{"other", "deleted": true}``;
- ``memory_added``: ``{"id", "kind", "importance", "created_at"}`` (the content stays in
  ``memories``); ``memory_forgotten``: the same and its stored ``content`` (ciphertext
  when encrypted) and ``encrypted``, or ``{"cleared": n}``;
- ``config``: ``{"version", "source": "file"|"api", "by"}``;
- ``lifecycle``: ``{"status": "registered"|"started"|"stopped", "by"}``;
- ``trade``: the trade's key, status, mints, amounts, rule and error at each status change;
  ``balances``: ``{"sol", "tokens": {mint: amount}}`` read after a confirmed trade;
- ``baseline``: the state, relationships and config version an agent had when facts began.

``cause`` is the id of the event whose handling made the change: the engine sets
:data:`current_cause` while it handles one, so writers below it need not pass it along.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.sql import cached
from puppet_engine.storage.tables import facts

current_cause: ContextVar[int | None] = ContextVar("fact_cause", default=None)
"""The event being handled in this task (the cause of what it changes)."""

current_actor: ContextVar[str | None] = ContextVar("fact_actor", default=None)
"""Who asked for the change under way (an operator's key label), when someone did."""

def fact(agent_id: str, kind: str, payload: dict[str, Any], at: float, cause: int | None = None) -> dict[str, Any]:
    """The row of one fact; ``cause`` defaults to the event being handled in this task."""
    return {"agent_id": agent_id, "at": at, "kind": kind, "payload": payload,
            "cause": cause if cause is not None else current_cause.get()}


async def insert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (from :func:`fact`) in the caller's transaction: one statement."""
    if rows:
        await conn.execute(cached(("facts.insert",), lambda: sa.insert(facts)), list(rows))


async def record(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` in a transaction of their own (changes that are not transactional)."""
    if rows:
        async with db.transaction() as conn:
            await insert(conn, rows)


async def of_agent(db: Database, agent_id: str, *, until: float | None = None, since: float | None = None,
                   kinds: Iterable[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The agent's facts in the order they happened (``since`` < at ≤ ``until``), oldest first."""
    async with db.connect() as conn:
        return await read(conn, agent_id, until=until, since=since, kinds=kinds, limit=limit)


async def read(conn: AsyncConnection, agent_id: str, *, until: float | None = None, since: float | None = None,
               kinds: Iterable[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """:func:`of_agent` in the caller's transaction."""
    query = sa.select(facts).where(facts.c.agent_id == agent_id)
    if until is not None:
        query = query.where(facts.c.at <= until)
    if since is not None:
        query = query.where(facts.c.at > since)
    if kinds is not None:
        query = query.where(facts.c.kind.in_(list(kinds)))
    query = query.order_by(facts.c.at, facts.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def agent_ids(db: Database, *, before: float | None = None) -> list[str]:
    """Every agent with at least one fact (older than ``before``, when given)."""
    query = sa.select(facts.c.agent_id).distinct()
    if before is not None:
        query = query.where(facts.c.at < before)
    async with db.connect() as conn:
        return [r[0] for r in await conn.execute(query)]


async def delete_before(conn: AsyncConnection, agent_id: str, before: float) -> int:
    """Delete the agent's facts older than ``before`` (in the caller's transaction); how many."""
    result = await conn.execute(sa.delete(facts).where(facts.c.agent_id == agent_id, facts.c.at < before))
    return int(result.rowcount or 0)


async def size_of(db: Database, agent_id: str | None = None) -> tuple[int, int]:
    """How many facts there are (of ``agent_id``) and the bytes of their payloads as stored."""
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(
        sa.func.length(sa.cast(facts.c.payload, sa.Text))), 0))
    if agent_id is not None:
        query = query.where(facts.c.agent_id == agent_id)
    async with db.connect() as conn:
        count, size = (await conn.execute(query)).one()
    return int(count), int(size)
