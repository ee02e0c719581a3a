"""Hot statements run straight on SQLite's connection when it is inline.

Through SQLAlchemy a statement costs 60–80 µs of machinery on an inline SQLite connection
(the async adaptation's greenlet switches, the execution context, the result's metadata)
while SQLite answers in 4–10 µs. A :class:`Prepared` statement is compiled once per shape
(dialect, parameter keys, one row or many) to what that machinery would send: its SQL,
the order of its parameters with their constant values, defaults and bind processors (JSON,
Boolean …), and the result processors of its columns. On an inline SQLite connection it then
runs on the ``sqlite3`` connection under the ``AsyncConnection``, in whatever transaction
that connection is in (SQLAlchemy does not begin or end any on SQLite: ``sqlite3`` itself
begins one before a write, and SQLAlchemy commits it), retrying ``SQLITE_BUSY`` through
:meth:`InlineConnection.run`. Rows come back as SQLAlchemy ``Row`` s with the values,
names and column keys the regular path gives. Everywhere else (PostgreSQL, aiosqlite) the
statement goes through ``AsyncConnection.execute`` as usual, and so it does while statements
are logged (``echo``) or watched (``before_cursor_execute`` listeners see every statement).

Errors keep their form: a ``sqlite3`` error becomes the ``sqlalchemy.exc.DBAPIError``
subclass SQLAlchemy would raise (``IntegrityError`` …), which ``Database.transaction``
turns into a ``StorageError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import UpdateBase

from puppet_engine.storage.inline_sqlite import InlineConnection

Params = Mapping[str, Any]
Statement = sa.Select[Any] | UpdateBase  # a query, or an INSERT, UPDATE or DELETE
_Value = Callable[[Params], Any]  # one positional parameter of a statement, from the caller's values


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for SQLite with one set of parameter keys."""

    sql: str
    values: tuple[_Value, ...]
    meta: SimpleResultMetaData | None  # None: no rows come back
    processors: list[Any] | None


class NotPreparable(ValueError):
    """The statement needs what only SQLAlchemy's execution does (an expanding ``IN``, a
    Python ``onupdate``, a default reading the execution context, ``RETURNING`` of an
    executemany): it is run the regular way."""


class Prepared:
    """A Core statement run without SQLAlchemy's execution machinery on inline SQLite.

    Build it once (module level or :func:`~puppet_engine.storage.sql.cached`); then
    ``await stmt.rows(conn, params)`` for a query or ``RETURNING``, ``await stmt.run(conn,
    params_or_list)`` for a write (its row count).
    """

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._plans: dict[tuple[tuple[str, ...], bool], _Plan | None] = {}

    async def rows(self, conn: AsyncConnection, params: Params | Sequence[Params] | None = None) -> list[Any]:
        """The rows the statement gives with ``params`` (SQLAlchemy ``Row`` s); with a list
        of parameter sets (``RETURNING`` of several rows), those of each, in no set order."""
        batch = list(params) if isinstance(params, Sequence) else [params or {}]
        if not batch:
            return []  # as run() does nothing for no rows (SQLAlchemy would run it once, without parameters)
        inline = inline_connection(conn)
        plan = self._plan(conn.dialect, batch[0], many=False) if inline is not None else None
        if inline is None or plan is None:
            return list((await conn.execute(self.statement, batch if len(batch) != 1 else batch[0])).fetchall())
        found = []
        for one in batch:  # SQLAlchemy would send one INSERT of many VALUES; the rows are the same
            cursor = await _run(inline, conn.dialect, plan, _bind(plan, one), many=False)
            found += cursor.fetchall()
        if plan.meta is None:
            return []
        key_to_index = plan.meta._key_to_index
        return [Row(plan.meta, plan.processors, key_to_index, raw) for raw in found]

    async def run(self, conn: AsyncConnection, params: Params | Sequence[Params] | None = None) -> int:
        """Execute the statement (once, or once per row of a list); how many rows it changed."""
        batch = list(params) if isinstance(params, Sequence) else [params or {}]
        if not batch:
            return 0
        inline = inline_connection(conn)
        many = len(batch) > 1
        plan = self._plan(conn.dialect, batch[0], many=many) if inline is not None else None
        if inline is None or plan is None:
            result = await conn.execute(self.statement, batch if many else batch[0])
            return int(result.rowcount or 0)
        bound = [_bind(plan, row) for row in batch] if many else _bind(plan, batch[0])
        cursor = await _run(inline, conn.dialect, plan, bound, many=many)
        if plan.meta is not None:
            cursor.fetchall()  # a RETURNING statement runs to its end as its rows are read
        return int(cursor.rowcount or 0)

    def _plan(self, dialect: Dialect, params: Params, *, many: bool) -> _Plan | None:
        key = (tuple(sorted(params)), many)
        try:
            return self._plans[key]
        except KeyError:
            pass
        try:
            plan: _Plan | None = _compile(self.statement, dialect, key[0], many)
        except NotPreparable:
            plan = None
        self._plans[key] = plan
        return plan


