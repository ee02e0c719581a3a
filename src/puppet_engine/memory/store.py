"""What both SQL stores share: rows, embedding on write, encryption, the hot cache, mismatch checks.

:class:`SQLMemoryStore` implements the whole :class:`MemoryStore` contract on
the ``memories`` table except the vector search itself, which ``SQLiteStore``
(numpy) and ``PostgresStore`` (pgvector) supply, together with hooks that keep
their index in step with writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.clock import Clock, WallClock
from puppet_engine.errors import ConfigError
from puppet_engine.memory.base import (
    MEMORY_KINDS,
    InitialMemory,
    Memory,
    MemoryKind,
    MemoryStore,
    RankingWeights,
    ReindexProgress,
    ScoredMemory,
    check_metadata,
)
from puppet_engine.memory.cache import HotCache
from puppet_engine.memory.crypto import ContentCipher
from puppet_engine.memory.embeddings.base import Embedder, EmbedderMismatch, normalize_rows
from puppet_engine.memory.relationships import RelationshipStore
from puppet_engine.storage import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.repos import facts
from puppet_engine.storage.sql import cached
from puppet_engine.storage.tables import memories

#: Every column but the embedding: what lists and searches read.
LIGHT_COLUMNS = [c for c in memories.c if c.name != "embedding"]
#: What the history keeps of a forgotten memory (``memory_forgotten`` facts).
FORGOTTEN_COLUMNS = [memories.c[n] for n in ("id", "kind", "content", "encrypted", "importance", "created_at")]
log = logging.getLogger(__name__)
_WRITE_CHUNK = 2000
_REINDEX_BATCH = 256


def pack(vector: np.ndarray) -> bytes:
    """A vector as packed little-endian float32 (the ``memories.embedding`` format)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def seed_key(kind: str, text: str) -> str:
    """Dedupe key of a seeded memory: the same text is seeded once."""
    return f"seed:{kind}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"


def check_kinds(kinds: Sequence[str] | None) -> list[str] | None:
    if not kinds:
        return None
    unknown = [k for k in kinds if k not in MEMORY_KINDS]
    if unknown:
        raise ValueError(f"unknown memory kind(s) {unknown}; expected {', '.join(MEMORY_KINDS)}")
    return list(kinds)


def _listing(kind: bool, since: bool, until: bool) -> Prepared:
    """An agent's memories newest first, one page (of a kind, in a time range, when asked):
    built once per shape, run with parameters (``list_memories`` runs in every post)."""

    def build() -> sa.Select[Any]:
        query = sa.select(*LIGHT_COLUMNS).where(memories.c.agent_id == sa.bindparam("b_agent"))
        if kind:
            query = query.where(memories.c.kind == sa.bindparam("b_kind"))
        if since:
            query = query.where(memories.c.created_at >= sa.bindparam("b_since", type_=sa.Float))
        if until:
            query = query.where(memories.c.created_at < sa.bindparam("b_until", type_=sa.Float))
        return (query.order_by(memories.c.created_at.desc(), memories.c.id.desc())
                .limit(sa.bindparam("b_limit", type_=sa.Integer)).offset(sa.bindparam("b_offset", type_=sa.Integer)))

    return cached(("memories.list", kind, since, until), lambda: Prepared(build()))


_INSERT = Prepared(sa.insert(memories))


