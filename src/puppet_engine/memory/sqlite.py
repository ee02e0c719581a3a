"""Memories in the engine's SQLite database, searched exactly with numpy.

Embeddings are stored as packed little-endian float32 in ``memories.embedding``.
Each agent's vectors are loaded into a :class:`VectorIndex` on its first search
and kept in step with this store's writes. (This Python's ``sqlite3`` cannot load
extensions, so sqlite-vec is not an option; exact search over a numpy matrix is
fast enough for hundreds of thousands of memories per agent.)

The index assumes this process is the main writer of the agent's memories, as
the engine's per-agent leases guarantee; writes from another process (the CLI
adding a memory while the engine runs) are picked up within ``refresh_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from puppet_engine.memory.base import Memory, ScoredMemory
from puppet_engine.memory.index import IndexHit, VectorIndex
from puppet_engine.memory.store import LIGHT_COLUMNS, SQLMemoryStore, check_kinds
from puppet_engine.storage import async_url
from puppet_engine.storage.tables import memories

# Searches run inline (100k memories: a few milliseconds of numpy); only much larger
# indexes go to a worker thread, whose hand-off costs more than it saves below that.
_THREAD_THRESHOLD = 500_000
_LOAD_BATCH = 5000
_READER_MMAP_BYTES = 1 << 30  # address space only; the pages are the OS's file cache
_READER_CACHE_KIB = 32 * 1024


class _Reader:
    """Reads memory rows by id on a plain sqlite3 connection, from any thread.

    Search results are fetched here rather than through the async engine: one
    primary-key lookup costs microseconds, while a connection and statement through
    SQLAlchemy cost a few hundred (with aiosqlite's thread hand-offs, a millisecond:
    as much as searching 15,000 vectors).
    """

    _SQL = "SELECT {cols} FROM memories WHERE id IN ({marks})"
    _COLUMNS: ClassVar[list[str]] = [c.name for c in LIGHT_COLUMNS]

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA query_only = ON")
        self._conn.row_factory = sqlite3.Row  # rows read by name, built in C
        # A search reads ~10 rows at random: through a memory map, and with more pages kept,
        # that is memory reads instead of a read() call per page (54 → 32 µs for 10 rows at 10k).
        self._conn.execute(f"PRAGMA mmap_size = {_READER_MMAP_BYTES}")
        self._conn.execute(f"PRAGMA cache_size = -{_READER_CACHE_KIB}")
        self._lock = threading.Lock()
        self._statements: dict[int, str] = {}  # by number of ids: built once (style rule 14)

    def _statement(self, count: int) -> str:
        sql = self._statements.get(count)
        if sql is None:
            sql = self._statements[count] = self._SQL.format(
                cols=", ".join(f'"{c}"' for c in self._COLUMNS), marks=", ".join("?" * count)
            )
        return sql

    def rows(self, ids: list[str]) -> list[sqlite3.Row]:
        if not ids:
            return []
        sql = self._statement(len(ids))
        with self._lock:
            return self._conn.execute(sql, ids).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _AgentIndex:
    def __init__(self, index: VectorIndex) -> None:
        self.index = index
        self.checked_at = time.monotonic()


class SQLiteStore(SQLMemoryStore):
    """The embedded default store (also works on PostgreSQL, without pgvector)."""

    refresh_seconds: float = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexes: dict[str, _AgentIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._read_conn: _Reader | None = None
        path = make_url(async_url(self.db.url)).database
        self._db_path = (
            path if path and path != ":memory:" and self.db.dialect == "sqlite" else None
        )

    def _lock(self, agent_id: str) -> asyncio.Lock:
        lock = self._locks.get(agent_id)
        if lock is None:
            lock = self._locks[agent_id] = asyncio.Lock()
        return lock

    async def _load(self, agent_id: str) -> VectorIndex:
        """Read every vector of the agent (checking embedders on the way)."""
        dim = self.embedder.dim
        index = VectorIndex(dim, self.weights)
        groups: dict[tuple[str | None, int | None], int] = {}
        query = sa.select(
            memories.c.id,
            memories.c.kind,
            memories.c.importance,
            memories.c.created_at,
            memories.c.embedding,
            memories.c.embedder,
            memories.c.dim,
        ).where(memories.c.agent_id == agent_id)
        async with self.db.connect() as conn:
            result = await conn.stream(query)
            async for chunk in result.partitions(_LOAD_BATCH):
                for row in chunk:
                    groups[(row.embedder, row.dim)] = groups.get((row.embedder, row.dim), 0) + 1
                self.check_groups(agent_id, [(name, d, n) for (name, d), n in groups.items()])
                blob = b"".join(row.embedding for row in chunk)
                index.add(
                    [row.id for row in chunk],
                    np.frombuffer(blob, dtype="<f4").reshape(len(chunk), dim),
                    [row.importance for row in chunk],
                    [row.created_at for row in chunk],
                    [row.kind for row in chunk],
                )
        self._verified.add(agent_id)
        return index

    async def _index_for(self, agent_id: str) -> VectorIndex:
        held = self._indexes.get(agent_id)
        if held is not None and time.monotonic() - held.checked_at < self.refresh_seconds:
            return held.index
        # Cheap staleness check: another process may have written.
        if held is not None and await self.count(agent_id) == len(held.index):
            held.checked_at = time.monotonic()
            return held.index
        index = await self._load(agent_id)
        self._indexes[agent_id] = _AgentIndex(index)
        return index

    async def search_vector(
        self, agent_id: str, vector: np.ndarray, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        wanted = check_kinds(kinds)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        now = self.clock.now()
        async with self._lock(agent_id):
            index = await self._index_for(agent_id)
            if query.shape[0] != index.dim:
                raise ValueError(
                    f"query vector has {query.shape[0]} dimensions; the index has {index.dim}"
                )
            reader = self._reader()
            if reader is not None:
                # Top k and their rows in one go (numpy and sqlite3 release the GIL in a thread).
                work = functools.partial(
                    self._search_and_read, reader, index, query, limit, now, wanted
                )
                hits, rows = (
                    await asyncio.to_thread(work) if len(index) >= _THREAD_THRESHOLD else work()
                )
                found = {row["id"]: self._row_memory(row) for row in rows if row["agent_id"] == agent_id}
            else:
                hits = index.search(query, limit, now=now, kinds=wanted)
                found = await self.fetch_by_ids(agent_id, [hit.id for hit in hits])
        return [ScoredMemory(found[h.id], h.score, h.similarity) for h in hits if h.id in found]

    def _row_memory(self, row: sqlite3.Row) -> Memory:
        """:meth:`_to_memory` for a raw sqlite3 row (JSON metadata as text): the search's hot path."""
        meta = row["metadata"]
        return Memory(
            id=row["id"],
            agent_id=row["agent_id"],
            kind=row["kind"],
            content=self._decrypt(row),
            importance=float(row["importance"]),
            created_at=float(row["created_at"]),
            metadata=(json.loads(meta) or {}) if meta and meta != "{}" else {},
            key=row["key"],
            embedder=row["embedder"],
            dim=row["dim"],
        )

    @staticmethod
    def _search_and_read(
        reader: _Reader,
        index: VectorIndex,
        query: np.ndarray,
        limit: int,
        now: float,
        kinds: list[str] | None,
    ) -> tuple[list[IndexHit], list[sqlite3.Row]]:
        hits = index.search(query, limit, now=now, kinds=kinds)
        return hits, reader.rows([hit.id for hit in hits])

    def _reader(self) -> _Reader | None:
        """A read-only sqlite3 connection to the same file (None for in-memory databases)."""
        if self._read_conn is None and self._db_path is not None:
            self._read_conn = _Reader(self._db_path)
        return self._read_conn

    # ------------------------------------------------------------------ keeping the index in step

    async def _after_add(
        self, agent_id: str, rows: list[dict[str, Any]], vectors: np.ndarray
    ) -> None:
        # Under the lock: a load in progress finishes first, then this add lands in it.
        async with self._lock(agent_id):
            held = self._indexes.get(agent_id)
            if held is None:
                return
            held.index.add(
                [r["id"] for r in rows],
                vectors,
                [r["importance"] for r in rows],
                [r["created_at"] for r in rows],
                [r["kind"] for r in rows],
            )

    async def _after_update(self, agent_id: str, memory: Memory, vector: np.ndarray | None) -> None:
        async with self._lock(agent_id):
            held = self._indexes.get(agent_id)
            if held is not None and memory.id is not None:
                held.index.update(
                    memory.id, vector=vector, importance=memory.importance, kind=memory.kind
                )

    async def _after_delete(self, agent_id: str, ids: list[str]) -> None:
        async with self._lock(agent_id):
            held = self._indexes.get(agent_id)
            if held is not None:
                held.index.remove(ids)

    async def _after_reindex(self, agent_id: str) -> None:
        self._indexes.pop(agent_id, None)

    async def close(self) -> None:
        await super().close()
        self._indexes.clear()
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
