"""Memories in the engine's SQLite database, searched exactly with numpy.

Embeddings are stored as packed little-endian float32 in ``memories.embedding``.
Each agent's memories are loaded on its first search: the vectors and ranking fields
into a :class:`VectorIndex`, the rest of each row beside it, so a search is a matrix
product and runs no SQL. (This Python's ``sqlite3`` cannot load extensions, so
sqlite-vec is not an option; exact search over a numpy matrix is fast enough for
hundreds of thousands of memories per agent.)

This store's own writes update the copy at once. Writes by another connection or
process (the CLI, an API node, another worker) are found at the next search through
the ``facts`` they commit with each change (:mod:`puppet_engine.memory.sqlite_reader`):
a search always ranks what the database holds. An in-memory database has no other
connection; on another database (no reader file) the copy is checked by count every
``refresh_seconds`` and the hits' rows are read from the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from puppet_engine.memory.base import MEMORY_KINDS, Memory, MemoryKind, ScoredMemory
from puppet_engine.memory.index import VectorIndex
from puppet_engine.memory.sqlite_reader import ROW_COLUMNS, FactMark, SQLiteReader
from puppet_engine.memory.store import SQLMemoryStore, check_kinds
from puppet_engine.storage import async_url
from puppet_engine.storage.tables import memories

# Searches run inline (100k memories: a few milliseconds of numpy); only much larger
# indexes go to a worker thread, whose hand-off costs more than it saves below that.
_THREAD_THRESHOLD = 500_000
_LOAD_BATCH = 5000

#: What the index keeps of a row beside its vector, importance and time: kind, content (as
#: stored), encrypted, metadata (JSON text) and key. Embedder and dimension are the store's:
#: rows of another are never kept.
Entry = tuple[MemoryKind, str, bool, str, str | None]
_NO_METADATA = "{}"
# One string object per kind: a kept row refers to it, and a search's hits share the copy in cache.
_KINDS = {kind: cast(MemoryKind, kind) for kind in MEMORY_KINDS}
# Builds a ScoredMemory from a tuple in C, as the namedtuple's own __new__ does in Python.
_scored_memory = tuple.__new__


class _AgentIndex:
    """One agent's memories in process: vectors and ranking fields, and (``keeps_rows``) each
    row's other columns as the index's payloads; without, hits are read from the database."""

    __slots__ = ("checked_at", "deferred", "index", "keeps_rows")

    def __init__(self, index: VectorIndex, keeps_rows: bool) -> None:
        self.index = index
        self.keeps_rows = keeps_rows
        self.checked_at = time.monotonic()
        self.deferred: set[str] = set()  # changed by others while this agent's search ran


class SQLiteStore(SQLMemoryStore):
    """The embedded default store (also works on PostgreSQL, without pgvector)."""

    refresh_seconds: float = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexes: dict[str, _AgentIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._read_conn: SQLiteReader | None = None
        path = make_url(async_url(self.db.url)).database
        self._db_path = (
            path if path and path != ":memory:" and self.db.dialect == "sqlite" else None
        )
        self._mark: FactMark | None = None  # the newest fact seen
        # Agents whose index is loading → memories changed meanwhile (None: reload everything).
        self._pending: dict[str, set[str] | None] = {}

    def _lock(self, agent_id: str) -> asyncio.Lock:
        lock = self._locks.get(agent_id)
        if lock is None:
            lock = self._locks[agent_id] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ search

    async def search_vector(
        self, agent_id: str, vector: np.ndarray, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        wanted = check_kinds(kinds)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        now = self.clock.now()
        lock = self._lock(agent_id)
        if not lock.locked():
            held = self._current(agent_id)
            if held is not None and len(held.index) < _THREAD_THRESHOLD:
                # Nothing below awaits, so no other task can touch this agent's index meanwhile:
                # the lock (held by loads, writes and threaded searches) would change nothing.
                return self._ranked(agent_id, held, query, limit, now, wanted)
        async with lock:
            held = await self._held(agent_id)
            if held.keeps_rows and len(held.index) < _THREAD_THRESHOLD:
                return self._ranked(agent_id, held, query, limit, now, wanted)
            self._check_dim(held.index, query)
            if len(held.index) >= _THREAD_THRESHOLD:  # numpy releases the GIL
                hits = await asyncio.to_thread(held.index.search, query, limit, now=now, kinds=wanted)
            else:
                hits = held.index.search(query, limit, now=now, kinds=wanted)
            if not held.keeps_rows:
                found = await self.fetch_by_ids(agent_id, [hit.id for hit in hits])
                return [ScoredMemory(found[h.id], h.score, h.similarity) for h in hits if h.id in found]
            scored = self._scored(agent_id)
            return [scored(*hit) for hit in hits]

    def _ranked(
        self, agent_id: str, held: _AgentIndex, query: np.ndarray, limit: int, now: float,
        kinds: list[str] | None,
    ) -> list[ScoredMemory]:
        """The search itself on a kept index: a matrix product and the kept rows, no SQL."""
        self._check_dim(held.index, query)
        return held.index.ranked(query, limit, self._scored(agent_id), now=now, kinds=kinds)

    @staticmethod
    def _check_dim(index: VectorIndex, query: np.ndarray) -> None:
        if query.shape[0] != index.dim:
            raise ValueError(f"query vector has {query.shape[0]} dimensions; the index has {index.dim}")

    def _scored(self, agent_id: str) -> Callable[[str, float, float, float, float, Entry], ScoredMemory]:
        """What makes a search hit of one of the agent's kept rows: the search's hot path, called
        by the index for each of the best rows (metadata parsed afresh for each caller)."""
        # Every kept row's embedder and dimension: another embedder's rows are never kept.
        embedder, dim, decrypt, stored = self.embedder.name, self.embedder.dim, self._decrypt, Memory.stored

        def scored(
            memory_id: str, score: float, similarity: float, importance: float, created_at: float, row: Entry
        ) -> ScoredMemory:
            kind, content, encrypted, meta, key = row
            if encrypted:
                content = decrypt({"id": memory_id, "agent_id": agent_id, "content": content, "encrypted": True})
            memory = stored(
                memory_id, agent_id, kind, content, importance, created_at,
                (json.loads(meta) or {}) if meta != _NO_METADATA else {}, key, embedder, dim,
            )
            return _scored_memory(ScoredMemory, (memory, score, similarity))

        return scored

    def _current(self, agent_id: str) -> _AgentIndex | None:
        """The agent's kept index brought up to date, when it is kept (no await: see search_vector)."""
        reader = self._reader()
        if reader is None:
            return None
        self._follow(reader, agent_id)
        held = self._indexes.get(agent_id)
        if held is not None and held.deferred:
            ids, held.deferred = held.deferred, set()
            if not self._refresh(reader, agent_id, held, ids):
                self._indexes.pop(agent_id, None)
                return None
        return held

    async def _held(self, agent_id: str) -> _AgentIndex:
        """The agent's index, loaded on first use and brought up to date with the database."""
        reader = self._reader()
        if reader is None:
            return await self._held_by_count(agent_id)
        held = self._current(agent_id)
        return held if held is not None else await self._load_following(reader, agent_id)

    async def _held_by_count(self, agent_id: str) -> _AgentIndex:
        held = self._indexes.get(agent_id)
        if held is not None and time.monotonic() - held.checked_at < self.refresh_seconds:
            return held
        # Cheap staleness check: another process may have written.
        if held is not None and await self.count(agent_id) == len(held.index):
            held.checked_at = time.monotonic()
            return held
        held = self._indexes[agent_id] = _AgentIndex(await self._load(agent_id, False), False)
        return held

    # ------------------------------------------------------------------ loading and following

    async def _load(self, agent_id: str, keep_rows: bool, reader: SQLiteReader | None = None) -> VectorIndex:
        """Read every memory of the agent (checking embedders on the way), with its rows if asked:
        on the read-only connection when there is one (no statement machinery), else the database's."""
        index = VectorIndex(self.embedder.dim, self.weights)
        groups: dict[tuple[str | None, int | None], int] = {}
        if reader is not None:
            with reader.agent_rows(agent_id, _LOAD_BATCH) as batches:
                for rows in batches:
                    self._add_loaded(agent_id, index, groups, rows, keep_rows)
        else:
            columns: list[sa.ColumnElement[Any]] = [memories.c.id, memories.c.agent_id]
            columns += [sa.type_coerce(memories.c.metadata, sa.Text) if c == "metadata" else memories.c[c]
                        for c in ROW_COLUMNS]  # metadata as its JSON text, parsed per hit
            query = sa.select(*columns, memories.c.embedding).where(memories.c.agent_id == agent_id)
            async with self.db.connect() as conn:
                result = await conn.stream(query)
                async for chunk in result.partitions(_LOAD_BATCH):
                    self._add_loaded(agent_id, index, groups, chunk, keep_rows)
        self._verified.add(agent_id)
        return index

    def _add_loaded(self, agent_id: str, index: VectorIndex, groups: dict[tuple[str | None, int | None], int],
                    rows: Sequence[Sequence[Any]], keep_rows: bool) -> None:
        """One batch of a load: rows as :meth:`SQLiteReader.rows` gives them; embedders checked first."""
        for row in rows:
            groups[(row[9], row[10])] = groups.get((row[9], row[10]), 0) + 1
        self.check_groups(agent_id, [(name, d, n) for (name, d), n in groups.items()])
        blob = b"".join(row[-1] for row in rows)
        index.add(
            [row[0] for row in rows],
            np.frombuffer(blob, dtype="<f4").reshape(len(rows), self.embedder.dim),
            [row[5] for row in rows],
            [row[6] for row in rows],
            [row[2] for row in rows],
            [_kept(row[2:9]) for row in rows] if keep_rows else None,
        )

    async def _load_following(self, reader: SQLiteReader, agent_id: str) -> _AgentIndex:
        """Load the agent, then apply what others changed while it loaded."""
        while True:
            self._pending[agent_id] = set()
            try:
                held = _AgentIndex(await self._load(agent_id, True, reader), True)
                self._follow(reader, agent_id)
                changed = self._pending.get(agent_id)
            finally:
                self._pending.pop(agent_id, None)
            # No await from here on: nothing else runs before the index is in place.
            if changed is not None and (not changed or self._refresh(reader, agent_id, held, changed)):
                self._indexes[agent_id] = held
                return held

    def _follow(self, reader: SQLiteReader, current: str) -> None:
        """Apply what other connections committed since the last look (under a µs when nothing)."""
        if not reader.changed():
            return
        newest, mark = reader.newest_fact(), self._mark
        self._mark = newest
        if newest == mark:
            return
        if newest is None or (mark is not None and (newest.id < mark.id or not reader.still_there(mark))):
            self._forget_all()  # facts were pruned under us: read everything again
            return
        changed: dict[str, set[str]] = {}
        for fact in reader.memory_facts(mark.id if mark else 0, newest.id):
            held = self._indexes.get(fact.agent_id)
            if held is not None:
                if fact.kind != "memory_added" or fact.memory_id not in held.index:
                    changed.setdefault(fact.agent_id, set()).add(fact.memory_id)
            elif (pending := self._pending.get(fact.agent_id)) is not None:
                pending.add(fact.memory_id)
        for agent_id, ids in changed.items():
            held = self._indexes[agent_id]
            lock = self._locks.get(agent_id)
            if agent_id != current and lock is not None and lock.locked():
                held.deferred |= ids  # its search is running (perhaps on a thread): applied next time
            elif not self._refresh(reader, agent_id, held, ids):
                self._indexes.pop(agent_id, None)

    def _forget_all(self) -> None:
        self._indexes.clear()
        for agent_id in self._pending:
            self._pending[agent_id] = None

    def _refresh(self, reader: SQLiteReader, agent_id: str, held: _AgentIndex, ids: Iterable[str]) -> bool:
        """Read ``ids`` again into ``held``: present rows replace the kept ones, gone ones are dropped.

        False when a row comes from another embedder: the agent is then loaded again, which
        raises :class:`EmbedderMismatch` as a first load would.
        """
        wanted = set(ids)
        found = [row for row in reader.rows(wanted) if row[1] == agent_id]
        current = (self.embedder.name, self.embedder.dim)
        if any((row[9], row[10]) != current for row in found):
            self._verified.discard(agent_id)
            return False
        gone = wanted - {row[0] for row in found}
        held.index.remove(list(gone))
        if found:
            held.index.add(
                [row[0] for row in found],
                np.frombuffer(b"".join(row[-1] for row in found), dtype="<f4").reshape(len(found), -1),
                [row[5] for row in found],
                [row[6] for row in found],
                [row[2] for row in found],
                [_kept(row[2:9]) for row in found] if held.keeps_rows else None,
            )
        return True

    def _reader(self) -> SQLiteReader | None:
        """A read-only sqlite3 connection to the same file (None for in-memory databases)."""
        if self._read_conn is None and self._db_path is not None:
            self._read_conn = SQLiteReader(self._db_path)
            # Nothing is loaded yet: what loads next reads everything committed up to here.
            self._mark = self._read_conn.newest_fact()
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
                [_entry(r) for r in rows] if held.keeps_rows else None,
            )

    async def _after_update(self, agent_id: str, memory: Memory, vector: np.ndarray | None) -> None:
        async with self._lock(agent_id):
            held = self._indexes.get(agent_id)
            if held is None or memory.id is None:
                return
            reader = self._reader()
            if reader is not None:  # the row as stored (content encrypted or not)
                if not self._refresh(reader, agent_id, held, [memory.id]):
                    self._indexes.pop(agent_id, None)
            else:
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
        if agent_id in self._pending:
            self._pending[agent_id] = None

    async def close(self) -> None:
        await super().close()
        self._indexes.clear()
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def _kept(row: Sequence[Any]) -> Entry:
    """A row's :data:`ROW_COLUMNS` from ``kind`` to ``key`` (metadata as JSON text) as an :data:`Entry`."""
    kind, content, encrypted, _importance, _created_at, meta, key = row
    return (_KINDS[kind], content, bool(encrypted), _NO_METADATA if meta == _NO_METADATA else meta, key)


def _entry(row: dict[str, Any]) -> Entry:
    """A row as written by :meth:`SQLMemoryStore._row` (metadata a dict) as a kept :data:`Entry`."""
    meta = row["metadata"]
    return _kept((row["kind"], row["content"], row["encrypted"], row["importance"],
                  row["created_at"], json.dumps(meta) if meta else _NO_METADATA, row["key"]))
