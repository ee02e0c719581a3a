"""Prepared statements (``storage.prepared``): on inline SQLite they run on the sqlite3
connection, elsewhere through SQLAlchemy, and either way the rows, the database's contents
and the errors are the same.

Each statement family is run twice with the same inputs: on an inline SQLite database
(the direct path) and on the same database opened with aiosqlite (``inline=False``: the
regular SQLAlchemy path); then the tables and the rows read back are compared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import StorageError
from puppet_engine.memory import HashingEmbedder, Memory, SQLiteStore
from puppet_engine.memory.relationships import RelationshipStore
from puppet_engine.storage import Database
from puppet_engine.storage.prepared import Prepared, inline_connection
from puppet_engine.storage.repos import (
    agent_states,
    engagement,
    events,
    facts,
    llm_calls,
    outbox,
    recordings,
    review,
)
from puppet_engine.storage.tables import agents, memories, metadata, post_metrics

T0 = 1_700_000_000.0


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """The same fresh database twice: inline (direct path) and aiosqlite (SQLAlchemy path)."""
    dbs = [Database(f"sqlite:///{tmp_path / 'direct.db'}"),
           Database(f"sqlite:///{tmp_path / 'regular.db'}", inline=False)]
    for db in dbs:
        await db.migrate()
    yield dbs[0], dbs[1]
    for db in dbs:
        await db.close()


async def _contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    async with db.connect() as conn:
        return {table.name: [tuple(r) for r in await conn.execute(sa.select(table).order_by(*table.primary_key))]
                for table in metadata.sorted_tables}


async def _same(pair: tuple[Database, Database], scenario: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run ``scenario`` on both databases; its results and the databases' contents must agree."""
    direct, regular = pair
    got = await scenario(direct)
    expected = await scenario(regular)
    assert got == expected
    assert _types(got) == _types(expected)
    assert await _contents(direct) == await _contents(regular)
    return got


def _types(value: Any) -> Any:
    """The shape of a value with the type of each leaf (1 and 1.0 are equal, but not alike)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_types(v) for v in value]
    if hasattr(value, "_mapping"):
        return _types(dict(value._mapping))
    if hasattr(value, "__dataclass_fields__"):
        return _types(value.__dict__)
    return type(value).__name__


async def test_only_inline_sqlite_takes_the_direct_path(pair, either_database) -> None:
    direct, regular = pair
    async with direct.connect() as conn:
        assert inline_connection(conn) is not None
    async with regular.connect() as conn:
        assert inline_connection(conn) is None
    async with either_database.connect() as conn:
        assert (inline_connection(conn) is not None) == (either_database.dialect == "sqlite")


async def test_prepared_statements_run_on_either_database(either_database) -> None:
    """The repositories' prepared statements on SQLite (direct) and PostgreSQL (regular)."""
    db = either_database
    async with db.transaction() as conn:
        await facts.insert(conn, [facts.fact("ann", "state", {"mood": "calm"}, T0, cause=3)])
        await events.insert_events(conn, [_event("k1"), _event("k2", agent_id="ben")])
        rows, _, _ = await events.claim(conn, T0 + 10, 5, "me", set(), None)
        await events.mark_done(conn, [(r.id, {"ok": True}, T0 + 11) for r in rows])
    assert sorted(r.agent_id for r in rows) == ["ann", "ben"]
    assert [f["payload"] for f in await facts.of_agent(db, "ann")] == [{"mood": "calm"}]
    async with db.connect() as conn:
        done = (await conn.execute(sa.text("SELECT status FROM events ORDER BY id"))).scalars().all()
    assert done == ["done", "done"]


def _event(key: str, *, agent_id: str = "ann", due: float = T0) -> dict[str, Any]:
    return {"key": key, "type": "post.due", "agent_id": agent_id, "payload": {"n": key}, "due_at": due,
            "status": "pending", "attempts": 0, "max_attempts": 5, "created_at": T0, "trace_id": None}


async def test_facts_and_recordings(pair) -> None:
    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            await facts.insert(conn, [facts.fact("ann", "state", {"mood": "calm", "n": [1, 2.5, None]}, 5, cause=7),
                                      facts.fact("ann", "skip", {"event": "post.due"}, T0 + 0.25)])
            await facts.insert(conn, [facts.fact("ben", "state", {}, T0)])
            await recordings.insert_batches(conn, [[
                {"agent_id": "ann", "event_id": 1, "kind": "event", "seq": 0, "created_at": T0, "body": b"z\x00"},
                {"agent_id": "ann", "event_id": None, "kind": "llm", "seq": 1, "created_at": 3, "body": b"e\x01"}]])
        return await facts.of_agent(db, "ann")

    got = await _same(pair, scenario)
    assert [f["at"] for f in got] == [5.0, T0 + 0.25]


