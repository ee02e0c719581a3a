"""A memory store wrapper that records what an event recalled, for replay.

Searches (the memories a prompt was shown), the latest memories of a kind (the ``feedback``
a prompt lists), listed pages (the post memories engagement reweighs) and relationship
look-ups made while an event is recorded (:mod:`puppet_engine.events.recording`) are noted
with their results; everything else goes to the store untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from puppet_engine.events.recording import capturing, note
from puppet_engine.memory.base import Memory, MemoryStore, ScoredMemory
from puppet_engine.memory.relationships import Relationship


def hit_json(hit: ScoredMemory) -> dict[str, Any]:
    return {**memory_json(hit.memory), "score": hit.score, "similarity": hit.similarity}


def memory_json(m: Memory) -> dict[str, Any]:
    return {"content": m.content, "kind": m.kind, "importance": m.importance, "metadata": m.metadata,
            "created_at": m.created_at, "id": m.id}


def memory_from_json(data: dict[str, Any], agent_id: str) -> Memory:
    return Memory(content=data["content"], kind=data["kind"], importance=data["importance"],
                  metadata=data.get("metadata") or {}, created_at=data.get("created_at"), id=data.get("id"),
                  agent_id=agent_id)


def hit_from_json(data: dict[str, Any], agent_id: str) -> ScoredMemory:
    return ScoredMemory(memory_from_json(data, agent_id), float(data.get("score", 0.0)),
                        float(data.get("similarity", 0.0)))


def relationship_from_json(data: dict[str, Any] | None) -> Relationship | None:
    return None if data is None else Relationship(**data)


class RecordingRelationships:
    """The store's relationships; :meth:`get` is recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, agent_id: str, other: str) -> Relationship | None:
        found: Relationship | None = await self.inner.get(agent_id, other)
        if capturing():
            note("read", {"what": "relationship", "other": other,
                          "relationship": dataclasses.asdict(found) if found is not None else None})
        return found


class RecordingMemory:
    """Delegates to ``inner`` (any :class:`MemoryStore`); the reads a decision uses are recorded."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.relationships = RecordingRelationships(inner.relationships)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def search_memories(self, agent_id: str, query: str, limit: int = 10,
                              kinds: Sequence[str] | None = None) -> list[ScoredMemory]:
        hits = await self.inner.search_memories(agent_id, query, limit=limit, kinds=kinds)
        if capturing():
            note("read", {"what": "memories", "query": query, "hits": [hit_json(h) for h in hits]})
        return hits

    async def recent_memories(self, agent_id: str, kind: str = "post", limit: int = 20) -> list[Memory]:
        found = await self.inner.recent_memories(agent_id, kind=kind, limit=limit)
        if capturing():
            note("read", {"what": "recent_memories", "kind": kind, "memories": [memory_json(m) for m in found]})
        return found

    async def list_memories(self, agent_id: str, kind: str | None = None, since: float | None = None,
                            until: float | None = None, limit: int = 50, offset: int = 0) -> list[Memory]:
        found = await self.inner.list_memories(agent_id, kind=kind, since=since, until=until, limit=limit,
                                               offset=offset)
        if capturing():
            note("read", {"what": "listed_memories", "kind": kind, "memories": [memory_json(m) for m in found]})
        return found
