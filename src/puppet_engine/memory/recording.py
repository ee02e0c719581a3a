"""A memory store wrapper that records what an event recalled, for replay.

Searches (the memories a prompt was shown) and relationship look-ups made while an event
is recorded (:mod:`puppet_engine.events.recording`) are noted with their results; everything
else goes to the store untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from puppet_engine.events.recording import capturing, note
from puppet_engine.memory.base import Memory, MemoryStore, ScoredMemory
from puppet_engine.memory.relationships import Relationship


def hit_json(hit: ScoredMemory) -> dict[str, Any]:
    m = hit.memory
    return {"content": m.content, "kind": m.kind, "importance": m.importance, "metadata": m.metadata,
            "created_at": m.created_at, "id": m.id, "score": hit.score, "similarity": hit.similarity}


def hit_from_json(data: dict[str, Any], agent_id: str) -> ScoredMemory:
    memory = Memory(content=data["content"], kind=data["kind"], importance=data["importance"],
                    metadata=data.get("metadata") or {}, created_at=data.get("created_at"), id=data.get("id"),
                    agent_id=agent_id)
    return ScoredMemory(memory, float(data.get("score", 0.0)), float(data.get("similarity", 0.0)))


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
    """Delegates to ``inner`` (any :class:`MemoryStore`); searches are recorded."""

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
