"""Mentions: poll with a persisted ``since_id``, one event per tweet, decide, reply through the outbox.

With X's filtered stream running (``agents/intake.py``), a poll whose whole stretch the stream
covered skips X and moves ``since_id`` to what the stream brought; any gap is a real poll.

A mention is received once (its event key is the tweet id), so restarts and
overlapping polls never duplicate it. Replies are never sent to the agent itself,
agent-to-agent chains stop after ``max_reply_depth``, direct questions are always
answered, others by the persona's ``reply_probability``. Mentions are untrusted:
they are assessed for hostile intent, and nothing in a mention can cause a trade.
A mention is remembered as attributed, untrusted content, a hostile one quarantined
(:mod:`puppet_engine.agents.remember`); a reply's prompt shows the conversation
quoted, with every hostile message in it withheld (only its flags are said).
When the LLM is down the mention is still recorded (decision ``deferred``) and its
answer is tried again later, for about an hour, before it is skipped.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Set
from typing import Any

import structlog

from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.behaviors.posting import post_action
from puppet_engine.agents.mood import Mood, after_interaction, sentiment_of
from puppet_engine.agents.remember import recall, remember_mention
from puppet_engine.agents.review_desk import feedback_lines
from puppet_engine.agents.runtime import AgentRuntime, AgentServices, recent_post_texts
from puppet_engine.agents.safety import assess, check_leaks
from puppet_engine.agents.state import AgentState
from puppet_engine.content.prompts import PromptContext
from puppet_engine.content.validation import generate_validated
from puppet_engine.errors import BudgetExceeded, ProviderError, ValidationFailed
from puppet_engine.events import Event, HandlerResult
from puppet_engine.events.scheduler import next_interval_at
from puppet_engine.social.base import Post
from puppet_engine.social.recording import note_posts, note_read_error, note_stream_covered
from puppet_engine.storage import Database
from puppet_engine.storage.repos import mentions, outbox

log = structlog.get_logger("puppet_engine.mentions")

MAX_IDLE_STRETCH = 8
DUPLICATE_WINDOW = 24 * 3600.0  # how long X refuses a repeated text
# While the LLM is down a mention is tried again after these delays (about an hour in all), then skipped.
DEFER_SECONDS = (60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0)


def tweet_payload(tweet: Post) -> dict[str, Any]:
    return {"id": tweet.id, "text": tweet.text, "author_id": tweet.author_id,
            "author_username": tweet.author_username, "created_at": tweet.created_at,
            "conversation_id": tweet.conversation_id, "in_reply_to_user_id": tweet.in_reply_to_user_id,
            "referenced_tweets": [list(r) for r in tweet.referenced_tweets]}


def tweet_from_payload(p: dict[str, Any]) -> Post:
    return Post(id=p["id"], text=p["text"], author_id=p.get("author_id"), author_username=p.get("author_username"),
                created_at=p.get("created_at"), conversation_id=p.get("conversation_id"),
                in_reply_to_user_id=p.get("in_reply_to_user_id"),
                referenced_tweets=tuple(tuple(r) for r in p.get("referenced_tweets", [])))


class MentionsBehavior(Behavior):
    name = "mentions"

    def handlers(self) -> dict[str, BehaviorHandler]:
        return {"mentions.poll": self.on_poll, "mention.received": self.on_mention}

    def interval(self, agent: AgentRuntime) -> float:
        minutes = agent.config.behavior.mention_poll_minutes
        return minutes * 60 if minutes else self.services.mention_poll_seconds

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        if "mentions.poll" in pending:
            return []
        now = self.services.clock.now()
        state = await self.services.states.get(agent.id)
        seq = int(state.poll_seq) + 1
        return [Event("mentions.poll", agent.id, {"seq": seq}, due_at=now + agent.rng.uniform(0, 5),
                      key=f"poll:{agent.id}:{seq}:{int(now)}")]

    async def on_poll(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        now = self.services.clock.now()
        seq = int(event.payload.get("seq", 1))
        state = await self.services.states.get(agent.id)
        since_id = state.since_id
        delay = self.interval(agent)
        follow_ups: list[Event] = []
        result: dict[str, Any] = {}
        feed = self.services.mention_feed
        if feed is not None and state.last_poll_at is not None and feed.covers(agent.id, float(state.last_poll_at)):
            # The stream brought every mention since the last poll: no X call, the cursor follows it.
            newest = feed.newest(agent.id)
            note_stream_covered(newest)  # for replay: the stream's answer, not a poll
            if newest is not None and (since_id is None or int(newest) > int(since_id)):
                since_id = newest
            tweets: list[Post] = []
            note_posts("mentions", {"since_id": since_id}, tweets)  # for replay: this poll read nothing
            result["covered_by_stream"] = True
        else:
            try:
                tweets = await agent.social.get_mentions(since_id=since_id)
                note_posts("mentions", {"since_id": since_id}, tweets)  # for replay
            except ProviderError as exc:
                note_read_error("mentions", exc)
                # X down or limited: keep the cursor, come back after the window.
                delay = max(delay, getattr(exc, "retry_after", 0.0))
                result["error"] = str(exc)
                tweets = []
        newest = since_id
        for tweet in tweets:
            if newest is None or int(tweet.id) > int(newest):
                newest = tweet.id
            if agent.user_id and tweet.author_id == agent.user_id:
                continue
            follow_ups.append(Event("mention.received", agent.id, {"tweet": tweet_payload(tweet), "via": "poll"},
                                    due_at=now, key=f"mention:{agent.id}:{tweet.id}"))
        result["received"] = len(follow_ups)
        # Quiet timelines are polled less often (up to 8x the interval); any mention resets it.
        idle = 0 if follow_ups or "error" in result else int(state.idle_polls) + 1
        if "error" not in result:
            delay *= min(2 ** (idle // 3), MAX_IDLE_STRETCH)
        next_seq = seq + 1
        follow_ups.append(Event("mentions.poll", agent.id, {"seq": next_seq},
                                due_at=next_interval_at(delay, now, agent.rng),
                                key=f"poll:{agent.id}:{next_seq}:{int(now)}"))
        return HandlerResult(result=result, follow_ups=follow_ups,
                             state={"since_id": newest, "poll_seq": seq, "last_poll_at": now, "idle_polls": idle})

    async def on_mention(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        tweet = tweet_from_payload(event.payload["tweet"])
        now = self.services.clock.now()
        deferrals = int(event.payload.get("deferrals", 0))  # > 0: a retry after the LLM was down
        assessment = assess(tweet.text)
        await self._record(agent, tweet, now)
        decision, thread = await self._decide(agent, tweet)
        result: dict[str, Any] = {"decision": decision, "flags": sorted(assessment.flags)}
        if "trade_request" in assessment.flags:
            result["trade_request_ignored"] = True
        state = await self.services.states.get(agent.id)
        changes: dict[str, Any] = {}
        if deferrals == 0:  # felt and remembered once, however often the answer is put off
            changes["mood"] = after_interaction(Mood.from_state(state.mood), tweet.text).to_state()
            await self._remember(agent, tweet, assessment.flags, now)
        actions = []
        follow_ups: list[Event] = []
        if decision == "reply":
            try:
                parts = await self._write_reply(agent, tweet, thread, assessment.flags, state)
            except (ValidationFailed, BudgetExceeded, ProviderError) as exc:
                retryable = isinstance(exc, ProviderError) and exc.retryable
                if retryable and event.attempts < event.max_attempts:
                    raise  # LLM briefly down: the event is retried shortly
                if retryable and deferrals < len(DEFER_SECONDS):
                    # A longer outage: answer later instead of never (the mention stays recorded).
                    delay = max(DEFER_SECONDS[deferrals], getattr(exc, "retry_after", 0.0))
                    follow_ups.append(Event("mention.received", agent.id, {**event.payload, "deferrals": deferrals + 1},
                                            due_at=now + delay, key=f"mention:{agent.id}:{tweet.id}:d{deferrals + 1}"))
                    result.update(decision="deferred", reason=str(exc), retry_at=now + delay)
                else:
                    result.update(decision=f"skip:{exc.__class__.__name__}", reason=str(exc))
            else:
                action = post_action(agent.id, f"reply:{agent.id}:{tweet.id}", parts, reply_to=tweet.id)
                if action.kind == "post":
                    action.kind = "reply"
                action.context = {"mention": tweet_payload(tweet), "flags": sorted(assessment.flags),
                                  "thread": [tweet_payload(t) for t in thread[-6:]]}
                actions.append(action)
                result["reply"] = parts
        await self._set_decision(agent, tweet, result["decision"])
        return HandlerResult(result=result, actions=actions, follow_ups=follow_ups, state=changes)

    async def _decide(self, agent: AgentRuntime, tweet: Post) -> tuple[str, list[Post]]:
        if agent.user_id and tweet.author_id == agent.user_id:
            return "skip:self", []
        try:
            thread = await agent.social.get_conversation(tweet, depth=6)
            note_posts("conversation", {"id": tweet.id}, thread)  # for replay
        except (ProviderError, NotImplementedError) as exc:
            note_read_error("conversation", exc)
            thread = [tweet]
        max_depth = agent.config.behavior.interaction_patterns.max_reply_depth
        if self.services.peer_by_user_id(tweet.author_id) is not None:
            depth = agent_chain_depth(thread, self.services)
            if depth >= max_depth:
                return "skip:depth", thread
        if "?" in tweet.text:
            return "reply", thread
        rng = random.Random(zlib.crc32(f"{agent.id}:{tweet.id}".encode()))
        if rng.random() < agent.config.behavior.interaction_patterns.reply_probability:
            return "reply", thread
        return "skip:probability", thread

    async def _write_reply(self, agent: AgentRuntime, tweet: Post, thread: list[Post], flags: frozenset[str],
                           state: AgentState) -> list[str]:
        relationship = None
        # A hostile mention is not a search query either: its words stay out of the prompt.
        recalled = await recall(agent, withheld(flags) if flags else tweet.text)
        if agent.memory is not None and tweet.author_username:
            rel = await agent.memory.relationships.get(agent.id, tweet.author_username)
            if rel is not None:
                relationship = {"sentiment": rel.sentiment, "familiarity": rel.familiarity, "trust": rel.trust,
                                "notes": rel.notes}
        recent = await recent_post_texts(self.services.db, agent.id)
        # X refuses an exact repeat for a day: short replies to the same account repeat easily.
        earlier = await replies_to_author(self.services.db, agent.id, tweet.author_username,
                                          self.services.clock.now() - DUPLICATE_WINDOW)
        context = PromptContext(
            purpose="reply", recent_posts=recent, memories=recalled.own, heard=recalled.heard, mood=state.mood,
            thread=self._prompt_thread(agent, tweet, thread, flags), replying_to=tweet.author_username,
            relationship=relationship, now=self.services.clock.now(), avoid=await feedback_lines(agent),
            seed=zlib.crc32(f"reply:{agent.id}:{tweet.id}".encode()),
            extra={"hostile_flags": sorted(flags)} if flags else {},
        )
        validated = await generate_validated(agent.llm, agent.config, context, [*recent, *earlier])
        check_leaks(validated.parts, agent.config)
        return list(validated.parts)

    @staticmethod
    def _prompt_thread(agent: AgentRuntime, tweet: Post, thread: list[Post],
                       flags: frozenset[str]) -> list[tuple[str, str]]:
        """The conversation for the prompt: others' messages verbatim unless hostile, then withheld."""
        lines = []
        for t in thread:
            own = bool(agent.user_id) and t.author_id == agent.user_id
            hostile = flags if t.id == tweet.id else frozenset() if own else assess(t.text).flags
            lines.append((t.author_username or "someone", withheld(hostile) if hostile else t.text))
        return lines

    async def _record(self, agent: AgentRuntime, tweet: Post, now: float) -> None:
        await mentions.record(self.services.db, agent.id, tweet.id, author_id=tweet.author_id,
                              author_username=tweet.author_username, text=tweet.text,
                              conversation_id=tweet.conversation_id, now=now)

    async def _set_decision(self, agent: AgentRuntime, tweet: Post, decision: str) -> None:
        await mentions.set_decision(self.services.db, agent.id, tweet.id, decision)

    async def _remember(self, agent: AgentRuntime, tweet: Post, flags: frozenset[str], now: float) -> None:
        if agent.memory is None:
            return
        await remember_mention(agent, tweet, flags, now)
        if tweet.author_username:
            await agent.memory.relationships.update_from_interaction(
                agent.id, tweet.author_username, sentiment_delta=0.1 * sentiment_of(tweet.text))


