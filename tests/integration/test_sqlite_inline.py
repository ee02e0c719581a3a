"""SQLite on the event loop's thread: same results as aiosqlite, another process's lock waited
out without blocking the loop, checkpoints on their own thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from puppet_engine.errors import StorageError
from puppet_engine.storage import Database
from puppet_engine.storage.tables import agents


def agent_row(i: int) -> dict:
    return {"id": f"a{i}", "config": {"n": i}, "state": {"mood": {"v": i / 10}}, "enabled": True, "version": 1,
            "created_at": 0.0, "updated_at": 0.0}


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "aiosqlite"])
async def test_both_drivers_store_and_read_the_same(tmp_path: Path, inline: bool) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", inline=inline)
    await db.migrate()
    try:
        async with db.transaction() as conn:
            await conn.execute(agents.insert(), [agent_row(i) for i in range(50)])
        async with db.connect() as conn:
            rows = (await conn.execute(sa.select(agents).order_by(agents.c.id))).fetchall()
            streamed = [r.id async for r in await conn.stream(sa.select(agents.c.id).order_by(agents.c.id))]
        seventh = next(r for r in rows if r.id == "a7")
        assert len(rows) == 50 and seventh.state == {"mood": {"v": 0.7}} and seventh.config == {"n": 7}
        assert streamed == [r.id for r in rows]
        with pytest.raises(StorageError, match="UNIQUE constraint failed"):
            async with db.transaction() as conn:
                await conn.execute(agents.insert(), [agent_row(3)])
        async with db.transaction() as conn:  # the failed transaction left nothing behind
            assert (await conn.execute(sa.select(sa.func.count()).select_from(agents))).scalar() == 50
    finally:
        await db.close()
    assert db.inline is inline


async def test_another_process_lock_is_waited_out_while_the_loop_runs(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO agents (id, config, state, enabled, version, created_at, updated_at) "
                  "VALUES ('other', '{}', '{}', 1, 1, 0, 0)")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def write() -> float:
        started = time.monotonic()
        async with db.transaction() as conn:
            await conn.execute(agents.insert(), [agent_row(1)])
        return time.monotonic() - started

    beat = asyncio.create_task(ticker())
    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writer.done()
    ticked_while_waiting = ticks
    other.execute("COMMIT")
    waited = await asyncio.wait_for(writer, 5)
    beat.cancel()
    other.close()
    assert ticked_while_waiting >= 20  # the loop went on (an in-SQLite wait would have frozen it)
    assert waited >= 0.3
    async with db.connect() as conn:
        ids = {r.id for r in await conn.execute(sa.select(agents.c.id))}
    assert ids == {"other", "a1"}
    await db.close()


async def test_a_lock_held_past_the_busy_timeout_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite:///{path}", busy_timeout=0.2)
    await db.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="database is locked"):
            async with db.transaction() as conn:
                await conn.execute(agents.insert(), [agent_row(1)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with db.transaction() as conn:  # and the next write goes through
        await conn.execute(agents.insert(), [agent_row(2)])
    await db.close()


async def test_checkpoints_run_on_their_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    assert db._checkpointer is not None
    db._checkpointer.interval = 0.05
    db._checkpointer.stop()  # restart with the short interval
    async with db.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    db._checkpointer.start_once()
    blob = "x" * 4000
    for i in range(300):  # ~1.2 MB through the WAL
        async with db.transaction() as conn:
            await conn.execute(agents.insert(), [{**agent_row(i), "config": {"blob": blob}}])
    for _ in range(100):
        if db._checkpointer.checkpoints >= 2:
            break
        await asyncio.sleep(0.05)
    assert db._checkpointer.checkpoints >= 2
    await db.close()
    with sqlite3.connect(path) as check:  # everything reached the database file
        assert check.execute("SELECT count(*) FROM agents").fetchone()[0] == 300
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_kept_reader_connections_read_the_latest_commit_one_reader_at_a_time(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'kept.db'}")
    await db.migrate()
    count = sa.select(sa.func.count()).select_from(agents)
    try:
        async with db.connect() as conn:
            assert (await conn.execute(count)).scalar() == 0
            first = conn
        async with db.transaction() as conn:
            await conn.execute(sa.insert(agents), [agent_row(1)])
        async with db.connect() as conn, db.connect() as other:
            assert conn is first and other is not first  # kept, and handed to one reader at a time
            assert not conn.in_transaction()  # the read before ended its transaction
            assert (await conn.execute(count)).scalar() == 1 == (await other.execute(count)).scalar()
        with pytest.raises(StorageError):
            async with db.connect() as conn:
                await conn.execute(sa.text("SELECT * FROM no_such_table"))
        assert conn.closed  # a reader that failed is not kept
        async with db.connect() as conn:
            assert (await conn.execute(count)).scalar() == 1
    finally:
        await db.close()
    assert db.engine.pool.checkedout() == 0
