"""The memory contract: what an agent remembers, and how it finds it again.

A :class:`Memory` is one thing an agent knows or did (a core fact, a post, a
reply, a trade…), stored with the vector of its text. :meth:`MemoryStore.search_memories`
takes the memories most similar to the query and ranks them by

    score = cosine(query, memory) + importance_weight * importance
            + recency_weight * 0.5 ** (age / half_life)

as :class:`RankingWeights` defines. Two stores implement the
contract on the engine's database: ``SQLiteStore`` (exact search over an
in-memory numpy matrix) and ``PostgresStore`` (pgvector HNSW, re-ranked).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, get_args

import numpy as np

if TYPE_CHECKING:
    from puppet_engine.memory.embeddings.base import Embedder
    from puppet_engine.memory.relationships import RelationshipStore
    from puppet_engine.settings import Settings

MemoryKind = Literal[
    "core", "post", "reply", "mention", "trade", "event", "knowledge", "relationship", "quarantined", "feedback"
]
MEMORY_KINDS: tuple[str, ...] = get_args(MemoryKind)
METADATA_MAX_BYTES = 16 * 1024  # a memory's metadata, as JSON: notes about a memory, not a file store


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when ``metadata`` is more than :data:`METADATA_MAX_BYTES` as JSON."""
    size = len(json.dumps(metadata, ensure_ascii=False, default=str).encode())
    if size > METADATA_MAX_BYTES:
        raise ValueError(f"memory metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}")


#: Kept for the operator only: a mention flagged as hostile (injection, scam, trade request…),
#: with its flags in ``metadata``. Prompts never search it (:data:`PROMPT_KINDS`).
QUARANTINED: MemoryKind = "quarantined"
#: What an operator rejected in review ("not to say again", with the reason): prompts list it
#: in a section of its own rather than finding it by search.
FEEDBACK: MemoryKind = "feedback"
#: The kinds a prompt may recall by search: every kind but the quarantined and feedback ones.
PROMPT_KINDS: tuple[str, ...] = tuple(k for k in MEMORY_KINDS if k not in (QUARANTINED, FEEDBACK))

#: ``progress(agent_id, done, total)`` is called while :meth:`MemoryStore.reindex` works.
ReindexProgress = Callable[[str, int, int], None]


@dataclass
class Memory:
    """One memory of one agent.

    ``id``, ``agent_id`` and ``created_at`` are filled in by the store when left
    empty (``created_at`` from the store's clock). ``key`` is an optional dedupe
    key: a second memory with the same key for the same agent is not added.
    ``embedding`` may be given precomputed (it must come from the store's
    embedder); stores return it from :meth:`MemoryStore.get` only.
    """

    content: str
    kind: MemoryKind = "event"
    importance: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    id: str | None = None
    agent_id: str | None = None
    key: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    embedder: str | None = None
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MEMORY_KINDS:
            raise ValueError(
                f"memory kind must be one of {', '.join(MEMORY_KINDS)}; got {self.kind!r}"
            )
        if not 0.0 <= float(self.importance) <= 1.0:
            raise ValueError(f"memory importance must be within 0..1; got {self.importance!r}")

    @classmethod
    def stored(
        cls, id: str, agent_id: str, kind: MemoryKind, content: str, importance: float, created_at: float,
        metadata: dict[str, Any], key: str | None, embedder: str | None, dim: int | None,
    ) -> Memory:
        """A memory as its store keeps it, checked when it was written: built without
        ``__init__`` and its checks again (a search builds ten, a third of its own cost)."""
        memory = cls.__new__(cls)
        # Set one by one in the fields' order, as __init__ does (a quarter of the time of a __dict__.update).
        memory.content, memory.kind, memory.importance, memory.metadata = content, kind, importance, metadata
        memory.created_at, memory.id, memory.agent_id, memory.key = created_at, id, agent_id, key
        memory.embedding, memory.embedder, memory.dim = None, embedder, dim
        return memory


class ScoredMemory(NamedTuple):
    """A search hit: the memory, its cosine similarity to the query and its final score.

    Immutable, as a frozen dataclass would be, and a tenth of its cost to build (a search builds ten).
    """

    memory: Memory
    score: float
    similarity: float


