"""The ``runtime_settings`` table: operator settings that outlive a restart and reach every process.

Implements :class:`puppet_engine.runtime_settings.RuntimeSource`. ``version()`` is the
newest ``updated_at`` with the row count; every write makes ``updated_at`` strictly newer
than any before it (even on a virtual clock that stands still), so a change is never missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from puppet_engine.clock import Clock
from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import runtime_settings

_VERSION = sa.select(sa.func.max(runtime_settings.c.updated_at), sa.func.count()).select_from(runtime_settings)
_ALL = sa.select(runtime_settings.c.name, runtime_settings.c.value)


class RuntimeSettingsStore:
    """Reads and writes runtime settings by name (JSON values)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def version(self) -> tuple[float | None, int]:
        async with self.db.connect() as conn:
            newest, count = (await conn.execute(_VERSION)).one()
        return (None if newest is None else float(newest)), int(count)

    async def load(self) -> dict[str, Any]:
        async with self.db.connect() as conn:
            return {str(name): value for name, value in (await conn.execute(_ALL)).fetchall()}

    async def save(self, changes: Mapping[str, Any], updated_by: str | None) -> None:
        async with self.db.transaction() as conn:
            newest = (await conn.execute(_VERSION)).one()[0]
            at = self.clock.now()
            if newest is not None and at <= float(newest):
                at = float(newest) + 0.001
            for name, value in changes.items():
                row = {"value": value, "updated_at": at, "updated_by": updated_by}
                done = await conn.execute(runtime_settings.update()
                                          .where(runtime_settings.c.name == name).values(**row))
                if not done.rowcount:
                    await conn.execute(runtime_settings.insert().values(name=name, **row))
