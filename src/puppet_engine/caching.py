"""Bounded, expiring caches of reads from other services, timed by the engine's clock.

A :class:`ReadCache` is a ``cachetools.TTLCache`` (least recently used entries go first
when it is full, entries expire ``ttl`` seconds after they were stored) whose timer is
the engine's :class:`~puppet_engine.clock.Clock`: on the virtual clock of ``simulate``
and the tests, entries expire in virtual time. Each lookup is counted on an injected
counter (the composition root passes ``puppet_cache_requests_total{cache,result}``), so
this module depends on nothing of the engine. A disabled cache stores nothing and
counts nothing: every lookup goes to the service (``READ_CACHE=false``).

What is cached, for how long and why: ``docs/caching.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Counter(Protocol):
    """What a cache counts its lookups on (a prometheus_client ``Counter`` with labels)."""

    def labels(self, **labels: str) -> Any: ...


class ReadCache(Generic[K, V]):
    """``maxsize`` entries at most, each for ``ttl`` seconds of ``timer``; ``name`` labels its counts."""

    def __init__(self, name: str, *, maxsize: int, ttl: float, timer: Callable[[], float],
                 counter: Counter | None = None, enabled: bool = True) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError(f"cache {name!r}: maxsize must be ≥ 1 and ttl > 0 (got {maxsize}, {ttl})")
        self.name = name
        self.ttl = ttl
        self.enabled = enabled
        self._entries: TTLCache[K, V] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._hit = counter.labels(cache=name, result="hit") if counter is not None else None
        self._miss = counter.labels(cache=name, result="miss") if counter is not None else None
        self.hits = 0
        self.misses = 0

    @property
    def maxsize(self) -> int:
        return int(self._entries.maxsize)

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value stored for ``key`` if it has not expired (a hit), else ``None`` (a miss)."""
        if not self.enabled:
            return None
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            if self._miss is not None:
                self._miss.inc()
        else:
            self.hits += 1
            if self._hit is not None:
                self._hit.inc()
        return value

    def peek(self, key: K) -> V | None:
        """The stored value, if any, without counting a lookup (for the cache's own bookkeeping)."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``ttl`` seconds from now (a newer value replaces an older one)."""
        if self.enabled:
            self._entries[key] = value

    def pop(self, key: K) -> None:
        """Forget ``key`` (our own write changed what the service would answer)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