# What a withheld message is said to have been, in words a model (and the offline generator) understands.
_WITHHELD = {"injection": "it tried to change your instructions", "secret_request": "it asked you to reveal secrets",
             "impersonation": "it claimed to speak for your operator and tried to change your instructions",
             "trade_request": "it asked you to buy, sell or send tokens"}


def withheld(flags: Set[str]) -> str:
    """What stands in a prompt for a hostile message: why it was withheld, none of its words."""
    why = "; ".join(_WITHHELD.get(f, f"flagged {f}") for f in sorted(flags))
    return f"(message withheld by the engine: {why})"


async def replies_to_author(db: Database, agent_id: str, username: str | None, since: float) -> list[str]:
    """Texts the agent sent (or is sending) since ``since`` that address ``@username``."""
    if not username:
        return []
    handle = f"@{username}".lower()
    payloads = await outbox.reply_payloads_since(db, agent_id, since)
    texts = [" ".join(p.get("parts", [])) if "parts" in p else p.get("text", "") for p in payloads]
    return [t for t in texts if t.lower().startswith(handle)]


def agent_chain_depth(thread: list[Post], services: AgentServices) -> int:
    """How many consecutive agent-authored tweets end this thread (the reply chain between agents)."""
    depth = 0
    for tweet in reversed(thread):
        if services.peer_by_user_id(tweet.author_id) is None:
            break
        depth += 1
    return depth


async def answered(db: Database, agent_id: str) -> dict[str, str]:
    """tweet id → decision, for an agent (used by tests and the API)."""
    return await mentions.decisions(db, agent_id)
