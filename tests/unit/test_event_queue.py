"""The event queue at scale: one-statement state merges, grouped commits, claims, an idle engine that does not poll."""

from __future__ import annotations

import asyncio
import random

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from puppet_engine.clock import VirtualClock
from puppet_engine.events import (
    Action,
    ActionExecutor,
    ActionOutcome,
    Event,
    EventEngine,
    HandlerResult,
    Outbox,
    records,
)
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agent_states
from puppet_engine.storage.tables import agents, events


class Sent(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


def make_engine(db: Database, clock: VirtualClock, concurrency: int = 8) -> EventEngine:
    executor = Sent()
    outbox = Outbox(db, clock, lambda _a: executor, rng=random.Random(1))
    return EventEngine(db, clock, outbox, concurrency=concurrency, rng=random.Random(1), poll_interval=3600)


async def add_agents(db: Database, ids: list[str], state: dict | None = None) -> None:
    async with db.transaction() as conn:
        await conn.execute(agents.insert(), [{"id": i, "config": {}, "state": dict(state or {}), "enabled": True,
                                              "version": 1, "created_at": 0, "updated_at": 0} for i in ids])


async def states(db: Database) -> dict[str, dict]:
    async with db.connect() as conn:
        return {r.id: r.state for r in (await conn.execute(sa.select(agents.c.id, agents.c.state)))}


async def check_merge(db: Database) -> None:
    await add_agents(db, ["a", "b", "c"], {"keep": 1, "mood": {"joy": 0.2}})
    async with db.transaction() as conn:
        await agent_states.merge_states(conn, [
            ("a", {"post_seq": 3, "since_id": None, "mood": {"joy": 0.9}, "text": "it's \"quoted\""}),
            ("b", {"post_seq": 4, "since_id": "17", "mood": {"joy": 0.1}, "text": "plain"}),  # same shape as a
            ("c", {"odd\"key": 1, "nan": float("nan")}),  # falls back to read-modify-write
        ], now=5.0)
    got = await states(db)
    assert got["a"] == {"keep": 1, "mood": {"joy": 0.9}, "post_seq": 3, "since_id": None, "text": "it's \"quoted\""}
    assert got["b"] == {"keep": 1, "mood": {"joy": 0.1}, "post_seq": 4, "since_id": "17", "text": "plain"}
    assert got["c"]["odd\"key"] == 1 and got["c"]["keep"] == 1


async def test_state_changes_merge_in_place_keeping_other_keys_and_nulls(database) -> None:
    await check_merge(database)


@pytest.mark.postgres
async def test_state_changes_merge_in_place_on_postgres(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        await check_merge_pg(db)
    finally:
        await db.close()


async def check_merge_pg(db: Database) -> None:
    await add_agents(db, ["a", "b"], {"keep": 1, "mood": {"joy": 0.2}})
    async with db.transaction() as conn:
        await agent_states.merge_states(conn, [("a", {"post_seq": 3, "since_id": None, "mood": {"joy": 0.9}}),
                                              ("b", {"text": "it's"})], now=5.0)
    got = await states(db)
    assert got["a"] == {"keep": 1, "mood": {"joy": 0.9}, "post_seq": 3, "since_id": None}
    assert got["b"] == {"keep": 1, "mood": {"joy": 0.2}, "text": "it's"}


async def test_events_finishing_together_share_a_commit_and_a_bad_one_fails_alone(database, virtual_clock) -> None:
    engine = make_engine(database, virtual_clock)
    ids = [f"g{i}" for i in range(6)]
    await add_agents(database, ids)
    gate = asyncio.Event()

    async def handler(ev: Event) -> HandlerResult:
        await gate.wait()
        if ev.agent_id == "g3":
            return HandlerResult(result={"bad": object()})  # cannot be stored
        return HandlerResult(result={"n": ev.payload["n"]}, state={"n": ev.payload["n"]},
                             follow_ups=[Event("work", ev.agent_id, {"n": ev.payload["n"] + 1},
                                               due_at=virtual_clock.now() + 60, key=f"w:{ev.agent_id}:2")])

    engine.register("work", handler)
    await engine.schedule_many([Event("work", a, {"n": 1}, due_at=virtual_clock.now(), key=f"w:{a}:1") for a in ids])
    commits = 0

    def count(*_args: object) -> None:
        nonlocal commits
        commits += 1

    sa_event.listen(database.engine.sync_engine, "commit", count)
    runner = asyncio.create_task(engine.run_until_idle())
    await asyncio.sleep(0.05)
    gate.set()
    await runner
    async with database.connect() as conn:
        rows = {r.key: r for r in (await conn.execute(sa.select(events)))}
    assert {k for k, r in rows.items() if r.status == "done"} == {f"w:{a}:1" for a in ids if a != "g3"}
    assert rows["w:g3:1"].status in ("pending", "failed")  # retried later, like any crashed event
    assert {k for k, r in rows.items() if k.endswith(":2")} == {f"w:{a}:2" for a in ids if a != "g3"}
    assert (await states(database))["g0"] == {"n": 1}
    assert commits < 2 * len(ids)  # grouped: far fewer transactions than one per write


async def test_claim_takes_one_event_per_agent_in_due_order(database, virtual_clock) -> None:
    now = virtual_clock.now()
    async with database.transaction() as conn:
        for key, agent, due in [("a2", "a", now - 5), ("a1", "a", now - 10), ("b1", "b", now - 1), ("n1", None, now),
                                ("n2", None, now), ("c1", "c", now + 100)]:
            await records.insert_event(conn, Event("t", agent, key=key, due_at=due), now)
    async with database.transaction() as conn:
        found = await records.claim(conn, now, 10, "me", busy={"b"})
    assert [e.key for e in found.events] == ["a1", "n1", "n2"]
    assert found.next_due == now + 100 and found.blocked  # b's event waits for b


async def test_an_idle_engine_does_not_query_the_database(database, virtual_clock) -> None:
    engine = make_engine(database, virtual_clock)
    engine.register("work", lambda ev: asyncio.sleep(0))
    await engine.schedule(Event("work", "a", due_at=virtual_clock.now() + 600))
    statements: list[str] = []
    sa_event.listen(database.engine.sync_engine, "before_cursor_execute",
                    lambda _c, _cur, sql, *_a: statements.append(sql))
    runner = asyncio.create_task(engine.run())
    await asyncio.sleep(0.2)
    looked = len(statements)
    await asyncio.sleep(0.3)  # nothing is due for ten minutes: no claim, no outbox query
    assert len(statements) == looked and looked > 0
    virtual_clock.advance(600)
    engine.notify()
    await asyncio.sleep(0.2)
    await engine.stop()
    await runner
    assert engine.processed == 1
