"""Facts written with the changes they record (same transaction), read back as the state then:
skips and state changes with their cause, forgotten memories still found at a moment before they
were forgotten, encrypted ones kept encrypted, and a projection rebuilt over a damaged one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from puppet_engine.agents.state import AgentStates
from puppet_engine.clock import VirtualClock
from puppet_engine.events import Event, HandlerResult, records
from puppet_engine.history import rebuild, state_at, timeline
from puppet_engine.memory import Memory, build_memory_store
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos import facts as fact_rows
from puppet_engine.storage.tables import agents, facts, relationships


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def db(db_url: str):
    database = Database(db_url)
    await database.migrate()
    yield database
    await database.close()


def settings(url: str, **extra) -> Settings:
    return Settings(db_url=url, embedder="hashing", _env_file=None, **extra)  # type: ignore[call-arg]


async def test_outcomes_write_state_and_skip_facts_caused_by_their_event(db, db_url: str) -> None:
    clock = VirtualClock()
    await agent_rows.save_config(db, "ada", {"id": "ada"}, clock.now())
    event = Event("post.due", "ada", {}, due_at=clock.now(), key="post:ada:1")
    clock.advance(60)
    async with db.transaction() as conn:
        event.id = await records.insert_event(conn, event, clock.now())
        await records.record_outcomes(conn, [(event, HandlerResult(
            result={"skipped": "rejected by validation: too long"}, state={"post_skip_streak": 1,
                                                                         "next_post_at": clock.now() + 3600}))],
            clock.now())
    rows = await fact_rows.of_agent(db, "ada")
    assert [r["kind"] for r in rows] == ["lifecycle", "config", "state", "skip"]
    assert rows[2]["cause"] == rows[3]["cause"] == event.id
    assert rows[3]["payload"] == {"event": "post.due", "reason": "rejected by validation: too long"}
    then = await state_at(db, "ada", clock.now())
    assert then["skips"][0]["reason"] == "rejected by validation: too long"
    assert then["schedule"]["next_post_at"] == "2026-01-01T01:01:00Z"
    story = await timeline(db, "ada", clock.now() - 120, clock.now())
    assert [e["what"] for e in story][-1] == "skipped"
    assert story[-1]["text"] == "post.due: rejected by validation: too long"


async def test_forgotten_memories_are_found_at_a_moment_before_they_were_forgotten(db, db_url: str) -> None:
    clock = VirtualClock()
    store = build_memory_store(settings(db_url), db, clock=clock)
    await agent_rows.save_config(db, "ada", {"id": "ada"}, clock.now())
    start = clock.now()
    clock.advance(60)
    lighthouse = await store.add_memory("ada", Memory(content="the lighthouse keeper's logbook", kind="knowledge"))
    clock.advance(60)
    await store.add_memory("ada", Memory(content="tea with rain at dawn", kind="knowledge"))
    both = clock.now() + 30
    clock.advance(60)
    assert await store.delete("ada", lighthouse)
    after = clock.now() + 30

    then = await state_at(db, "ada", both, store=store, query="lighthouse logbook")
    assert then["memories"]["count"] == 2
    first = then["memories"]["found"][0]
    assert first["id"] == lighthouse and first["content"] == "the lighthouse keeper's logbook"
    assert first["forgotten_at"] == "2026-01-01T00:03:00Z"
    later = await state_at(db, "ada", after, store=store, query="lighthouse logbook")
    assert later["memories"]["count"] == 1 and lighthouse not in {m["id"] for m in later["memories"]["found"]}
    clock.advance(60)
    assert await store.clear("ada") == 1
    still = await state_at(db, "ada", after, store=store, query="tea at dawn")
    assert still["memories"]["count"] == 1 and still["memories"]["found"][0]["content"] == "tea with rain at dawn"
    assert (await state_at(db, "ada", clock.now() + 1))["memories"]["count"] == 0
    before = await state_at(db, "ada", start + 30, store=store, query="tea")  # before both
    assert before["memories"]["count"] == 0 and before["memories"]["found"] == []
    await store.close()


async def test_an_encrypted_memory_stays_encrypted_in_the_facts(db, db_url: str) -> None:
    clock = VirtualClock()
    store = build_memory_store(settings(db_url, memory_encryption_key="k" * 40), db, clock=clock)
    secret = await store.add_memory("ada", Memory(content="the vault code is swordfish", kind="knowledge"))
    clock.advance(60)
    await store.delete("ada", secret)
    async with db.connect() as conn:
        stored = [r[0] for r in await conn.execute(sa.select(sa.cast(facts.c.payload, sa.Text)))]
    assert stored and not any("swordfish" in text for text in stored)
    then = await state_at(db, "ada", clock.now() - 30, store=store, query="vault code")
    assert then["memories"]["found"][0]["content"] == "the vault code is swordfish"
    await store.close()


async def test_rebuild_writes_the_projection_back_over_a_damaged_one(db, db_url: str) -> None:
    clock = VirtualClock()
    await agent_rows.save_config(db, "ada", {"id": "ada"}, clock.now())
    states = AgentStates(db)
    store = build_memory_store(settings(db_url), db, clock=clock)
    await states.merge("ada", {"mood": {"valence": 0.4, "arousal": 0.1, "dominance": 0.0}, "post_seq": 3}, clock.now())
    clock.advance(60)
    await store.relationships.seed("ada", "cy", sentiment=0.9, notes="met at the fair")
    await store.relationships.update_from_interaction("ada", "bo", 0.2, note="kind words")
    clock.advance(60)
    await store.relationships.update_from_interactions("ada", ["bo", "cy"], 0.1)
    await store.relationships.seed("ada", "cy", sentiment=-1.0)  # exists: changes nothing, no fact
    await states.merge("ada", {"post_seq": 4}, clock.now())
    live = await fact_rows.projection_of(db, "ada")

    async with db.transaction() as conn:  # damage the projection behind the facts' back
        await conn.execute(agents.update().where(agents.c.id == "ada").values(state={"post_seq": 99}))
        await conn.execute(sa.delete(relationships).where(relationships.c.other == "bo"))
    assert await fact_rows.projection_of(db, "ada") != live
    await rebuild(db, "ada", write=True, now=clock.now())
    assert await fact_rows.projection_of(db, "ada") == live
    state, _, rels = live
    assert state["post_seq"] == 4 and state["mood"]["valence"] == 0.4
    assert {r["other"]: r["notes"] for r in rels} == {"bo": "kind words", "cy": "met at the fair"}
    await store.close()


async def test_the_migration_gives_existing_agents_a_baseline_to_rebuild_from(sqlite_url: str) -> None:
    old = Database(sqlite_url)
    await old.migrate("0004")  # a database from before the history
    async with old.transaction() as conn:
        await conn.execute(agents.insert().values(id="ada", config={"id": "ada"}, state={"post_seq": 7}, enabled=True,
                                                  version=3, created_at=1.0, updated_at=1.0))
        await conn.execute(relationships.insert().values(agent_id="ada", other="bo", sentiment=0.5, familiarity=0.2,
                                                         trust=0.6, notes="", interactions=4, updated_at=1.0))
    await old.migrate()
    projection = await rebuild(old, "ada")
    assert projection.state == {"post_seq": 7} and projection.config["version"] == 3
    assert projection.relationships["bo"]["interactions"] == 4 and projection.relationships["bo"]["trust"] == 0.6
    await old.close()
