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
  when encrypted) and ``encrypted`` (one each when all of an agent's are cleared);
  ``memory_updated``: ``{"id", "kind", "importance"}`` after an update (SQLite stores in other
  processes re-read the memory when they see it);
- ``config``: ``{"version", "source": "file"|"api"|"restored", "by"}`` (``by``: the operator's key label);
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
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.tables import (
    actions,
    agents,
    events,
    facts,
    memories,
    mentions,
    relationships,
)

current_cause: ContextVar[int | None] = ContextVar("fact_cause", default=None)
"""The event being handled in this task (the cause of what it changes)."""

_INSERT = Prepared(sa.insert(facts))


def fact(agent_id: str, kind: str, payload: dict[str, Any], at: float, cause: int | None = None) -> dict[str, Any]:
    """The row of one fact; ``cause`` defaults to the event being handled in this task."""
    return {"agent_id": agent_id, "at": at, "kind": kind, "payload": payload,
            "cause": cause if cause is not None else current_cause.get()}


def registered(agent_id: str, now: float) -> list[dict[str, Any]]:
    """The facts of a new agent: registered, first config version (from its file)."""
    return [fact(agent_id, "lifecycle", {"status": "registered", "by": None}, now), config_fact(agent_id, 1, now)]


def config_fact(agent_id: str, version: int, now: float, source: str = "file", by: str | None = None
                ) -> dict[str, Any]:
    """A config version's fact: from the agent's file, from the API (``by``: who asked), or restored."""
    return fact(agent_id, "config", {"version": version, "source": source, "by": by}, now)


def lifecycle_fact(agent_id: str, running: bool, now: float, by: str | None = None) -> dict[str, Any]:
    """The fact of an agent started or stopped (``by``: who asked, when someone did)."""
    return fact(agent_id, "lifecycle", {"status": "started" if running else "stopped", "by": by}, now)


async def insert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (from :func:`fact`) in the caller's transaction: one statement."""
    if rows:
        await _INSERT.run(conn, rows)


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


# -- what the history reads beside the facts (the events, actions, mentions and memories of a moment) --

_EVENT_TIME = sa.func.coalesce(events.c.finished_at, events.c.due_at)


async def events_between(db: Database, agent_id: str, start: float, end: float, limit: int = 200) -> list[dict[str, Any]]:
    """The agent's events handled (or due, when not handled) in ``[start, end]``, oldest first."""
    query = (sa.select(events.c.id, events.c.type, events.c.status, events.c.due_at, events.c.finished_at,
                       events.c.result, events.c.error, events.c.payload)
             .where(events.c.agent_id == agent_id, _EVENT_TIME.between(start, end))
             .order_by(_EVENT_TIME, events.c.id).limit(limit))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def actions_between(db: Database, agent_id: str, start: float, end: float, limit: int = 200
                          ) -> list[dict[str, Any]]:
    """The agent's outbox actions created in ``[start, end]``, oldest first."""
    query = (sa.select(actions.c.id, actions.c.kind, actions.c.status, actions.c.payload, actions.c.external_id,
                       actions.c.error, actions.c.event_id, actions.c.created_at, actions.c.updated_at)
             .where(actions.c.agent_id == agent_id, actions.c.created_at >= start, actions.c.created_at <= end)
             .order_by(actions.c.created_at, actions.c.id).limit(limit))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def mentions_between(db: Database, agent_id: str, start: float, end: float, limit: int = 200
                           ) -> list[dict[str, Any]]:
    """Mentions the agent received in ``[start, end]``, oldest first."""
    query = (sa.select(mentions.c.tweet_id, mentions.c.author_username, mentions.c.text, mentions.c.received_at,
                       mentions.c.decision, mentions.c.reply_tweet_id)
             .where(mentions.c.agent_id == agent_id, mentions.c.received_at >= start,
                    mentions.c.received_at <= end)
             .order_by(mentions.c.received_at).limit(limit))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def memories_until(db: Database, agent_id: str, at: float, *, full: bool = False) -> list[dict[str, Any]]:
    """The agent's stored memories created at or before ``at`` (id, kind, importance, created_at;
    with ``full`` also content, encrypted and embedding)."""
    columns = [memories.c.id, memories.c.kind, memories.c.importance, memories.c.created_at]
    if full:
        columns += [memories.c.content, memories.c.encrypted, memories.c.embedding]
    query = sa.select(*columns).where(memories.c.agent_id == agent_id, memories.c.created_at <= at)
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def projection_of(db: Database, agent_id: str) -> tuple[dict[str, Any], int, list[dict[str, Any]]] | None:
    """The current tables' view of an agent: ``agents.state``, config version, relationships."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(agents.c.state, agents.c.version)
                                  .where(agents.c.id == agent_id))).first()
        if row is None:
            return None
        rels = (await conn.execute(sa.select(relationships).where(relationships.c.agent_id == agent_id)
                                   .order_by(relationships.c.other))).mappings().all()
    return dict(row.state or {}), int(row.version), [dict(r) for r in rels]


async def write_projection(db: Database, agent_id: str, state: dict[str, Any],
                           rels: list[dict[str, Any]], now: float) -> None:
    """Replace the agent's ``agents.state`` and relationships (a projection rebuilt from facts)."""
    async with db.transaction() as conn:
        await conn.execute(agents.update().where(agents.c.id == agent_id).values(state=state, updated_at=now))
        await conn.execute(sa.delete(relationships).where(relationships.c.agent_id == agent_id))
        if rels:
            await conn.execute(sa.insert(relationships), [
                {"agent_id": agent_id, "updated_at": now, **rel} for rel in rels])
