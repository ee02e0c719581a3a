"""Claims limited to the agents a process owns: a temporary table written when the set changes.

The guarantee: an engine never claims an event of an agent it does not own, at any moment,
on SQLite and on PostgreSQL. The cost: a claim with an unchanged set writes nothing and
binds no agent ids; a changed set writes only the difference, once per connection; a rolled
back claim leaves no stale table behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
from puppet_engine.storage.tables import agents, events

AGENTS = [f"ag{i:03d}" for i in range(200)]  # more than any "small list" path


async def seed(db: Database, now: float) -> None:
    async with db.transaction() as conn:
        await conn.execute(agents.insert(), [{"id": a, "config": {}, "state": {}, "enabled": True, "version": 1,
                                              "created_at": 0, "updated_at": 0} for a in AGENTS])
        for i, agent in enumerate(AGENTS):
            await records.insert_event(conn, Event("t", agent, key=f"e:{agent}", due_at=now - 1000 + i), now)
        await records.insert_event(conn, Event("t", None, key="shared", due_at=now - 1), now)


async def claim_all(db: Database, now: float, owned: Any) -> list[Event]:
    async with db.transaction() as conn:
        return (await records.claim(conn, now, 1000, "me", agent_ids=owned)).events


def watch(db: Database) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    sa_event.listen(db.engine.sync_engine, "before_cursor_execute",
                    lambda _c, _cur, sql, params, *_a: seen.append((sql, params)))
    return seen


async def check_owned_claims(db: Database, now: float) -> None:
    await seed(db, now)
    statements = watch(db)
    first = frozenset(AGENTS[:120])
    claimed = await claim_all(db, now, first)
    assert {e.agent_id for e in claimed} == set(AGENTS[:120]) | {None}
    writes = [s for s, _ in statements if "puppet_owned_agents" in s and s.lstrip().upper().startswith("INSERT")]
    assert writes  # the table was filled once

    # The same set again: nothing written to the table, no agent id bound in any statement.
    statements.clear()
    assert await claim_all(db, now, first) == []
    assert not [s for s, _ in statements if s.lstrip().upper().startswith(("INSERT", "DELETE", "CREATE"))
                and "puppet_owned_agents" in s]
    assert not [p for _, p in statements if any(a in str(p) for a in AGENTS)]

    # A lease moved: 20 agents lost, 80 gained. Only the difference is written, and only the
    # gained agents' events are claimed — never one of the lost agents.
    async with db.transaction() as conn:  # the lost agents' events are pending again (a retry)
        await conn.execute(events.update().where(events.c.agent_id.in_(AGENTS[:20])).values(status="pending"))
    second = frozenset(AGENTS[20:200])
    statements.clear()
    claimed = await claim_all(db, now, second)
    assert {e.agent_id for e in claimed} == set(AGENTS[120:200])
    written = sum(len(p) if isinstance(p, list) else 1 for s, p in statements
                  if "puppet_owned_agents" in s and s.lstrip().upper().startswith(("INSERT", "DELETE")))
    assert written <= 100  # 80 inserted, 20 deleted (one row per parameter set): not 180 again

    # A claim whose transaction rolls back forgets the table it wrote; the next one is right.
    third = frozenset(AGENTS[:10])
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await records.claim(conn, now, 1000, "me", agent_ids=third)
            raise RuntimeError("the claim's transaction fails after it wrote the table")
    async with db.transaction() as conn:
        await conn.execute(events.update().values(status="pending"))
    claimed = await claim_all(db, now, third)
    assert {e.agent_id for e in claimed} == set(AGENTS[:10]) | {None}

    # No filter (one process owning whatever is due) still claims everything.
    async with db.transaction() as conn:
        await conn.execute(events.update().values(status="pending"))
    assert len(await claim_all(db, now, None)) == len(AGENTS) + 1


async def check_foreign_table(db: Database, now: float) -> None:
    """A connection whose table another client wrote (a pooler handing over its server
    connection) claims nothing at all, then writes its own table and claims its agents."""
    await seed(db, now)
    mine = frozenset(AGENTS[:50])
    assert {e.agent_id for e in await claim_all(db, now, mine)} == set(AGENTS[:50]) | {None}
    async with db.transaction() as conn:
        await conn.execute(events.update().values(status="pending"))
        await conn.execute(sa.text("DELETE FROM puppet_owned_stamp"))
        await conn.execute(sa.text("INSERT INTO puppet_owned_stamp (stamp) VALUES ('another-client')"))
        await conn.execute(sa.text("INSERT INTO puppet_owned_agents (agent_id) VALUES ('ag150')"))
        found = await records.claim(conn, now, 1000, "me", agent_ids=mine)
        assert found.events == [] and found.next_due == now  # nothing, not even ag150's: look again
    claimed = await claim_all(db, now, mine)
    assert {e.agent_id for e in claimed} == set(AGENTS[:50]) | {None}


async def test_claims_follow_the_owned_set_with_no_per_claim_agent_ids(database, virtual_clock) -> None:
    await check_owned_claims(database, virtual_clock.now())


async def test_a_table_written_by_another_client_claims_nothing(database, virtual_clock) -> None:
    await check_foreign_table(database, virtual_clock.now())


@pytest.fixture
async def pg_database(pg_url: str):
    """The engine's database on a fresh PostgreSQL database, closed after the test."""
    db = Database(pg_url)
    yield db
    await db.close()


