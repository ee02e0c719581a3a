"""Memories in PostgreSQL, searched by pgvector (extra ``postgres``: asyncpg + pgvector).

Rows live in the same ``memories`` table as on SQLite, plus ``embedding_vec``
(migration 0002) with a partial HNSW index per embedding size. A search asks
the index for a candidate set (``ORDER BY embedding_vec <=> q LIMIT n``) and
re-ranks it with importance and recency in the same statement, so one round
trip returns the final rows.

The HNSW index covers every agent, and pgvector filters by agent after the
index scan; the store therefore widens ``hnsw.ef_search`` by the agent's share
of the rows, and falls back to an exact scan of the agent's rows when the
agent is small, the share too thin, or the index returned too few rows.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.errors import ConfigError, StorageError
from puppet_engine.memory.base import Memory, ScoredMemory
from puppet_engine.memory.search_connections import SearchConnections
from puppet_engine.memory.store import SQLMemoryStore, check_kinds
from puppet_engine.storage import async_url
from puppet_engine.storage.tables import memories

log = logging.getLogger(__name__)

#: pgvector cannot build an HNSW index over vectors longer than this.
MAX_INDEXED_DIM = 2000
_DEFAULT_EF_SEARCH = 40  # pgvector's own default: what a new connection has
#: The store's ef_search for an agent owning the whole index: pgvector's default. On graphs built
#: with ef_construction 128, ``bench/memory.py --ef-sweep`` gives the store's ranking recall@10
#: 1.000 at 10,000, 0.999 at 100,000 and 0.994 at 1,000,000 memories with 40; 64 costs 20-40 %
#: more time for 0.001 more (on a graph built at 64, 1,000,000 memories gave 0.950 at 40).
EF_SEARCH = 40
#: The width an index is built with (migration 0012 sets it on the indexes it finds).
EF_CONSTRUCTION = 128
_COUNT_TTL = 30.0

# ``memories`` as PostgreSQL has it: with the pgvector column, bound as real[] (cast on assignment).
_pg_memories = sa.table(
    "memories",
    *[sa.column(c.name, c.type) for c in memories.c],
    sa.column("embedding_vec", ARRAY(REAL)),
)


def _require_postgres_extra() -> None:
    try:
        import asyncpg  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "PostgreSQL memory needs the postgres extra: pip install 'puppet-engine[postgres]'"
        ) from exc


class PostgresStore(SQLMemoryStore):
    """pgvector search with re-ranking; exact where the index would miss.

    The candidates (``weights.candidates(limit)`` most similar memories) come
    from the HNSW index; agents with at most ``exact_threshold`` memories are
    always searched exactly. The index search keeps ``max(ef_search, candidates)``
    nodes, widened by the agent's share of the indexed rows (``hnsw.ef_search``,
    up to ``max_ef_search``; beyond it the search is exact). ``search_pool_size``
    asyncpg connections serve searches (writes go through the engine's database).
    """

    def __init__(
        self,
        *args: Any,
        exact_threshold: int = 5000,
        ef_search: int = EF_SEARCH,
        max_ef_search: int = 1000,
        search_pool_size: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not self.db.is_postgres:
            raise ConfigError(
                f"PostgresStore needs a postgresql:// DATABASE_URL, not {self.db.dialect}"
            )
        _require_postgres_extra()
        self.exact_threshold = exact_threshold
        self.ef_search = ef_search
        self.max_ef_search = max_ef_search
        self.search_pool_size = search_pool_size
        self._connections: SearchConnections | None = None
        self._ef_by_backend: dict[int, int] = {}
        self._indexed_dims: set[int] = set()
        self._counts: dict[tuple[str, ...], tuple[float, int]] = {}

    # ------------------------------------------------------------------ writes

    async def _insert_rows(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], vectors: np.ndarray
    ) -> None:
        payload = [
            {**row, "embedding_vec": vec} for row, vec in zip(rows, vectors.tolist(), strict=True)
        ]
        await conn.execute(sa.insert(_pg_memories), payload)

    async def _write_embeddings(
        self, conn: AsyncConnection, ids: list[str], vectors: np.ndarray
    ) -> None:
        await super()._write_embeddings(conn, ids, vectors)
        stmt = (
            sa.update(_pg_memories)
            .where(_pg_memories.c.id == sa.bindparam("b_id"))
            .values(embedding_vec=sa.bindparam("b_vec", type_=ARRAY(REAL)))
        )
        await conn.execute(
            stmt, [{"b_id": i, "b_vec": v} for i, v in zip(ids, vectors.tolist(), strict=True)]
        )

    async def _after_add(
        self, agent_id: str, rows: list[dict[str, Any]], vectors: np.ndarray
    ) -> None:
        self._forget_counts(agent_id)

    async def _after_delete(self, agent_id: str, ids: list[str]) -> None:
        self._forget_counts(agent_id)

    async def _after_reindex(self, agent_id: str) -> None:
        self._forget_counts(agent_id)

    def _forget_counts(self, agent_id: str) -> None:
        self._counts.pop(("agent", agent_id), None)

    # ------------------------------------------------------------------ search

    async def _cached_count(self, key: tuple[str, ...], sql: str, arg: Any) -> int:
        """``sql`` (one ``count(*)`` of ``arg``) on the search connections, remembered for a while."""
        hit = self._counts.get(key)
        if hit is not None and time.monotonic() - hit[0] < _COUNT_TTL:
            return hit[1]
        value = int((await self._fetch(sql, [arg], None))[0][0])
        self._counts[key] = (time.monotonic(), value)
        return value

    async def _ensure_index(self, dim: int) -> bool:
        """True when an HNSW index serves vectors of ``dim``; builds it on first use if missing."""
        if dim in self._indexed_dims:
            return True
        if dim > MAX_INDEXED_DIM:
            return False
        name = f"ix_memories_embedding_vec_{dim}"
        async with self.db.connect() as conn:
            exists = (
                await conn.execute(
                    sa.text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": name}
                )
            ).first()
        if exists is None:
            log.warning("building HNSW index %s for %d-dimensional embeddings", name, dim)
            async with self.db.transaction() as conn:
                await conn.execute(
                    sa.text(
                        f"CREATE INDEX IF NOT EXISTS {name} ON memories "
                        f"USING hnsw ((embedding_vec::vector({dim})) vector_cosine_ops) "
                        f"WITH (ef_construction = {EF_CONSTRUCTION}) WHERE dim = {dim}"
                    )
                )
        self._indexed_dims.add(dim)
        return True

    async def search_vector(
        self, agent_id: str, vector: np.ndarray, limit: int = 10, kinds: Sequence[str] | None = None
    ) -> list[ScoredMemory]:
        wanted = check_kinds(kinds)
        await self.ensure_embedder(agent_id)
        dim = self.embedder.dim
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != dim:
            raise ValueError(
                f"query vector has {query.shape[0]} dimensions; the embedder has {dim}"
            )
        if limit <= 0:
            return []
        candidates = self.weights.candidates(limit)
        agent_rows = await self._cached_count(("agent", agent_id), _COUNT_AGENT, agent_id)
        ef = 0
        if agent_rows > self.exact_threshold and await self._ensure_index(dim):
            dim_rows = await self._cached_count(("dim", str(dim)), _COUNT_DIM, dim)
            share = agent_rows / max(dim_rows, agent_rows)
            base = max(self.ef_search, candidates)
            ef = math.ceil(base / share * (2 if wanted else 1))
        if 0 < ef <= self.max_ef_search:
            rows = await self._run(agent_id, query, limit, wanted, candidates, indexed=True, ef=ef)
            if len(rows) >= min(limit, agent_rows):
                return rows
        return await self._run(agent_id, query, limit, wanted, candidates, indexed=False, ef=0)

    async def _run(
        self,
        agent_id: str,
        query: np.ndarray,
        limit: int,
        kinds: list[str] | None,
        candidates: int,
        *,
        indexed: bool,
        ef: int,
    ) -> list[ScoredMemory]:
        """One statement: the nearest ``candidates`` (by the index or exactly), re-ranked, top ``limit``."""
        w = self.weights
        params: list[Any] = [
            query,
            agent_id,
            limit,
            w.importance,
            w.recency,
            w.half_life_seconds,
            self.clock.now(),
        ]
        if kinds:
            params.append(kinds)
        sql = _search_sql(self.embedder.dim, candidates, indexed, bool(kinds))
        rows = await self._fetch(sql, params, ef if indexed else None)
        # Rows the store wrote and checked; floats and a fresh metadata dict from the connection.
        hits = []
        for row in rows:
            id_, agent, kind, _, _, importance, created_at, metadata, key, embedder, dim, similarity, score = row
            memory = Memory.stored(
                id_, agent, kind, self._decrypt(row), importance, created_at, metadata or {}, key, embedder, dim
            )
            hits.append(ScoredMemory(memory, score, similarity))
        return hits

    async def _fetch(self, sql: str, params: list[Any], ef: int | None) -> list[Any]:
        """Run on the store's own asyncpg connections: one round trip per search.

        (Through SQLAlchemy a plain read costs a pre-ping, BEGIN and ROLLBACK too,
        which is more than the HNSW search itself at 100k rows.) Statements are
        prepared once per connection (asyncpg's statement cache); the query
        vector travels in pgvector's binary format. ``ef`` None: a statement the
        index does not serve (``hnsw.ef_search`` left as it is).
        """
        import asyncpg

        try:
            connections = self._connections or self._open_connections()
            conn = await connections.take()
            done = False
            try:
                if ef is not None:
                    ef = max(ef, _DEFAULT_EF_SEARCH)
                    # A session setting, remembered per connection: set only when it changes.
                    pid = conn.get_server_pid()
                    if self._ef_by_backend.get(pid, _DEFAULT_EF_SEARCH) != ef:
                        await conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                        self._ef_by_backend[pid] = ef
                rows = list(await conn.fetch(sql, *params))
                done = True
                return rows
            finally:
                connections.give_back(conn, reusable=done)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
            raise StorageError(f"memory search failed: {exc.__class__.__name__}: {exc}") from exc

    def _open_connections(self) -> SearchConnections:
        url = make_url(async_url(self.db.url)).set(drivername="postgresql")
        self._ef_by_backend.clear()
        self._connections = SearchConnections(
            url.render_as_string(hide_password=False), self.search_pool_size, self._init_connection
        )
        return self._connections

    async def _init_connection(self, connection: Any) -> None:
        """A new search connection: pgvector's binary ``vector``, ``json`` decoded to dicts."""
        from pgvector.asyncpg import register_vector

        # A new backend may reuse an old one's pid: its ef_search is the default again.
        self._ef_by_backend.pop(connection.get_server_pid(), None)
        await register_vector(connection)
        await connection.set_type_codec(
            "json", schema="pg_catalog", encoder=json.dumps, decoder=orjson.loads
        )

    async def close(self) -> None:
        await super().close()
        if self._connections is not None:
            await self._connections.close()
            self._connections = None


#: A hit's columns, in the order ``_run`` unpacks them (then ``similarity``, ``score``).
_HIT_COLUMNS = "id, agent_id, kind, content, encrypted, importance, created_at, metadata, key, embedder, dim"
_COUNT_AGENT = "SELECT count(*) FROM memories WHERE agent_id = $1"
_COUNT_DIM = "SELECT count(*) FROM memories WHERE dim = $1"


@functools.cache
def _search_sql(dim: int, candidates: int, indexed: bool, kinds: bool) -> str:
    """The search statement: ``$1`` the query vector, ``$2`` the agent, ``$3`` the limit,
    ``$4``-``$7`` the ranking weights and now, ``$8`` the kinds.

    The candidates' count stays a constant: the planner picks the index for a small LIMIT.
    """
    # The HNSW index is on embedding_vec::vector(dim) and needs the query as a
    # constant; the exact scan orders by another expression so the planner
    # cannot pick the approximate index.
    q = f"$1::vector({dim})"
    distance = (
        f"(embedding_vec::vector({dim}) <=> {q})" if indexed else f"(embedding_vec <=> {q})"
    )
    kind_filter = "AND kind = ANY($8::text[])" if kinds else ""
    # The candidates carry the hit's columns through the ranking: reading them from the heap
    # tuple the index scan fetches anyway costs less than joining the winners back by key.
    # The distance is computed once per candidate, under a name the ORDER BY (and the index) uses.
    # Ages are capped at 1000 half-lives: 2^-age past that underflows, an error in PostgreSQL (numpy gives 0).
    return f"""
        SELECT {_HIT_COLUMNS}, 1 - distance AS similarity,
               1 - distance + $4 * importance + $5 * power(2.0, -least(greatest($7 - created_at, 0) / $6, 1000)) AS score
        FROM (
            SELECT {_HIT_COLUMNS}, {distance} AS distance
            FROM memories
            WHERE agent_id = $2 AND dim = {dim} {kind_filter}
            ORDER BY distance LIMIT {int(candidates)}
        ) AS candidates
        ORDER BY score DESC, id
        LIMIT $3
    """
