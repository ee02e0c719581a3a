"""Counts over the memories table that the API pages by (the memory stores own its reads and writes)."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import memories


async def count(db: Database, agent_id: str, *, kind: str | None = None, since: float | None = None,
                until: float | None = None) -> int:
    """How many memories the agent has (of ``kind``, created in ``[since, until)``)."""
    q = sa.select(sa.func.count()).select_from(memories).where(memories.c.agent_id == agent_id)
    if kind:
        q = q.where(memories.c.kind == kind)
    if since is not None:
        q = q.where(memories.c.created_at >= since)
    if until is not None:
        q = q.where(memories.c.created_at < until)
    async with db.connect() as conn:
        return int((await conn.execute(q)).scalar() or 0)