@pytest.mark.postgres
async def test_a_table_written_by_another_client_claims_nothing_on_postgres(pg_database: Database, virtual_clock) -> None:
    await check_foreign_table(pg_database, virtual_clock.now())


@pytest.mark.postgres
async def test_claims_follow_the_owned_set_on_postgres(pg_database: Database, virtual_clock) -> None:
    await check_owned_claims(pg_database, virtual_clock.now())


async def test_each_connection_keeps_its_own_table(sqlite_url: str, virtual_clock) -> None:
    """Two processes' engines (here: two Database objects on one file) own different agents:
    neither ever claims the other's."""
    one, two = Database(sqlite_url), Database(sqlite_url)
    try:
        await one.migrate()
        now = virtual_clock.now()
        await seed(one, now)
        mine, theirs = frozenset(AGENTS[::2]), frozenset(AGENTS[1::2])
        got_one = await claim_all(one, now, mine)
        got_two = await claim_all(two, now, theirs)
        assert {e.agent_id for e in got_one} - {None} == set(mine)
        assert {e.agent_id for e in got_two} == set(theirs)
        async with one.connect() as conn:
            running = (await conn.execute(sa.select(sa.func.count()).select_from(events)
                                          .where(events.c.status == "running"))).scalar()
        assert running == len(AGENTS) + 1
    finally:
        await one.close()
        await two.close()


class Sent(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


async def check_engine_writes_the_table_once(db: Database, clock: VirtualClock) -> None:
    """An engine claiming many times, with outcomes committing meanwhile on other connections,
    writes its owned-agents table once (PostgreSQL: its claims keep to one connection)."""
    now = clock.now()
    await seed(db, now)
    executor = Sent()
    engine = EventEngine(db, clock, Outbox(db, clock, lambda _a: executor), concurrency=8,
                         owned_agents=lambda: owned)
    owned = frozenset(AGENTS)

    async def work(event: Event) -> HandlerResult:
        return HandlerResult(result={"ok": True})

    engine.register("t", work)

    async def hold() -> None:  # the pool holds several idle connections, handed out in turn
        async with db.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(hold() for _ in range(5)))
    statements = watch(db)
    assert await engine.run_until_idle() == len(AGENTS) + 1
    fills = [sql for sql, _ in statements if sql.lstrip().upper().startswith("INSERT")
             and "puppet_owned_agents" in sql]
    claims = [sql for sql, _ in statements if "puppet_owned_stamp" in sql and "UPDATE" in sql.upper()]
    assert len(fills) == 1 and len(claims) >= len(AGENTS) // 8


async def test_an_engine_writes_its_table_once(database, virtual_clock) -> None:
    await check_engine_writes_the_table_once(database, virtual_clock)


@pytest.mark.postgres
async def test_an_engine_writes_its_table_once_on_postgres(pg_database: Database, virtual_clock) -> None:
    await check_engine_writes_the_table_once(pg_database, virtual_clock)



async def check_many_busy_agents(db: Database, now: float) -> None:
    """Busy agents bound as one list (any number of them): none of theirs is claimed, agent-less
    events are, and the hint says a busy agent's due event waits."""
    ids = [f"b{i}" for i in range(150)]
    async with db.transaction() as conn:
        for agent in ids:
            await records.insert_event(conn, Event("t", agent, key=f"k:{agent}", due_at=now - 1), now)
        await records.insert_event(conn, Event("t", None, key="k:none", due_at=now - 1), now)
    for busy in (ids[:1], ids[:70], ids[:149]):
        async with db.pinned_transaction() as conn:
            found = await records.claim(conn, now, 500, f"me{len(busy)}", busy=set(busy), agent_ids=frozenset(ids))
        assert {e.agent_id for e in found.events} == set(ids[len(busy):]) | {None}
        assert found.blocked  # a busy agent's due event waits for it
        async with db.transaction() as conn:  # back to pending for the next round
            await conn.execute(sa.update(events).values(status="pending", owner=None))
    async with db.pinned_transaction() as conn:
        found = await records.claim(conn, now, 500, "all", busy=set(ids[:149]), agent_ids=frozenset(ids))
    assert {e.agent_id for e in found.events} == {ids[149], None}
    async with db.pinned_transaction() as conn:  # no longer busy: theirs now, and nothing waits
        found = await records.claim(conn, now, 500, "again", busy=set(), agent_ids=frozenset(ids))
    assert {e.agent_id for e in found.events} == set(ids[:149])
    assert not found.blocked


async def test_any_number_of_busy_agents_is_left_out_of_a_claim(database, virtual_clock) -> None:
    await check_many_busy_agents(database, virtual_clock.now())


@pytest.mark.postgres
async def test_any_number_of_busy_agents_is_left_out_of_a_claim_on_postgres(pg_database: Database, virtual_clock) -> None:
    await check_many_busy_agents(pg_database, virtual_clock.now())
