"""What one running agent is made of, and read helpers over its persisted state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from puppet_engine.agents.config import AgentConfig
from puppet_engine.clock import Clock
from puppet_engine.llm.base import LLMProvider
from puppet_engine.storage import Database
from puppet_engine.storage.tables import actions, agents
from puppet_engine.twitter.base import SocialClient

if TYPE_CHECKING:
    from puppet_engine.memory.base import MemoryStore

POST_KINDS = ("post", "reply", "quote", "thread")


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


@dataclass
class AgentServices:
    """Engine-wide dependencies that behaviours share."""

    db: Database
    clock: Clock
    mention_poll_seconds: float = 60.0
    interaction_interval_seconds: float = 3 * 3600.0
    mood_interval_seconds: float = 2 * 3600.0
    peers: dict[str, AgentRuntime] = field(default_factory=dict)  # every agent of this engine, by id

    def peer_by_user_id(self, user_id: str | None) -> AgentRuntime | None:
        return next((a for a in self.peers.values() if user_id and a.user_id == user_id), None)


async def load_state(db: Database, agent_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
    return dict(row[0] or {}) if row else {}


async def recent_post_texts(db: Database, agent_id: str, limit: int = 20) -> list[str]:
    """The agent's latest posts (sent or on their way), newest first."""
    q = (
        sa.select(actions.c.kind, actions.c.payload)
        .where(actions.c.agent_id == agent_id, actions.c.kind.in_(POST_KINDS), actions.c.status != "failed")
        .order_by(actions.c.id.desc())
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(q)).fetchall()
    texts: list[str] = []
    for kind, payload in rows:
        if kind == "thread":
            texts.append(" ".join(payload.get("parts", [])))
        elif payload.get("text"):
            texts.append(payload["text"])
    return texts


async def has_pending(db: Database, agent_id: str, event_type: str) -> bool:
    from puppet_engine.storage.tables import events

    q = sa.select(events.c.id).where(
        events.c.agent_id == agent_id, events.c.type == event_type, events.c.status.in_(("pending", "running"))
    ).limit(1)
    async with db.connect() as conn:
        return (await conn.execute(q)).first() is not None


async def free_key(db: Database, key: str, now: float) -> str:
    """``key`` if unused; otherwise a fresh variant (a chain broken by a failed event restarts)."""
    from puppet_engine.storage.tables import events

    async with db.connect() as conn:
        taken = (await conn.execute(sa.select(events.c.id).where(events.c.key == key))).first()
    return key if taken is None else f"{key}:r{int(now)}"
