"""``storage.sql.bound_in``/``bound_ids``: a list of agent ids is sent as one parameter, and
the owned-agents set (one object until it changes) is encoded once, never stale."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from puppet_engine.storage import Database
from puppet_engine.storage.sql import bound_ids, bound_in
from puppet_engine.storage.tables import agents

T0 = 1_700_000_000.0
SMALL_LIST = 64  # lists below and above what used to be bound one value at a time


async def _ids_among(db: Database, ids: Iterable[str]) -> list[str]:
    async with db.connect() as conn:
        dialect = conn.dialect.name
        query = sa.select(agents.c.id).where(bound_in(dialect, agents.c.id, "ids")).order_by(agents.c.id)
        rows = await conn.execute(query, {"ids": bound_ids(dialect, ids)})
        return [r[0] for r in rows]


async def test_long_id_lists_and_a_changing_owned_set(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ids.db'}")
    await db.migrate()
    names = [f"agent-{i:04d}" for i in range(3 * SMALL_LIST)]
    async with db.transaction() as conn:
        await conn.execute(sa.insert(agents), [{"id": n, "config": {}, "state": {}, "enabled": True, "version": 1,
                                                "created_at": T0, "updated_at": T0} for n in names])
    try:
        owned = frozenset(names[: 2 * SMALL_LIST])
        assert await _ids_among(db, owned) == names[: 2 * SMALL_LIST]
        assert await _ids_among(db, owned) == names[: 2 * SMALL_LIST]  # the same object: encoded once
        changed = frozenset(names[SMALL_LIST:])  # a new object, as when an agent starts or stops
        assert await _ids_among(db, changed) == names[SMALL_LIST:]
        assert await _ids_among(db, set(names[:SMALL_LIST + 1])) == names[:SMALL_LIST + 1]
        assert await _ids_among(db, list(reversed(names[:3]))) == names[:3]  # any order, any length
        assert await _ids_among(db, frozenset()) == []
    finally:
        await db.close()
