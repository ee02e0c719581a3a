"""Posting: on a persisted schedule shaped by the persona, plus posts asked for by an operator.

Flow: ``post.due`` claimed → context (persona, recent posts, relevant memories, mood)
→ LLM → validated text (length, style, topics, not a near-duplicate) → an outbox
action committed with the event and the next ``post.due`` → sent through the social
client → remembered.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Set
from typing import Any

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.remember import recall
from puppet_engine.agents.runtime import AgentRuntime, recent_post_texts
from puppet_engine.agents.safety import check_leaks
from puppet_engine.errors import BudgetExceeded, ProviderError, ValidationFailed
from puppet_engine.events import ActionSpec, Event, HandlerResult
from puppet_engine.events.scheduler import HOUR, next_post_at, slot_key
from puppet_engine.llm.base import PromptContext
from puppet_engine.llm.validation import generate_validated, validate_post

log = structlog.get_logger("puppet_engine.posting")

LLM_RETRY_SECONDS = 15 * 60.0


def seed_for(key: str) -> int:
    return zlib.crc32(key.encode())


class PostingBehavior(Behavior):
    name = "posting"

    def handlers(self) -> dict[str, BehaviorHandler]:
        return {"post.due": self.on_post_due, "post.manual": self.on_manual_post}

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        if "post.due" in pending:
            return []
        now = self.services.clock.now()
        state = await self.services.states.get(agent.id)
        freq = agent.config.behavior.post_frequency
        due = next_post_at(freq.min_hours_between_posts, freq.max_hours_between_posts, state.get("last_post_at"),
                           now, agent.rng, peak_hours=freq.peak_posting_hours, tz=agent.config.tz)
        seq = int(state.get("post_seq", 0)) + 1
        return [Event("post.due", agent.id, {"seq": seq}, due_at=due, key=slot_key("post", agent.id, seq))]

    async def on_post_due(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        seq = int(event.payload.get("seq", 1))
        freq = agent.config.behavior.post_frequency
        rng = random.Random(seed_for(event.key or str(event.id)))
        nxt = next_post_at(freq.min_hours_between_posts, freq.max_hours_between_posts, now, now, rng,
                           peak_hours=freq.peak_posting_hours, tz=agent.config.tz)
        result: dict[str, Any]
        actions: list[ActionSpec] = []
        try:
            parts = await self._write(agent, event, topic=event.payload.get("topic"))
        except (ValidationFailed, BudgetExceeded) as exc:
            result = {"skipped": str(exc)}
            log.info("post_skipped", reason=str(exc))
        except ProviderError as exc:
            # LLM down: skip this one, try again soon rather than a whole gap later.
            nxt = now + min(LLM_RETRY_SECONDS, max(60.0, freq.min_hours_between_posts * HOUR))
            result = {"skipped": f"llm unavailable: {exc}"}
            log.warning("post_skipped_llm_down", error=str(exc))
        else:
            actions.append(post_action(agent.id, f"post:{agent.id}:{seq}", parts))
            result = {"parts": parts}
        follow = Event("post.due", agent.id, {"seq": seq + 1}, due_at=nxt, key=slot_key("post", agent.id, seq + 1))
        return HandlerResult(result=result, actions=actions, follow_ups=[follow],
                             state={"post_seq": seq, "last_post_at": now, "next_post_at": nxt})

    async def on_manual_post(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        """``POST /agents/{id}/post``: given text (validated as is) or a topic to write about."""
        text = event.payload.get("text")
        try:
            if text:
                recent = await recent_post_texts(self.services.db, agent.id)
                parts = list(validate_post(text, agent.config, recent).parts)
            else:
                parts = await self._write(agent, event, topic=event.payload.get("topic"))
        except ValidationFailed as exc:  # retrying the same text cannot help: record why, once
            return HandlerResult(result={"rejected": exc.reasons})
        key = f"manual:{agent.id}:{event.key or event.id}"
        return HandlerResult(result={"parts": parts}, actions=[post_action(agent.id, key, parts)],
                             state={"last_post_at": self.services.clock.now()})

    async def _write(self, agent: AgentRuntime, event: Event, *, topic: str | None) -> list[str]:
        recent = await recent_post_texts(self.services.db, agent.id)
        state = await self.services.states.get(agent.id)
        rng = random.Random(seed_for(event.key or str(event.id)))
        interests = agent.config.personality.interests
        topic = topic or (rng.choice(interests) if interests else None)
        recalled = await recall(agent, topic or agent.config.description or agent.config.name)
        context = PromptContext(purpose="post", recent_posts=recent, memories=recalled.own, heard=recalled.heard,
                                mood=state.get("mood"),
                                topic=topic, news=event.payload.get("news"), now=self.services.clock.now(),
                                seed=seed_for(event.key or str(event.id)))
        validated = await generate_validated(agent.llm, agent.config, context, recent)
        check_leaks(validated.parts, agent.config)  # a model may still echo its system prompt
        return list(validated.parts)


def post_action(agent_id: str, key: str, parts: list[str], **extra: Any) -> ActionSpec:
    if len(parts) == 1:
        return ActionSpec(key=key, agent_id=agent_id, kind="post", payload={"text": parts[0], **extra})
    return ActionSpec(key=key, agent_id=agent_id, kind="thread", payload={"parts": parts, **extra})