@dataclass(frozen=True)
class RankingWeights:
    """How search ranks: the most similar memories, re-ranked by importance and recency.

    A search takes the ``candidates(limit)`` memories most similar to the query
    (cosine), then orders them by ``similarity + importance * importance_of_memory
    + recency * 0.5 ** (age / half_life_seconds)``. Relevance therefore decides
    which memories can appear; importance and recency decide their order. Both
    stores follow this definition exactly (PostgreSQL through its HNSW index).
    """

    importance: float = 0.15
    recency: float = 0.1
    half_life_seconds: float = 7 * 86400.0
    candidate_factor: int = 4
    min_candidates: int = 40

    @classmethod
    def from_settings(cls, settings: Settings) -> RankingWeights:
        return cls(
            importance=settings.memory_importance_weight,
            recency=settings.memory_recency_weight,
            half_life_seconds=settings.memory_recency_half_life_hours * 3600.0,
        )

    def candidates(self, limit: int) -> int:
        """How many of the most similar memories are re-ranked for a search of ``limit``."""
        return max(limit * self.candidate_factor, self.min_candidates, limit)

    def bonus(self, importance: np.ndarray, created_at: np.ndarray, now: float) -> np.ndarray:
        """The part of the score that does not depend on the query."""
        # 0.5 ** (age / half_life) as exp2(-age / half_life), the age floored at 0 (a memory dated
        # ahead of the clock is new): min(created - now, 0) is exactly -max(now - created, 0).
        decay = np.exp2(
            np.minimum(np.asarray(created_at, dtype=np.float64) - now, 0.0) / self.half_life_seconds
        )
        return self.importance * np.asarray(importance, dtype=np.float64) + self.recency * decay


class InitialRelationship(Protocol):
    @property
    def sentiment(self) -> float: ...

    @property
    def familiarity(self) -> float: ...

    @property
    def trust(self) -> float: ...

    @property
    def notes(self) -> list[str]: ...


class InitialMemory(Protocol):
    """What :meth:`MemoryStore.seed_initial` reads (``persona.InitialMemory`` fits)."""

    @property
    def core_memories(self) -> list[str]: ...

    @property
    def recent_events(self) -> list[str]: ...

    @property
    def relationships(self) -> Mapping[str, InitialRelationship]: ...


class MemoryStore(ABC):
    """Persistent, searchable memories, partitioned by agent.

    Every method takes the agent id first; an agent never sees another's
    memories. Stores are safe to share between the agents of one process.
    """

    embedder: Embedder
    relationships: RelationshipStore

    async def add_memory(self, agent_id: str, memory: Memory) -> str:
        """Store one memory (embedding its content) and return its id."""
        return (await self.add_many(agent_id, [memory]))[0]

    @abstractmethod
    async def add_many(self, agent_id: str, memories: Sequence[Memory]) -> list[str]:
        """Store a batch in one transaction; ids come back in order.

        A memory whose ``key`` already exists for the agent is skipped and the
        existing id is returned in its place.
        """

    @abstractmethod
    async def search_memories(
        self, agent_id: str, query: str, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        """The ``limit`` best memories for ``query``, best first, optionally only of ``kinds``.

        Raises ``EmbedderMismatch`` when the agent's memories were embedded by
        another embedder than the store's.
        """

    @abstractmethod
    async def search_vector(
        self, agent_id: str, vector: np.ndarray, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        """Like :meth:`search_memories` with an already embedded query."""

    @abstractmethod
    async def get(self, agent_id: str, memory_id: str) -> Memory | None:
        """One memory with its embedding, or None."""

    @abstractmethod
    async def list_memories(
        self,
        agent_id: str,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Memory]:
        """Memories newest first, ``since <= created_at < until``, one page at a time."""

    @abstractmethod
    async def update(
        self,
        agent_id: str,
        memory_id: str,
        *,
        content: str | None = None,
        importance: float | None = None,
        kind: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Memory | None:
        """Change fields (new content is re-embedded); the updated memory, or None if absent."""

    @abstractmethod
    async def delete(self, agent_id: str, memory_id: str) -> bool:
        """Remove one memory; False if it did not exist."""

    @abstractmethod
    async def clear(self, agent_id: str) -> int:
        """Remove all of an agent's memories; how many were removed."""

    @abstractmethod
    async def count(self, agent_id: str, kind: str | None = None) -> int:
        """How many memories the agent has (of ``kind``)."""

    @abstractmethod
    async def seed_initial(self, agent_id: str, initial_memory: InitialMemory) -> int:
        """Load a config's ``initial_memory`` once: safe to call at every start.

        Core memories and recent events get dedupe keys derived from their
        text; relationships are created only if absent (their evolved state is
        kept). Returns how many memories were added.
        """

    @abstractmethod
    async def reindex(
        self,
        agent_id: str | None = None,
        progress: ReindexProgress | None = None,
        *,
        force: bool = False,
    ) -> int:
        """Re-embed with the current embedder the memories another one embedded (all with ``force``).

        ``agent_id=None`` does every agent. Returns how many memories were re-embedded.
        """

    @abstractmethod
    async def core_memories(self, agent_id: str) -> list[Memory]:
        """The agent's core memories, oldest first (cached; invalidated on writes)."""

    @abstractmethod
    async def recent_memories(
        self, agent_id: str, kind: str = "post", limit: int = 20
    ) -> list[Memory]:
        """The agent's latest memories of ``kind``, newest first (cached; invalidated on writes)."""

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release what the store holds (not the database, which the caller owns)."""
