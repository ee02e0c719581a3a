"""What one running agent is made of, and read helpers over its persisted state."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from puppet_engine.agents.config import AgentConfig
from puppet_engine.agents.state import AgentStates
from puppet_engine.clock import Clock
from puppet_engine.events.queue import fixed_in
from puppet_engine.llm.base import LLMProvider
from puppet_engine.social.base import Post, SocialClient
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, agents

if TYPE_CHECKING:
    from puppet_engine.memory.base import MemoryStore

POST_KINDS = ("post", "reply", "quote", "thread")


# Built once (these run in every post and interaction round).
_RECENT_POSTS = (
    sa.select(actions.c.kind, actions.c.payload)
    .where(actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, POST_KINDS),
           actions.c.status != "failed")
    .order_by(actions.c.id.desc())
    .limit(sa.bindparam("limit"))
)
# Posts, threads and quotes since a time (the (agent_id, kind, created_at) index): X's duplicate window.
_OWN_TWEETS_SINCE = (
    sa.select(actions.c.kind, actions.c.payload)
    .where(actions.c.agent_id == sa.bindparam("agent_id"), fixed_in(actions.c.kind, ("post", "thread", "quote")),
           actions.c.created_at >= sa.bindparam("since"), actions.c.status != "failed")
    .order_by(actions.c.id.desc())
    .limit(sa.bindparam("limit"))
)
# No condition on status in SQL: without statistics SQLite would pick the status index
# (nearly every row is "done") and read the whole table instead of these agents' rows.
_PEER_POSTS = (
    sa.select(actions.c.agent_id, actions.c.kind, actions.c.status, actions.c.external_id, actions.c.payload,
              actions.c.updated_at)
    .where(actions.c.agent_id.in_(sa.bindparam("agent_ids", expanding=True)),
           fixed_in(actions.c.kind, ("post", "thread", "quote")), actions.c.created_at > sa.bindparam("since"))
    .order_by(actions.c.created_at.desc())
    .limit(sa.bindparam("limit"))
)


@dataclass
class AgentRuntime:
    """One agent's config and the clients it acts through (dependencies, never dicts)."""

    config: AgentConfig
    social: SocialClient
    llm: LLMProvider
    memory: MemoryStore | None = None
    trader: Any = None  # puppet_engine.solana.SolanaTrader when trading is set up
    user_id: str | None = None  # the agent's X user id, once known
    username: str | None = None
    rng: random.Random = field(default_factory=random.Random)

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(frozen=True)
class AgentStatus:
    """Where an agent is in its life.

    ``starting``: connecting its accounts (operator actions are accepted and wait for it);
    ``running``; ``stopped``: by the operator or disabled; ``failed``: its last start failed,
    ``reason`` says why, and it is tried again at ``retry_at``.
    """

    state: Literal["starting", "running", "stopped", "failed"]
    reason: str | None = None
    retry_at: float | None = None

    @property
    def accepts_actions(self) -> bool:
        """Whether an operator action (post, trade) may be queued: anything but stopped."""
        return self.state != "stopped"


@dataclass
class AgentServices:
    """Engine-wide dependencies that behaviours share."""

    db: Database
    clock: Clock
    mention_poll_seconds: float = 60.0
    interaction_interval_seconds: float = 3 * 3600.0
    mood_interval_seconds: float = 2 * 3600.0
    peers: dict[str, AgentRuntime] = field(default_factory=dict)  # every agent of this engine, by id
    states: AgentStates = field(init=False)
    _by_user: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # X user id → agent id

    def __post_init__(self) -> None:
        self.states = AgentStates(self.db)

    def connected(self, agent: AgentRuntime) -> None:
        """``agent`` knows its X user id now: mentions by that account are an agent's."""
        if agent.user_id:
            self._by_user[agent.user_id] = agent.id

    def peer_by_user_id(self, user_id: str | None) -> AgentRuntime | None:
        peer = self.peers.get(self._by_user.get(user_id or "", ""))
        return peer if peer is not None and user_id and peer.user_id == user_id else None


async def load_state(db: Database, agent_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
    return dict(row[0] or {}) if row else {}


async def recent_post_texts(db: Database, agent_id: str, limit: int = 20) -> list[str]:
    """The agent's latest posts (sent or on their way), newest first."""
    async with db.connect() as conn:
        rows = (await conn.execute(_RECENT_POSTS, {"agent_id": agent_id, "limit": limit})).fetchall()
    texts: list[str] = []
    for kind, payload in rows:
        if kind == "thread":
            texts.append(" ".join(payload.get("parts", [])))
        elif payload.get("text"):
            texts.append(payload["text"])
    return texts


async def own_tweets_since(db: Database, agent_id: str, since: float, limit: int = 2000) -> list[str]:
    """The text of every post, thread part and quote the agent sent (or is sending) since ``since``,
    newest first: what X would refuse as duplicate content. Replies are left out (they open with
    the handle they answer, so only replies to the same account can repeat; mentions checks those)."""
    async with db.connect() as conn:
        rows = (await conn.execute(_OWN_TWEETS_SINCE, {"agent_id": agent_id, "since": since, "limit": limit})).fetchall()
    texts: list[str] = []
    for kind, payload in rows:
        texts.extend(payload.get("parts", []) if kind == "thread" else [payload.get("text", "")])
    return [t for t in texts if t]


async def peer_posts(db: Database, agent_ids: list[str], since: float, limit: int = 5) -> dict[str, list[Post]]:
    """What these agents posted on X since ``since`` (their sent posts, threads and quotes),
    newest first, up to ``limit`` each: the engine's own record, so reading a peer costs no X call."""
    found: dict[str, list[Post]] = {agent_id: [] for agent_id in agent_ids}
    if not agent_ids:
        return found
    async with db.connect() as conn:
        params = {"agent_ids": agent_ids, "since": since, "limit": limit * len(agent_ids) * 4}
        rows = (await conn.execute(_PEER_POSTS, params)).fetchall()
    for agent_id, kind, status, external_id, payload, done_at in rows:
        mine = found[agent_id]
        if status == "done" and external_id and len(mine) < limit:
            text = payload["parts"][0] if kind == "thread" else payload.get("text", "")
            mine.append(Post(id=str(external_id), text=text, created_at=float(done_at)))
    return found


async def pending_types(db: Database, agent_ids: Iterable[str], chunk: int = 500) -> dict[str, set[str]]:
    """agent id → the event types it has pending or running (what its schedules already are)."""
    from puppet_engine.storage.tables import events

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


def restart_key(key: str, now: float) -> str:
    """A fresh variant of a schedule's key already taken by a finished event (a chain broken
    by a failed event starts again)."""
    return f"{key}:r{int(now)}"
