"""What an agent remembers, and what of it a prompt may see.

Every post, reply and trade becomes one of the agent's own memories. What other
accounts wrote is not the agent's own: a mention is stored as untrusted, attributed
content (``source: "mention"``, ``author``, ``trust: "untrusted"``, its ``flags``),
and a mention flagged as hostile (injection, secret or trade request, impersonation)
is stored ``quarantined``: the operator sees it through the memory API, no prompt
ever does. :func:`recall` is what prompts read: own memories on one side, others'
words (to be rendered quoted) on the other, hostile ones left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from puppet_engine.agents.runtime import AgentRuntime
from puppet_engine.agents.safety import assess
from puppet_engine.events import Action, ActionOutcome
from puppet_engine.memory.base import PROMPT_KINDS, QUARANTINED, Memory, MemoryKind
from puppet_engine.social.base import Post

_KIND: dict[str, MemoryKind] = {"post": "post", "thread": "post", "quote": "post", "reply": "reply", "trade": "trade"}
UNTRUSTED = "untrusted"
# How mentions were stored before they were kept apart: "@who said to me: text".
_OLD_MENTION = re.compile(r"^@([A-Za-z0-9_]{1,30}) said to me: (.*)$", re.S)


@dataclass(frozen=True)
class Recall:
    """Memories for a prompt: the agent's own, and (username, text) others said to it."""

    own: list[str] = field(default_factory=list)
    heard: list[tuple[str, str]] = field(default_factory=list)


def action_memory(action: Action, outcome: ActionOutcome, now: float) -> Memory | None:
    """What the agent keeps of a sent post, thread, quote, reply or trade (``None`` for others:
    likes, follows)."""
    kind = _KIND.get(action.kind)
    if kind is None:
        return None
    p = action.payload
    if action.kind == "thread":
        content = " ".join(p.get("parts", []))
    elif action.kind == "trade":
        content = p.get("summary") or f"traded {p.get('amount')} {p.get('input')} for {p.get('output')}"
    else:
        content = p.get("text", "")
    if not content:
        return None
    metadata = {"action_key": action.key, "external_id": outcome.external_id}
    if p.get("reply_to"):
        metadata["reply_to"] = p["reply_to"]
    return Memory(agent_id=action.agent_id, kind=kind, content=content, importance=0.6 if kind == "trade" else 0.4,
                  created_at=now, metadata=metadata)


async def remember_actions(agent: AgentRuntime, done: Iterable[tuple[Action, ActionOutcome]], now: float) -> None:
    """Remember what the agent sent (actions done together: one write)."""
    if agent.memory is None:
        return
    memories = [m for action, outcome in done if (m := action_memory(action, outcome, now)) is not None]
    if memories:
        await agent.memory.add_many(agent.id, memories)


def mention_memory(tweet: Post, flags: Iterable[str], now: float) -> Memory:
    """A mention as the agent keeps it: the author's words verbatim, attributed and marked untrusted.

    Flagged mentions are ``quarantined`` (for the operator's eyes only).
    """
    flags = sorted(set(flags))
    return Memory(
        content=tweet.text, kind=QUARANTINED if flags else "mention", importance=0.4, created_at=now,
        key=f"mention:{tweet.id}",
        metadata={"source": "mention", "author": tweet.author_username or "someone", "author_id": tweet.author_id,
                  "tweet_id": tweet.id, "trust": UNTRUSTED, "flags": flags})


async def remember_mention(agent: AgentRuntime, tweet: Post, flags: Iterable[str], now: float) -> None:
    if agent.memory is not None:
        await agent.memory.add_memory(agent.id, mention_memory(tweet, flags, now))


def is_untrusted(memory: Memory) -> bool:
    """Whether another account wrote this memory's text (mentions, old and new)."""
    return memory.kind in ("mention", QUARANTINED) or memory.metadata.get("trust") == UNTRUSTED


def others_words(memory: Memory) -> tuple[str, str]:
    """(author, text) of an untrusted memory, also for mentions stored as "@who said to me: …"."""
    author = str(memory.metadata.get("author") or "someone")
    old = _OLD_MENTION.match(memory.content) if "source" not in memory.metadata else None
    if old is not None:
        return old.group(1), old.group(2)
    return author, memory.content


def is_hostile(memory: Memory) -> bool:
    """Flagged when stored, or flagged now (mentions stored before flags were kept)."""
    if memory.kind == QUARANTINED or memory.metadata.get("flags"):
        return True
    return assess(others_words(memory)[1]).hostile


async def recall(agent: AgentRuntime, query: str, limit: int = 5) -> Recall:
    """The memories a prompt about ``query`` may see, split into own memories and others' words.

    Quarantined memories are never searched; an untrusted one that is hostile (stored
    before quarantine existed) is dropped too.
    """
    if agent.memory is None:
        return Recall()
    found = await agent.memory.search_memories(agent.id, query, limit=limit, kinds=PROMPT_KINDS)
    own: list[str] = []
    heard: list[tuple[str, str]] = []
    for hit in found:
        memory = hit.memory
        if not is_untrusted(memory):
            own.append(memory.content)
        elif not is_hostile(memory):
            heard.append(others_words(memory))
    return Recall(own, heard)
