"""Group commit: writes arriving together share a transaction; a bad one fails alone."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from puppet_engine.errors import StorageError
from puppet_engine.storage.group_commit import GroupCommitter
from puppet_engine.storage.tables import agents


def row(agent_id: str) -> dict:
    return {"id": agent_id, "config": {}, "state": {}, "enabled": True, "version": 1, "created_at": 0.0,
            "updated_at": 0.0}


async def insert_all(conn, ids: list[str]) -> list[str]:
    await conn.execute(agents.insert(), [row(i) for i in ids])
    return [f"stored {i}" for i in ids]


async def test_writes_arriving_together_share_one_transaction(database) -> None:
    committer = GroupCommitter(database, insert_all)
    results = await asyncio.gather(*(committer.write(f"a{i}") for i in range(40)))
    assert results == [f"stored a{i}" for i in range(40)]
    assert committer.groups == 1
    assert await committer.write("late") == "stored late"  # a later write gets its own
    assert committer.groups == 2
    async with database.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(agents))).scalar() == 41


async def test_one_bad_write_fails_alone(database) -> None:
    committer = GroupCommitter(database, insert_all)
    await committer.write("taken")
    outcomes = await asyncio.gather(committer.write("b1"), committer.write("taken"), committer.write("b2"),
                                    return_exceptions=True)
    assert outcomes[0] == "stored b1" and outcomes[2] == "stored b2"
    assert isinstance(outcomes[1], StorageError) and "UNIQUE" in str(outcomes[1])
    async with database.connect() as conn:
        ids = {r.id for r in await conn.execute(sa.select(agents.c.id))}
    assert ids == {"taken", "b1", "b2"}


async def test_a_cancelled_writer_does_not_break_the_group(database) -> None:
    committer = GroupCommitter(database, insert_all)
    first = asyncio.create_task(committer.write("c1"))
    second = asyncio.create_task(committer.write("c2"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "stored c2"
    with pytest.raises(asyncio.CancelledError):
        await first
