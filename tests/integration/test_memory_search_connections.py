"""PostgresStore's search connections: bounded, reused, dropped when the server closes them."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest
import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import StorageError
from puppet_engine.memory import HashingEmbedder, Memory
from puppet_engine.memory.postgres import PostgresStore
from puppet_engine.memory.search_connections import SearchConnections
from puppet_engine.storage import Database

pytestmark = pytest.mark.postgres


async def backends(url: str) -> int:
    """Connections to this database other than the one asking."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
    finally:
        await conn.close()


async def open_store(url: str, size: int) -> tuple[Database, PostgresStore, np.ndarray]:
    db = Database(url)
    await db.migrate()
    store = PostgresStore(db, HashingEmbedder(), clock=VirtualClock(), exact_threshold=0, search_pool_size=size)
    vectors = np.random.default_rng(4).normal(size=(60, 384)).astype(np.float32)
    await store.add_many("coby", [Memory(f"m{i}", embedding=v, id=f"m{i:03d}") for i, v in enumerate(vectors)])
    return db, store, vectors


async def test_concurrent_searches_share_at_most_size_connections_and_find_what_one_at_a_time_does(
    pg_url: str,
) -> None:
    db, store, vectors = await open_store(pg_url, size=2)
    one_by_one = [await store.search_vector("coby", v, limit=5) for v in vectors[:12]]
    await db.close()  # only the store's search connections are left
    together = await asyncio.gather(*(store.search_vector("coby", v, limit=5) for v in vectors[:12]))
    assert together == one_by_one
    assert store._connections is not None and store._connections.idle == 2
    assert await backends(pg_url) == 2
    await store.close()
    assert await backends(pg_url) == 0


async def test_a_connection_the_server_closed_is_replaced_by_the_next_search(pg_url: str) -> None:
    db, store, vectors = await open_store(pg_url, size=1)
    expected = await store.search_vector("coby", vectors[0], limit=5)
    assert store._connections is not None
    held = await store._connections.take()
    store._connections.give_back(held)
    admin = await asyncpg.connect(pg_url)
    await admin.execute("SELECT pg_terminate_backend($1)", held.get_server_pid())
    await admin.close()
    for _ in range(100):  # the client learns it when the server's goodbye arrives
        if held.is_closed():
            break
        await asyncio.sleep(0.01)
    assert await store.search_vector("coby", vectors[0], limit=5) == expected
    assert held.is_closed() and store._connections.idle == 1
    await store.close()
    await db.close()


async def test_a_failed_search_does_not_hand_its_connection_to_the_next(pg_url: str) -> None:
    db, store, vectors = await open_store(pg_url, size=1)
    expected = await store.search_vector("coby", vectors[0], limit=5)
    async with db.transaction() as conn:  # every search fails while the column is away
        await conn.execute(sa.text("ALTER TABLE memories RENAME COLUMN importance TO importance_away"))
    store._counts.clear()
    with pytest.raises(StorageError):
        await store.search_vector("coby", vectors[0], limit=5)
    assert store._connections is not None and store._connections.idle == 0
    async with db.transaction() as conn:
        await conn.execute(sa.text("ALTER TABLE memories RENAME COLUMN importance_away TO importance"))
    assert await store.search_vector("coby", vectors[0], limit=5) == expected
    await store.close()
    await db.close()


async def test_a_connection_out_at_close_is_closed_when_it_comes_back(pg_url: str) -> None:
    opened: list[asyncpg.Connection] = []

    async def init(conn: asyncpg.Connection) -> None:
        opened.append(conn)

    connections = SearchConnections(pg_url, 2, init)
    first, second = await connections.take(), await connections.take()
    waiting = asyncio.create_task(connections.take())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # two out of two: the third waits
    connections.give_back(first)
    assert await waiting is first
    connections.give_back(second)
    await connections.close()
    assert second.is_closed() and not first.is_closed()
    connections.give_back(first)
    assert first.is_closed() and len(opened) == 2
    with pytest.raises(RuntimeError):
        await connections.take()
