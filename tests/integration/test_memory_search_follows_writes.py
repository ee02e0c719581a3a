"""SQLite memory search from the kept rows ranks exactly as the definition says, over what the
database holds: after this store's writes, another connection's, another process's, and after
the facts it follows were pruned. The reference reads the file with plain sqlite3 and ranks in
numpy, sharing no code with the store but :class:`RankingWeights`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from puppet_engine.clock import VirtualClock
from puppet_engine.memory import ContentCipher, HashingEmbedder, Memory, RankingWeights, SQLiteStore
from puppet_engine.memory.base import MEMORY_KINDS
from puppet_engine.storage import Database

REPO = Path(__file__).resolve().parents[2]
KEY = "another horse battery staple, long enough"
DIM = HashingEmbedder().dim
AGENT = "coby"
WEIGHTS = RankingWeights()


def reference(path: Path, agent: str, query: np.ndarray, now: float, limit: int = 10,
              kinds: list[str] | None = None) -> list[tuple[str, float]]:
    """The ranking by definition over the rows in the file: the most similar candidates, re-ranked."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, embedding, importance, created_at, kind FROM memories WHERE agent_id = ?",
            (agent,),
        ).fetchall()
    rows = [r for r in rows if kinds is None or r[4] in kinds]
    if not rows:
        return []
    vectors = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
    similarity = vectors @ np.asarray(query, dtype=np.float32)
    candidates = np.argsort(-similarity)[: WEIGHTS.candidates(limit)]
    bonus = WEIGHTS.bonus(np.array([rows[i][2] for i in candidates]),
                          np.array([rows[i][3] for i in candidates]), now)
    scores = similarity[candidates] + bonus
    return [(rows[candidates[i]][0], float(scores[i])) for i in np.argsort(-scores)[:limit]]