async def test_events_insert_claim_and_done(pair) -> None:
    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            await events.insert_events(conn, [_event("a1"), _event("a2", due=T0 + 1), _event("b1", agent_id="ben")])
            await events.insert_events(conn, [_event("a1"), _event("c1", agent_id="cat", due=T0 + 500)])
        async with db.transaction() as conn:
            claimed, next_at, more = await events.claim(conn, T0 + 5, 10, "me", {"cat"}, None)
            await events.mark_done(conn, [(claimed[0].id, {"posted": "x", "n": 1}, T0 + 6)])
            await events.mark_done(conn, [(r.id, None, 7) for r in claimed[1:]])
        async with db.transaction() as conn:
            again = await events.claim(conn, T0 + 5, 10, "me", set(), frozenset({"ann", "cat"}))
        return [r._mapping for r in claimed], next_at, more, again

    claimed, next_at, more, (again, _, _) = await _same(pair, scenario)
    assert [r["key"] for r in claimed] == ["a1", "b1"] and next_at == T0 + 500 and more
    assert [r.key for r in again] == ["a2"]


async def test_outbox_and_engagement(pair) -> None:
    posts = [outbox.action_row(f"p{i}", "ann", kind, payload, None, T0 + i)
             for i, (kind, payload) in enumerate([("post", {"text": "hello"}), ("thread", {"parts": ["a", "b"]}),
                                                  ("reply", {"text": "re"}), ("like", {}), ("quote", {"text": "q"})])]

    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            ids = await outbox.insert_keyed_actions(conn, posts)
            await outbox.mark_actions_done(conn, [(ids["p0"], T0 + 9, "x0", {"id": "x0"}),
                                                  (ids["p1"], T0 + 9, "x1", {})])
            await outbox.mark_actions_done(conn, [(ids["p4"], 10, None, {"n": None})])
        sample = engagement.Sample("ann", "x0", T0, 3, 1, T0 + 3600, likes=2, impressions=None, gone=True)
        await engagement.record(db, [sample], "ev:1")
        return (await outbox.post_history(db, "ann", 2, T0 + 3), await outbox.post_history(db, "ann", 9, 0),
                await engagement.tracked_posts(db, "ann", T0), await engagement.taken_by(db, "ev:1"),
                await engagement.taken_by(db, "ev:none"))

    history, everything, tracked, taken, none = await _same(pair, scenario)
    assert [kind for kind, _, _ in history] == ["quote", "reply"]
    assert len(everything) == 4 and none == []
    assert [(t.post_id, t.text, t.taken) for t in tracked] == [("x0", "hello", frozenset({1})), ("x1", "a b", frozenset())]
    assert taken[0].gone is True and taken[0].impressions is None and taken[0].posted_at == T0


async def test_outbox_inserts_claims_peer_posts_calls_and_prunes(pair) -> None:
    """The statements of an interaction round and an outbox send: one action and keyed actions
    recorded (a key seen before left out), a claim won once, peers' posts by agent count, LLM
    call rows, engagement samples recorded (a taken slot kept) and pruned."""
    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            one = await outbox.insert_action(conn, "a:1", "ann", "post", {"text": "hi"}, 4, T0)
            again = await outbox.insert_action(conn, "a:1", "ann", "post", {"text": "other"}, 4, T0 + 1)
            held = await outbox.insert_action(conn, "a:2", "ben", "reply", {"text": "re"}, None, T0 + 2, held=True)
            keyed = await outbox.insert_keyed_actions(conn, [
                outbox.action_row("a:1", "ann", "post", {"text": "dup"}, None, T0 + 3),
                outbox.action_row("b:1", "ben", "thread", {"parts": ["x", "y"]}, 5, T0 + 4, sending=True),
                outbox.action_row("c:1", "cat", "quote", {"text": "q"}, None, T0 + 5)])
            claims = [await outbox.claim_action(conn, one or 0, T0 + 6), await outbox.claim_action(conn, one or 0, T0 + 7)]
            await outbox.mark_actions_done(conn, [(one or 0, T0 + 8, "x1", {}), (keyed["b:1"], T0 + 9, "x2", {}),
                                                  (keyed["c:1"], T0 + 10, "x3", {"n": 1})])
            await llm_calls.insert_calls(conn, [
                {"agent_id": "ann", "provider": "fake", "model": "m", "purpose": "post", "prompt_tokens": 3,
                 "completion_tokens": 4, "latency_ms": 1.5, "cost_usd": 0.0, "outcome": "ok", "error": None,
                 "created_at": T0},
                {"agent_id": None, "provider": "fake", "model": "m", "purpose": "mood", "prompt_tokens": 0,
                 "completion_tokens": 0, "latency_ms": 0.0, "cost_usd": 0.25, "outcome": "error",
                 "error": "boom", "created_at": T0 + 1}])
        samples = [engagement.Sample("ann", "x1", T0, 3, slot, T0 + 3600 * slot, likes=slot) for slot in (1, 2)]
        await engagement.record(db, samples, "ev:1")
        await engagement.record(db, [engagement.Sample("ann", "x1", T0, 3, 1, T0 + 5, likes=9)], "ev:2")
        await engagement.record(db, [engagement.Sample("ann", "x9", T0 + 9000, 3, 1, T0 + 9999)], "ev:3")
        pruned = await engagement.prune(db, "ann", T0 + 1)
        peers = [await outbox.posts_since(db, ids, T0 - 1, 10) for ids in (["ann", "ben", "cat"], ["ben"], [])]
        return one, again, held, keyed, claims, pruned, peers, await llm_calls.tokens_since(db, "ann", T0)

    one, again, held, keyed, claims, pruned, peers, tokens = await _same(pair, scenario)
    assert one is not None and again is None and held is not None and sorted(keyed) == ["b:1", "c:1"]
    assert claims == [True, False] and pruned == 2 and tokens == 7  # the claim is won once
    assert [(r.agent_id, r.external_id) for r in peers[0]] == [("cat", "x3"), ("ben", "x2"), ("ann", "x1")]
    assert [r.kind for r in peers[1]] == ["thread"] and peers[2] == []


