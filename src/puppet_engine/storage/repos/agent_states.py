"""The agents' persisted state (``agents.state``, a JSON object): read it, merge changes into it.

A merge is one ``UPDATE`` (``json_set`` on SQLite, ``jsonb ||`` on PostgreSQL): no read, so
no lost update, and one statement per shape of change for many agents at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.sql import cached
from puppet_engine.storage.tables import agents

_CHUNK = 500
_READ_ONE = sa.select(agents.c.state).where(agents.c.id == sa.bindparam("b_id"))


async def read_state(db: Database, agent_id: str) -> dict[str, Any] | None:
    """The agent's stored state, or ``None`` when the agent is not registered."""
    async with db.connect() as conn:
        row = (await conn.execute(_READ_ONE, {"b_id": agent_id})).first()
    return None if row is None else dict(row[0] or {})


async def read_states(db: Database, agent_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored state of each registered agent among ``agent_ids``, in a few queries."""
    wanted = list(agent_ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        async with db.connect() as conn:
            rows = await conn.execute(sa.select(agents.c.id, agents.c.state).where(
                agents.c.id.in_(wanted[start:start + _CHUNK])))
            for agent_id, state in rows:
                found[agent_id] = dict(state or {})
    return found


async def merge_states(conn: AsyncConnection, changes: list[tuple[str, dict[str, Any]]], now: float) -> None:
    """Merge each ``(agent id, changes)`` into that agent's state: one statement per shape of change."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    pg = conn.dialect.name == "postgresql"
    for agent_id, state in changes:
        if not state:
            continue
        try:
            encoded = [json.dumps(value, allow_nan=False) for value in state.values()]
        except (TypeError, ValueError):
            encoded = []
        if not encoded or any('"' in key or "\\" in key for key in state):
            await _merge_read_write(conn, agent_id, state, now)
            continue
        if pg:
            shapes.setdefault((), []).append({"b_id": agent_id, "b_now": now, "b_patch": json.dumps(state)})
        else:
            row: dict[str, Any] = {"b_id": agent_id, "b_now": now}
            row.update({f"b_v{i}": value for i, value in enumerate(encoded)})
            shapes.setdefault(tuple(state), []).append(row)
    for keys, rows in shapes.items():
        await cached(("merge", pg, keys), partial(_merge_statement, pg, keys)).run(conn, rows)


def _merge_statement(pg: bool, keys: tuple[str, ...]) -> Prepared:
    merged: sa.ColumnElement[Any]
    if pg:
        patch = sa.cast(sa.bindparam("b_patch", type_=sa.String), postgresql.JSONB)
        merged = sa.cast(sa.cast(agents.c.state, postgresql.JSONB).op("||")(patch), sa.JSON)
    else:
        args: list[Any] = [agents.c.state]
        for i, key in enumerate(keys):
            args += [sa.literal_column("'" + f'$."{key}"'.replace("'", "''") + "'"),
                     sa.func.json(sa.bindparam(f"b_v{i}", type_=sa.String))]
        merged = sa.func.json_set(*args)
    return Prepared(agents.update().where(agents.c.id == sa.bindparam("b_id")).values(
        state=merged, updated_at=sa.bindparam("b_now", type_=sa.Float)))


async def _merge_read_write(conn: AsyncConnection, agent_id: str, changes: dict[str, Any], now: float) -> None:
    # Values JSON cannot take as they are, or keys a JSON path cannot name: read, merge, write.
    row = (await conn.execute(sa.select(agents.c.state).where(agents.c.id == agent_id))).first()
    if row is None:
        return
    state = dict(row[0] or {})
    state.update(changes)
    await conn.execute(agents.update().where(agents.c.id == agent_id).values(state=state, updated_at=now))
