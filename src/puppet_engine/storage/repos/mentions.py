"""The mentions table: which X mentions an agent saw, and what it decided about each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.sql import dialect_insert, insert_ignoring_conflicts, page_of
from puppet_engine.storage.tables import events, mentions

_INSERT_CHUNK = 500


async def record(db: Database, agent_id: str, tweet_id: str, *, author_id: str | None, author_username: str | None,
                 text: str, conversation_id: str | None, now: float) -> None:
    """Record a received mention once (a second time changes nothing)."""
    async with db.transaction() as conn:
        await conn.execute(dialect_insert(conn, mentions).values(
            agent_id=agent_id, tweet_id=tweet_id, author_id=author_id, author_username=author_username, text=text,
            conversation_id=conversation_id, received_at=now,
        ).on_conflict_do_nothing(index_elements=["agent_id", "tweet_id"]))


async def set_decision(db: Database, agent_id: str, tweet_id: str, decision: str) -> None:
    """What the agent decided about the mention (``reply``, ``skip:…``, ``deferred``)."""
    async with db.transaction() as conn:
        await conn.execute(mentions.update().where(mentions.c.agent_id == agent_id, mentions.c.tweet_id == tweet_id)
                           .values(decision=decision))


async def decisions(db: Database, agent_id: str) -> dict[str, str]:
    """tweet id → decision, for an agent."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(mentions.c.tweet_id, mentions.c.decision)
                                  .where(mentions.c.agent_id == agent_id))
        return {r[0]: r[1] for r in rows}


async def mark_handled(db: Database, agent_id: str, tweet_ids: Iterable[str], now: float, decision: str) -> int:
    """Record ``tweet_ids`` as mentions of ``agent_id`` already handled (``decision``), with a
    finished ``mention.received`` event each under the mentions behaviour's key
    (``mention:<agent>:<tweet>``), so polling the tweet again schedules nothing; both keyed,
    so a second run changes nothing. Returns how many mentions were new."""
    ids = list(tweet_ids)
    count = sa.select(sa.func.count()).select_from(mentions).where(mentions.c.agent_id == agent_id)
    async with db.transaction() as conn:
        before = (await conn.execute(count)).scalar_one()
        for start in range(0, len(ids), _INSERT_CHUNK):
            chunk = ids[start:start + _INSERT_CHUNK]
            await conn.execute(insert_ignoring_conflicts(conn, mentions), [
                {"agent_id": agent_id, "tweet_id": t, "author_id": None, "author_username": None,
                 "text": "", "conversation_id": None, "received_at": now, "decision": decision,
                 "reply_tweet_id": None} for t in chunk])
            await conn.execute(insert_ignoring_conflicts(conn, events), [
                {"key": f"mention:{agent_id}:{t}", "type": "mention.received", "agent_id": agent_id,
                 "payload": {"tweet": {"id": t}, "imported": True}, "due_at": now, "status": "done",
                 "attempts": 0, "max_attempts": 1, "result": {"decision": decision},
                 "created_at": now, "finished_at": now} for t in chunk])
        return int((await conn.execute(count)).scalar_one()) - int(before)


async def page_for(db: Database, agent_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The agent's mentions, newest first (tweet id, author's username, text, received at,
    decision, reply id: never the author's user id), one page, and how many in all."""
    q = sa.select(mentions.c.tweet_id, mentions.c.author_username, mentions.c.text, mentions.c.received_at,
                  mentions.c.decision, mentions.c.reply_tweet_id).where(mentions.c.agent_id == agent_id)
    async with db.connect() as conn:
        return await page_of(conn, q, mentions.c.received_at.desc(), limit=limit, offset=offset)
