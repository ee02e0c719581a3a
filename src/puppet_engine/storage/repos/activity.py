"""What happened lately, across tables: actions sent or given up, failed events, mentions
received, trades. The live feed reads it: the latest rows, and the rows since a time mark.

Each source is one table with the column that dates its rows and the condition that makes
a row worth showing; rows come back with their source's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import (
    actions,
    events,
    mentions,
    review_decisions,
    review_items,
    trades,
)


@dataclass(frozen=True)
class Source:
    name: str
    table: sa.Table
    time_col: str
    where: Callable[[], Any]


SOURCES = (
    Source("action", actions, "updated_at",
           lambda: sa.and_(actions.c.status.in_(("done", "failed", "unknown")), actions.c.kind != "trade")),
    Source("event", events, "finished_at", lambda: events.c.status == "failed"),
    Source("mention", mentions, "received_at", lambda: sa.true()),
    Source("trade", trades, "updated_at", lambda: sa.true()),
    Source("review", review_items, "created_at", lambda: sa.true()),  # held for approval
    Source("decision", review_decisions, "decided_at", lambda: sa.true()),  # approved, rejected, expired
)


async def latest(db: Database, limit: int, agent_id: str | None = None) -> list[tuple[str, Any]]:
    """Up to ``limit`` newest rows of each source (of ``agent_id``): ``(source name, row)``."""
    found: list[tuple[str, Any]] = []
    async with db.connect() as conn:
        for source in SOURCES:
            col = source.table.c[source.time_col]
            q = sa.select(source.table).where(source.where(), col.is_not(None))
            if agent_id:
                q = q.where(source.table.c.agent_id == agent_id)
            found += [(source.name, row) for row in (await conn.execute(q.order_by(col.desc()).limit(limit)))]
    return found


async def high_marks(db: Database) -> dict[str, float]:
    """source name → the time of its newest row (0 when it has none)."""
    marks: dict[str, float] = {}
    async with db.connect() as conn:
        for source in SOURCES:
            newest = (await conn.execute(sa.select(sa.func.max(source.table.c[source.time_col])))).scalar()
            marks[source.name] = float(newest) if newest is not None else 0.0
    return marks


async def since(db: Database, marks: dict[str, float], limit: int = 500) -> list[tuple[str, Any]]:
    """Rows of each source dated at or after its mark in ``marks`` (0 when absent), oldest
    first, up to ``limit`` each: ``(source name, row)``."""
    found: list[tuple[str, Any]] = []
    async with db.connect() as conn:
        for source in SOURCES:
            col = source.table.c[source.time_col]
            q = (sa.select(source.table).where(source.where(), col >= marks.get(source.name, 0.0))
                 .order_by(col).limit(limit))
            found += [(source.name, row) for row in (await conn.execute(q))]
    return found


def time_column(source_name: str) -> str:
    """The column that dates a source's rows."""
    return next(s.time_col for s in SOURCES if s.name == source_name)
