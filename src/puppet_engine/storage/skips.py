"""Why agents did not post or reply: skip reasons read from the events table.

A scheduled post that produced nothing ends as a ``post.due`` event with
``result.skipped`` (the reason); a mention left unanswered ends as a
``mention.received`` event with ``result.decision = "skip:<why>"`` (and
``result.reason`` for a refused text). Two reads answer from those rows:

- :func:`recent_post_skips`: the last few scheduled posts of some agents, found by
  their deterministic keys (``post:<agent>:<seq>``, a unique-index lookup each),
  so an operator is told while it happens that an agent skips most of its posts;
- :func:`skip_totals`: every skipped post and reply of some agents with their most
  common reasons, for the end-of-run report of ``simulate``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.tables import events

RECENT_POSTS = 10  # how many of an agent's last scheduled posts the warning looks at
MIN_RECENT = 3  # fewer finished posts than this say nothing yet
TOP_REASONS = 3

_ATTEMPT = re.compile(r"^attempt \d+:\s*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # the text a reason quotes (a post, a term): not its kind
# Mention decisions that are the persona's choice, named by the setting behind them.
_DECISIONS = {
    "probability": "not chosen (reply_probability)",
    "depth": "thread too deep (max_reply_depth)",
    "self": "own tweet",
}


def skip_reason(text: str) -> str:
    """The kind of a skip reason, for counting: its first reason without the attempt number,
    with numbers as ``N`` and quoted text as ``…`` (``"attempt 1: too long: 57 weighted
    characters, the limit is 20; attempt 2: …"`` → ``"too long: N weighted characters, the
    limit is N"``)."""
    return " ".join(_QUOTED.sub("…", _NUMBER.sub("N", _first_reason(text))).split())[:120] or "unknown"


def _first_reason(text: str) -> str:
    return _ATTEMPT.sub("", text.split("; ", 1)[0].strip())[:200]


@dataclass
class SkipCount:
    """Skipped items of one agent and the reasons, most common first."""

    skipped: int = 0
    total: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason kind → one full reason

    def add(self, reason: str | None) -> None:
        self.total += 1
        if reason is None:
            return
        self.skipped += 1
        kind = skip_reason(reason)
        self.reasons[kind] += 1
        self.examples.setdefault(kind, _first_reason(reason))

    def top(self, n: int = TOP_REASONS) -> list[dict[str, Any]]:
        """``[{"reason", "count", "example"}]``, most common first."""
        return [{"reason": kind, "count": count, "example": self.examples[kind]}
                for kind, count in self.reasons.most_common(n)]

    @property
    def mostly_skipped(self) -> bool:
        return self.total >= MIN_RECENT and self.skipped * 2 > self.total


def post_skip(result: Mapping[str, Any] | None) -> str | None:
    """Why a finished ``post.due`` posted nothing, or ``None`` when it posted."""
    if not result or "skipped" not in result:
        return None
    return str(result["skipped"])


def reply_skip(result: Mapping[str, Any] | None) -> str | None:
    """Why a finished mention was not answered, ``None`` when it was (or is deferred)."""
    result = result or {}
    decision = str(result.get("decision") or "")
    if not decision.startswith("skip:"):
        return None
    why = decision[len("skip:"):]
    return str(result.get("reason") or _DECISIONS.get(why, why))


_RECENT: dict[str, sa.Select[Any]] = {}


def recent_posts_statement(dialect: str) -> sa.Select[Any]:
    """Finished events by key (``key``, ``result``), all keys in one parameter ``keys`` (a JSON
    array on SQLite, an array on PostgreSQL): one statement compiled once, whatever the page size."""
    if dialect not in _RECENT:
        if dialect == "postgresql":
            match = events.c.key == sa.any_(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String)))
        else:
            each = sa.func.json_each(sa.bindparam("keys", type_=sa.String)).table_valued("value")
            match = events.c.key.in_(sa.select(each.c.value))
        _RECENT[dialect] = sa.select(events.c.key, events.c.result).where(match, events.c.status == "done")
    return _RECENT[dialect]


async def recent_post_skips(conn: AsyncConnection, post_seqs: Mapping[str, int],
                            window: int = RECENT_POSTS) -> dict[str, SkipCount]:
    """Skips among each agent's last ``window`` scheduled posts, given each agent's last
    handled post number (``state.post_seq``); each is a unique-key lookup. Agents with no
    finished scheduled post are left out."""
    keys = recent_post_keys(post_seqs, window)
    if not keys:
        return {}
    pg = conn.dialect.name == "postgresql"
    rows = await conn.execute(recent_posts_statement(conn.dialect.name),
                              {"keys": list(keys) if pg else json.dumps(list(keys))})
    return count_post_skips(keys, rows)


def recent_post_keys(post_seqs: Mapping[str, int], window: int = RECENT_POSTS) -> dict[str, str]:
    """The keys of each agent's last ``window`` scheduled posts (``post:<agent>:<seq>``) → agent id."""
    return {f"post:{agent_id}:{seq - k}": agent_id
            for agent_id, seq in post_seqs.items() for k in range(window) if seq - k >= 1}


def count_post_skips(keys: Mapping[str, str], rows: Iterable[tuple[str, Mapping[str, Any] | None]],
                     ) -> dict[str, SkipCount]:
    """The finished posts' ``(key, result)`` rows counted per agent (``keys`` from :func:`recent_post_keys`)."""
    out: dict[str, SkipCount] = {}
    for key, result in rows:
        out.setdefault(keys[key], SkipCount()).add(post_skip(result))
    return out


@dataclass
class SkipTotals:
    """Every skipped post and reply of one agent."""

    posts: SkipCount = field(default_factory=SkipCount)
    replies: SkipCount = field(default_factory=SkipCount)


async def skip_totals(conn: AsyncConnection, agent_ids: Iterable[str]) -> dict[str, SkipTotals]:
    """Skipped posts and unanswered mentions of ``agent_ids`` over the whole history."""
    out = {agent_id: SkipTotals() for agent_id in agent_ids}
    if not out:
        return out
    rows = await conn.execute(
        sa.select(events.c.agent_id, events.c.type, events.c.result)
        .where(events.c.agent_id.in_(sa.bindparam("ids", expanding=True)), events.c.status == "done",
               events.c.type.in_(("post.due", "mention.received"))),
        {"ids": list(out)})
    for agent_id, kind, result in rows:
        totals = out[agent_id]
        if kind == "post.due":
            totals.posts.add(post_skip(result))
        elif (result or {}).get("decision") != "deferred":  # a deferred mention is counted when answered
            totals.replies.add(reply_skip(result))
    return out