class SQLMemoryStore(MemoryStore):
    """The shared body of the SQL stores; subclasses add vector search."""

    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        *,
        clock: Clock | None = None,
        weights: RankingWeights | None = None,
        cipher: ContentCipher | None = None,
        cache_ttl: float = 5.0,
    ) -> None:
        self.db = database
        self.embedder = embedder
        self.clock = clock or WallClock()
        self.weights = weights or RankingWeights()
        self.cipher = cipher
        self.relationships = RelationshipStore(database, self.clock)
        self._cache: HotCache[list[Memory]] = HotCache(ttl=cache_ttl)
        self._verified: set[str] = set()  # agents whose stored embeddings match the embedder
        # Seeding deferred while the embedder's model loads: agent id → its task (reads wait for it).
        self._seeding: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    async def search_vector(
        self, agent_id: str, vector: np.ndarray, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        """The search itself. Raises :class:`EmbedderMismatch` when the agent's memories come
        from another embedder (:meth:`ensure_embedder`, or the same check on the rows it loads):
        :meth:`search_memories` leaves that check to it, so a first search reads the rows once."""

    async def _insert_rows(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], vectors: np.ndarray
    ) -> None:
        await _INSERT.run(conn, rows)

    async def _write_embeddings(
        self, conn: AsyncConnection, ids: list[str], vectors: np.ndarray
    ) -> None:
        stmt = (
            sa.update(memories)
            .where(memories.c.id == sa.bindparam("b_id"))
            .values(
                embedding=sa.bindparam("b_embedding"),
                embedder=self.embedder.name,
                dim=self.embedder.dim,
            )
        )
        await conn.execute(
            stmt, [{"b_id": i, "b_embedding": pack(v)} for i, v in zip(ids, vectors, strict=True)]
        )

    async def _after_add(
        self, agent_id: str, rows: list[dict[str, Any]], vectors: np.ndarray
    ) -> None:
        """Called after rows were committed."""

    async def _after_update(self, agent_id: str, memory: Memory, vector: np.ndarray | None) -> None:
        """Called after one memory changed (``vector`` is set when its content did)."""

    async def _after_delete(self, agent_id: str, ids: list[str]) -> None:
        """Called after memories were deleted."""

    async def _after_reindex(self, agent_id: str) -> None:
        """Called after an agent's embeddings were rewritten (or all of its memories removed)."""

    # ------------------------------------------------------------------ helpers

    def _touch(self, agent_id: str) -> None:
        self._cache.invalidate(agent_id)

    async def ensure_embedder(self, agent_id: str) -> None:
        """Raise :class:`EmbedderMismatch` if the agent's memories come from another embedder."""
        if agent_id in self._verified:
            return
        query = (
            sa.select(memories.c.embedder, memories.c.dim, sa.func.count())
            .where(memories.c.agent_id == agent_id)
            .group_by(memories.c.embedder, memories.c.dim)
        )
        async with self.db.connect() as conn:
            groups = (await conn.execute(query)).all()
        self.check_groups(agent_id, [(name, dim, int(n)) for name, dim, n in groups])
        self._verified.add(agent_id)

    def check_groups(
        self, agent_id: str, groups: Sequence[tuple[str | None, int | None, int]]
    ) -> None:
        current = (self.embedder.name, self.embedder.dim)
        foreign = [(name, dim, n) for name, dim, n in groups if (name, dim) != current]
        if foreign:
            name, dim, n = max(foreign, key=lambda g: g[2])
            stored = f"{name or 'no embedder'} (dim {dim}) for {n} of them"
            raise EmbedderMismatch(agent_id, stored, self.embedder.describe())

    def _decrypt(self, row: Any) -> str:
        if not row["encrypted"]:
            return str(row["content"])
        if self.cipher is None:
            raise ConfigError(
                f"memory {row['id']} of agent {row['agent_id']!r} is encrypted; set MEMORY_ENCRYPTION_KEY to read it"
            )
        return self.cipher.decrypt(row["content"], agent_id=row["agent_id"], memory_id=row["id"])

    def _to_memory(self, row: Any) -> Memory:
        blob = row.get("embedding")
        return Memory(
            id=row["id"],
            agent_id=row["agent_id"],
            kind=row["kind"],
            content=self._decrypt(row),
            importance=float(row["importance"]),
            created_at=float(row["created_at"]),
            metadata=dict(row["metadata"] or {}),
            key=row["key"],
            embedding=unpack(blob) if blob is not None else None,
            embedder=row["embedder"],
            dim=row["dim"],
        )

    async def _embed_for(self, agent_id: str, batch: Sequence[Memory]) -> np.ndarray:
        """Vectors for a batch: given ones checked, missing ones computed in one call."""
        dim = self.embedder.dim
        out = np.zeros((len(batch), dim), dtype=np.float32)
        missing = [i for i, m in enumerate(batch) if m.embedding is None]
        for i, m in enumerate(batch):
            if m.embedding is None:
                continue
            given = np.asarray(m.embedding, dtype=np.float32).reshape(-1)
            if (m.embedder or self.embedder.name) != self.embedder.name or given.shape[0] != dim:
                stored = f"{m.embedder or self.embedder.name} (dim {given.shape[0]})"
                raise EmbedderMismatch(
                    agent_id, f"{stored} for a precomputed vector", self.embedder.describe()
                )
            out[i] = given
        if missing:
            out[missing] = await self.embedder.embed([batch[i].content for i in missing])
        return normalize_rows(out)

    # ------------------------------------------------------------------ writes

    async def add_many(self, agent_id: str, memories_in: Sequence[Memory]) -> list[str]:
        batch = list(memories_in)
        if not batch:
            return []
        for m in batch:
            check_metadata(m.metadata)
        await self.ensure_embedder(agent_id)
        keys = sorted({m.key for m in batch if m.key})
        existing: dict[str, str] = {}
        if keys:
            async with self.db.connect() as conn:
                found = await conn.execute(
                    sa.select(memories.c.key, memories.c.id).where(
                        memories.c.agent_id == agent_id, memories.c.key.in_(keys)
                    )
                )
                existing = {k: i for k, i in found.all()}
        ids: list[str] = []
        todo: list[Memory] = []
        for m in batch:
            if m.key and m.key in existing:
                ids.append(existing[m.key])
                continue
            mid = m.id or uuid.uuid4().hex
            if m.key:
                existing[m.key] = mid  # a repeated key inside the batch is added once
            ids.append(mid)
            todo.append(Memory(**{**m.__dict__, "id": mid}))
        if not todo:
            return ids
        vectors = await self._embed_for(agent_id, todo)
        now = self.clock.now()
        rows = [self._row(agent_id, m, v, now) for m, v in zip(todo, vectors, strict=True)]
        async with self.db.transaction() as conn:
            for start in range(0, len(rows), _WRITE_CHUNK):
                await self._insert_rows(
                    conn, rows[start : start + _WRITE_CHUNK], vectors[start : start + _WRITE_CHUNK]
                )
            await facts.insert(conn, [facts.fact(agent_id, "memory_added", {
                k: r[k] for k in ("id", "kind", "importance", "created_at")}, now) for r in rows])
        self._touch(agent_id)
        await self._after_add(agent_id, rows, vectors)
        return ids

    def _row(self, agent_id: str, m: Memory, vector: np.ndarray, now: float) -> dict[str, Any]:
        assert m.id is not None
        content = m.content
        if self.cipher is not None:
            content = self.cipher.encrypt(content, agent_id=agent_id, memory_id=m.id)
        return {
            "id": m.id,
            "agent_id": agent_id,
            "kind": m.kind,
            "content": content,
            "encrypted": self.cipher is not None,
            "importance": float(m.importance),
            "created_at": float(m.created_at if m.created_at is not None else now),
            "metadata": dict(m.metadata),
            "embedding": pack(vector),
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "key": m.key,
        }

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
        if metadata is not None:
            check_metadata(metadata)
        current = await self.get(agent_id, memory_id)
        if current is None:
            return None
        changed = Memory(
            **{
                **current.__dict__,
                "content": content if content is not None else current.content,
                "importance": importance if importance is not None else current.importance,
                "kind": kind if kind is not None else current.kind,
                "metadata": metadata if metadata is not None else current.metadata,
            }
        )
        values: dict[str, Any] = {
            "importance": changed.importance,
            "kind": changed.kind,
            "metadata": changed.metadata,
        }
        vector = None
        if content is not None and content != current.content:
            await self.ensure_embedder(agent_id)
            vector = (await self.embedder.embed([content]))[0]
            values["content"] = (
                self.cipher.encrypt(content, agent_id=agent_id, memory_id=memory_id)
                if self.cipher
                else content
            )
            values["encrypted"] = self.cipher is not None
            changed.embedding, changed.embedder, changed.dim = (
                vector,
                self.embedder.name,
                self.embedder.dim,
            )
        async with self.db.transaction() as conn:
            result = await conn.execute(
                sa.update(memories)
                .where(memories.c.agent_id == agent_id, memories.c.id == memory_id)
                .values(**values)
            )
            if not result.rowcount:
                return None
            if vector is not None:
                await self._write_embeddings(conn, [memory_id], vector.reshape(1, -1))
            # Another process's copy of this agent's memories learns of the change from it.
            await facts.insert(conn, [facts.fact(agent_id, "memory_updated", {
                "id": memory_id, "kind": changed.kind, "importance": changed.importance}, self.clock.now())])
        self._touch(agent_id)
        await self._after_update(agent_id, changed, vector)
        return changed

    async def delete(self, agent_id: str, memory_id: str) -> bool:
        async with self.db.transaction() as conn:
            # The history keeps what was forgotten (as stored: ciphertext when encrypted).
            gone = (await conn.execute(
                sa.delete(memories).where(
                    memories.c.agent_id == agent_id, memories.c.id == memory_id
                ).returning(*FORGOTTEN_COLUMNS)
            )).mappings().all()
            await facts.insert(conn, [facts.fact(agent_id, "memory_forgotten", dict(row), self.clock.now())
                                      for row in gone])
        self._touch(agent_id)
        if gone:
            await self._after_delete(agent_id, [memory_id])
        return bool(gone)

    async def clear(self, agent_id: str) -> int:
        async with self.db.transaction() as conn:
            gone = (await conn.execute(sa.delete(memories).where(memories.c.agent_id == agent_id)
                                       .returning(*FORGOTTEN_COLUMNS))).mappings().all()
            now = self.clock.now()  # the history keeps each, as for delete()
            await facts.insert(conn, [facts.fact(agent_id, "memory_forgotten", dict(row), now) for row in gone])
        self._touch(agent_id)
        self._verified.discard(agent_id)
        await self._after_reindex(agent_id)
        return len(gone)

    # ------------------------------------------------------------------ reads

    async def search_memories(
        self, agent_id: str, query: str, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        await self._seeded(agent_id)
        return await self.search_vector(
            agent_id, await self.embedder.embed_one(query), limit, kinds
        )

    async def fetch_by_ids(self, agent_id: str, ids: Sequence[str]) -> dict[str, Memory]:
        """Memories (without embeddings) by id; missing ids are left out."""
        if not ids:
            return {}
        # By primary key alone: with agent_id in the WHERE clause SQLite walks the agent's index instead.
        query = sa.select(*LIGHT_COLUMNS).where(memories.c.id.in_(list(ids)))
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {row["id"]: self._to_memory(row) for row in rows if row["agent_id"] == agent_id}

    async def get(self, agent_id: str, memory_id: str) -> Memory | None:
        query = sa.select(memories).where(
            memories.c.agent_id == agent_id, memories.c.id == memory_id
        )
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return self._to_memory(row) if row else None

    async def list_memories(
        self,
        agent_id: str,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Memory]:
        await self._seeded(agent_id)
        if kind is not None:
            check_kinds([kind])
        params = {"b_agent": agent_id, "b_kind": kind, "b_since": since, "b_until": until, "b_limit": limit,
                  "b_offset": offset}
        query = _listing(kind is not None, since is not None, until is not None)
        async with self.db.connect() as conn:
            rows = await query.rows(conn, params)
        return [self._to_memory(row._mapping) for row in rows]

    async def count(self, agent_id: str, kind: str | None = None) -> int:
        await self._seeded(agent_id)
        return await self._count(agent_id, kind)

    async def _count(self, agent_id: str, kind: str | None = None) -> int:
        query = (
            sa.select(sa.func.count()).select_from(memories).where(memories.c.agent_id == agent_id)
        )
        if kind is not None:
            query = query.where(memories.c.kind == kind)
        async with self.db.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def core_memories(self, agent_id: str) -> list[Memory]:
        cached = self._cache.get(agent_id, ("core",))
        if cached is None:
            cached = list(reversed(await self.list_memories(agent_id, kind="core", limit=1000)))
            self._cache.put(agent_id, ("core",), cached)
        return list(cached)

    async def recent_memories(
        self, agent_id: str, kind: str = "post", limit: int = 20
    ) -> list[Memory]:
        key = ("recent", kind, limit)
        cached = self._cache.get(agent_id, key)
        if cached is None:
            cached = await self.list_memories(agent_id, kind=kind, limit=limit)
            self._cache.put(agent_id, key, cached)
        return list(cached)

    # ------------------------------------------------------------------ seeding and reindexing

    async def seed_initial(self, agent_id: str, initial_memory: InitialMemory) -> int:
        """Seed now, or, while the embedder's model still loads, in the background once it is
        ready (0 is returned then): the agent starts at once, and its memory reads wait for the seeds."""
        previous = self._seeding.get(agent_id)
        nothing = not (initial_memory.core_memories or initial_memory.recent_events or initial_memory.relationships)
        now = self.clock.now()  # seeds are dated at the start, however late they are written
        if nothing or (self.embedder.ready and previous is None):
            return await self._seed(agent_id, initial_memory, now)
        # A restart while the model loads: its seeding runs after the one already waiting.
        self._seeding[agent_id] = asyncio.create_task(
            self._seed_when_ready(agent_id, initial_memory, now, previous), name=f"seed-memory-{agent_id}")
        return 0

    async def _seed_when_ready(
        self, agent_id: str, initial_memory: InitialMemory, now: float, previous: asyncio.Task[None] | None
    ) -> None:
        try:
            if previous is not None:
                await previous
            await self.embedder.ensure_loaded()
            await self._seed(agent_id, initial_memory, now)
        except Exception:  # the seeds are keyed: the next start seeds them again
            log.exception("memory seeding of agent %s failed", agent_id)
        finally:
            if self._seeding.get(agent_id) is asyncio.current_task():
                del self._seeding[agent_id]

    async def _seeded(self, agent_id: str) -> None:
        """Wait for the agent's deferred seeding, if any (it never raises)."""
        task = self._seeding.get(agent_id)
        if task is not None and task is not asyncio.current_task():
            await asyncio.shield(task)

    async def close(self) -> None:
        for task in list(self._seeding.values()):
            task.cancel()
        await asyncio.gather(*self._seeding.values(), return_exceptions=True)
        self._seeding.clear()

    async def _seed(self, agent_id: str, initial_memory: InitialMemory, now: float) -> int:
        texts: list[tuple[MemoryKind, str, float]] = [("core", t, 0.9) for t in initial_memory.core_memories]
        texts += [("event", t, 0.6) for t in initial_memory.recent_events]
        if not texts and not initial_memory.relationships:
            return 0  # nothing to seed: no query (at start-up, per agent, it adds up)
        # One second apart, oldest first, so listings keep the config's order.
        seeds = [
            Memory(
                content=text,
                kind=kind,
                importance=importance,
                key=seed_key(kind, text),
                created_at=now - (len(texts) - i),
            )
            for i, (kind, text, importance) in enumerate(texts)
        ]
        before = await self._count(agent_id)  # not count(): it would wait for this seeding
        await self.add_many(agent_id, seeds)
        for other, rel in initial_memory.relationships.items():
            notes = rel.notes if isinstance(rel.notes, str) else "\n".join(rel.notes)
            await self.relationships.seed(
                agent_id,
                other,
                sentiment=rel.sentiment,
                familiarity=rel.familiarity,
                trust=rel.trust,
                notes=notes,
            )
        return await self._count(agent_id) - before

    async def reindex(
        self,
        agent_id: str | None = None,
        progress: ReindexProgress | None = None,
        *,
        force: bool = False,
    ) -> int:
        if agent_id is not None:
            agents = [agent_id]
        else:
            async with self.db.connect() as conn:
                agents = list(
                    (await conn.execute(sa.select(memories.c.agent_id).distinct())).scalars()
                )
        total_done = 0
        for agent in agents:
            total_done += await self._reindex_agent(agent, progress, force)
        return total_done

    async def _reindex_agent(
        self, agent_id: str, progress: ReindexProgress | None, force: bool
    ) -> int:
        cond = memories.c.agent_id == agent_id
        if not force:
            cond = sa.and_(
                cond,
                sa.or_(
                    memories.c.embedder.is_(None),
                    memories.c.embedder != self.embedder.name,
                    memories.c.dim.is_(None),
                    memories.c.dim != self.embedder.dim,
                ),
            )
        async with self.db.connect() as conn:
            total = int(
                (
                    await conn.execute(sa.select(sa.func.count()).select_from(memories).where(cond))
                ).scalar_one()
            )
        done, last = 0, ""
        if progress:
            progress(agent_id, 0, total)
        while done < total:
            query = (
                sa.select(
                    memories.c.id, memories.c.agent_id, memories.c.content, memories.c.encrypted
                )
                .where(cond, memories.c.id > last)
                .order_by(memories.c.id)
                .limit(_REINDEX_BATCH)
            )
            async with self.db.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
            if not rows:
                break
            vectors = await self.embedder.embed([self._decrypt(row) for row in rows])
            async with self.db.transaction() as conn:
                await self._write_embeddings(conn, [row["id"] for row in rows], vectors)
            done += len(rows)
            last = rows[-1]["id"]
            if progress:
                progress(agent_id, done, total)
        self._verified.discard(agent_id)
        self._touch(agent_id)
        await self._after_reindex(agent_id)
        return done
