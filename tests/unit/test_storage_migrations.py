"""Migrations build the whole schema on SQLite and are idempotent."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.storage import Database, async_url
from puppet_engine.storage.tables import metadata


async def test_migrations_create_every_table_and_rerun_cleanly(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.migrate()
    await db.migrate()  # a second start must not fail or change anything
    async with db.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    assert set(metadata.tables) <= names
    assert "alembic_version" in names
    await db.close()


def test_database_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///puppet_engine.db") == "sqlite+aiosqlite:///puppet_engine.db"
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
