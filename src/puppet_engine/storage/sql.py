"""Statement helpers shared by the repositories: dialect-neutral inserts, id lists, a cache.

Hot statements are built once per shape and executed with parameters: building and
hashing a statement of the size of a claim costs more than running it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The statement built by ``build`` for ``key``, built on first use only."""
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT`` of the connection's dialect (both know ``ON CONFLICT``)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def insert_ignoring_conflicts(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` on the primary key, for SQLite and PostgreSQL."""
    return dialect_insert(conn, table).on_conflict_do_nothing()


def bound_in(dialect: str, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` with the ids as one parameter, bound with :func:`bound_ids` (a JSON
    array on SQLite, an array on PostgreSQL): 10,000 agents do not bind 10,000 values, and the
    statement can be built once (:func:`cached`, ``Prepared``) whatever their number."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    each = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
    return column.in_(sa.select(each.c.value))


def bound_ids(dialect: str, ids: Iterable[Any]) -> Any:
    """The value of a :func:`bound_in` parameter."""
    values = list(ids)
    return values if dialect == "postgresql" else _json_ids(ids, values)


_last_json: tuple[frozenset[str], str] | None = None  # the owned agents: one object until they change


def _json_ids(ids: Iterable[str], values: list[str]) -> str:
    """``values`` as a JSON array; of a frozenset, encoded once while the same set comes back
    (each pass of the outbox and the clock asks with the process's owned agents)."""
    global _last_json
    if not isinstance(ids, frozenset):
        return json.dumps(values)
    last = _last_json
    if last is None or last[0] is not ids:
        last = _last_json = (ids, json.dumps(values))
    return last[1]


def fixed_in(column: sa.ColumnElement[Any], values: Iterable[str]) -> sa.ColumnElement[bool]:
    """``column IN values`` for constant values, with a parameter each: the compiled statement
    is cached and reused as is (an expanding IN is rendered again on every execution)."""
    return column.in_([sa.literal(value) for value in values])


async def count_rows(conn: AsyncConnection, query: sa.Select[Any]) -> int:
    """How many rows ``query`` gives (its order and paging left out)."""
    total = await conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    return int(total.scalar() or 0)


async def page_of(conn: AsyncConnection, query: sa.Select[Any], *order: Any, limit: int,
                  offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of ``query`` in ``order`` (rows as dicts), and how many rows there are in all."""
    total = await count_rows(conn, query)
    rows = await conn.execute(query.order_by(*order).limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows.fetchall()], total
