"""The post_metrics table: engagement samples of the agents' own posts over time.

Which posts an agent has comes from the outbox (its ``post``, ``thread`` and ``quote``
actions that are done, with the post id X gave them); each sample is one row per
(post, slot of the sampling schedule), so a slot is taken at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.sql import cached, fixed_in, insert_ignoring_conflicts
from puppet_engine.storage.tables import actions, post_metrics

POST_KINDS = ("post", "thread", "quote")


@dataclass(frozen=True)
class TrackedPost:
    """One of the agent's posts and the sampling slots already taken for it."""

    post_id: str
    posted_at: float
    text: str
    taken: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Sample:
    """A post's counts at one slot of its sampling schedule."""

    agent_id: str
    post_id: str
    posted_at: float
    posted_hour: int
    slot: int
    sampled_at: float
    likes: int = 0
    replies: int = 0
    reposts: int = 0
    quotes: int = 0
    bookmarks: int = 0
    impressions: int | None = None
    gone: bool = False

    @property
    def interactions(self) -> int:
        return self.likes + self.replies + self.reposts + self.quotes + self.bookmarks


_COLUMNS = ("agent_id", "post_id", "posted_at", "posted_hour", "slot", "sampled_at", "likes", "replies",
            "reposts", "quotes", "bookmarks", "impressions", "gone")


def _sample(row: Any) -> Sample:
    m = row._mapping
    return Sample(**{name: m[name] for name in _COLUMNS})


def _posts_since() -> Prepared:
    # No condition on status in SQL (as in the outbox repo): the (agent_id, kind, created_at) index.
    return cached(("engagement_posts",), lambda: Prepared(
        sa.select(actions.c.external_id, actions.c.updated_at, actions.c.kind, actions.c.payload, actions.c.status)
        .where(actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, POST_KINDS),
               actions.c.created_at >= sa.bindparam("since"))
        .order_by(actions.c.id)))


def _slots_taken(posts: int) -> Prepared:
    # A parameter per post (what an expanding IN sends), so the statement is prepared once per count.
    return cached(("engagement_slots", posts), lambda: Prepared(
        sa.select(post_metrics.c.post_id, post_metrics.c.slot)
        .where(post_metrics.c.agent_id == sa.bindparam("agent_id"),
               post_metrics.c.post_id.in_([sa.bindparam(f"p{i}") for i in range(posts)]))))


async def tracked_posts(db: Database, agent_id: str, since: float) -> list[TrackedPost]:
    """The agent's posts sent since ``since`` (oldest first), with the slots already sampled."""
    async with db.connect() as conn:
        rows = await _posts_since().rows(conn, {"agent_id": agent_id, "since": since})
        posts = [(str(ext), float(done_at), kind, payload) for ext, done_at, kind, payload, status in rows
                 if status == "done" and ext]
        taken: dict[str, set[int]] = {}
        if posts:
            params = {"agent_id": agent_id, **{f"p{i}": p[0] for i, p in enumerate(posts)}}
            for post_id, slot in await _slots_taken(len(posts)).rows(conn, params):
                taken.setdefault(post_id, set()).add(int(slot))
    return [TrackedPost(post_id, posted_at, _text(kind, payload), frozenset(taken.get(post_id, ())))
            for post_id, posted_at, kind, payload in posts]


def _text(kind: str, payload: dict[str, Any]) -> str:
    return " ".join(payload.get("parts", [])) if kind == "thread" else str(payload.get("text", ""))


async def texts(db: Database, agent_id: str, post_ids: Iterable[str]) -> dict[str, str]:
    """post id → the text the agent posted (threads: their parts joined), from its outbox."""
    wanted = list(dict.fromkeys(post_ids))
    if not wanted:
        return {}
    q = (sa.select(actions.c.external_id, actions.c.kind, actions.c.payload)
         .where(actions.c.agent_id == agent_id, actions.c.external_id.in_(wanted),
                fixed_in(actions.c.kind, POST_KINDS)))
    async with db.connect() as conn:
        return {str(ext): _text(kind, payload) for ext, kind, payload in (await conn.execute(q)).fetchall()}


async def record(db: Database, samples: Sequence[Sample], event_key: str) -> None:
    """Store samples taken by the event ``event_key``; a slot already taken keeps its first sample."""
    if not samples:
        return
    rows = [{**{name: getattr(s, name) for name in _COLUMNS}, "event_key": event_key} for s in samples]
    async with db.transaction() as conn:
        stmt = cached(("post_metrics.record", conn.dialect.name),
                      lambda: Prepared(insert_ignoring_conflicts(conn, post_metrics)))
        await stmt.run(conn, rows)


_TAKEN_BY = Prepared(sa.select(post_metrics).where(post_metrics.c.event_key == sa.bindparam("event_key"))
                     .order_by(post_metrics.c.id))


async def taken_by(db: Database, event_key: str) -> list[Sample]:
    """The samples the event ``event_key`` took (also those of an earlier, interrupted attempt)."""
    async with db.connect() as conn:
        return [_sample(r) for r in await _TAKEN_BY.rows(conn, {"event_key": event_key})]


async def samples(db: Database, agent_id: str, since: float, post_ids: Iterable[str] | None = None) -> list[Sample]:
    """The agent's samples of posts posted since ``since`` (of ``post_ids`` only, if given),
    by post then slot."""
    q = (sa.select(post_metrics)
         .where(post_metrics.c.agent_id == agent_id, post_metrics.c.posted_at >= since)
         .order_by(post_metrics.c.posted_at, post_metrics.c.post_id, post_metrics.c.slot))
    if post_ids is not None:
        q = q.where(post_metrics.c.post_id.in_(list(post_ids)))
    async with db.connect() as conn:
        return [_sample(r) for r in (await conn.execute(q)).fetchall()]


async def latest(db: Database, agent_id: str, since: float) -> list[Sample]:
    """Each post's latest sample (posts posted since ``since``), oldest post first."""
    by_post: dict[str, Sample] = {}
    for sample in await samples(db, agent_id, since):
        by_post[sample.post_id] = sample  # ordered by slot: the last one wins
    return list(by_post.values())


async def agents_with_samples(db: Database, since: float) -> list[str]:
    """Agents that have samples of posts posted since ``since``."""
    q = sa.select(post_metrics.c.agent_id).where(post_metrics.c.posted_at >= since).distinct()
    async with db.connect() as conn:
        return sorted(str(r[0]) for r in (await conn.execute(q)).fetchall())


_PRUNE = Prepared(sa.delete(post_metrics).where(post_metrics.c.agent_id == sa.bindparam("agent_id"),
                                                post_metrics.c.posted_at < sa.bindparam("before")))


async def prune(db: Database, agent_id: str, before: float) -> int:
    """Delete the agent's samples of posts posted before ``before``; how many rows went."""
    async with db.transaction() as conn:
        return await _PRUNE.run(conn, {"agent_id": agent_id, "before": before})