async def test_the_outbox_and_clock_passes_filtered_by_owned_agents(pair, either_database) -> None:
    """The reads of every outbox pass and clock step, with and without the owned-agents filter
    (one parameter: a JSON array on SQLite, an array on PostgreSQL), many agents and none."""
    crowd = frozenset(f"agent-{i:03d}" for i in range(100)) | {"ann"}

    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            ids = await outbox.insert_keyed_actions(conn, [
                outbox.action_row(f"k{i}", agent, "like", {"n": i}, None, T0 + i)
                for i, agent in enumerate(["ann", "ben", "ann", "cat"])])
            await events.insert_events(conn, [_event("e1", due=T0 + 50), _event("e2", agent_id="ben", due=T0 + 5),
                                              {**_event("e3", due=T0 + 70), "agent_id": None}])
        async with db.connect() as conn:
            found = []
            for owned in (None, crowd, frozenset({"ben"}), frozenset()):
                found.append([r.key for r in await outbox.pending_actions(conn, 10, owned)])
                found.append([r.key for r in await outbox.load_actions(conn, status="pending", agent_ids=owned,
                                                                       due_before=T0 + 100, limit=2)])
            found.append([r.key for r in await outbox.load_actions(conn, ids=[ids["k3"], ids["k1"], 999])])
            found.append(await review.expiring(conn, T0, crowd))
        for owned in (None, crowd, frozenset({"ben"}), frozenset()):
            found.append(await events.next_due_at(db, owned))
        return found

    got = await _same(pair, scenario)
    assert got[:4] == [["k0", "k1", "k2", "k3"], ["k0", "k1"], ["k0", "k2"], ["k0", "k2"]]
    assert got[8:] == [["k1", "k3"], ([], None), T0 + 5, T0 + 50, T0 + 5, T0 + 70]
    again = await scenario(either_database)  # PostgreSQL: the same answers through SQLAlchemy
    assert again == got


async def test_agent_state_merges(pair) -> None:
    async def scenario(db: Database) -> Any:
        async with db.transaction() as conn:
            await conn.execute(sa.insert(agents), [
                {"id": name, "config": {}, "state": {"mood": "calm"}, "enabled": True, "version": 1,
                 "created_at": T0, "updated_at": T0} for name in ("ann", "ben")])
            await agent_states.merge_states(conn, [("ann", {"mood": "glad", "n": 1}), ("ben", {"mood": "sad", "n": 2}),
                                                   ("ann", {"list": [1, {"a": None}]}), ("ben", {})], T0 + 1)
        return await agent_states.read_states(db, ["ann", "ben"])

    states = await _same(pair, scenario)
    assert states["ann"] == {"mood": "glad", "n": 1, "list": [1, {"a": None}]}


async def test_memories_insert_and_listing(pair) -> None:
    async def scenario(db: Database) -> Any:
        store = SQLiteStore(db, HashingEmbedder(), clock=VirtualClock(T0))
        try:
            await store.add_many("ann", [Memory("first", kind="post", id="m1", metadata={"src": "x"}),
                                         Memory("second", kind="core", id="m2", importance=1)])
            return (await store.list_memories("ann"), await store.list_memories("ann", kind="core"),
                    await store.list_memories("ann", since=T0, until=T0 + 1, limit=1, offset=1))
        finally:
            await store.close()

    listed, core, page = await _same(pair, scenario)
    assert [m.id for m in listed] == ["m2", "m1"] and [m.id for m in core] == ["m2"] and [m.id for m in page] == ["m1"]


