"""What one running agent is made of, and read helpers over its persisted state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from puppet_engine.agents.engagement import EngagementPlan
from puppet_engine.agents.engagement_store import EngagementStore
from puppet_engine.agents.state import AgentStates
from puppet_engine.clock import Clock
from puppet_engine.llm.base import LLMProvider
from puppet_engine.persona import AgentConfig
from puppet_engine.social.base import Post, SocialClient
from puppet_engine.storage import Database
from puppet_engine.storage.repos import outbox

if TYPE_CHECKING:
    from puppet_engine.memory.base import MemoryStore


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


class MentionFeed(Protocol):
    """Where mentions arrive besides polling (X's filtered stream, ``agents/intake.py``)."""

    def covers(self, agent_id: str, since: float) -> bool:
        """Whether every mention of the agent since ``since`` came through the feed."""
        ...

    def newest(self, agent_id: str) -> str | None:
        """The newest post id the feed brought for the agent, if this process knows it."""
        ...


@dataclass
class AgentServices:
    """Engine-wide dependencies that behaviours share."""

    db: Database
    clock: Clock
    mention_poll_seconds: float = 60.0
    interaction_interval_seconds: float = 3 * 3600.0
    mood_interval_seconds: float = 2 * 3600.0
    engagement: EngagementPlan = field(default_factory=EngagementPlan)
    peers: dict[str, AgentRuntime] = field(default_factory=dict)  # every agent of this engine, by id
    mention_feed: MentionFeed | None = None  # the X stream, when X_MENTIONS_MODE lets it run
    states: AgentStates = field(init=False)
    engagement_store: EngagementStore = field(init=False)  # a replay serves recorded samples instead
    _by_user: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # X user id → agent id

    def __post_init__(self) -> None:
        self.states = AgentStates(self.db)
        self.engagement_store = EngagementStore(self.db)

    def connected(self, agent: AgentRuntime) -> None:
        """``agent`` knows its X user id now: mentions by that account are an agent's."""
        if agent.user_id:
            self._by_user[agent.user_id] = agent.id

    def peer_by_user_id(self, user_id: str | None) -> AgentRuntime | None:
        peer = self.peers.get(self._by_user.get(user_id or "", ""))
        return peer if peer is not None and user_id and peer.user_id == user_id else None


async def recent_post_texts(db: Database, agent_id: str, limit: int = 20) -> list[str]:
    """The agent's latest posts (sent or on their way), newest first."""
    return _recent_texts(await outbox.recent_posts(db, agent_id, limit))


async def own_tweets_since(db: Database, agent_id: str, since: float, limit: int = 2000) -> list[str]:
    """The text of every post, thread part and quote the agent sent (or is sending) since ``since``,
    newest first: what X would refuse as duplicate content. Replies are left out (they open with
    the handle they answer, so only replies to the same account can repeat; mentions checks those)."""
    return _window_texts(await outbox.own_posts_since(db, agent_id, since, limit))


async def post_history(db: Database, agent_id: str, since: float, recent: int = 20,
                       limit: int = 2000) -> tuple[list[str], list[str]]:
    """``(recent_post_texts(…, recent), own_tweets_since(…, since, limit))`` in one read: what
    every generated post is checked against."""
    rows = await outbox.post_history(db, agent_id, recent, since)
    window = [(kind, payload) for kind, payload, created_at in rows
              if kind in _WINDOW_KINDS and created_at >= since][:limit]
    return _recent_texts([(kind, payload) for kind, payload, _ in rows[:recent]]), _window_texts(window)


_WINDOW_KINDS = ("post", "thread", "quote")  # what X's duplicate window compares (replies apart)


def _recent_texts(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    texts: list[str] = []
    for kind, payload in rows:
        if kind == "thread":
            texts.append(" ".join(payload.get("parts", [])))
        elif payload.get("text"):
            texts.append(payload["text"])
    return texts


def _window_texts(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
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
    rows = await outbox.posts_since(db, agent_ids, since, limit * len(agent_ids) * 4)
    for agent_id, kind, status, external_id, payload, done_at in rows:
        mine = found[agent_id]
        if status == "done" and external_id and len(mine) < limit:
            text = payload["parts"][0] if kind == "thread" else payload.get("text", "")
            mine.append(Post(id=str(external_id), text=text, created_at=float(done_at)))
    return found


def restart_key(key: str, now: float) -> str:
    """A fresh variant of a schedule's key already taken by a finished event (a chain broken
    by a failed event starts again)."""
    return f"{key}:r{int(now)}"
