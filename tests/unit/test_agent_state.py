"""Agent state is a typed object over the same stored JSON: old rows load, writes keep the shape,
what the engine keeps in memory reads like the database."""

from __future__ import annotations

import ast
import asyncio
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from puppet_engine.agents.state import AgentState, AgentStates
from puppet_engine.clock import VirtualClock
from puppet_engine.errors import StorageError
from puppet_engine.events import (
    Action,
    ActionExecutor,
    ActionOutcome,
    Event,
    EventEngine,
    HandlerResult,
    Outbox,
)
from puppet_engine.storage import Database
from puppet_engine.storage.tables import agents, facts

# A row as an engine wrote it before the state was typed, with a key no field names.
OLD_ROW = {"mood": {"valence": 0.3, "arousal": 0.1, "dominance": 0.0}, "since_id": "1790", "poll_seq": 7,
           "idle_polls": 2, "post_seq": 4, "last_post_at": 100.0, "x_account": {"id": "42", "username": "coby"},
           "legacy_note": "kept as it was"}


class _Sent(ActionExecutor):
    async def execute(self, action: Action) -> ActionOutcome:
        return ActionOutcome(external_id=str(action.id))


def make_engine(db: Database, clock: VirtualClock) -> EventEngine:
    outbox = Outbox(db, clock, lambda _a: _Sent(), rng=random.Random(1))
    return EventEngine(db, clock, outbox, concurrency=4, rng=random.Random(1), poll_interval=3600)


async def _add(db: Database, agent_id: str, state: dict) -> None:
    async with db.transaction() as conn:
        await conn.execute(agents.insert().values(id=agent_id, config={}, state=state, enabled=True, version=1,
                                                  created_at=0, updated_at=0))


async def _stored(db: Database, agent_id: str) -> dict:
    async with db.connect() as conn:
        return (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).scalar_one()


async def test_an_old_row_loads_typed_and_keeps_its_unknown_keys(database: Database) -> None:
    await _add(database, "coby", OLD_ROW)
    state = await AgentStates(database).get("coby")
    assert isinstance(state, AgentState)
    assert state.mood == {"valence": 0.3, "arousal": 0.1, "dominance": 0.0}
    assert (state.since_id, state.poll_seq, state.idle_polls, state.post_seq) == ("1790", 7, 2, 4)
    assert state.last_post_at == 100.0 and state.next_post_at is None and state.trade_seq == 0
    assert state.x_account == {"id": "42", "username": "coby"}
    assert state.to_json() == OLD_ROW  # nothing added, nothing lost


async def test_an_unregistered_agent_has_the_default_state(database: Database) -> None:
    states = AgentStates(database)
    assert await states.get("nobody") == AgentState()
    assert await states.stored("nobody") is None


async def test_writes_keep_the_stored_shape_and_memory_matches_the_database(database: Database,
                                                                            virtual_clock: VirtualClock) -> None:
    await _add(database, "coby", OLD_ROW)
    engine = make_engine(database, virtual_clock)
    states = AgentStates(database)
    engine.on_state(states.committed)
    await states.preload(["coby"])
    assert (await states.get("coby")).poll_seq == 7

    async def poll(event: Event) -> HandlerResult:
        return HandlerResult(state={"since_id": "1800", "poll_seq": 8, "last_poll_at": virtual_clock.now()})

    engine.register("poll", poll)
    await engine.schedule(Event("poll", "coby", key="poll:coby:8", due_at=virtual_clock.now()))
    await engine.run_until_idle()
    await states.merge("coby", {"mood": {"valence": -0.2, "arousal": 0.0, "dominance": 0.0}}, virtual_clock.now())

    stored = await _stored(database, "coby")
    assert stored == {**OLD_ROW, "since_id": "1800", "poll_seq": 8, "last_poll_at": virtual_clock.now(),
                      "mood": {"valence": -0.2, "arousal": 0.0, "dominance": 0.0}}
    kept = await states.get("coby")  # from memory, no query
    assert kept.to_json() == stored
    assert kept == await states.stored("coby")
    assert (kept.since_id, kept.poll_seq, kept.mood["valence"]) == ("1800", 8, -0.2)


async def test_merges_asked_together_share_a_commit_and_apply_in_order(database: Database,
                                                                       virtual_clock: VirtualClock) -> None:
    ids = [f"a{i:03d}" for i in range(200)]
    for agent_id in ids:
        await _add(database, agent_id, {"post_seq": 1})
    states = AgentStates(database)
    await states.preload(ids)
    commits = 0

    def count(*_args: object) -> None:
        nonlocal commits
        commits += 1

    sa_event.listen(database.engine.sync_engine, "commit", count)
    now = virtual_clock.now()
    # Agents connecting together; a000 merges three times, in shapes that must land in order.
    await asyncio.gather(*(states.merge(a, {"x_account": {"id": str(i), "username": a}}, now)
                           for i, a in enumerate(ids)),
                         states.merge("a000", {"mood": {"valence": 0.1}, "post_seq": 2}, now),
                         states.merge("a000", {"mood": {"valence": 0.2}}, now + 1),
                         states.merge("a000", {"mood": {"valence": 0.3}, "post_seq": 3}, now + 1))
    assert commits <= 3  # a few transactions, not one per merge
    for i, agent_id in enumerate(ids):
        stored = await _stored(database, agent_id)
        assert stored["x_account"] == {"id": str(i), "username": agent_id}
        assert (await states.get(agent_id)).to_json() == stored  # memory in step with the database
    assert (await _stored(database, "a000"))["mood"] == {"valence": 0.3}
    assert (await _stored(database, "a000"))["post_seq"] == 3
    async with database.connect() as conn:
        recorded = (await conn.execute(sa.select(sa.func.count()).where(facts.c.kind == "state"))).scalar_one()
    assert recorded == len(ids) + 3  # one history fact per merge, as before


async def test_a_bad_merge_fails_alone(database: Database, virtual_clock: VirtualClock) -> None:
    for agent_id in ("good", "bad"):
        await _add(database, agent_id, {})
    states = AgentStates(database)
    good = states.merge("good", {"post_seq": 5}, virtual_clock.now())
    bad = states.merge("bad", {"mood": object()}, virtual_clock.now())  # not JSON
    outcomes = await asyncio.gather(good, bad, return_exceptions=True)
    assert outcomes[0] is None and isinstance(outcomes[1], StorageError)
    assert (await _stored(database, "good")) == {"post_seq": 5}
    assert (await _stored(database, "bad")) == {}
    with pytest.raises(StorageError):
        await states.merge("bad", {"mood": object()}, virtual_clock.now())


def test_no_module_outside_storage_and_the_memory_stores_builds_sql() -> None:
    """SQL lives in storage/ (the repositories) and memory/ (the memory stores) only."""
    src = Path(__file__).resolve().parents[2] / "src" / "puppet_engine"
    offenders = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith(("storage/", "memory/", "sandbox/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            # a connection type or a URL parser is not SQL; statements and tables are
            if any(n == "sqlalchemy" or n.startswith(("sqlalchemy.sql", "sqlalchemy.dialects", "sqlalchemy.orm"))
                   or n == "puppet_engine.storage.tables" for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == [], offenders