def inline_connection(conn: AsyncConnection) -> InlineConnection | None:
    """The inline SQLite connection under ``conn``, if it is one and nothing watches the
    statements SQLAlchemy runs (``echo``, ``before_cursor_execute`` listeners: those see every
    statement, so they get the regular path)."""
    sync = conn.sync_connection
    if conn.dialect.name != "sqlite" or sync is None or sync.engine.echo:
        return None
    if _watched(sync.engine) or _watched(sync):
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, InlineConnection) else None


def _watched(target: sa.Engine | sa.Connection) -> bool:
    # _has_events: SQLAlchemy's own flag (any listener at all), cheap to test first; a
    # connection kept open since before a listener came has its engine's flag to go by.
    dispatch = target.dispatch
    return target._has_events and bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _compile(statement: Statement, dialect: Dialect, keys: tuple[str, ...], many: bool) -> _Plan:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=many)
    assert isinstance(compiled, SQLCompiler)
    if compiled.positiontup is None or compiled.literal_execute_params or compiled.post_compile_params:
        raise NotPreparable("parameters rendered at execution")
    # (Columns set by SQL, ``compiled.postfetch``, only matter to ``CursorResult.postfetch_cols``.)
    if getattr(compiled, "update_prefetch", None):
        raise NotPreparable("column defaults evaluated on update")
    if many and compiled.effective_returning:
        raise NotPreparable("RETURNING of many rows (insertmanyvalues)")
    prefetch = {column.key: column for column in getattr(compiled, "insert_prefetch", ())}
    values: list[_Value] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        process = bind.type._cached_bind_processor(dialect)
        values.append(_value(name, bind, prefetch.get(name), process))
    meta = processors = None
    if compiled._result_columns:
        columns = compiled._result_columns
        meta = SimpleResultMetaData([c.keyname for c in columns], extra=[c.objects for c in columns])
        processors = [c.type._cached_result_processor(dialect, None) for c in columns]
        if not any(processors):
            processors = None
    return _Plan(str(compiled), tuple(values), meta, processors)


def _value(name: str, bind: Any, column: Any, process: Callable[[Any], Any] | None) -> _Value:
    """How the parameter ``name`` gets its value: the caller's, else the statement's
    constant or the column's default; then the type's bind processor."""
    if column is not None:  # an INSERT column the caller left out: its default
        default = column.default
        if default is None or not (default.is_scalar or default.is_callable):
            raise NotPreparable(f"default of {column.key} is not a value")
        if default.is_scalar:
            fixed = default.arg
            get: _Value = lambda params: params.get(name, fixed)  # noqa: E731
        else:
            make = getattr(default.arg, "__wrapped__", None)  # SQLAlchemy wraps a function of nothing
            if make is None:
                raise NotPreparable(f"default of {column.key} reads the execution context")
            get = lambda params: params[name] if name in params else make()  # noqa: E731
    elif bind.callable is not None:
        raise NotPreparable(f"parameter {name} is computed at execution")
    elif bind.required:
        get = lambda params: params[name]  # noqa: E731
    else:
        fixed_value = bind.value
        get = lambda params: params.get(name, fixed_value)  # noqa: E731
    if process is None:
        return get
    return lambda params: process(get(params))


def _bind(plan: _Plan, params: Params) -> tuple[Any, ...]:
    try:
        return tuple(value(params) for value in plan.values)
    except KeyError as missing:
        raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {missing}") from None


async def _run(inline: InlineConnection, dialect: Dialect, plan: _Plan, bound: Any, *, many: bool) -> sqlite3.Cursor:
    raw = inline.raw
    try:
        if many:
            return await inline.run(raw.executemany, plan.sql, bound)
        return await inline.run(raw.execute, plan.sql, bound)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(plan.sql, bound, exc, sqlite3.Error, dialect=dialect,
                                         ismulti=many) from exc
