"""The agents list's page is read through each agent's own index, on its own SQLite connection.

Without statistics, SQLite answered the per-agent lookups from the status indexes: every done
action and every pending event scanned again for each agent, quadratic in the number of agents.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.tables import actions, agents, events

Definition = agent_rows.Definition


async def _history(database) -> None:
    """Two agents with two finished scheduled posts (the first skipped) and one due; coby sent two."""
    await agent_rows.save_configs(database, [Definition(a, {"name": a}) for a in ("coby", "nova")], now=1.0)
    scheduled = [(1, "done", 5.0, {"skipped": "too long"}), (2, "done", 6.0, {}), (3, "pending", 9.0, None)]
    async with database.transaction() as conn:
        await conn.execute(events.insert(), [
            {"type": "post.due", "agent_id": a, "payload": {}, "status": status, "due_at": due,
             "key": f"post:{a}:{n}", "created_at": 1.0, "result": result}
            for a in ("coby", "nova") for n, status, due, result in scheduled])
        await conn.execute(actions.insert(), [
            {"agent_id": "coby", "kind": "post", "key": f"post:coby:{n}", "status": "done", "payload": {},
             "created_at": 1.0, "updated_at": 1.0} for n in (1, 2)])
        await conn.execute(sa.update(agents).values(state={"post_seq": 2, "mood": "calm"}))  # as the engine keeps it
    await agent_rows.set_definition_error(database, "nova", {"file": "nova.json", "problems": ["x"], "since": 2.0},
                                          "sha")


async def test_the_page_is_read_by_agent_and_as_through_sqlalchemy(database) -> None:
    await _history(database)
    reader = agent_rows.OverviewReader(database)
    statements: list[str] = []
    reader.connection().set_trace_callback(statements.append)
    try:
        fast = await reader.read(["coby", "nova", "ghost"])
    finally:
        reader.close()
    assert fast == await agent_rows.overviews(database, ["coby", "nova", "ghost"])
    coby, nova = fast["coby"], fast["nova"]
    assert (coby.posts, coby.next_post_due, coby.state) == (2, 9.0, {"post_seq": 2, "mood": "calm"})
    assert coby.skips is not None and (coby.skips.skipped, coby.skips.total) == (1, 2)
    assert nova.definition_error == {"file": "nova.json", "problems": ["x"], "since": 2.0} and nova.posts == 0
    assert "ghost" not in fast

    page = statements[0]  # as SQLite ran it, values in place
    plan = " | ".join(row[3] for row in sqlite3.connect(database.engine.url.database).execute(
        f"EXPLAIN QUERY PLAN {page}"))
    assert "ix_actions_agent_kind (agent_id=? AND kind=?)" in plan, plan
    assert "ix_events_agent_status (agent_id=? AND status=?)" in plan, plan
    assert "ix_actions_status" not in plan and "ix_events_status_due" not in plan, plan


async def test_an_empty_page_reads_nothing(database) -> None:
    reader = agent_rows.OverviewReader(database)
    assert await reader.read([]) == {}
    reader.close()


async def test_on_postgresql_the_reader_is_the_sqlalchemy_read(pg_url: str) -> None:
    from puppet_engine.storage import Database

    database = Database(pg_url)
    try:
        await _history(database)
        reader = agent_rows.OverviewReader(database)
        fast = await reader.read(["coby", "nova"])
        assert fast == await agent_rows.overviews(database, ["coby", "nova"])
        assert (fast["coby"].posts, fast["coby"].next_post_due) == (2, 9.0)
        assert fast["coby"].skips is not None and fast["coby"].skips.skipped == 1
    finally:
        await database.close()
