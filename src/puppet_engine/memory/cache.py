"""A small per-agent cache for hot reads (core memories, recent posts).

Entries live ``ttl`` seconds at most, so writes made by another process show up
soon; writes made through the store invalidate the agent's entries at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class HotCache(Generic[T]):
    """``(agent, key) -> value``, at most ``max_agents`` agents, least recently used evicted."""

    def __init__(self, *, max_agents: int = 512, ttl: float = 5.0) -> None:
        self.max_agents = max_agents
        self.ttl = ttl
        self._agents: OrderedDict[str, dict[tuple[object, ...], tuple[float, T]]] = OrderedDict()

    def get(self, agent_id: str, key: tuple[object, ...]) -> T | None:
        entries = self._agents.get(agent_id)
        if entries is None:
            return None
        hit = entries.get(key)
        if hit is None:
            return None
        stored_at, value = hit
        if time.monotonic() - stored_at > self.ttl:
            del entries[key]
            return None
        self._agents.move_to_end(agent_id)
        return value

    def put(self, agent_id: str, key: tuple[object, ...], value: T) -> None:
        entries = self._agents.setdefault(agent_id, {})
        entries[key] = (time.monotonic(), value)
        self._agents.move_to_end(agent_id)
        while len(self._agents) > self.max_agents:
            self._agents.popitem(last=False)

    def invalidate(self, agent_id: str | None = None) -> None:
        """Forget one agent's entries, or everything."""
        if agent_id is None:
            self._agents.clear()
        else:
            self._agents.pop(agent_id, None)