async def test_relationship_upserts(pair) -> None:
    async def scenario(db: Database) -> Any:
        store = RelationshipStore(db, VirtualClock(T0))
        first = await store.update_from_interactions("ann", ["ben", "cat", "ben"], 0.5, trust_delta=0.75)
        again = await store.update_from_interactions("ann", ["cat", "dan"], -2)
        one = await store.update_from_interaction("ann", "ben", 0.25, note="met at the market")
        return first, again, one, await facts.of_agent(db, "ann")

    first, again, one, history = await _same(pair, scenario)
    assert [(r.other, r.interactions, r.trust) for r in first] == [("ben", 1, 1.0), ("cat", 1, 1.0)]
    assert [(r.other, r.interactions, r.sentiment) for r in again] == [("cat", 2, -1.0), ("dan", 1, -1.0)]
    assert one.interactions == 2 and one.notes == "met at the market" and len(history) == 5


async def test_rows_and_errors_match_sqlalchemy_on_one_connection(pair) -> None:
    """On one inline connection: the rows (values, names, column keys) and the error of the
    direct path are those of ``AsyncConnection.execute``."""
    db = pair[0]
    query = Prepared(sa.select(memories.c.id, memories.c.encrypted, memories.c.importance, memories.c.metadata,
                               sa.func.count().over().label("total"))
                     .where(memories.c.agent_id == sa.bindparam("agent")).order_by(memories.c.id))
    insert = Prepared(sa.insert(memories))
    row = {"id": "m1", "agent_id": "ann", "kind": "post", "content": "c", "created_at": 1}
    async with db.transaction() as conn:
        assert await insert.run(conn, [row, {**row, "id": "m2", "encrypted": True, "importance": 2}]) == 2
    async with db.connect() as conn:
        direct = await query.rows(conn, {"agent": "ann"})
        regular = (await conn.execute(query.statement, {"agent": "ann"})).fetchall()
    assert direct == regular and _types(direct) == _types(regular)
    assert direct[1].encrypted is True and direct[0].metadata == {} and direct[0].importance == 0.5
    assert direct[0]._mapping[memories.c.id] == "m1" and direct[1].total == 2

    messages = []
    for run in (lambda conn: insert.run(conn, [row]), lambda conn: conn.execute(insert.statement, [row])):
        with pytest.raises(StorageError) as failed:
            async with db.transaction() as conn:
                await run(conn)
        messages.append(str(failed.value))
    assert messages[0] == messages[1] and "UNIQUE constraint failed: memories.id" in messages[0]


async def test_a_statement_sqlalchemy_must_expand_takes_the_regular_path(pair) -> None:
    async def scenario(db: Database) -> Any:
        listed = Prepared(sa.select(post_metrics.c.post_id, post_metrics.c.gone)
                          .where(post_metrics.c.post_id.in_(sa.bindparam("ids", expanding=True))))
        await engagement.record(db, [engagement.Sample("ann", "x0", T0, 3, 1, T0)], "ev:1")
        async with db.connect() as conn:
            return await listed.rows(conn, {"ids": ["x0", "x1"]})

    assert await _same(pair, scenario) == [("x0", False)]


async def test_direct_writes_belong_to_the_transaction(pair) -> None:
    """A direct write commits with its transaction, and is rolled back with it."""
    async def scenario(db: Database) -> Any:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await facts.insert(conn, [facts.fact("ann", "state", {"n": 1}, T0)])
                raise RuntimeError("the caller fails after writing")
        async with db.transaction() as conn:
            await facts.insert(conn, [facts.fact("ann", "state", {"n": 2}, T0)])
        return [f["payload"] for f in await facts.of_agent(db, "ann")]

    assert await _same(pair, scenario) == [{"n": 2}]


async def test_watched_statements_take_the_regular_path(pair) -> None:
    """``before_cursor_execute`` listeners (statement counters, ``echo``) still see every statement."""
    db = pair[0]
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", watch)
    async with db.transaction() as conn:
        assert inline_connection(conn) is None
        await facts.insert(conn, [facts.fact("ann", "state", {}, T0)])
    sa.event.remove(db.engine.sync_engine, "before_cursor_execute", watch)
    async with db.connect() as conn:
        assert inline_connection(conn) is not None
    assert [s for s in seen if s.startswith("INSERT INTO facts")]
