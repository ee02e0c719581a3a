"""Agent memory: the MemoryStore contract, the SQLite and PostgreSQL stores, embedders, relationships.

:func:`build_memory_store` picks the store for the engine's database;
:mod:`puppet_engine.memory.embeddings` holds the embedders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from puppet_engine.clock import Clock
from puppet_engine.memory.base import (
    MEMORY_KINDS,
    PROMPT_KINDS,
    QUARANTINED,
    InitialMemory,
    Memory,
    MemoryKind,
    MemoryStore,
    RankingWeights,
    ReindexProgress,
    ScoredMemory,
)
from puppet_engine.memory.crypto import ContentCipher
from puppet_engine.memory.embeddings import (
    Embedder,
    EmbedderMismatch,
    HashingEmbedder,
    LocalEmbedder,
    build_embedder,
)
from puppet_engine.memory.index import VectorIndex
from puppet_engine.memory.relationships import Relationship, RelationshipStore
from puppet_engine.memory.sqlite import SQLiteStore
from puppet_engine.storage import Database

if TYPE_CHECKING:
    from puppet_engine.memory.postgres import PostgresStore
    from puppet_engine.settings import Settings

__all__ = [
    "MEMORY_KINDS",
    "PROMPT_KINDS",
    "QUARANTINED",
    "ContentCipher",
    "Embedder",
    "EmbedderMismatch",
    "HashingEmbedder",
    "InitialMemory",
    "LocalEmbedder",
    "Memory",
    "MemoryKind",
    "MemoryStore",
    "PostgresStore",
    "RankingWeights",
    "ReindexProgress",
    "Relationship",
    "RelationshipStore",
    "SQLiteStore",
    "ScoredMemory",
    "VectorIndex",
    "build_embedder",
    "build_memory_store",
]


def build_memory_store(
    settings: Settings,
    database: Database,
    *,
    embedder: Embedder | None = None,
    clock: Clock | None = None,
) -> MemoryStore:
    """The store for ``database``: pgvector search on PostgreSQL, numpy search on SQLite.

    ``embedder`` defaults to :func:`build_embedder`; content is encrypted when
    ``MEMORY_ENCRYPTION_KEY`` is set; ranking weights come from the settings.
    """
    key = settings.memory_encryption_key
    cipher = (
        ContentCipher(key.get_secret_value())
        if key is not None and key.get_secret_value()
        else None
    )
    store_class: type[SQLiteStore] | type[PostgresStore] = SQLiteStore
    if database.is_postgres:
        from puppet_engine.memory.postgres import PostgresStore

        store_class = PostgresStore
    return store_class(
        database,
        embedder or build_embedder(settings),
        clock=clock,
        weights=RankingWeights.from_settings(settings),
        cipher=cipher,
    )


def __getattr__(name: str) -> object:
    if name == "PostgresStore":
        from puppet_engine.memory.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(name)
