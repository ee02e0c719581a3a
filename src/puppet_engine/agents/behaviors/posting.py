"""Posting: on a persisted schedule shaped by the persona, plus posts asked for by an operator.

Flow: ``post.due`` claimed → context (persona, recent posts, relevant memories, mood)
→ LLM → validated text (length fitted, style, topics, not a repeat) → an outbox
action committed with the event and the next ``post.due`` → sent through the social
client → remembered.

:func:`compose` is how every generated post is written (scheduled posts, trade and
news posts, quotes): one near-duplicate check against the recent posts and one
word-for-word check against X's duplicate window for all of them. An agent whose
posts keep being skipped is never silent: after :data:`SKIP_STREAK_WARNING` skips in
a row a warning names the most common reason (once per streak).
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, replace
from typing import Any

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.remember import recall
from puppet_engine.agents.review_desk import feedback_lines
from puppet_engine.agents.runtime import (
    AgentRuntime,
    AgentServices,
    post_history,
)
from puppet_engine.agents.safety import check_leaks
from puppet_engine.agents.state import AgentState
from puppet_engine.content.prompts import PromptContext
from puppet_engine.content.validation import (
    ValidatedText,
    generate_validated,
    limit_for,
    validate_post,
)
from puppet_engine.errors import BudgetExceeded, ProviderError, ValidationFailed
from puppet_engine.events import ActionSpec, Event, HandlerResult
from puppet_engine.events.scheduler import HOUR, next_post_at, slot_key
from puppet_engine.storage.skips import skip_reason

log = structlog.get_logger("puppet_engine.posting")

LLM_RETRY_SECONDS = 15 * 60.0
DUPLICATE_WINDOW = 24 * 3600.0  # how long X refuses a repeated text
SKIP_STREAK_WARNING = 3  # skipped post.due in a row before the operator is warned


def seed_for(key: str) -> int:
    return zlib.crc32(key.encode())


@dataclass(frozen=True)
class WrittenBefore:
    """What an agent's generated posts are checked against: its latest posts, its posts of X's
    duplicate window, the drafts an operator rejected. Read once for an event that writes
    several (an interaction round's quotes): nothing it writes is recorded before it ends."""

    recent: list[str]
    posted: list[str]
    avoid: list[str]


async def written_before(services: AgentServices, agent: AgentRuntime) -> WrittenBefore:
    recent, posted = await post_history(services.db, agent.id, services.clock.now() - DUPLICATE_WINDOW)
    return WrittenBefore(recent, posted, await feedback_lines(agent))  # feedback: what review rejected


async def compose(services: AgentServices, agent: AgentRuntime, context: PromptContext,
                  before: WrittenBefore | None = None) -> ValidatedText:
    """Generated, validated text for ``context`` (its ``recent_posts`` are filled in here).

    Not a near-duplicate of the agent's recent posts, not a word-for-word repeat of a
    post of the last 24 hours (X would refuse it), fitted to the author's maximum,
    checked for leaks. ``before``: :func:`written_before`, when the caller read it already.
    Raises ``ValidationFailed`` (with every attempt's reasons), ``BudgetExceeded`` or
    ``ProviderError``.
    """
    before = before or await written_before(services, agent)
    validated = await generate_validated(agent.llm, agent.config,
                                         replace(context, recent_posts=before.recent, avoid=before.avoid),
                                         before.recent, posted=before.posted)
    check_leaks(validated.parts, agent.config)  # memories of hostile mentions reach these prompts too
    if validated.cut_from is not None:
        log.info("text_fitted", agent_id=agent.id, purpose=context.purpose, written=validated.cut_from,
                 limit=limit_for(agent.config))
    return validated


def peak_hours(agent: AgentRuntime, state: AgentState) -> list[int]:
    """The persona's peak hours, or those learnt from engagement when it opted in
    (``behavior.post_frequency.learn_peak_hours``) and enough posts have settled."""
    freq = agent.config.behavior.post_frequency
    if freq.learn_peak_hours and state.learned_peak_hours:
        return list(state.learned_peak_hours)
    return list(freq.peak_posting_hours)


def skip_streak(state: AgentState, agent_id: str, reason: str | None) -> dict[str, Any]:
    """State changes for one ``post.due``: the streak of skipped posts, warned about once per streak."""
    # Reasons are [reason, count] pairs: a list is replaced whole by a JSON merge, an object would be merged.
    if reason is None:
        return {"post_skip_streak": 0, "post_skip_reasons": []}
    streak = state.post_skip_streak + 1
    reasons = Counter({str(k): int(n) for k, n in state.post_skip_reasons})
    for part in reason.split("; "):
        reasons[skip_reason(part)] += 1
    if streak == SKIP_STREAK_WARNING:
        common, _ = reasons.most_common(1)[0]
        log.warning("posts_keep_being_skipped", agent_id=agent_id, skipped_in_a_row=streak,
                    most_common_reason=common, last_reason=reason[:300])
    return {"post_skip_streak": streak, "post_skip_reasons": [list(kv) for kv in reasons.most_common(5)]}


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
        due = next_post_at(freq.min_hours_between_posts, freq.max_hours_between_posts, state.last_post_at,
                           now, agent.rng, peak_hours=peak_hours(agent, state), tz=agent.config.tz)
        seq = state.post_seq + 1
        return [Event("post.due", agent.id, {"seq": seq}, due_at=due, key=slot_key("post", agent.id, seq))]

    async def on_post_due(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        seq = int(event.payload.get("seq", 1))
        freq = agent.config.behavior.post_frequency
        rng = random.Random(seed_for(event.key or str(event.id)))
        state = await self.services.states.get(agent.id)
        nxt = next_post_at(freq.min_hours_between_posts, freq.max_hours_between_posts, now, now, rng,
                           peak_hours=peak_hours(agent, state), tz=agent.config.tz)
        result: dict[str, Any]
        actions: list[ActionSpec] = []
        try:
            validated = await self._write(agent, event, topic=event.payload.get("topic"))
        except (ValidationFailed, BudgetExceeded) as exc:
            result = {"skipped": str(exc)}
            log.info("post_skipped", reason=str(exc))
        except ProviderError as exc:
            # LLM down: skip this one, try again soon rather than a whole gap later.
            nxt = now + min(LLM_RETRY_SECONDS, max(60.0, freq.min_hours_between_posts * HOUR))
            result = {"skipped": f"llm unavailable: {exc}"}
            log.warning("post_skipped_llm_down", error=str(exc))
        else:
            parts = list(validated.parts)
            actions.append(post_action(agent.id, f"post:{agent.id}:{seq}", parts))
            result = {"parts": parts}
            if validated.cut_from is not None:
                result["cut_from"] = validated.cut_from
        follow = Event("post.due", agent.id, {"seq": seq + 1}, due_at=nxt, key=slot_key("post", agent.id, seq + 1))
        state = await self.services.states.get(agent.id)
        return HandlerResult(result=result, actions=actions, follow_ups=[follow],
                             state={"post_seq": seq, "last_post_at": now, "next_post_at": nxt,
                                    **skip_streak(state, agent.id, result.get("skipped"))})

    async def on_manual_post(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        """``POST /agents/{id}/post``: given text (validated as is) or a topic to write about."""
        text = event.payload.get("text")
        try:
            if text:  # the operator's own words: never cut (over the maximum: a thread if allowed, else refused)
                recent, posted = await post_history(self.services.db, agent.id,
                                                    self.services.clock.now() - DUPLICATE_WINDOW)
                parts = list(validate_post(text, agent.config, recent, posted=posted, fit=False).parts)
            else:
                parts = list((await self._write(agent, event, topic=event.payload.get("topic"))).parts)
        except ValidationFailed as exc:  # retrying the same text cannot help: record why, once
            return HandlerResult(result={"rejected": exc.reasons})
        key = f"manual:{agent.id}:{event.key or event.id}"
        return HandlerResult(result={"parts": parts}, actions=[post_action(agent.id, key, parts)],
                             state={"last_post_at": self.services.clock.now()})

    async def _write(self, agent: AgentRuntime, event: Event, *, topic: str | None) -> ValidatedText:
        state = await self.services.states.get(agent.id)
        rng = random.Random(seed_for(event.key or str(event.id)))
        interests = agent.config.personality.interests
        topic = topic or (rng.choice(interests) if interests else None)
        recalled = await recall(agent, topic or agent.config.description or agent.config.name)
        context = PromptContext(purpose="post", memories=recalled.own, heard=recalled.heard, mood=state.mood,
                                topic=topic, news=event.payload.get("news"), now=self.services.clock.now(),
                                seed=seed_for(event.key or str(event.id)))
        return await compose(self.services, agent, context)


def post_action(agent_id: str, key: str, parts: list[str], **extra: Any) -> ActionSpec:
    if len(parts) == 1:
        return ActionSpec(key=key, agent_id=agent_id, kind="post", payload={"text": parts[0], **extra})
    return ActionSpec(key=key, agent_id=agent_id, kind="thread", payload={"parts": parts, **extra})
