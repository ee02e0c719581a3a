"""Scheduling many events at once (10,000 agents' schedules at start-up) writes them in a few
statements and answers as one-at-a-time inserts would: each new event's id, None for a taken key."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from puppet_engine.clock import VirtualClock
from puppet_engine.events import Action, ActionExecutor, ActionOutcome, Event, EventEngine, Outbox
from puppet_engine.storage import Database
from puppet_engine.storage.tables import events


class _Sent(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


def _engine(db: Database, clock: VirtualClock) -> EventEngine:
    outbox = Outbox(db, clock, lambda _a: _Sent(), rng=random.Random(1))
    return EventEngine(db, clock, outbox, concurrency=4, rng=random.Random(1), poll_interval=3600)


async def _check(db: Database, clock: VirtualClock) -> None:
    engine = _engine(db, clock)
    now = clock.now()
    [taken] = await engine.schedule_many([Event("post.due", "a7", due_at=now + 7, key="post:a7:1")])
    assert taken is not None
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    batch = [Event("post.due", f"a{i}", {"seq": 1}, due_at=now + i, key=f"post:a{i}:1") for i in range(300)]
    ids = await engine.schedule_many(batch)
    sa_event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert statements < 10  # not one per event
    assert ids[7] is None and all(isinstance(i, int) for n, i in enumerate(ids) if n != 7)
    async with db.connect() as conn:
        rows = {r.key: r for r in await conn.execute(sa.select(events))}
    assert len(rows) == 300 and rows["post:a7:1"].id == taken and rows["post:a7:1"].due_at == now + 7
    for n, event_id in enumerate(ids):
        if event_id is not None:
            row = rows[f"post:a{n}:1"]
            assert (row.id, row.agent_id, row.payload, row.due_at) == (event_id, f"a{n}", {"seq": 1}, now + n)
    # Unkeyed events, or a key twice in one batch, still go in order, one at a time.
    again = await engine.schedule_many([Event("x", "b", key="dup"), Event("x", "b", key="dup"), Event("y", "b")])
    assert isinstance(again[0], int) and again[1] is None and isinstance(again[2], int)


async def test_schedule_many_writes_in_a_few_statements(database: Database, virtual_clock: VirtualClock) -> None:
    await _check(database, virtual_clock)


@pytest.mark.postgres
async def test_schedule_many_on_postgres(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        await db.migrate()
        await _check(db, VirtualClock())
    finally:
        await db.close()
