"""Role leases: an engine-wide role (the X filtered stream connection) held by one process.

The holder renews its lease well before it expires; another process takes the role only
once the lease has lapsed (its holder died or let go). ``live_since`` tells every process
since when the role's work has been up without a break (``None``: it is down), so they can
rely on it without talking to the holder.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.sql import insert_ignoring_conflicts
from puppet_engine.storage.tables import role_leases


@dataclass(frozen=True)
class RoleLease:
    name: str
    owner: str
    expires_at: float
    live_since: float | None


async def acquire(db: Database, name: str, owner: str, ttl: float, now: float) -> bool:
    """Take or renew the role for ``owner``; False while another process holds a live lease."""
    async with db.transaction() as conn:
        renewed = await conn.execute(role_leases.update().where(
            role_leases.c.name == name,
            sa.or_(role_leases.c.owner == owner, role_leases.c.expires_at < now),
        ).values(owner=owner, expires_at=now + ttl))
        if renewed.rowcount:
            return True
        inserted = await conn.execute(insert_ignoring_conflicts(conn, role_leases).values(
            name=name, owner=owner, expires_at=now + ttl, live_since=None))
        return bool(inserted.rowcount)


async def set_live(db: Database, name: str, owner: str, live_since: float | None) -> None:
    """Record since when the holder's work is up (``None``: down)."""
    async with db.transaction() as conn:
        await conn.execute(role_leases.update().where(role_leases.c.name == name, role_leases.c.owner == owner)
                           .values(live_since=live_since))


async def get(db: Database, name: str) -> RoleLease | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(role_leases).where(role_leases.c.name == name))).first()
    return None if row is None else RoleLease(row.name, row.owner, float(row.expires_at),
                                              None if row.live_since is None else float(row.live_since))


async def release(db: Database, name: str, owner: str) -> None:
    """Let the role go (clean shutdown): another process may take it at once."""
    async with db.transaction() as conn:
        await conn.execute(role_leases.delete().where(role_leases.c.name == name, role_leases.c.owner == owner))
