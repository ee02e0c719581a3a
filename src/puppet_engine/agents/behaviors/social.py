"""Life between posts: agents read each other and interact, moods drift, news lands.

- ``interact.due``: read other agents' recent posts (from the engine's own record of what
  they sent: no X read per peer); like or quote them by the persona's probabilities;
  relationships grow with every interaction.
- ``mood.drift``: the persisted mood relaxes towards its baseline, with noise.
- ``news``: an operator-injected headline; agents whose interests it touches post about it.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Set

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.behaviors.posting import (
    WrittenBefore,
    compose,
    post_action,
    written_before,
)
from puppet_engine.agents.mood import Mood, drift
from puppet_engine.agents.runtime import AgentRuntime, peer_posts
from puppet_engine.agents.state import AgentState
from puppet_engine.content.prompts import PromptContext
from puppet_engine.errors import BudgetExceeded, ProviderError, ValidationFailed
from puppet_engine.events import ActionSpec, Event, HandlerResult
from puppet_engine.events.scheduler import next_interval_at
from puppet_engine.social.base import Post
from puppet_engine.social.recording import note_peer_posts

log = structlog.get_logger("puppet_engine.social")

MAX_INTERACTIONS_PER_TICK = 3
PEERS_READ_PER_TICK = 8  # timelines read per interaction round, however many agents there are
_WORD = re.compile(r"[a-z0-9]{4,}")


def _rng(*parts: str) -> random.Random:
    return random.Random(zlib.crc32(":".join(parts).encode()))


class InteractionBehavior(Behavior):
    name = "social"

    def handlers(self) -> dict[str, BehaviorHandler]:
        return {"interact.due": self.on_interact, "mood.drift": self.on_mood_drift, "news": self.on_news}

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        now = self.services.clock.now()
        events = []
        for kind, interval in (("interact.due", self.services.interaction_interval_seconds),
                               ("mood.drift", self.services.mood_interval_seconds)):
            if kind not in pending:
                events.append(Event(kind, agent.id, due_at=next_interval_at(interval, now, agent.rng, 0.5),
                                    key=f"{kind}:{agent.id}:{int(now)}"))
        return events

    async def on_interact(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        state = await self.services.states.get(agent.id)
        since = state.last_interact_at or 0.0
        patterns = agent.config.behavior.interaction_patterns
        actions: list[ActionSpec] = []
        seen: list[str] = []
        before: WrittenBefore | None = None  # read for the first quote, shared by the others
        peers = self._peers_to_read(agent, now)
        posted = await peer_posts(self.services.db, [p.id for p in peers], since)
        note_peer_posts([(p.id, p.user_id, p.username) for p in peers], posted)  # for replay
        for peer in peers:
            if len(actions) >= MAX_INTERACTIONS_PER_TICK:
                break
            for tweet in posted[peer.id]:
                if len(actions) >= MAX_INTERACTIONS_PER_TICK:
                    break
                rng = _rng(agent.id, tweet.id)
                if rng.random() < patterns.like_probability:
                    actions.append(ActionSpec(f"like:{agent.id}:{tweet.id}", agent.id, "like", {"tweet_id": tweet.id}))
                if rng.random() < patterns.quote_tweet_probability:
                    before = before or await written_before(self.services, agent)
                    text = await self._quote(agent, peer, tweet, state, before)
                    if text:
                        actions.append(ActionSpec(f"quote:{agent.id}:{tweet.id}", agent.id, "quote",
                                                  {"text": text, "quote": tweet.id},
                                                  context={"quoted": {"id": tweet.id, "text": tweet.text,
                                                                      "author_username": peer.username or peer.id}}))
                seen.append(peer.config.id)
        met = None
        if agent.memory is not None and seen:  # committed with this round's outcome: counted once
            met = agent.memory.relationships.interactions_write(agent.id, seen, sentiment_delta=0.02,
                                                                familiarity_delta=0.05)
        nxt = Event("interact.due", agent.id, due_at=next_interval_at(self.services.interaction_interval_seconds,
                                                                        now, agent.rng, 0.5),
                    key=f"interact.due:{agent.id}:{int(now)}")
        return HandlerResult(result={"actions": [a.kind for a in actions]}, actions=actions, follow_ups=[nxt],
                             state={"last_interact_at": now}, writes=[met] if met is not None else [])

    def _peers_to_read(self, agent: AgentRuntime, now: float) -> list[AgentRuntime]:
        """Up to :data:`PEERS_READ_PER_TICK` other connected agents, a different sample each round
        (with thousands of agents, looking at every one would make each round cost thousands)."""
        peers = self.services.peers
        if len(peers) <= PEERS_READ_PER_TICK + 1:
            return [p for p in peers.values() if p.id != agent.id and p.user_id]
        rng = _rng(agent.id, "peers", str(int(now)))
        picked = []
        for peer_id in rng.sample(list(peers), min(len(peers), 2 * PEERS_READ_PER_TICK)):
            peer = peers[peer_id]
            if peer.id != agent.id and peer.user_id:
                picked.append(peer)
                if len(picked) == PEERS_READ_PER_TICK:
                    break
        return picked

    async def _quote(self, agent: AgentRuntime, peer: AgentRuntime, tweet: Post, state: AgentState,
                     before: WrittenBefore) -> str | None:
        context = PromptContext(purpose="quote", mood=state.mood,
                                thread=[(peer.username or peer.id, tweet.text)], replying_to=peer.username,
                                now=self.services.clock.now(), seed=zlib.crc32(f"quote:{tweet.id}".encode()))
        try:
            validated = await compose(self.services, agent, context, before)
        except (ValidationFailed, BudgetExceeded, ProviderError) as exc:
            log.info("quote_skipped", reason=str(exc))
            return None
        return validated.parts[0]

    async def on_mood_drift(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        state = await self.services.states.get(agent.id)
        mood = drift(Mood.from_state(state.mood), _rng(agent.id, str(int(now))))
        nxt = Event("mood.drift", agent.id, due_at=next_interval_at(self.services.mood_interval_seconds, now,
                                                                    agent.rng, 0.3),
                    key=f"mood.drift:{agent.id}:{int(now)}")
        return HandlerResult(result={"mood": mood.to_state(), "label": mood.label()}, follow_ups=[nxt],
                             state={"mood": mood.to_state()})

    async def on_news(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        text = str(event.payload.get("text", ""))
        news_id = str(event.payload.get("id") or zlib.crc32(text.encode()))
        score = relevance(text, agent)
        if score == 0 and _rng(agent.id, news_id).random() > 0.2:
            return HandlerResult(result={"reacted": False, "relevance": score})
        state = await self.services.states.get(agent.id)
        context = PromptContext(purpose="news", mood=state.mood, news=text,
                                now=self.services.clock.now(), seed=zlib.crc32(f"news:{news_id}".encode()))
        try:
            validated = await compose(self.services, agent, context)
        except (ValidationFailed, BudgetExceeded) as exc:
            return HandlerResult(result={"reacted": False, "skipped": str(exc)})
        action = post_action(agent.id, f"news:{agent.id}:{news_id}", list(validated.parts))
        return HandlerResult(result={"reacted": True, "relevance": score, "parts": list(validated.parts)},
                             actions=[action])


def relevance(text: str, agent: AgentRuntime) -> float:
    """Share of the agent's interest and key-term words that the headline mentions."""
    cfg = agent.config
    vocabulary = " ".join([*cfg.personality.interests, *cfg.style_guide.vocabulary.key_terms]).lower()
    interests = set(_WORD.findall(vocabulary))
    if not interests:
        return 0.0
    words = set(_WORD.findall(text.lower()))
    return len(interests & words) / len(interests)
