"""The MemoryStore contract, run against both stores: SQLite (numpy) and PostgreSQL (pgvector)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import ConfigError
from puppet_engine.memory import (
    ContentCipher,
    EmbedderMismatch,
    HashingEmbedder,
    Memory,
    RankingWeights,
    SQLiteStore,
)
from puppet_engine.memory.store import SQLMemoryStore
from puppet_engine.persona import InitialMemory
from puppet_engine.storage import Database
from puppet_engine.storage.tables import memories

KEY = "correct horse battery staple, but longer"

FACTS = [
    ("sol", "I bought SOL at 20 dollars and held through the whole bear market", "trade"),
    ("beach", "Spent the weekend surfing at the beach with old friends", "event"),
    ("coffee", "I drink three cups of black coffee every morning before posting", "core"),
    ("jupiter", "Jupiter swap routes were congested, slippage hit two percent", "trade"),
    ("cat", "My cat knocked the laptop off the desk during a livestream", "event"),
    ("rust", "Learning Rust to write Solana programs is painful but fun", "knowledge"),
    ("pizza", "Pineapple on pizza is a crime and I will die on this hill", "post"),
    ("rain", "It rained all day so I stayed home reading about validators", "event"),
]


@dataclass
class Env:
    """One database and how to open stores on it."""

    kind: str
    db: Database
    clock: VirtualClock
    opened: list[SQLMemoryStore] = field(default_factory=list)

    def store(self, embedder=None, **kwargs) -> SQLMemoryStore:
        embedder = embedder or HashingEmbedder()
        if self.kind == "postgres":
            from puppet_engine.memory.postgres import PostgresStore

            kwargs.setdefault("exact_threshold", 0)  # exercise the HNSW path even on small sets
            store: SQLMemoryStore = PostgresStore(self.db, embedder, clock=self.clock, **kwargs)
        else:
            store = SQLiteStore(self.db, embedder, clock=self.clock, **kwargs)
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()
        await self.db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def env(request, tmp_path: Path):
    url = (
        f"sqlite:///{tmp_path / 'memory.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    await db.migrate()
    env = Env(request.param, db, VirtualClock())
    yield env
    await env.close()


async def seed_facts(store: SQLMemoryStore, agent: str = "coby") -> dict[str, str]:
    ids = await store.add_many(agent, [Memory(text, kind=kind) for _, text, kind in FACTS])
    return {label: mid for (label, _, _), mid in zip(FACTS, ids, strict=True)}


# ---------------------------------------------------------------------- CRUD and pagination


async def test_add_get_count_and_list_pages_newest_first(env: Env) -> None:
    store = env.store()
    ids = []
    for i in range(7):
        ids.append(
            await store.add_memory(
                "coby", Memory(f"memory number {i}", kind="post" if i % 2 else "event")
            )
        )
        env.clock.advance(60)
    got = await store.get("coby", ids[3])
    assert got is not None and got.content == "memory number 3" and got.kind == "post"
    assert got.embedder == "hashing-v1" and got.dim == 384 and got.embedding is not None
    assert got.embedding.shape == (384,) and abs(float(np.linalg.norm(got.embedding)) - 1) < 1e-5
    assert await store.count("coby") == 7 and await store.count("coby", kind="post") == 3
    page1 = await store.list_memories("coby", limit=3)
    page2 = await store.list_memories("coby", limit=3, offset=3)
    page3 = await store.list_memories("coby", limit=3, offset=6)
    assert [m.id for m in page1 + page2 + page3] == ids[::-1]
    posts = await store.list_memories("coby", kind="post")
    assert [m.content for m in posts] == ["memory number 5", "memory number 3", "memory number 1"]
    t0 = env.clock.now() - 7 * 60
    window = await store.list_memories("coby", since=t0 + 120, until=t0 + 240)
    assert [m.content for m in window] == ["memory number 3", "memory number 2"]
    assert await store.get("coby", "no-such-id") is None
    assert await store.get("someone-else", ids[0]) is None


async def test_search_ranks_the_lexical_match_first_and_filters_by_kind(env: Env) -> None:
    store = env.store()
    ids = await seed_facts(store)
    hits = await store.search_memories("coby", "surfing at the beach", limit=3)
    assert hits[0].memory.id == ids["beach"]
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
    assert -1.0 <= hits[1].similarity <= hits[0].similarity <= 1.0
    trades = await store.search_memories("coby", "slippage on Jupiter swap", kinds=["trade"])
    assert trades[0].memory.id == ids["jupiter"]
    assert {h.memory.kind for h in trades} == {"trade"} and len(trades) == 2
    assert await store.search_memories("coby", "anything", kinds=["mention"]) == []
    assert await store.search_memories("nobody", "anything") == []
    with pytest.raises(ValueError, match="unknown memory kind"):
        await store.search_memories("coby", "anything", kinds=["gossip"])


async def test_importance_and_recency_break_ties(env: Env) -> None:
    store = env.store(weights=RankingWeights(importance=0.2, recency=0.2, half_life_seconds=3600))
    low = await store.add_memory("coby", Memory("the validator went down", importance=0.1))
    high = await store.add_memory("coby", Memory("the validator went down", importance=0.9))
    hits = await store.search_memories("coby", "validator down", limit=2)
    assert [h.memory.id for h in hits] == [high, low]
    assert hits[0].similarity == pytest.approx(hits[1].similarity, abs=1e-5)
    env.clock.advance(10 * 3600)  # both are now old; a fresh copy wins on recency
    fresh = await store.add_memory("coby", Memory("the validator went down", importance=0.1))
    hits = await store.search_memories("coby", "validator down", limit=3)
    assert hits[0].memory.id in (fresh, high)
    assert hits[-1].memory.id == low


async def test_update_re_embeds_new_content_and_delete_and_clear_reach_search(env: Env) -> None:
    store = env.store()
    ids = await seed_facts(store)
    assert (await store.search_memories("coby", "pizza with pineapple", limit=1))[
        0
    ].memory.id == ids["pizza"]
    updated = await store.update(
        "coby", ids["pizza"], content="Tacos are the best street food in Mexico City"
    )
    assert updated is not None and updated.content.startswith("Tacos")
    assert (await store.search_memories("coby", "street food tacos", limit=1))[0].memory.id == ids[
        "pizza"
    ]
    stale = {
        h.memory.id: h.similarity
        for h in await store.search_memories("coby", "pineapple pizza", limit=20)
    }
    assert stale[ids["pizza"]] < 0.2  # the old text's vector is gone
    changed = await store.update(
        "coby", ids["cat"], importance=0.95, metadata={"tweet_id": "42"}, kind="knowledge"
    )
    assert changed is not None and changed.importance == 0.95
    again = await store.get("coby", ids["cat"])
    assert again is not None and again.metadata == {"tweet_id": "42"} and again.kind == "knowledge"
    assert await store.update("coby", "missing", importance=0.2) is None

    assert await store.delete("coby", ids["beach"]) is True
    assert await store.delete("coby", ids["beach"]) is False
    hits = await store.search_memories("coby", "surfing at the beach", limit=10)
    assert ids["beach"] not in {h.memory.id for h in hits} and len(hits) == len(FACTS) - 1
    assert await store.clear("coby") == len(FACTS) - 1
    assert await store.count("coby") == 0
    assert await store.search_memories("coby", "surfing", limit=5) == []


async def test_agents_never_see_each_others_memories(env: Env) -> None:
    store = env.store()
    await seed_facts(store, "coby")
    await store.add_memory("luna", Memory("Surfing at the beach is my whole personality"))
    hits = await store.search_memories("luna", "surfing at the beach", limit=10)
    assert [h.memory.agent_id for h in hits] == ["luna"]
    assert await store.clear("luna") == 1
    assert await store.count("coby") == len(FACTS)


async def test_restart_with_a_new_store_on_the_same_database_loses_nothing(env: Env) -> None:
    first = env.store()
    ids = await seed_facts(first)
    before = await first.search_memories("coby", "Rust and Solana programs", limit=4)
    await first.close()
    second = env.store()
    after = await second.search_memories("coby", "Rust and Solana programs", limit=4)
    assert [h.memory.id for h in after] == [h.memory.id for h in before]
    assert after[0].memory.id == ids["rust"]
    assert await second.count("coby") == len(FACTS)
    # the new store's index keeps in step with writes after the restart too
    extra = await second.add_memory(
        "coby", Memory("Compiling Rust programs for Solana took all night")
    )
    top = await second.search_memories("coby", "compiling Rust for Solana all night", limit=1)
    assert top[0].memory.id == extra


# ---------------------------------------------------------------------- seeding


async def test_seed_initial_loads_once_and_keeps_evolved_relationships(env: Env) -> None:
    initial = InitialMemory.model_validate(
        {
            "core_memories": ["I am Coby, a crypto degen", "I never sell"],
            "recent_events": ["Bought a pizza with SOL", {"content": "Got ratioed by a bot"}],
            "relationships": {
                "luna": {
                    "sentiment": 0.6,
                    "familiarity": 0.3,
                    "trust": 0.7,
                    "notes": "met at a hackathon",
                }
            },
        }
    )
    store = env.store()
    assert await store.seed_initial("coby", initial) == 4
    rel = await store.relationships.get("coby", "luna")
    assert rel is not None and rel.sentiment == 0.6 and rel.notes == "met at a hackathon"
    await store.relationships.update_from_interaction("coby", "luna", -0.4)

    restarted = env.store()
    assert await restarted.seed_initial("coby", initial) == 0
    assert await restarted.count("coby") == 4
    rel = await restarted.relationships.get("coby", "luna")
    assert rel is not None and rel.sentiment == pytest.approx(0.2) and rel.interactions == 1
    core = await restarted.core_memories("coby")
    assert [m.content for m in core] == initial.core_memories
    events = await restarted.recent_memories("coby", kind="event")
    assert [m.content for m in events] == ["Got ratioed by a bot", "Bought a pizza with SOL"]
    dup = await restarted.add_many(
        "coby", [Memory("again", key="k1"), Memory("again, same key", key="k1"), Memory("no key")]
    )
    assert dup[0] == dup[1] and dup[2] != dup[0]
    assert await restarted.count("coby") == 6


async def test_hot_reads_are_cached_and_invalidated_by_writes(env: Env) -> None:
    store = env.store(cache_ttl=3600)
    await store.add_memory("coby", Memory("I am Coby", kind="core"))
    assert [m.content for m in await store.core_memories("coby")] == ["I am Coby"]
    # a row written behind the store's back is not seen while the cache is warm...
    async with env.db.transaction() as conn:
        await conn.execute(
            sa.insert(memories).values(
                id="behind",
                agent_id="coby",
                kind="core",
                content="written elsewhere",
                encrypted=False,
                importance=0.5,
                created_at=env.clock.now() + 1,
                metadata={},
                embedding=None,
            )
        )
    assert [m.content for m in await store.core_memories("coby")] == ["I am Coby"]
    # ...and a write through the store invalidates the agent's entries
    await store.add_memory("coby", Memory("I post about SOL", kind="post"))
    assert [m.content for m in await store.core_memories("coby")] == [
        "I am Coby",
        "written elsewhere",
    ]
    assert [m.content for m in await store.recent_memories("coby")] == ["I post about SOL"]


# ---------------------------------------------------------------------- embedder changes


async def test_embedder_mismatch_is_detected_and_reindex_fixes_it(env: Env) -> None:
    old = env.store()
    ids = await seed_facts(old)
    new = env.store(embedder=HashingEmbedder(dim=128))
    with pytest.raises(EmbedderMismatch) as caught:
        await new.search_memories("coby", "beach")
    message = str(caught.value)
    assert (
        "'coby'" in message
        and "hashing-v1 (dim 384)" in message
        and "hashing-v1 (dim 128)" in message
    )
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(EmbedderMismatch):
        await new.add_memory("coby", Memory("mixing spaces is refused"))
    assert await new.count("coby") == len(FACTS)  # nothing dropped, nothing added
    assert (await new.get("coby", ids["sol"])) is not None  # plain reads still work

    seen: list[tuple[str, int, int]] = []
    assert await new.reindex("coby", progress=lambda a, d, t: seen.append((a, d, t))) == len(FACTS)
    assert seen[0] == ("coby", 0, len(FACTS)) and seen[-1] == ("coby", len(FACTS), len(FACTS))
    assert (await new.search_memories("coby", "surfing at the beach", limit=1))[0].memory.id == ids[
        "beach"
    ]
    assert await new.reindex() == 0  # nothing left to re-embed
    assert await new.reindex(force=True) == len(FACTS)
    got = await new.get("coby", ids["beach"])
    assert (
        got is not None
        and got.dim == 128
        and got.embedding is not None
        and got.embedding.shape == (128,)
    )


# ---------------------------------------------------------------------- encryption


async def test_encrypted_content_is_ciphertext_at_rest_and_searchable(env: Env) -> None:
    store = env.store(cipher=ContentCipher(KEY))
    secret = "My seed phrase hint is the name of my first dog"
    mid = await store.add_memory("coby", Memory(secret, kind="core"))
    async with env.db.connect() as conn:
        raw = (await conn.execute(sa.select(memories).where(memories.c.id == mid))).mappings().one()
    assert raw["encrypted"] is True
    assert secret not in raw["content"] and "dog" not in raw["content"]
    got = await store.get("coby", mid)
    assert got is not None and got.content == secret
    assert (await store.search_memories("coby", "first dog name", limit=1))[
        0
    ].memory.content == secret
    assert (await store.update("coby", mid, content="hint: my first cat")) is not None
    assert (
        await env.store(cipher=ContentCipher(KEY)).get("coby", mid)
    ).content == "hint: my first cat"

    with pytest.raises(ConfigError, match="set MEMORY_ENCRYPTION_KEY"):
        await env.store().get("coby", mid)
    with pytest.raises(ConfigError, match="does not decrypt") as caught:
        await env.store(cipher=ContentCipher("another key, just as long")).get("coby", mid)
    assert KEY not in str(caught.value)
    assert KEY not in repr(ContentCipher(KEY))


# ---------------------------------------------------------------------- relationships


async def test_relationship_updates_are_clamped_counted_and_noted(env: Env) -> None:
    rels = env.store().relationships
    first = await rels.update_from_interaction(
        "coby", "@hater", -0.7, trust_delta=-0.3, note="called me a scammer"
    )
    assert (
        first.sentiment == pytest.approx(-0.7)
        and first.trust == pytest.approx(0.2)
        and first.interactions == 1
    )
    worse = await rels.update_from_interaction(
        "coby", "@hater", -0.9, trust_delta=-0.9, familiarity_delta=2.0, note="again"
    )
    assert (
        worse.sentiment == -1.0
        and worse.trust == 0.0
        and worse.familiarity == 1.0
        and worse.interactions == 2
    )
    assert worse.notes == "called me a scammer\nagain"
    await rels.update_from_interaction("coby", "luna", 0.3)
    assert [r.other for r in await rels.list_for("coby")] == ["@hater", "luna"]
    assert await rels.delete("coby", "luna") is True
    assert await rels.get("coby", "luna") is None


async def test_interactions_with_several_others_update_each_once_in_one_go(env: Env) -> None:
    rels = env.store().relationships
    await rels.update_from_interaction("coby", "luna", 0.95)
    updated = await rels.update_from_interactions("coby", ["luna", "rex", "luna"], 0.1, familiarity_delta=0.2)
    assert [(r.other, r.interactions) for r in updated] == [("luna", 2), ("rex", 1)]
    luna = await rels.get("coby", "luna")
    assert luna is not None and luna.sentiment == 1.0 and luna.familiarity == pytest.approx(0.25)
    rex = await rels.get("coby", "rex")
    assert rex is not None and rex.sentiment == pytest.approx(0.1) and rex.trust == pytest.approx(0.5)
    assert await rels.update_from_interactions("coby", []) == []


# ---------------------------------------------------------------------- search quality


LABELLED = [
    ("what do I think about pizza toppings", "pizza"),
    ("morning caffeine habit", "coffee"),
    ("my pet broke my computer", "cat"),
    ("weather kept me indoors", "rain"),
    ("ocean waves with buddies", "beach"),
    ("price slippage on a token swap", "jupiter"),
    ("programming language for blockchain smart contracts", "rust"),
    ("my long-term crypto investment", "sol"),
]


async def test_local_embedder_finds_the_meaning_not_just_the_words(
    env: Env, local_embedder
) -> None:
    store = env.store(embedder=local_embedder, weights=RankingWeights(importance=0, recency=0))
    ids = await seed_facts(store)
    in_top3 = 0
    for query, label in LABELLED:
        hits = await store.search_memories("coby", query, limit=3)
        in_top3 += ids[label] in [h.memory.id for h in hits]
    assert in_top3 >= 7, f"only {in_top3}/{len(LABELLED)} queries found their memory in the top 3"


@pytest.mark.postgres
async def test_postgres_index_path_agrees_with_exact_search(pg_url: str) -> None:
    env = Env("postgres", Database(pg_url), VirtualClock())
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(40, 384))
    vectors = centers[rng.integers(0, 40, 1500)] + 0.6 * rng.normal(size=(1500, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedder = HashingEmbedder()
    store = env.store(embedder=embedder, exact_threshold=0)
    await store.add_many(
        "coby", [Memory(f"m{i}", embedding=v.astype(np.float32)) for i, v in enumerate(vectors)]
    )
    await store.add_many(
        "luna",
        [Memory(f"l{i}", embedding=v.astype(np.float32)) for i, v in enumerate(vectors[:300])],
    )
    exact = env.store(embedder=embedder, exact_threshold=10**9)
    overlap = 0
    queries = vectors[rng.integers(0, 1500, 20)] + 0.2 * rng.normal(size=(20, 384))
    for q in queries:
        approx_ids = {h.memory.id for h in await store.search_vector("coby", q, limit=10)}
        exact_ids = {h.memory.id for h in await exact.search_vector("coby", q, limit=10)}
        overlap += len(approx_ids & exact_ids)
    assert overlap / (10 * len(queries)) >= 0.9
    assert {h.memory.agent_id for h in await store.search_vector("luna", queries[0], limit=10)} == {
        "luna"
    }
    await env.close()


@pytest.mark.parametrize("encrypted", [False, True])
async def test_a_search_hit_is_the_stored_memory_field_for_field(env: Env, encrypted: bool) -> None:
    store = env.store(cipher=ContentCipher(KEY) if encrypted else None)
    with_meta = await store.add_memory("coby", Memory(
        "Coby bought SOL at the dip", kind="post", importance=0.7, key="dip",
        metadata={"tweet_id": "42", "tags": ["sol", "dip"], "nested": {"n": 1}}))
    plain = await store.add_memory("coby", Memory("Coby likes lighthouses", kind="knowledge"))
    hits = await store.search_memories("coby", "Coby", limit=5)
    assert {h.memory.id for h in hits} == {with_meta, plain}
    for hit in hits:
        stored = await store.get("coby", hit.memory.id or "")
        assert hit.memory == stored  # every field but the embedding, which searches leave out
        assert hit.memory.embedding is None


@pytest.mark.postgres
async def test_postgres_index_path_ranks_as_the_reference_definition(pg_url: str) -> None:
    """The HNSW path (binary query vector, prepared statement) returns what numpy computes:
    the nearest candidates re-ranked by similarity + importance + recency, same scores, same order."""
    env = Env("postgres", Database(pg_url), VirtualClock())
    rng = np.random.default_rng(5)
    n = 1200
    centers = rng.normal(size=(30, 384))
    vectors = centers[rng.integers(0, 30, n)] + 0.6 * rng.normal(size=(n, 384))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    importance = rng.uniform(0, 1, n)
    created = env.clock.now() - rng.uniform(0, 30 * 86400, n)
    weights = RankingWeights()
    store = env.store(weights=weights, exact_threshold=0, ef_search=300)
    await store.add_many("coby", [
        Memory(f"m{i}", embedding=vectors[i], importance=float(importance[i]),
               created_at=float(created[i]), id=f"m{i:05d}", metadata={"i": i})
        for i in range(n)
    ])
    await store.add_many("luna", [Memory(f"l{i}", embedding=v) for i, v in enumerate(vectors[:400])])
    bonus = weights.bonus(importance, created, env.clock.now())
    found = same_order = 0
    queries = vectors[rng.integers(0, n, 20)] + 0.1 * rng.normal(size=(20, 384)).astype(np.float32)
    for q in queries:
        q = q / np.linalg.norm(q)
        hits = await store.search_vector("coby", q, limit=10)
        cosine = vectors @ q
        candidates = np.argsort(-cosine)[: weights.candidates(10)]
        reference = candidates[np.argsort(-(cosine[candidates] + bonus[candidates]))][:10]
        got = [int((h.memory.id or "m-1")[1:]) for h in hits]
        found += len(set(got) & set(reference.tolist()))
        same_order += got == reference.tolist()
        for h, i in zip(hits, got, strict=True):
            assert h.memory.metadata == {"i": i} and h.memory.agent_id == "coby"
            assert h.similarity == pytest.approx(cosine[i], abs=1e-5)
            assert h.score == pytest.approx(cosine[i] + bonus[i], abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert found / (10 * len(queries)) >= 0.98
    assert same_order >= len(queries) - 1
    await env.close()


@pytest.mark.postgres
async def test_postgres_index_search_width_follows_the_agent_share(pg_url: str) -> None:
    """hnsw.ef_search is pgvector's 40 for an agent owning the index, widened by its share of the rows."""
    env = Env("postgres", Database(pg_url), VirtualClock())
    store = env.store(exact_threshold=0, search_pool_size=1)
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(400, 384)).astype(np.float32)
    await store.add_many("coby", [Memory(f"c{i}", embedding=v) for i, v in enumerate(vectors[:100])])

    async def width_after_search(agent: str) -> str:
        assert len(await store.search_vector(agent, vectors[0], limit=10)) == 10
        connections = store._connections  # the one connection the search used
        assert connections is not None and connections.idle == 1
        conn = await connections.take()
        try:
            return str(await conn.fetchval("SHOW hnsw.ef_search"))
        finally:
            connections.give_back(conn)

    assert await width_after_search("coby") == "40"  # the whole index: no SET at all
    await store.add_many("luna", [Memory(f"l{i}", embedding=v) for i, v in enumerate(vectors[100:])])
    store._counts.clear()
    assert await width_after_search("coby") == "160"  # a quarter of the rows: four times as wide
    await env.close()


@pytest.mark.postgres
async def test_postgres_memory_indexes_are_built_with_ef_construction_128(pg_url: str) -> None:
    """Migration 0012 sets it on the indexes it finds (built empty by 0002: the whole graph);
    an index the store builds for another embedding size gets it as it is created."""
    env = Env("postgres", Database(pg_url), VirtualClock())
    store = env.store(embedder=HashingEmbedder(dim=96))
    await store.add_memory("coby", Memory("Coby likes lighthouses"))
    assert await store.search_memories("coby", "lighthouses")
    async with env.db.connect() as conn:
        options = dict((await conn.execute(sa.text(
            "SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'ix_memories_embedding_vec_%'"
        ))).all())
    assert options == {f"ix_memories_embedding_vec_{dim}": ["ef_construction=128"] for dim in (96, 384, 1536)}
    await env.close()
