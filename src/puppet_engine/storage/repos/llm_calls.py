"""The llm_calls table: every completion an agent asked for, with its tokens (budgets read it)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.tables import llm_calls

_INSERT = Prepared(llm_calls.insert())


async def insert_calls(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[None]:
    """Record several calls (their columns each) in one statement; a result per row, for a group commit."""
    await _INSERT.run(conn, rows)
    return [None] * len(rows)


async def tokens_since(db: Database, agent_id: str, since: float) -> int:
    """Prompt and completion tokens the agent's calls used since ``since``."""
    q = sa.select(sa.func.coalesce(sa.func.sum(llm_calls.c.prompt_tokens + llm_calls.c.completion_tokens), 0)) \
        .where(llm_calls.c.agent_id == agent_id, llm_calls.c.created_at >= since)
    async with db.connect() as conn:
        return int((await conn.execute(q)).scalar() or 0)