async def assert_ranked_as_reference(store: SQLiteStore, path: Path, query: np.ndarray,
                                     kinds: list[str] | None = None) -> list[str]:
    hits = await store.search_vector(AGENT, query, limit=10, kinds=kinds)
    expected = reference(path, AGENT, query, store.clock.now(), kinds=kinds)
    assert [h.memory.id for h in hits] == [memory_id for memory_id, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected], abs=1e-6)
    for hit in hits:  # each hit is the row as stored now, field for field
        assert hit.memory == await store.get(AGENT, hit.memory.id or "")
    return [h.memory.id or "" for h in hits]


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = rng.normal(size=(8, DIM))
    vectors = centers[rng.integers(0, 8, n)] + 0.8 * rng.normal(size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def random_memories(rng: np.random.Generator, n: int, now: float, prefix: str) -> list[Memory]:
    return [
        Memory(f"{prefix} memory {i}", kind=str(rng.choice(["post", "reply", "event", "core"])),  # type: ignore[arg-type]
               importance=float(rng.uniform(0, 1)), created_at=now - float(rng.uniform(0, 60 * 86400)),
               metadata={"n": i} if i % 3 else {}, embedding=vector)
        for i, vector in enumerate(unit_rows(rng, n))
    ]


@pytest.fixture
async def two_stores(tmp_path: Path, request):
    """The searching store and another on its own Database (other connections), same file."""
    path = tmp_path / "memory.db"
    clock = VirtualClock()
    cipher = ContentCipher(KEY) if getattr(request, "param", False) else None
    mine, theirs = Database(f"sqlite:///{path}"), Database(f"sqlite:///{path}")
    await mine.migrate()
    searcher = SQLiteStore(mine, HashingEmbedder(), clock=clock, cipher=cipher)
    writer = SQLiteStore(theirs, HashingEmbedder(), clock=clock, cipher=cipher)
    yield searcher, writer, path
    for store, db in ((searcher, mine), (writer, theirs)):
        await store.close()
        await db.close()


async def test_search_ranks_as_the_reference_with_and_without_kinds(two_stores) -> None:
    store, _, path = two_stores
    rng = np.random.default_rng(7)
    await store.add_many(AGENT, random_memories(rng, 1500, store.clock.now(), "own"))
    await store.add_many("luna", random_memories(rng, 200, store.clock.now(), "luna"))
    for i, query in enumerate(unit_rows(rng, 30)):
        await assert_ranked_as_reference(store, path, query)
        await assert_ranked_as_reference(store, path, query, kinds=["post", "reply"] if i % 2 else ["core"])
        store.clock.advance(3600.0)  # recency moves with the clock


@pytest.mark.parametrize("two_stores", [False, True], ids=["plain", "encrypted"], indirect=True)
async def test_another_connections_writes_reach_the_very_next_search(two_stores) -> None:
    store, other, path = two_stores
    rng = np.random.default_rng(11)
    now = store.clock.now()
    await store.add_many(AGENT, random_memories(rng, 600, now, "own"))
    query = unit_rows(rng, 1)[0]
    top = await assert_ranked_as_reference(store, path, query)  # loaded and kept from here on

    near = [Memory(f"close {i}", kind="post", importance=0.9, created_at=now,
                   embedding=query + 0.1 * unit_rows(rng, 1)[0]) for i in range(5)]
    added = await other.add_many(AGENT, near)
    assert set(added) <= set(await assert_ranked_as_reference(store, path, query))

    assert await other.delete(AGENT, added[0])
    assert await other.delete(AGENT, top[0])
    await assert_ranked_as_reference(store, path, query)

    await other.update(AGENT, top[1], importance=0.0, metadata={"edited": True})
    await other.update(AGENT, top[2], kind="knowledge")
    await other.update(AGENT, added[1], content="rewritten by the other connection")  # re-embedded
    await assert_ranked_as_reference(store, path, query)
    await assert_ranked_as_reference(store, path, query, kinds=["knowledge"])

    await other.add_memory("luna", Memory("not coby's", embedding=query))  # another agent's write
    await assert_ranked_as_reference(store, path, query)
    assert await other.clear(AGENT) > 0
    assert await store.search_vector(AGENT, query) == []


async def test_another_process_writes_reach_the_very_next_search(two_stores) -> None:
    store, _, path = two_stores
    rng = np.random.default_rng(5)
    await store.add_many(AGENT, random_memories(rng, 400, store.clock.now(), "own"))
    query = unit_rows(rng, 1)[0]
    top = await assert_ranked_as_reference(store, path, query)
    script = f"""
import asyncio
import numpy as np
from puppet_engine.clock import VirtualClock
from puppet_engine.memory import HashingEmbedder, Memory, SQLiteStore
from puppet_engine.storage import Database

async def main():
    db = Database("sqlite:///{path}")
    store = SQLiteStore(db, HashingEmbedder(), clock=VirtualClock({store.clock.now()}))
    query = np.array({query.tolist()}, dtype=np.float32)
    await store.add_many("{AGENT}", [Memory(f"from the other process {{i}}", importance=1.0,
                                            embedding=query + 0.05 * i) for i in range(3)])
    await store.delete("{AGENT}", "{top[0]}")
    await store.update("{AGENT}", "{top[1]}", importance=0.0)
    await store.close()
    await db.close()

asyncio.run(main())
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ranked = await assert_ranked_as_reference(store, path, query)
    assert top[0] not in ranked
    contents = [(await store.get(AGENT, memory_id)).content for memory_id in ranked[:3]]  # type: ignore[union-attr]
    assert all(c.startswith("from the other process") for c in contents)


async def test_pruned_facts_make_the_store_read_everything_again(two_stores) -> None:
    store, other, path = two_stores
    rng = np.random.default_rng(3)
    await store.add_many(AGENT, random_memories(rng, 300, store.clock.now(), "own"))
    query = unit_rows(rng, 1)[0]
    await assert_ranked_as_reference(store, path, query)
    # The retention job may delete the newest facts: new ones then reuse their ids.
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM facts")
    await other.add_memory(AGENT, Memory("after the pruning", importance=1.0, embedding=query))
    ranked = await assert_ranked_as_reference(store, path, query)
    assert (await store.get(AGENT, ranked[0])).content == "after the pruning"  # type: ignore[union-attr]


async def test_every_kind_round_trips_through_the_kept_rows(two_stores) -> None:
    store, other, path = two_stores
    query = unit_rows(np.random.default_rng(1), 1)[0]
    await store.add_many(AGENT, [Memory(f"a {kind}", kind=kind, embedding=query) for kind in MEMORY_KINDS])  # type: ignore[arg-type]
    await assert_ranked_as_reference(store, path, query)
    await other.add_many(AGENT, [Memory(f"b {kind}", kind=kind, embedding=query) for kind in MEMORY_KINDS])  # type: ignore[arg-type]
    hits = await store.search_vector(AGENT, query, limit=2 * len(MEMORY_KINDS))
    assert sorted(h.memory.kind for h in hits) == sorted(MEMORY_KINDS * 2)


@pytest.mark.parametrize("two_stores", [False, True], indirect=True, ids=["plain", "encrypted"])
async def test_an_agent_loaded_on_the_read_only_connection_is_the_one_loaded_through_the_database(
        two_stores, monkeypatch: pytest.MonkeyPatch) -> None:
    from puppet_engine.memory import sqlite as sqlite_store

    searcher, writer, _path = two_stores
    rng = np.random.default_rng(11)
    await writer.add_many(AGENT, random_memories(rng, 230, searcher.clock.now(), "loaded"))
    await writer.add_many("someone-else", random_memories(rng, 20, searcher.clock.now(), "not mine"))
    monkeypatch.setattr(sqlite_store, "_LOAD_BATCH", 64)  # several batches, the last one short
    reader = searcher._reader()
    assert reader is not None
    for keep_rows in (True, False):
        direct = await searcher._load(AGENT, keep_rows, reader)
        through_database = await searcher._load(AGENT, keep_rows)
        assert len(direct) == len(through_database) == 230
        assert direct._ids == through_database._ids
        assert direct._payloads == through_database._payloads  # kind, content as stored, encrypted, metadata, key
        n = len(direct)
        for name in ("_vectors", "_fields", "_kinds"):
            assert np.array_equal(getattr(direct, name)[:n], getattr(through_database, name)[:n])
